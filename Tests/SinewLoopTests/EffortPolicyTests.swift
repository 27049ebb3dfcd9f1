import CAllocCounter
import Foundation
import SinewPolicy
import SinewRuntime
import SinewSim
import Testing

/// Policies that drive joints by effort (servos in current mode) on the simulated six-joint Dynamixel arm, in
/// lockstep on the simulation clock.
@Suite(.serialized) struct EffortPolicyTests {
    static let stiffnessNmPerRad = 8.0

    static func impedance(_ rig: SimulatedRig, stiffness: Double, compensating: Bool) throws -> ImpedancePolicy {
        let joints = rig.configuration.joints.map(\.name)
        return try ImpedancePolicy(
            typeName: "impedance", model: rig.model, jointNames: joints, drivenJoints: joints,
            stiffnessNmPerRad: [Double](repeating: stiffness, count: joints.count),
            dampingNmsPerRad: [Double](repeating: 0.15, count: joints.count), targetRad: nil,
            compensatesGravity: compensating)
    }

    /// Runs the arm held in impedance mode for `seconds` of simulated time; returns the largest distance of any
    /// joint from its activation pose over the last second (rad), and the rig.
    static func sag(compensating: Bool, seconds: Double = 4) throws -> (sagRad: Double, rig: SimulatedRig) {
        let probe = try SimulatedRig(robot: "dxl6", lockstep: true)
        let rig = try SimulatedRig(
            robot: "dxl6", lockstep: true,
            policy: try impedance(probe, stiffness: stiffnessNmPerRad, compensating: compensating))
        // The arm reaching out, its shoulder and elbow loaded (dxl6's "approach" waypoint).
        for (name, q) in zip(rig.configuration.joints.map(\.name), [0.45, 0.45, 1.35, 1.32, 0, 0.9]) {
            rig.move(joint: try #require(rig.model.jointIndex(named: name)), to: q)
        }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let n = rig.configuration.joints.count
        let start = (0..<n).map { rig.loop.supervisor.measuredPositionRad[$0] }
        let body = ProbeBody(loop: rig.loop)
        let rate = rig.configuration.loop.rateHz
        let lastTick = Int64(seconds * rate)
        var worst = 0.0
        body.afterSense = { tick in
            guard tick > lastTick - Int64(rate) else { return }
            for j in 0..<n { worst = max(worst, abs(rig.loop.supervisor.measuredPositionRad[j] - start[j])) }
        }
        body.stopAtTick = lastTick
        _ = try Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: lastTick + 10), body: body
        )
        .run()
        #expect(rig.loop.supervisor.events.events.isEmpty, "\(rig.loop.supervisor.events.events)")
        let gravity = (0..<n).map { rig.loop.supervisor.measuredEffortNm[$0] }
        print("impedance, gravity compensated: \(compensating); efforts at the end \(gravity) N·m")
        return (worst, rig)
    }

    /// The arm held by springs of 8 N·m/rad sags by less than 5 mrad with gravity compensated from RNEA, and
    /// visibly more without; both printed.
    @Test func gravityCompensationKeepsTheImpedanceHeldArmFromSagging() throws {
        let with = try Self.sag(compensating: true)
        let without = try Self.sag(compensating: false)
        print(
            "impedance (8 N·m/rad) on dxl6: sag \(with.sagRad * 1000) mrad with gravity compensation, "
                + "\(without.sagRad * 1000) mrad without")
        #expect(with.sagRad < 0.005)
        #expect(without.sagRad > 4 * with.sagRad && without.sagRad > 0.01)
        for rig in [with.rig, without.rig] { try rig.loop.lifecycle.shutdown() }
    }

    /// The servos run in current mode (Operating Mode 0) while the policy drives them; the safe state puts the
    /// `hold` joints back under position control (3) at the pose they were in, the `torque_off` ones limp, and
    /// shutdown leaves them so.
    @Test func theSafeStateReturnsHoldJointsToPositionControl() throws {
        let (_, rig) = try Self.sag(compensating: true, seconds: 0.5)
        let modes = { (0..<6).map { rig.bus.servo(id: UInt8($0 + 1))?.registerValue(named: "Operating Mode") ?? -1 } }
        #expect(modes() == [0, 0, 0, 0, 0, 0])
        let before = (0..<6).map { rig.loop.supervisor.measuredPositionRad[$0] }
        rig.loop.supervisor.emergencyStop.trigger(.api)
        let body = ProbeBody(loop: rig.loop)
        body.stopWhenSafe = false
        body.stopAtTick = 500
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 510), body: body)
            .run()
        #expect(rig.loop.lifecycle.state == .safe)
        let holds = rig.configuration.joints.map { $0.safeState == .hold }
        let after = modes()
        let torque = (0..<6).map { rig.bus.servo(id: UInt8($0 + 1))?.registerValue(named: "Torque Enable") ?? -1 }
        print("safe state: operating modes \(after), torque \(torque)")
        for j in 0..<6 {
            #expect(after[j] == (holds[j] ? 3 : 0), "joint \(j)")
            #expect(torque[j] == (holds[j] ? 1 : 0), "joint \(j)")
            if holds[j] {
                // Held by the servo's own position loop: P only by factory default, so it gives a little under
                // the arm's weight (XM430 at 800/128 per count: about 20 mrad at the shoulder here).
                let moved = abs(rig.loop.supervisor.measuredPositionRad[j] - before[j])
                print("joint \(rig.configuration.joints[j].name) held \(moved * 1000) mrad from where it was")
                #expect(moved < 0.05, "joint \(j) held")
            }
        }
        try rig.loop.lifecycle.shutdown()
        #expect(modes() == after)
    }

    /// A policy that commands effort on a Feetech STS3215 (no current mode) is refused when the loop is built,
    /// before any servo is touched, naming the joint and the servo.
    @Test func effortOnAServoWithoutCurrentModeIsRefused() throws {
        let probe = try SimulatedRig(lockstep: true)
        #expect {
            _ = try SimulatedRig(lockstep: true, policy: try Self.impedance(probe, stiffness: 5, compensating: true))
        } throws: { error in
            let text = "\(error)"
            return text.contains("shoulder_pan") && text.contains("sts3215") && text.contains("no current control mode")
        }
    }

    /// 10,000 ticks of the impedance policy (RNEA every tick, Goal Current sync writes) and the safe state's
    /// switch to position control allocate nothing on the loop thread.
    @Test func effortTicksAndTheSafeStateSwitchAllocateNothing() throws {
        let probe = try SimulatedRig(robot: "dxl6", lockstep: true)
        let rig = try SimulatedRig(
            robot: "dxl6", lockstep: true, policy: try Self.impedance(probe, stiffness: 8, compensating: true))
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_400)
        body.onTick = { tick in if tick == 10_200 { rig.loop.supervisor.emergencyStop.trigger(.api) } }
        let report = try Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 10_500), body: body
        ).run()
        #expect(report.ticks >= 10_400)
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0)
        try rig.loop.lifecycle.shutdown()
    }
}

