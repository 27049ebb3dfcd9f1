import ArgumentParser
import Foundation
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewPolicy
import SinewRuntime

struct PolicyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "The decide stage's cost per call for each built-in policy and each mode of the chunk bridge, and "
            + "the bridge's smoothness beside LeRobot-style sample-and-hold.",
        discussion: """
            Decide stage: each policy is built for a shipped robot's 6 joints and called as the loop calls it: one \
            preallocated observation, refilled before every call with a moving state (the robot follows the last \
            command with a lag of a few ticks, plus a 2 mrad wobble) on a 500 Hz loop clock; `compute` is timed on \
            its own with clock_gettime(CLOCK_MONOTONIC) around it (the clock's own cost, some tens of ns, \
            included), --ticks calls after 2000 untimed warm-up calls. Policies: hold and trajectory (the SO-101's \
            robot.yaml waypoints, looped so every call is in motion), cartesian (SO-101, two goals from forward \
            kinematics of two configurations, looped), impedance and gravity_compensation (dxl6, every joint by \
            effort, RNEA gravity every call), jog (SO-101, a diagonal twist with a turn, as a held key asks), mlp \
            (the 18 → 256 → 256 → 6 relu network of MLPBenchmark on the SO-101's joints), and the tick side of the mixed-rate bridge per mode (bridge_<mode>: taking a chunk \
            from the hand-off when one arrives, folding it in, interpolating; 6-joint chunks of 50 steps at 30 Hz \
            arriving at 5-15 Hz, 30-150 ms after their observation). Goals (p99): 5 µs for 6 joints, 20 µs for \
            cartesian and jog, 10 µs for mlp; mlp_p99_us is one network evaluation alone. teleop is not timed: \
            its decide stage is one sync read of the leader's bus, the wire's cost (`sinew bench bus`).
            Bridge table: BridgeComparison.run(seed: 1), RMS jerk of the 500 Hz command and its largest step per \
            tick for every mode and for sample_and_hold_30hz on the same synthetic run (see docs/policies.md). \
            --bridge-csv writes that run's time series for Benchmarks/plot_bridge.py (`make plot-bridge`).
            Every key of --json is described in docs/bench-policy-json.md.
            Example: sinew bench policy --ticks 50000
            """)

    @Option(parsing: .unconditional, help: "Timed calls per policy (10000 to 100000000), after 2000 warm-up calls.")
    var ticks = 20_000

    @Option(
        name: .customLong("bridge-csv"),
        help: ArgumentHelp(
            "Also write the bridge comparison's time series (t,mode,joint0) to this CSV file, for "
                + "Benchmarks/plot_bridge.py.", valueName: "path"))
    var bridgeCSV: String?

    @Flag(
        help: """
            Print one JSON object: decide_p99_us (policy → µs, bridge modes as bridge_<mode>), decide_p50_us, \
            decide_max_us, decide_goal_us, mlp_p99_us, bridge (mode → {rms_jerk, max_step_rad}) and more \
            (docs/bench-policy-json.md).
            """)
    var json = false

    static let warmupCalls = 2_000
    static let loopRateHz = 500.0
    static let bridgeSeed: UInt64 = 1

    func validate() throws {
        guard (10_000...100_000_000).contains(ticks) else {
            throw ValidationError("--ticks must be between 10000 and 100000000; got \(ticks)")
        }
    }

    func run() throws {
        let hardware = try HardwareDirectory.locate()
        let catalog = try ServoTables.load()
        let so101 = try BenchRobot(path: hardware + "/robots/so101/robot.yaml", catalog: catalog)
        let dxl6 = try BenchRobot(path: hardware + "/robots/dxl6/robot.yaml", catalog: catalog)
        let cases = try Self.cases(so101: so101, dxl6: dxl6)
        if !json {
            printError(
                "measuring \(cases.count) policies × \(ticks) calls after \(Self.warmupCalls) warm-up calls, "
                    + "then the bridge comparison")
        }
        var rows: [PolicyBenchRow] = []
        for benchCase in cases {
            let policy = try benchCase.make()
            let result = DecideBenchmark.measure(
                policy: policy, jointNames: benchCase.robot.jointNames, startRad: benchCase.robot.startRad,
                loopRateHz: Self.loopRateHz, calls: ticks,
                warmupCalls: Self.warmupCalls, beforeCall: (policy as? BridgeTickSide)?.produce(untilNs:))
            rows.append(
                PolicyBenchRow(
                    name: benchCase.name, robot: benchCase.robot.name, goalUs: benchCase.goalUs, result: result))
        }
        // The network alone, as MLPBenchmark times it for `make bench-mlp` (the 10 µs goal is for this).
        let network = try MLPNetwork.load(from: MLPBenchmark.referenceModel())
        let inference = MLPBenchmark.measureInference(
            network: network, calls: ticks, warmupCalls: Self.warmupCalls)
        let bridge = BridgeComparison.run(seed: Self.bridgeSeed)
        if let bridgeCSV {
            do {
                try BridgeComparison.csv(seed: Self.bridgeSeed).write(
                    toFile: bridgeCSV, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write --bridge-csv \(bridgeCSV): \(error.localizedDescription)")
            }
            if !json { printError("wrote the bridge's time series to \(bridgeCSV)") }
        }
        let result = PolicyBenchResult(
            calls: ticks, rows: rows, network: network.summary, inference: inference, bridge: bridge)
        print(json ? result.json.text : result.table)
    }

    // MARK: The policies

    /// One policy to time: its name in the report, its robot, its goal (µs, p99) and how to build it.
    struct BenchCase {
        var name: String
        var robot: BenchRobot
        var goalUs: Double
        var make: () throws -> any Policy
    }

    static let jointGoalUs = 5.0
    static let cartesianGoalUs = 20.0
    static let mlpGoalUs = 10.0

    static func cases(so101: BenchRobot, dxl6: BenchRobot) throws -> [BenchCase] {
        var cases: [BenchCase] = [
            BenchCase(name: "hold", robot: so101, goalUs: jointGoalUs) {
                HoldPolicy(jointNames: so101.jointNames)
            },
            BenchCase(name: "trajectory", robot: so101, goalUs: jointGoalUs) {
                guard let shipped = so101.configuration.policy.settings as? RobotConfiguration.Trajectory else {
                    throw ValidationError("\(so101.configuration.file): the policy is not a trajectory")
                }
                // Looped, so that every timed call is in motion (the shipped one ends after about 11 s).
                return try RobotConfiguration.Trajectory(waypoints: shipped.waypoints, loop: true)
                    .makePolicy(in: so101.buildContext)
            },
            BenchCase(name: "cartesian", robot: so101, goalUs: cartesianGoalUs) {
                try cartesian(so101)
            },
            BenchCase(name: "impedance", robot: dxl6, goalUs: jointGoalUs) {
                // ImpedancePolicyType's defaults: 5 N·m/rad, 0.1 N·m·s/rad, gravity compensated.
                try ImpedancePolicy(
                    typeName: "impedance", model: dxl6.model, jointNames: dxl6.jointNames,
                    drivenJoints: dxl6.jointNames, stiffnessNmPerRad: dxl6.perJoint(5),
                    dampingNmsPerRad: dxl6.perJoint(0.1), targetRad: nil, compensatesGravity: true)
            },
            BenchCase(name: "gravity_compensation", robot: dxl6, goalUs: jointGoalUs) {
                // GravityCompensationPolicyType's defaults: no stiffness, 0.02 N·m·s/rad.
                try ImpedancePolicy(
                    typeName: "gravity_compensation", model: dxl6.model, jointNames: dxl6.jointNames,
                    drivenJoints: dxl6.jointNames, stiffnessNmPerRad: dxl6.perJoint(0),
                    dampingNmsPerRad: dxl6.perJoint(0.02), targetRad: nil, compensatesGravity: true)
            },
            // The mlp robot.yaml type (being added) builds the same MLPPolicy; this one is the reference network
            // on the SO-101's joints: positions, velocities and the previous action in, position targets out.
            BenchCase(name: "mlp", robot: so101, goalUs: mlpGoalUs) {
                let names = so101.jointNames
                let settings = MLPPolicy.Settings(
                    file: "reference-mlp.safetensors",
                    observation: [.jointPositions(names), .jointVelocities(names), .previousAction], actionJoints: names
                )
                return try MLPPolicy(
                    settings: settings, jointNames: names, model: MLPBenchmark.referenceModel())
            },
            // Jogging diagonally and turning, as a held key or a pushed stick asks (the joystick left out).
            BenchCase(name: "jog", robot: so101, goalUs: cartesianGoalUs) {
                var settings = JogPolicy.Settings(frame: "gripper_frame_link")
                settings.linearSpeedMPerS = 0.05
                let policy = try JogPolicySettings(settings: settings, joystick: "none").makePolicy(
                    in: so101.buildContext)
                (policy as? JogPolicy)?.input.set(.program, axes: (0.5, 0.3, 0, 0, 0, 0.4))
                return policy
            },
            // teleop is left out: its decide stage is one sync read of the leader's bus, whose cost is the
            // wire's (`sinew bench bus`), not the policy's arithmetic (a copy and a clamp per joint).
        ]
        for mode in ChunkBlendMode.defaults {
            cases.append(
                BenchCase(name: "bridge_" + mode.name, robot: so101, goalUs: jointGoalUs) {
                    BridgeTickSide(jointNames: so101.jointNames, mode: mode, seed: bridgeSeed)
                })
        }
        return cases
    }

    /// The SO-101's gripper frame between two poses from forward kinematics (the first with its orientation, the
    /// second position only), and back, looping: straight lines by differential IK every call.
    static func cartesian(_ robot: BenchRobot) throws -> CartesianPolicy {
        let frame = "gripper_frame_link"
        guard let link = robot.model.linkIndex(named: frame) else {
            throw ValidationError("\(robot.model.file) has no link \(frame)")
        }
        let kinematics = try PolicyKinematics(model: robot.model, jointNames: robot.jointNames)
        func pose(_ q: [Double]) -> RigidTransform {
            let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: q.count)
            defer { buffer.deallocate() }
            _ = buffer.initialize(from: q)
            kinematics.setPositions(buffer)
            return kinematics.linkPose(link)
        }
        let a = pose([0.5, -0.7, 0.7, 1.1, 0.3, 1.2])
        let b = pose([0.5, -0.05, 0.5, 1.1, 0.3, 1.2])
        var settings = CartesianPolicy.Settings(
            frame: frame,
            goals: [
                CartesianPolicy.Goal(positionM: a.translationVector, orientation: Rotation3(a), durationS: 2),
                CartesianPolicy.Goal(positionM: b.translationVector, durationS: 2),
            ])
        settings.loops = true
        let limits = robot.buildContext.jointLimits.map {
            (
                lowerRad: $0.positionMinRad + $0.positionMarginRad, upperRad: $0.positionMaxRad - $0.positionMarginRad,
                velocityRadPerS: $0.velocityLimitRadPerS
            )
        }
        do {
            return try CartesianPolicy(
                model: robot.model, jointNames: robot.jointNames, settings: settings, limits: limits,
                loopRateHz: loopRateHz)
        } catch {
            throw ValidationError("cartesian: \(error)")
        }
    }
}

