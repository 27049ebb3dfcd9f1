import ArgumentParser
import Foundation
import SinewCore
import SinewKinematics

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure what Sinew costs (release build).",
        discussion: """
            Figures are medians over repeated runs. Compare them side by side with their peers in one run: \
            Benchmarks/kinematics-vs-pinocchio.sh measures Pinocchio on the same machine; `sinew bench bus` runs \
            the vendors' Python SDKs itself.
            """,
        subcommands: [
            KinematicsBench.self, IKBench.self, FusionBench.self, BusBench.self, LoopBench.self, PolicyBench.self,
            RemotePolicyBench.self, RecordingBench.self,
        ]
    )
}

/// Monotonic time in nanoseconds.
@inline(__always) func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct KinematicsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kinematics",
        abstract: "Median ns per call of FK (all links), one frame Jacobian, RNEA, CRBA and ABA through the Swift API.",
        discussion: """
            Each figure is the median over 7 runs of the mean time of --calls calls, cycling through 256 random \
            configurations (joint values, velocities and accelerations uniform in [-1, 1]), as Pinocchio's \
            benchmark (Benchmarks/pinocchio/pinbench.cpp) does. The Jacobian is that of the deepest link.
            """)

    @OptionGroup var robot: RobotFileOptions

    @Option(parsing: .unconditional, help: "Calls per run.")
    var calls = 50_000

    func validate() throws {
        guard (1...100_000_000).contains(calls) else {
            throw ValidationError("--calls must be between 1 and 100000000; got \(calls)")
        }
    }

    @Flag(help: "Print one JSON object with fk_ns, jacobian_ns, rnea_ns, crba_ns, aba_ns.")
    var json = false

    func run() throws {
        let model = try robot.loadModel()
        let w = KinematicsWorkspace(model: model)
        let n = model.dofCount
        let count = 256
        let q = UnsafeMutableBufferPointer<Double>.allocate(capacity: count * n)
        let v = UnsafeMutableBufferPointer<Double>.allocate(capacity: count * n)
        let a = UnsafeMutableBufferPointer<Double>.allocate(capacity: count * n)
        defer { for b in [q, v, a] { b.deallocate() } }
        var rng = SystemRandomNumberGenerator()
        for i in 0..<(count * n) {
            q[i] = Double.random(in: -1...1, using: &rng)
            v[i] = Double.random(in: -1...1, using: &rng)
            a[i] = Double.random(in: -1...1, using: &rng)
        }
        func sample(_ b: UnsafeMutableBufferPointer<Double>, _ i: Int) -> UnsafeBufferPointer<Double> {
            UnsafeBufferPointer(rebasing: b[(i & (count - 1)) * n..<((i & (count - 1)) + 1) * n])
        }
        let calls = self.calls
        func median(_ body: (Int) -> Void) -> Double {
            var runs: [Double] = []
            for _ in 0..<7 {
                let start = monotonicNanoseconds()
                for i in 0..<calls { body(i) }
                runs.append(Double(monotonicNanoseconds() - start) / Double(calls))
            }
            return runs.sorted()[3]
        }
        let tip = model.deepestLink
        let fk = median { w.forwardKinematics(sample(q, $0)) }
        let jacobian = median { w.frameJacobian(sample(q, $0), link: tip) }
        let rnea = median { w.inverseDynamics(sample(q, $0), sample(v, $0), sample(a, $0)) }
        let crba = median { w.computeMassMatrix(sample(q, $0)) }
        let aba = median { w.forwardDynamics(sample(q, $0), sample(v, $0), sample(a, $0)) }
        if json {
            print(
                JSONValue.object([
                    ("model", .string(model.name)), ("dof", .integer(n)), ("links", .integer(model.links.count)),
                    ("fk_ns", .number(fk.rounded1)), ("jacobian_ns", .number(jacobian.rounded1)),
                    ("rnea_ns", .number(rnea.rounded1)), ("crba_ns", .number(crba.rounded1)),
                    ("aba_ns", .number(aba.rounded1)),
                ]).text)
        } else {
            print("\(model.name): \(n) degrees of freedom, \(model.links.count) links (median ns per call)")
            print("  forward kinematics, all links  \(String(format: "%8.1f", fk))")
            print("  frame Jacobian (\(model.links[tip].name))  \(String(format: "%8.1f", jacobian))")
            print("  inverse dynamics (RNEA)        \(String(format: "%8.1f", rnea))")
            print("  mass matrix (CRBA)             \(String(format: "%8.1f", crba))")
            print("  forward dynamics (ABA)         \(String(format: "%8.1f", aba))")
        }
    }
}

extension Double {
    var rounded1: Double { (self * 10).rounded() / 10 }
}

