import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy
import SinewRuntime
import Testing

/// The `cartesian` policy on the simulated arms, in lockstep on the simulation clock.
@Suite(.serialized) struct CartesianPolicyLoopTests {
    /// The pose of `frame` at a configuration (robot.yaml joint order).
    static func pose(_ rig: SimulatedRig, frame: String, at q: [Double]) throws -> RigidTransform {
        let kinematics = try PolicyKinematics(model: rig.model, jointNames: rig.configuration.joints.map(\.name))
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: q.count)
        defer { buffer.deallocate() }
        _ = buffer.initialize(from: q)
        kinematics.setPositions(buffer)
        return kinematics.linkPose(try #require(rig.model.linkIndex(named: frame)))
    }

    static func limits(_ rig: SimulatedRig) -> [(lowerRad: Double, upperRad: Double, velocityRadPerS: Double)] {
        rig.loop.supervisor.configuration.joints.map {
            (
                $0.positionMinRad + $0.positionMarginRad, $0.positionMaxRad - $0.positionMarginRad,
                $0.velocityLimitRadPerS
            )
        }
    }

    /// Drives `robot` through goals taken from forward kinematics of `configurations` (the first with its
    /// orientation, then alternately position only and full pose), then holds: each goal is passed within
    /// 3 mm, the last is held within 2 mm and 2° at rest.
    func reachGoals(robot: String, frame: String, configurations: [[Double]]) throws {
        let probe = try SimulatedRig(robot: robot, lockstep: true)
        var goals: [CartesianPolicy.Goal] = []
        for (i, q) in configurations.enumerated() {
            let pose = try Self.pose(probe, frame: frame, at: q)
            let full = i % 2 == 0 || i == configurations.count - 1
            goals.append(
                CartesianPolicy.Goal(
                    positionM: pose.translationVector, orientation: full ? Rotation3(pose) : nil, durationS: 1))
        }
        let policy = try CartesianPolicy(
            model: probe.model, jointNames: probe.configuration.joints.map(\.name),
            settings: CartesianPolicy.Settings(frame: frame, goals: goals), limits: Self.limits(probe),
            loopRateHz: probe.configuration.loop.rateHz)
        let rig = try SimulatedRig(robot: robot, lockstep: true, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        for notice in policy.notices { print("\(robot): \(notice)") }
        let endS = policy.plannedPassS
        let rate = rig.configuration.loop.rateHz
        let lastTick = Int64((endS + 2) * rate)
        let kinematics = try PolicyKinematics(model: rig.model, jointNames: rig.configuration.joints.map(\.name))
        let link = try #require(rig.model.linkIndex(named: frame))
        var closest = [Double](repeating: .infinity, count: goals.count)
        let body = ProbeBody(loop: rig.loop)
        body.stopAtTick = lastTick
        body.afterSense = { _ in
            kinematics.setPositions(rig.loop.supervisor.measuredPositionRad)
            let p = kinematics.linkPose(link).translationVector
            for (g, goal) in goals.enumerated() {
                let d = p - goal.positionM
                closest[g] = min(closest[g], (d * d).sum().squareRoot())
            }
        }
        _ = try Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: lastTick + 10), body: body
        )
        .run()
        let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
        #expect(events.isEmpty, "\(events)")
        kinematics.setPositions(rig.loop.supervisor.measuredPositionRad)
        let end = kinematics.linkPose(link)
        let last = try #require(goals.last)
        let d = end.translationVector - last.positionM
        let positionErrorMM = (d * d).sum().squareRoot() * 1000
        let angleDeg = Rotation3.angle(Rotation3(end), try #require(last.orientation)) * 180 / .pi
        print(
            "\(robot) cartesian: \(goals.count) goals in \(endS) s; closest pass per goal "
                + "\(closest.map { ($0 * 10000).rounded() / 10 }) mm; at rest \(positionErrorMM) mm, \(angleDeg)°")
        for (g, c) in closest.enumerated() { #expect(c < 0.003, "goal \(g + 1) passed \(c * 1000) mm away") }
        #expect(positionErrorMM <= 2)
        #expect(angleDeg <= 2)
        try rig.loop.lifecycle.shutdown()
    }

    @Test func theSO101ReachesItsGoals() throws {
        try reachGoals(
            robot: "so101", frame: "gripper_frame_link",
            configurations: [
                [0.5, -0.7, 0.7, 1.1, 0.3, 1.2], [0.5, -0.05, 0.5, 1.1, 0.3, 1.2], [-0.6, -0.8, 0.6, 1.1, -0.3, 0.15],
            ])
    }

    @Test func theDynamixelArmReachesItsGoals() throws {
        try reachGoals(
            robot: "dxl6", frame: "tool_link",
            configurations: [
                [0.45, 0.45, 1.35, 1.32, 0.0, 0.9], [0.45, 0.75, 1.35, 1.02, 0.0, 0.9],
                [-0.45, 0.45, 1.35, 1.32, 0.6, 0.1],
            ])
    }

    /// 10,000 ticks of the Cartesian policy (forward kinematics, the frame Jacobian and the damped least
    /// squares every tick, through a joint-space segment and straight lines) allocate nothing.
    @Test func cartesianTicksAllocateNothing() throws {
        let probe = try SimulatedRig(lockstep: true)
        let a = try Self.pose(probe, frame: "gripper_frame_link", at: [0.5, -0.7, 0.7, 1.1, 0.3, 1.2])
        let b = try Self.pose(probe, frame: "gripper_frame_link", at: [0.5, -0.05, 0.5, 1.1, 0.3, 1.2])
        var settings = CartesianPolicy.Settings(
            frame: "gripper_frame_link",
            goals: [
                CartesianPolicy.Goal(positionM: a.translationVector, orientation: Rotation3(a), durationS: 2),
                CartesianPolicy.Goal(positionM: b.translationVector, durationS: 2),
            ])
        settings.loops = true
        let policy = try CartesianPolicy(
            model: probe.model, jointNames: probe.configuration.joints.map(\.name), settings: settings,
            limits: Self.limits(probe), loopRateHz: 500)
        let rig = try SimulatedRig(lockstep: true, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 10_300), body: body)
            .run()
        #expect(rig.loop.supervisor.events.events.isEmpty)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0)
        try rig.loop.lifecycle.shutdown()
    }