/// A shipped robot, loaded and checked, with what a policy is built from.
struct BenchRobot {
    var name: String
    var configuration: RobotConfiguration
    var model: RobotModel
    var buildContext: PolicyBuildContext
    var jointNames: [String]
    /// Where the robot is at activation: the middle of each joint's range, as the simulator starts it.
    var startRad: [Double]

    init(path: String, catalog: ServoCatalog) throws {
        let checked = try RobotConfiguration.loadChecked(contentsOf: path)
        configuration = checked.configuration
        model = checked.model
        name = configuration.name
        jointNames = configuration.joints.map(\.name)
        buildContext = PolicyBuildContext(
            configuration: configuration, model: model, catalog: catalog,
            jointLimits: configuration.jointSafetyLimits(against: model), loopRateHz: PolicyBench.loopRateHz,
            lockstep: false)
        let (model, middle) = (checked.model, checked.model.midRangePositions)
        startRad = checked.configuration.joints.map { joint in
            guard let j = model.jointIndex(named: joint.name) else { return 0 }
            let q = middle[j]
            guard let range = joint.limits.positionRad else { return q }
            return min(max(q, range.lower), range.upper)
        }
    }

    func perJoint(_ value: Double) -> [Double] { [Double](repeating: value, count: jointNames.count) }
}