struct IKBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ik",
        abstract: "Success rate and time of inverse kinematics on random reachable targets.",
        discussion: """
            Protocol (as TRAC-IK's published comparison): each target is the pose of --frame at a random \
            configuration within the joint limits (continuous joints in [-pi, pi]); the solver starts from the \
            middle of the joint limits. A solve succeeds when the configuration it returns, checked by forward \
            kinematics, is within 1e-5 m and 1e-5 rad of the target and within the limits.
            """)

    @OptionGroup var robot: RobotFileOptions

    @Option(help: "Link to place.")
    var frame: String

    @Option(parsing: .unconditional, help: "Number of random targets.")
    var samples = 10_000

    @Option(parsing: .unconditional, help: "Seed of the random targets.")
    var seed: UInt64 = 1

    @Option(parsing: .unconditional, help: "Time budget per solve in milliseconds.")
    var timeBudgetMs = 5.0

    func validate() throws {
        guard (1...1_000_000).contains(samples) else {
            throw ValidationError("--samples must be between 1 and 1000000; got \(samples)")
        }
        try KinematicsOptionRules.check(timeBudgetMs: timeBudgetMs)
    }

    @Flag(help: "Print one JSON object with success_rate (0-1), mean_us, p99_us.")
    var json = false

    func run() throws {
        let model = try robot.loadModel()
        guard let link = model.linkIndex(named: frame) else {
            throw ValidationError("no link named \"\(frame)\" in \(robot.urdf)")
        }
        guard samples > 0 else { throw ValidationError("--samples must be positive") }
        let w = KinematicsWorkspace(model: model)
        let solver = InverseKinematicsSolver(model: model)
        solver.options.timeBudgetSeconds = timeBudgetMs / 1000
        let seedPositions = model.midRangePositions
        var rng = SplitMix(state: seed)
        var times: [Double] = []
        times.reserveCapacity(samples)
        var successes = 0
        var attempts = 0
        var iterations = 0
        for _ in 0..<samples {
            var q = model.joints.map { j in
                let (lo, hi) =
                    j.lowerLimit.isFinite && j.upperLimit.isFinite
                    ? (j.lowerLimit, j.upperLimit) : (-Double.pi, Double.pi)
                return lo + (hi - lo) * rng.unit()
            }
            model.mimicFolding.applyMimic(to: &q)
            w.forwardKinematics(q)
            let target = w.linkPose(link)
            let start = monotonicNanoseconds()
            let solution = seedPositions.withUnsafeBufferPointer { solver.solve(link: link, target: target, seed: $0) }
            times.append(Double(monotonicNanoseconds() - start) / 1000)
            attempts += solution.attempts
            iterations += solution.iterations
            let answer = Array(solver.positions)
            w.forwardKinematics(answer)
            let reached = w.linkPose(link)
            if poseErrors(reached, target).position <= 1e-5 && poseErrors(reached, target).rotation <= 1e-5
                && zip(answer, model.joints).allSatisfy({ $0 >= $1.lowerLimit - 1e-12 && $0 <= $1.upperLimit + 1e-12 })
            {
                successes += 1
            }
        }
        let mean = times.reduce(0, +) / Double(times.count)
        let sorted = times.sorted()
        let p99 = sorted[min(sorted.count - 1, Int(0.99 * Double(sorted.count)))]
        let rate = Double(successes) / Double(samples)
        if json {
            print(
                JSONValue.object([
                    ("model", .string(model.name)), ("frame", .string(frame)), ("samples", .integer(samples)),
                    ("success_rate", .number(rate)), ("mean_us", .number(mean.rounded1)),
                    ("p99_us", .number(p99.rounded1)),
                ]).text)
        } else {
            print("\(model.name), frame \(frame), \(samples) random reachable targets, seed \(seed):")
            print(
                String(
                    format: "  success %.2f%% at 1e-5 m and 1e-5 rad; mean %.1f µs, p99 %.1f µs per solve", 100 * rate,
                    mean, p99))
            print(
                String(
                    format: "  mean %.2f attempts and %.1f iterations per solve; median %.1f µs",
                    Double(attempts) / Double(samples),
                    Double(iterations) / Double(samples), sorted[sorted.count / 2]))
        }
    }
}

/// Position (m) and rotation (rad) distance between two poses.
func poseErrors(_ a: RigidTransform, _ b: RigidTransform) -> (position: Double, rotation: Double) {
    let dp = (a.translation.0 - b.translation.0, a.translation.1 - b.translation.1, a.translation.2 - b.translation.2)
    let position = (dp.0 * dp.0 + dp.1 * dp.1 + dp.2 * dp.2).squareRoot()
    // Angle of Ra·Rbᵀ from its trace.
    let r = a.rotation
    let s = b.rotation
    let trace =
        r.0 * s.0 + r.1 * s.1 + r.2 * s.2 + r.3 * s.3 + r.4 * s.4 + r.5 * s.5 + r.6 * s.6 + r.7 * s.7 + r.8 * s.8
    let rotation = acos(max(-1, min(1, (trace - 1) / 2)))
    return (position, rotation)
}

/// A small seeded generator so benchmark targets are reproducible.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