    /// A goal outside the arm's reach is refused when the policy is made, before any motion, with the distance
    /// of the closest reachable position; from robot.yaml, with the goal's file and line.
    @Test func aGoalOutOfReachIsRefusedBeforeAnyMotion() throws {
        let probe = try SimulatedRig(lockstep: true)
        #expect {
            _ = try CartesianPolicy(
                model: probe.model, jointNames: probe.configuration.joints.map(\.name),
                settings: CartesianPolicy.Settings(
                    frame: "gripper_frame_link",
                    goals: [
                        CartesianPolicy.Goal(positionM: SIMD3(0.2, 0, 0.15)),
                        CartesianPolicy.Goal(positionM: SIMD3(0.9, 0, 0.2)),
                    ]),
                limits: Self.limits(probe), loopRateHz: 500)
        } throws: { error in
            print("out of reach: \(error)")
            return "\(error)".contains("goal 2") && "\(error)".contains("out of reach")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-cartesian-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let shipped = try String(contentsOfFile: "\(repositoryRoot)/Hardware/robots/so101/robot.yaml", encoding: .utf8)
        var lines = shipped.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "policy:"))
        let end = try #require(lines[start...].firstIndex(of: ""))
        lines.replaceSubrange(
            start..<end,
            with: [
                "policy:", "  type: cartesian", "  frame: gripper_frame_link", "  goals:",
                "    - {position_m: [0.2, 0.0, 0.15]}", "    - {position_m: [0.48, 0.0, 0.5], duration_s: 2}",
            ])
        let text = lines.joined(separator: "\n").replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        let path = directory.appendingPathComponent("robot.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try RobotConfiguration.loadChecked(contentsOf: path)
        } throws: { error in
            let message = "\(error)"
            print("robot.yaml: \(message)")
            return message.contains("robot.yaml:\(start + 6):") && message.contains("policy.goals[1]")
                && message.contains("out of reach")
        }
        // Outside the safety workspace's box for the frame: refused the same way.
        try text.replacingOccurrences(of: "[0.48, 0.0, 0.5]", with: "[0.9, 0.0, 0.2]").write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try RobotConfiguration.loadChecked(contentsOf: path)
        } throws: { error in
            print("robot.yaml: \(error)")
            return "\(error)".contains("policy.goals[1].position_m") && "\(error)".contains("safety workspace box")
        }
    }
}