/// Turns one joint at a constant velocity (the others hold their activation pose by position).
final class SpinPolicy: Policy {
    let typeName = "spin"
    let commands: [PolicyJointCommand]
    let joint: Int
    var velocityRadPerS: Double

    init(jointNames: [String], joint: String, velocityRadPerS: Double) {
        commands = jointNames.map { PolicyJointCommand(joint: $0, kind: $0 == joint ? .velocity : .position) }
        self.joint = jointNames.firstIndex(of: joint) ?? 0
        self.velocityRadPerS = velocityRadPerS
    }

    func reset(from observation: PolicyObservation, into command: PolicyCommand) { command.hold(observation) }
    func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        command.velocityRadPerS[joint] = velocityRadPerS
    }
}

/// Joints driven by velocity: the Feetech STS3215 in wheel mode (Operating Mode 1) and the Dynamixel XM430 in
/// velocity mode (1), in lockstep.
@Suite(.serialized) struct VelocityPolicyTests {
    /// The joint turns at the commanded speed (±15 % over a second, the servo's loop settling), stops when told
    /// (within the few hundredths of a radian a velocity loop lets slip), and a command beyond the joint's
    /// velocity limit is held to the limit and reached within the acceleration limit (no effort fault).
    @Test(arguments: [("so101", "wrist_roll", Int64(1)), ("dxl6", "base_yaw", Int64(1))])
    func aJointDrivenByVelocityTurnsAtThatSpeed(robot: String, joint: String, mode: Int64) throws {
        let probe = try SimulatedRig(robot: robot, lockstep: true)
        let policy = SpinPolicy(jointNames: probe.configuration.joints.map(\.name), joint: joint, velocityRadPerS: 0.5)
        let rig = try SimulatedRig(robot: robot, lockstep: true, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let j = try #require(rig.configuration.jointIndex(named: joint))
        let servoID = UInt8(rig.configuration.joints[j].servoID)
        #expect(rig.bus.servo(id: servoID)?.registerValue(named: "Operating Mode") == mode)
        var positions: [Int64: Double] = [:]
        let body = ProbeBody(loop: rig.loop)
        body.afterSense = { tick in
            positions[tick] = rig.loop.supervisor.measuredPositionRad[j]
            if tick == 750 { policy.velocityRadPerS = 0 }
            if tick == 1000 { policy.velocityRadPerS = 1e3 }
        }
        body.stopAtTick = 1100
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 1110), body: body)
            .run()
        let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
        #expect(events.isEmpty, "\(events)")
        let speed = (try #require(positions[700]) - (try #require(positions[200]))) / 1.0
        let drift = try #require(positions[1000]) - (try #require(positions[850]))
        let limit = rig.loop.supervisor.configuration.joints[j].velocityLimitRadPerS
        let fast = (try #require(positions[1100]) - (try #require(positions[1050]))) / 0.1
        print(
            "\(robot) \(joint) by velocity: 0.5 rad/s asked, \(speed) rad/s measured; stopped, it moved \(drift) rad "
                + "in 0.3 s; 1000 rad/s asked, \(fast) rad/s (limit \(limit))")
        #expect(abs(speed - 0.5) < 0.075)
        #expect(abs(drift) < 0.03)
        #expect(fast > 0.5 && fast <= 0.9 * limit * 1.02)
        try rig.loop.lifecycle.shutdown()
    }
}
