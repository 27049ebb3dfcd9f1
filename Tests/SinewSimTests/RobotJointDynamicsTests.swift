import Foundation
import SinewDrivers
import SinewKinematics
import SinewSim
import Testing

/// The SO-101 arm's physics behind six virtual STS3215 servos.
@Suite struct RobotJointDynamicsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// - Parameter backlashRad: free play of every joint's reducer.
    func so101(backlashRad: Double = 0) throws -> (VirtualBus, RobotJointDynamics, RobotModel) {
        let model = try RobotModel(urdf: Self.repository + "/Hardware/robots/so101/so101.urdf")
        let sts = try ServoCatalog.loadModel(file: servoTableDirectory + "/sts3215.json")
        let names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
        let mappings = names.enumerated().map { i, name in
            JointServoMapping(jointName: name, servoID: UInt8(i + 1), servo: sts, backlashRad: backlashRad)
        }
        let bus = try VirtualBus(model: sts, ids: [1, 2, 3, 4, 5, 6])
        let robot = try RobotJointDynamics(
            model: model, mappings: mappings, servoModels: Array(repeating: sts, count: 6))
        bus.dynamics = robot
        for (i, state) in robot.servoShaftStates().enumerated() {
            bus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        return (bus, robot, model)
    }

    @Test func positionControlledServosMoveTheArmToItsGoalAndHoldItAgainstGravity() throws {
        let (bus, robot, model) = try so101()
        let goal = [0.4, -0.6, 0.8, 0.5, -0.3, 0.2]
        try #require(model.dofCount == goal.count)
        for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
        bus.advance(toNs: 10_000_000)
        for (i, servo) in bus.servos.enumerated() {
            let j = try #require(model.jointIndex(named: robot.mappings[i].jointName))
            servo.setRegisterValue(named: "Goal Position", robot.mappings[i].counts(forJointPositionRad: goal[j]))
        }
        bus.advance(toNs: 3_000_000_000)
        for (i, mapping) in robot.mappings.enumerated() {
            let j = try #require(model.jointIndex(named: mapping.jointName))
            // The firmware's proportional control leaves a small droop under gravity.
            #expect(abs(robot.positions[j] - goal[j]) < 0.03, "\(mapping.jointName): \(robot.positions[j])")
            #expect(abs(robot.velocities[j]) < 0.01)
            let present = try #require(bus.servos[i].registerValue(named: "Present Position"))
            #expect(abs(mapping.jointPositionRad(counts: present) - robot.positions[j]) < 0.002)
        }
    }

    @Test func withTorqueOffTheArmFallsUnderGravity() throws {
        let (bus, robot, model) = try so101()
        let lift = try #require(model.jointIndex(named: "shoulder_lift"))
        let start = robot.positions[lift]
        bus.advance(toNs: 1_000_000_000)
        #expect(abs(robot.positions[lift] - start) > 0.05, "the unpowered arm must sag")
    }

    @Test func theSameSeedGivesTheSameRun() throws {
        func run() throws -> [Double] {
            let (bus, robot, _) = try so101()
            for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
            bus.advance(toNs: 10_000_000)
            for (i, servo) in bus.servos.enumerated() {
                servo.setRegisterValue(named: "Goal Position", robot.mappings[i].counts(forJointPositionRad: 0.3))
            }
            bus.advance(toNs: 500_000_000)
            return Array(robot.positions)
        }
        #expect(try run() == run())
    }

    /// Sets every servo's goal to put its joint at `goal` (URDF-level order, rad) and runs the bus until `ns`.
    func drive(
        _ bus: VirtualBus, _ robot: RobotJointDynamics, _ model: RobotModel, to goal: [Double], untilNs ns: UInt64
    ) throws {
        try #require(goal.count == model.dofCount)
        for (i, servo) in bus.servos.enumerated() {
            let j = try #require(model.jointIndex(named: robot.mappings[i].jointName))
            servo.setRegisterValue(named: "Goal Position", robot.mappings[i].counts(forJointPositionRad: goal[j]))
        }
        bus.advance(toNs: ns)
    }

    /// With play in the reducers, each servo reads its own shaft: within half the play of its joint at every
    /// step, and a gravity-loaded joint hangs on the flank below it, half the play from what its servo reads.
    @Test func withBacklashTheServosReadTheirShaftsAndALoadedJointHangsOnItsFlank() throws {
        let backlash = 0.03
        let (bus, robot, model) = try so101(backlashRad: backlash)
        for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
        bus.advance(toNs: 10_000_000)
        let goal = [0.4, -0.6, 0.8, 0.5, -0.3, 0.2]
        var largestPlay = 0.0
        for step in 1...300 {
            try drive(bus, robot, model, to: goal, untilNs: 10_000_000 + UInt64(step) * 10_000_000)
            for s in robot.mappings.indices { largestPlay = max(largestPlay, abs(robot.playRad(forServo: s))) }
        }
        #expect(largestPlay <= backlash / 2 + 1e-12)
        #expect(largestPlay > 0.9 * backlash / 2, "the shafts cross their play")
        let lift = try #require(model.jointIndex(named: "shoulder_lift"))
        let s = try #require(robot.mappings.firstIndex { $0.jointName == "shoulder_lift" })
        let shaft = robot.mappings[s].jointPositionRad(shaftAngleRad: robot.shaftState(forServo: s).positionRad)
        let workspace = KinematicsWorkspace(model: model)
        workspace.gravityEfforts(Array(robot.positions))
        // `efforts` holds what holds the arm up against gravity; gravity itself pulls the other way, and the
        // joint hangs that way from the shaft.
        let holdingTorque = workspace.efforts[lift]
        #expect(abs(holdingTorque) > 0.1, "shoulder_lift carries the arm")
        #expect(abs(abs(shaft - robot.positions[lift]) - backlash / 2) < 1e-9)
        #expect((robot.positions[lift] - shaft) * holdingTorque < 0, "the joint hangs on the flank below")
        let present = try #require(bus.servos[s].registerValue(named: "Present Position"))
        #expect(abs(robot.mappings[s].jointPositionRad(counts: present) - shaft) < 0.002, "the servo reads its shaft")
    }

    /// The signature of backlash: a joint at rest that no load presses on a flank does not move while its
    /// servo turns back through the play, then follows once the shaft meets the other flank.
    @Test func aServoTurnsThroughThePlayBeforeTheJointFollows() throws {
        let backlash = 0.04
        let (bus, robot, model) = try so101(backlashRad: backlash)
        for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
        bus.advance(toNs: 10_000_000)
        var goal = Array(robot.positions)
        let pan = try #require(model.jointIndex(named: "shoulder_pan"))
        let s = try #require(robot.mappings.firstIndex { $0.jointName == "shoulder_pan" })
        goal[pan] += 0.3
        try drive(bus, robot, model, to: goal, untilNs: 2_000_000_000)
        #expect(abs(robot.velocities[pan]) < 1e-3, "settled")
        // Turn back into the play, away from the flank the shaft rests on, by less than the play.
        let flank: Double = robot.playRad(forServo: s) > 0 ? 1 : -1
        #expect(abs(robot.playRad(forServo: s)) > 0.49 * backlash, "the shaft rests on a flank")
        let restingJoint = robot.positions[pan]
        let shaftBefore = robot.positions[pan] + robot.playRad(forServo: s)
        goal[pan] = shaftBefore - flank * 0.6 * backlash
        try drive(bus, robot, model, to: goal, untilNs: 3_000_000_000)
        let shaftAfter = robot.positions[pan] + robot.playRad(forServo: s)
        #expect(abs((shaftBefore - shaftAfter) - flank * 0.6 * backlash) < 0.005, "the servo turned")
        #expect(abs(robot.positions[pan] - restingJoint) < 1e-3, "the joint stayed where it was")
        // Further back, through the rest of the play: now the joint follows.
        goal[pan] = shaftBefore - flank * (backlash + 0.1)
        try drive(bus, robot, model, to: goal, untilNs: 4_500_000_000)
        #expect(abs((restingJoint - robot.positions[pan]) * flank - 0.1) < 0.01, "the joint followed by 0.1 rad")
    }
}
