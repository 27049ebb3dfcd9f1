import Foundation
import SinewPolicy
import SinewROS
import Testing

/// What arrives on joint_trajectory and cmd, checked against the robot and handed to the policy.
@Suite struct ROSIntakeTests {
    let intake = ROSCommandIntake(
        jointNames: ["a", "b", "c"], positionMinRad: [-1, -1, -1], positionMaxRad: [1, 1, 1])

    func point(_ positions: [Double], _ t: Double, velocities: [Double] = []) -> JointTrajectoryPointMessage {
        JointTrajectoryPointMessage(
            positions: positions, velocities: velocities, timeFromStart: ROSTime(nanoseconds: Int64(t * 1e9)))
    }

    @Test func aTrajectoryIsResampledOnItsStepThroughItsPoints() throws {
        let slot = ExternalTrajectory(jointCount: 3, maxSteps: 1000)
        let message = JointTrajectoryMessage(
            jointNames: ["c", "a"], points: [point([0, 0], 0.5), point([0.5, -0.5], 1.0), point([0.5, 0.5], 2.0)])
        try intake.fill(slot, from: message, stepNs: 10_000_000, nowWallNs: 0)
        let chunk = slot.chunk
        #expect(chunk.startNs == 500_000_000 && chunk.stepNs == 10_000_000 && chunk.stepCount == 151)
        #expect(slot.moves[0] && !slot.moves[1] && slot.moves[2])
        // Linear between points (no velocities given): halfway through the first segment, and the points themselves.
        #expect(abs(chunk[25, 2] - 0.25) < 1e-12 && abs(chunk[25, 0] + 0.25) < 1e-12)
        #expect(abs(chunk[50, 2] - 0.5) < 1e-12 && abs(chunk[50, 0] + 0.5) < 1e-12)
        #expect(abs(chunk[150, 0] - 0.5) < 1e-12)
        #expect(slot.startWallNs == 0)
    }

    @Test func withVelocitiesEveryPointTheCurveIsCubic() throws {
        let slot = ExternalTrajectory(jointCount: 3, maxSteps: 1000)
        // Zero velocities at both ends: the Hermite curve is the smoothstep, 0.5 at the middle, 0.15625 at a quarter.
        let message = JointTrajectoryMessage(
            jointNames: ["b"], points: [point([0], 0, velocities: [0]), point([1], 1, velocities: [0])])
        try intake.fill(slot, from: message, stepNs: 10_000_000, nowWallNs: 0)
        #expect(abs(slot.chunk[50, 1] - 0.5) < 1e-12)
        #expect(abs(slot.chunk[25, 1] - 0.15625) < 1e-12)
    }