/// The decide stage's cost per call, measured as `RobotLoop.decide` calls a policy.
enum DecideBenchmark {
    struct Result {
        var calls: Int
        var p50Us: Double
        var p99Us: Double
        var maxUs: Double
    }

    /// Resets `policy` at `startRad` (rad, one per joint of `jointNames`, robot.yaml order), then calls it `warmupCalls + calls` times on a loop
    /// clock at `loopRateHz`, timing the last `calls`. Before each call the observation is refilled as the sense
    /// stage would: the measured pose follows the previous command with a first-order lag (time constant about
    /// 5 ticks) plus a 2 mrad wobble at 1.3 Hz, velocities are its finite differences, efforts a small load.
    /// `beforeCall(timeNs)` runs untimed before each call (the bridge's producer side). The observed frames'
    /// positions (the estimate stage's forward kinematics) stay at 0: no built-in policy reads them.
    static func measure(
        policy: any Policy, jointNames: [String], startRad: [Double], loopRateHz: Double, calls: Int,
        warmupCalls: Int, beforeCall: ((Int64) -> Void)? = nil
    ) -> Result {
        let n = jointNames.count
        let observation = PolicyObservation(jointNames: jointNames, frameNames: policy.observedFrames)
        let command = PolicyCommand(jointCount: n)
        let followed = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(1, n))
        defer { followed.deallocate() }
        for j in 0..<n {
            observation.positionRad[j] = startRad[j]
            followed[j] = startRad[j]
        }
        policy.reset(from: observation, into: command)
        let periodNs = Int64((1e9 / loopRateHz).rounded())
        let periodS = Double(periodNs) * 1e-9
        var samples = [Double](repeating: 0, count: max(1, calls))
        var start = timespec()
        var end = timespec()
        samples.withUnsafeMutableBufferPointer { samples in
            for k in 1...(warmupCalls + calls) {
                let timeNs = Int64(k) * periodNs
                let timeS = Double(timeNs) * 1e-9
                for j in 0..<n {
                    followed[j] += 0.2 * (command.positionRad[j] - followed[j])
                    let q = followed[j] + 0.002 * sin(2 * Double.pi * 1.3 * timeS + Double(j))
                    observation.velocityRadPerS[j] = (q - observation.positionRad[j]) / periodS
                    observation.positionRad[j] = q
                    observation.effortNm[j] = 0.05 * sin(2 * Double.pi * 0.7 * timeS + Double(j))
                }
                observation.timeNs = timeNs
                beforeCall?(timeNs)
                clock_gettime(CLOCK_MONOTONIC, &start)
                command.computedForNs = timeNs
                policy.compute(observation, into: command)
                clock_gettime(CLOCK_MONOTONIC, &end)
                if k > warmupCalls {
                    samples[k - warmupCalls - 1] =
                        Double(end.tv_sec - start.tv_sec) * 1e6 + Double(end.tv_nsec - start.tv_nsec) * 1e-3
                }
            }
        }
        samples.sort()
        let count = samples.count
        func percentile(_ p: Double) -> Double { samples[min(count - 1, Int((p * Double(count)).rounded(.down)))] }
        return Result(calls: count, p50Us: percentile(0.5), p99Us: percentile(0.99), maxUs: samples[count - 1])
    }
}

