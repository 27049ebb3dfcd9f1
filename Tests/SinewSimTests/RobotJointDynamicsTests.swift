import Foundation
import SinewDrivers
import SinewKinematics
import SinewSim
import Testing

/// The SO-101 arm's physics behind six virtual STS3215 servos.
@Suite struct RobotJointDynamicsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    func so101() throws -> (VirtualBus, RobotJointDynamics, RobotModel) {
        let model = try RobotModel(urdf: Self.repository + "/Hardware/robots/so101/so101.urdf")
        let sts = try ServoCatalog.loadModel(file: servoTableDirectory + "/sts3215.json")
        let names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
        let mappings = names.enumerated().map { i, name in
            JointServoMapping(jointName: name, servoID: UInt8(i + 1), servo: sts)
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
        for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
        bus.advance(toNs: 10_000_000)
        for (i, servo) in bus.servos.enumerated() {
            let j = model.jointIndex(named: robot.mappings[i].jointName)!
            servo.setRegisterValue(named: "Goal Position", robot.mappings[i].counts(forJointPositionRad: goal[j]))
        }
        bus.advance(toNs: 3_000_000_000)
        for (i, mapping) in robot.mappings.enumerated() {
            let j = model.jointIndex(named: mapping.jointName)!
            // The firmware's proportional control leaves a small droop under gravity.
            #expect(abs(robot.positions[j] - goal[j]) < 0.03, "\(mapping.jointName): \(robot.positions[j])")
            #expect(abs(robot.velocities[j]) < 0.01)
            let present = bus.servos[i].registerValue(named: "Present Position")!
            #expect(abs(mapping.jointPositionRad(counts: present) - robot.positions[j]) < 0.002)
        }
    }

    @Test func withTorqueOffTheArmFallsUnderGravity() throws {
        let (bus, robot, model) = try so101()
        let lift = model.jointIndex(named: "shoulder_lift")!
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
}
