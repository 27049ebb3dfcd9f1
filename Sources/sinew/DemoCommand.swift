import ArgumentParser
import Foundation
import SinewCore
import SinewKinematics

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a simulated robot through the whole stack (no hardware needed): the SO-101 arm by default.",
        discussion: """
            Runs Hardware/robots/so101/robot.yaml on the simulated robot: six virtual STS3215 servos on a \
            Feetech bus at 1 Mbit/s with wire-time emulation, driven by the arm's rigid-body physics. The loop \
            configures the servos, ramps from the present pose and follows a pick-and-place trajectory for about \
            10 s, with a live status line (rate, wake-up latency p50/p99, tracking error, bus errors, safety state) and a summary with the \
            loop's latency percentiles at the end. --kinematics shows the kinematics core on the same arm instead.
            --robot runs another shipped robot's demo trajectory the same way: so101-bimanual (two arms on two \
            buses, a hand-over), humanoid-upper (26 servos on four buses: look around, wave, grasp, turn), dxl6.
            """)

    @Flag(help: "Show the kinematics and dynamics of the arm (poses, gravity torques, IK, timing) instead.")
    var kinematics = false

    @Option(
        help: ArgumentHelp(
            "A shipped robot (so101, so101-bimanual, humanoid-upper, dxl6; Hardware/robots/NAME) or a robot.yaml.",
            valueName: "name"))
    var robot = "so101"

    func validate() throws {
        if kinematics && robot != "so101" { throw ValidationError("--kinematics shows the SO-101 arm only") }
    }

    @OptionGroup(title: "Telemetry")
    var telemetry: TelemetryArguments

    func run() throws {
        if kinematics {
            try runKinematics()
            return
        }
        let path =
            robot.hasSuffix(".yaml") || robot.contains("/")
            ? robot : try HardwareDirectory.locate() + "/robots/\(robot)/robot.yaml"
        guard FileManager.default.fileExists(atPath: path) else {
            let shipped =
                (try? FileManager.default.contentsOfDirectory(atPath: HardwareDirectory.locate() + "/robots"))?
                .filter { !$0.hasSuffix(".py") }.sorted().joined(separator: ", ") ?? "?"
            throw ValidationError("--robot \(robot): no \(path) (shipped robots: \(shipped))")
        }
        let name = robot == "so101" ? "SO-101 arm" : robot
        let outcome = try RobotRun.run(
            configurationPath: path, backend: .sim, port: nil, duration: nil, statusLine: true,
            title: "Sinew demo: simulated \(name), \(path)", options: RunOptions(telemetry: telemetry.overrides))
        print(outcome.summary)
        print("\nNext: sinew run \(path) --json   ·   sinew demo --kinematics   ·   sinew --help")
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }

    func runKinematics() throws {
        let urdf = try HardwareDirectory.locate() + "/robots/so101/so101.urdf"
        let model = try RobotModel(urdf: urdf)
        let w = KinematicsWorkspace(model: model)
        let gripper = try requireLink(model, "gripper_frame_link")
        print(
            "SO-101 arm: \(model.dofCount) joints (\(model.joints.map(\.name).joined(separator: ", "))), \(model.links.count) links"
        )
        print("  from \(urdf)\n")

        // Waypoints of a pick and place, in degrees: home, above the object, grasp, lift, carry, release, home.
        let waypointsDeg: [[Double]] = [
            [0, -90, 90, 45, 0, 0], [35, -20, 40, 60, 0, 30], [35, 5, 35, 45, 0, 30], [35, 5, 35, 45, 0, 0],
            [35, -30, 45, 60, 0, 0], [-40, -25, 40, 60, 30, 0], [-40, 0, 30, 50, 30, 30], [0, -90, 90, 45, 0, 0],
        ]
        let names = ["home", "approach", "grasp", "close", "lift", "carry", "release", "home"]
        let toRad = Double.pi / 180
        print("  pose            gripper x,y,z (mm)        gravity torque per joint (N·m)")
        let solver = InverseKinematicsSolver(model: model)
        var ikWorst = 0.0
        var ikSolved = 0
        for (name, deg) in zip(names, waypointsDeg) {
            let q = deg.map { $0 * toRad }
            w.forwardKinematics(q)
            let p = w.linkPose(gripper).translation
            w.gravityEfforts(q)
            let torques = (0..<model.dofCount).map { String(format: "%6.3f", w.efforts[$0]) }.joined(separator: " ")
            print(
                "  \(name.padding(toLength: 10, withPad: " ", startingAt: 0))  "
                    + String(format: "%7.1f %7.1f %7.1f", 1000 * p.0, 1000 * p.1, 1000 * p.2) + "    \(torques)")
            let target = w.linkPose(gripper)
            let solution = solver.solve(link: gripper, target: target, seed: model.midRangePositions)
            if solution.converged { ikSolved += 1 }
            ikWorst = max(ikWorst, solution.positionError)
        }
        print(
            "\n  inverse kinematics back to each pose from mid-range: \(ikSolved)/\(names.count) solved, "
                + String(format: "worst residual %.1e m", ikWorst))

        // Dense trajectory: cost of the full kinematics + dynamics of one control tick.
        let steps = 20_000
        var q = [Double](repeating: 0, count: model.dofCount)
        let v = [Double](repeating: 0.1, count: model.dofCount)
        let start = monotonicNanoseconds()
        for s in 0..<steps {
            let phase = Double(s) / Double(steps) * Double(waypointsDeg.count - 1)
            let k = min(Int(phase), waypointsDeg.count - 2)
            let f = phase - Double(k)
            let blend = f * f * (3 - 2 * f)
            for j in 0..<model.dofCount {
                q[j] = toRad * (waypointsDeg[k][j] + blend * (waypointsDeg[k + 1][j] - waypointsDeg[k][j]))
            }
            w.forwardKinematics(q)
            w.frameJacobian(q, link: gripper)
            w.inverseDynamics(q, v, v)
            w.computeMassMatrix(q)
        }
        let perTick = Double(monotonicNanoseconds() - start) / Double(steps) / 1000
        print(
            String(
                format:
                    "  FK of all links + gripper Jacobian + inverse dynamics + mass matrix: %.2f µs per tick (%d ticks)",
                perTick, steps))
        print("\nNext: sinew kinematics info \(urdf)   ·   sinew bench kinematics \(urdf)   ·   sinew --help")
    }

    private func requireLink(_ model: RobotModel, _ name: String) throws -> Int {
        guard let link = model.linkIndex(named: name) else {
            throw ValidationError("the shipped SO-101 description has no link \"\(name)\"")
        }
        return link
    }
}