/// The mixed-rate bridge's tick side as `ChunkPolicyAdapter` runs it in real time (its `compute` outside
/// lockstep): the observation handed to the policy thread's triple buffer, the newest chunk taken from the
/// other, folded in, and the bridge's tick written into the command. The policy thread is played by
/// ``produce(untilNs:)``, untimed: a ``SyntheticChunkPolicy`` for the robot's joints, asked on the 30 Hz frame
/// grid every 2–6 frames (one request at a time), each chunk arriving 30–150 ms after its observation (the
/// first at once), as ``BridgeComparison`` schedules them.
final class BridgeTickSide: Policy {
    let typeName: String
    let commands: [PolicyJointCommand]
    let bridge: ChunkBridge
    private let producer: SyntheticChunkPolicy
    private let observations: TripleBuffer<PolicyObservation>
    private let chunks: TripleBuffer<ActionChunk>
    private let inFlight: ActionChunk
    private let producerObservation: PolicyObservation
    private var inFlightArrivalNs: Int64?
    private var nextRequestFrame = 0
    private var random: SplitMix64
    private let frameNs = 1e9 / BridgeComparison.frameRateHz

    init(jointNames: [String], mode: ChunkBlendMode, seed: UInt64) {
        typeName = "bridge_" + mode.name
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
        let steps = BridgeComparison.chunkSteps
        let n = jointNames.count
        producer = SyntheticChunkPolicy(
            joints: jointNames, chunkSteps: steps, stepDurationS: 1 / BridgeComparison.frameRateHz, seed: seed &+ 1)
        bridge = ChunkBridge(jointCount: n, maxChunkSteps: steps, settings: ChunkBridgeSettings(mode: mode))
        observations = TripleBuffer { PolicyObservation(jointNames: jointNames) }
        chunks = TripleBuffer { ActionChunk(jointCount: n, capacity: steps) }
        inFlight = ActionChunk(jointCount: n, capacity: steps)
        producerObservation = PolicyObservation(jointNames: jointNames)
        random = SplitMix64(seed: seed)
    }