    @Test(arguments: [
        (JointTrajectoryMessage(jointNames: ["a"], points: []), "no points"),
        (JointTrajectoryMessage(jointNames: ["x"], points: [JointTrajectoryPointMessage(positions: [0])]), "\"x\""),
        (JointTrajectoryMessage(jointNames: ["a", "a"], points: []), "twice"),
        (
            JointTrajectoryMessage(jointNames: ["a"], points: [JointTrajectoryPointMessage(positions: [0, 1])]),
            "positions"
        ),
        (JointTrajectoryMessage(jointNames: ["a"], points: [JointTrajectoryPointMessage(positions: [.nan])]), "finite"),
        (JointTrajectoryMessage(jointNames: ["a"], points: [JointTrajectoryPointMessage(positions: [2])]), "limits"),
        (
            JointTrajectoryMessage(
                jointNames: ["a"],
                points: [
                    JointTrajectoryPointMessage(positions: [0], timeFromStart: ROSTime(sec: 1, nanosec: 0)),
                    JointTrajectoryPointMessage(positions: [0], timeFromStart: ROSTime(sec: 1, nanosec: 0)),
                ]), "does not increase"
        ),
        (
            JointTrajectoryMessage(
                jointNames: ["a"],
                points: [JointTrajectoryPointMessage(positions: [0], timeFromStart: ROSTime(sec: 20, nanosec: 0))] + [
                    JointTrajectoryPointMessage(positions: [0], timeFromStart: ROSTime(sec: 0, nanosec: 0))
                ]), "does not increase"
        ),
        (
            JointTrajectoryMessage(
                jointNames: ["a"],
                points: [
                    JointTrajectoryPointMessage(positions: [0]),
                    JointTrajectoryPointMessage(positions: [0], timeFromStart: ROSTime(sec: 100, nanosec: 0)),
                ]), "longer than"
        ),
    ])
    func badTrajectoriesAreRefusedSayingWhy(_ message: JointTrajectoryMessage, _ reason: String) {
        let slot = ExternalTrajectory(jointCount: 3, maxSteps: 1000)
        #expect {
            try intake.fill(slot, from: message, stepNs: 10_000_000, nowWallNs: 0)
        } throws: { error in
            (error as? ROSCommandRefusal)?.description.contains(reason) == true
        }
    }

    @Test func aStampFarFromTheClockIsRefused() {
        let slot = ExternalTrajectory(jointCount: 3, maxSteps: 1000)
        var message = JointTrajectoryMessage(jointNames: ["a"], points: [point([0], 0)])
        message.header.stamp = ROSTime(sec: 100, nanosec: 0)
        #expect(throws: ROSCommandRefusal.self) {
            try intake.fill(slot, from: message, stepNs: 10_000_000, nowWallNs: 1_000_000_000_000)
        }
    }

    @Test func targetsNameTheirJoints() throws {
        let target = ExternalTarget(jointCount: 3)
        try intake.fill(target, from: JointStateMessage(name: ["b"], position: [0.25]))
        #expect(!target.given[0] && target.given[1] && target.positionRad[1] == 0.25)
        #expect(throws: ROSCommandRefusal.self) {
            try intake.fill(target, from: JointStateMessage(name: ["b", "c"], position: [0.25]))
        }
        #expect(throws: ROSCommandRefusal.self) {
            try intake.fill(target, from: JointStateMessage(name: ["b"], position: [3]))
        }
    }

    /// The policy's tick side: holds, follows a trajectory taken from the producer (joints it leaves out keep their
    /// command), and stamps direct targets with the tick they arrived in, so the watchdog measures them.
    @Test func thePolicyFollowsTrajectoriesAndStampsTargets() throws {
        let policy = ExternalCommandPolicy(jointNames: ["a", "b", "c"], trajectoryStepS: 0.01, maxTrajectoryS: 10)
        let observation = PolicyObservation(jointNames: ["a", "b", "c"])
        let command = PolicyCommand(jointCount: 3)
        observation.positionRad[1] = 0.2
        policy.reset(from: observation, into: command)
        observation.timeNs = 2_000_000
        policy.compute(observation, into: command)
        #expect(command.positionRad[1] == 0.2 && command.computedForNs == 2_000_000)
        let message = JointTrajectoryMessage(jointNames: ["a"], points: [point([0], 0), point([0.5], 1)])
        policy.submitTrajectory { slot in
            (try? intake.fill(slot, from: message, stepNs: 10_000_000, nowWallNs: 0)) != nil
        }
        var t: Int64 = 4_000_000
        while t <= 2_000_000_000 {
            observation.timeNs = t
            policy.compute(observation, into: command)
            t += 2_000_000
        }
        #expect(abs(command.positionRad[0] - 0.5) < 1e-9 && command.positionRad[1] == 0.2)
        #expect(command.computedForNs == 2_000_000_000, "a finished trajectory is held, fresh")
        policy.submitTarget { target in
            (try? intake.fill(target, from: JointStateMessage(name: ["c"], position: [0.1]))) != nil
        }
        observation.timeNs = 2_002_000_000
        policy.compute(observation, into: command)
        observation.timeNs = 2_100_000_000
        policy.compute(observation, into: command)
        #expect(command.positionRad[2] == 0.1 && abs(command.positionRad[0] - 0.5) < 1e-9)
        #expect(command.computedForNs == 2_002_000_000, "a direct target is as old as its arrival")
        #expect(policy.trajectoriesTaken == 1 && policy.targetsTaken == 1)
    }
}