    func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        producer.reset(from: observation)
        // The synthetic motion starts at rest at 0 rad, where the chunks begin.
        let start = (0..<bridge.jointCount).map { SyntheticChunkPolicy.referenceRad(timeS: 0, joint: $0) }
        bridge.reset(atNs: observation.timeNs, holding: start)
        nextRequestFrame = 0
        inFlightArrivalNs = nil
    }

    /// The policy thread's side up to `nowNs`: delivers the chunk in flight once its latency has passed, and
    /// asks for the next one on its frame.
    func produce(untilNs nowNs: Int64) {
        if let arrivalNs = inFlightArrivalNs, arrivalNs <= nowNs {
            chunks.writeSlot.copy(from: inFlight)
            chunks.publish()
            inFlightArrivalNs = nil
            nextRequestFrame = max(nextRequestFrame, Int((Double(arrivalNs) / frameNs).rounded(.up)))
        }
        let requestNs = Int64((Double(nextRequestFrame) * frameNs).rounded())
        guard inFlightArrivalNs == nil, requestNs <= nowNs else { return }
        producerObservation.timeNs = requestNs
        inFlight.observationTimeNs = requestNs
        inFlight.startNs = requestNs
        inFlight.stepNs = Int64(frameNs.rounded())
        inFlight.stepCount = inFlight.capacity
        producer.computeChunk(producerObservation, into: inFlight)
        let latencyNs = nextRequestFrame == 0 ? 0 : Int64((random.uniform(0.030...0.150) * 1e9).rounded())
        inFlightArrivalNs = requestNs + latencyNs
        nextRequestFrame += 2 + Int(random.next() % 5)
        if latencyNs == 0 { produce(untilNs: nowNs) }
    }

    func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let nowNs = observation.timeNs
        observations.writeSlot.copy(from: observation)
        observations.publish()
        if chunks.take() { bridge.receive(chunks.readSlot, nowNs: nowNs) }
        bridge.tick(nowNs: nowNs)
        for c in 0..<bridge.jointCount {
            command.positionRad[c] = bridge.positionRad[c]
            command.velocityRadPerS[c] = bridge.velocityRadPerS[c]
        }
        command.computedForNs = bridge.commandTimeNs
    }
}

/// One policy's figures.
struct PolicyBenchRow {
    var name: String
    var robot: String
    var goalUs: Double
    var result: DecideBenchmark.Result
}

/// Figures of one `sinew bench policy` run, as a table or one JSON object.
struct PolicyBenchResult {
    var calls: Int
    var rows: [PolicyBenchRow]
    var network: String
    var inference: MLPBenchmark.Result
    var bridge: [BridgeComparison.Row]

    static func rounded(_ us: Double) -> Double { (us * 1000).rounded() / 1000 }

    var json: JSONValue {
        func byPolicy(_ value: (PolicyBenchRow) -> JSONValue) -> JSONValue {
            .object(rows.map { ($0.name, value($0)) })
        }
        return .object([
            ("calls", .integer(calls)), ("warmup_calls", .integer(PolicyBench.warmupCalls)),
            ("loop_rate_hz", .number(PolicyBench.loopRateHz)),
            ("decide_p99_us", byPolicy { .number(Self.rounded($0.result.p99Us)) }),
            ("decide_p50_us", byPolicy { .number(Self.rounded($0.result.p50Us)) }),
            ("decide_max_us", byPolicy { .number(Self.rounded($0.result.maxUs)) }),
            ("decide_goal_us", byPolicy { .number($0.goalUs) }),
            ("decide_robot", byPolicy { .string($0.robot) }),
            ("mlp_p99_us", .number(Self.rounded(inference.p99Us))),
            ("mlp_p50_us", .number(Self.rounded(inference.p50Us))),
            ("mlp_max_us", .number(Self.rounded(inference.maxUs))),
            ("mlp_goal_us", .number(PolicyBench.mlpGoalUs)),
            ("mlp_network", .string(network)),
            ("bridge_seed", .integer(Int(PolicyBench.bridgeSeed))),
            (
                "bridge",
                .object(
                    bridge.map { row in
                        (
                            row.mode,
                            .object([
                                ("rms_jerk", .number(row.rmsJerkRadPerS3)), ("max_step_rad", .number(row.maxStepRad)),
                            ])
                        )
                    })
            ),
        ])
    }

    static func verdict(_ p99Us: Double, goalUs: Double) -> String { p99Us <= goalUs ? "ok" : "ABOVE GOAL" }

    var table: String {
        var lines: [String] = []
        lines.append(
            "decide stage per call, µs (\(calls) calls after \(PolicyBench.warmupCalls) warm-up, "
                + String(format: "%.0f Hz loop clock, 6 joints):", PolicyBench.loopRateHz))
        lines.append(
            "  " + "policy".padding(toLength: 28, withPad: " ", startingAt: 0)
                + "robot    p50      p99      max   goal (p99)")
        func row(_ name: String, _ robot: String, _ p50: Double, _ p99: Double, _ max: Double, _ goal: Double) -> String
        {
            "  " + name.padding(toLength: 28, withPad: " ", startingAt: 0)
                + robot.padding(toLength: 6, withPad: " ", startingAt: 0)
                + String(format: "%7.3f  %7.3f  %7.1f   ≤ %2.0f  ", p50, p99, max, goal)
                + Self.verdict(p99, goalUs: goal)
        }
        for r in rows { lines.append(row(r.name, r.robot, r.result.p50Us, r.result.p99Us, r.result.maxUs, r.goalUs)) }
        lines.append(
            row("mlp network alone", "—", inference.p50Us, inference.p99Us, inference.maxUs, PolicyBench.mlpGoalUs)
                + "  (mlp_p99_us: \(network))")
        lines.append("")
        lines.append(
            "bridge on synthetic chunks (seed \(PolicyBench.bridgeSeed): \(BridgeComparison.chunkSteps)-step chunks at "
                + String(
                    format: "%.0f Hz, produced at 5-15 Hz with 30-150 ms latency, commanded at %.0f Hz for %.0f s):",
                    BridgeComparison.frameRateHz, BridgeComparison.loopRateHz, BridgeComparison.durationS))
        lines.append(
            "  " + "mode".padding(toLength: 24, withPad: " ", startingAt: 0) + "RMS jerk (rad/s³)   max step (rad)")
        for b in bridge {
            lines.append(
                "  " + b.mode.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + String(format: "%17.1f   %14.5f", b.rmsJerkRadPerS3, b.maxStepRad))
        }
        return lines.joined(separator: "\n")
    }
}
