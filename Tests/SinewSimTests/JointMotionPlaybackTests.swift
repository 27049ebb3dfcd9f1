import CAllocCounter
import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewSim
import Testing

/// A simulated leader arm: the SO-101's physics behind six virtual STS3215 servos with torque off, its joints
/// moved by a hand along the shipped (synthesised) demonstration.
@Suite struct JointMotionPlaybackTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]

    struct Leader {
        let bus: VirtualBus
        let robot: RobotJointDynamics
        let model: RobotModel
        let servo: ServoModel
        let motion: JointMotion
    }

    static func leader(backlashRad: Double = 0, wireTiming: Bool = true) throws -> Leader {
        let model = try RobotModel(urdf: repository + "/Hardware/robots/so101/so101.urdf")
        let sts = try ServoCatalog.loadModel(file: servoTableDirectory + "/sts3215.json")
        let mappings = names.enumerated().map { i, name in
            JointServoMapping(jointName: name, servoID: UInt8(i + 1), servo: sts, backlashRad: backlashRad)
        }
        var options = VirtualBusOptions()
        options.wireTiming = wireTiming
        let bus = try VirtualBus(model: sts, ids: [1, 2, 3, 4, 5, 6], options: options)
        let robot = try RobotJointDynamics(
            model: model, mappings: mappings, servoModels: Array(repeating: sts, count: 6),
            initialPositions: model.midRangePositions)
        let motion = try JointMotion.load(
            contentsOf: repository + "/Hardware/robots/so101/motions/pick-and-place.csv")
        try robot.play(motion)
        bus.dynamics = robot
        for (i, state) in robot.servoShaftStates().enumerated() {
            bus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        return Leader(bus: bus, robot: robot, model: model, servo: sts, motion: motion)
    }

    /// In lockstep, a bus master reads every servo's Present Position every 10 ms for 35 s (past the loop's
    /// seam at 28.9 s): each reading is where the motion has the joint, within the encoder's resolution
    /// (2π/4096 rad) and the 1 ms physics step the reply may be older than the playback's present state (at the
    /// file's fastest ~2 rad/s), 4 mrad in all; and the servos stay torque off.
    @Test func servosReadTheJointsAlongTheMotion() throws {
        let leader = try Self.leader()
        let playback = try #require(leader.robot.playback)
        let clock = LockstepBusTransport(bus: leader.bus)
        let master = BusMaster(transport: clock, protocol: .feetechSTS)
        let present = try #require(leader.servo.register(named: "Present Position"))
        let torque = try #require(leader.servo.register(named: "Torque Enable"))
        var worst = 0.0
        var low = [Double](repeating: .infinity, count: 6)
        var high = [Double](repeating: -.infinity, count: 6)
        for tick in 0..<3500 {
            clock.advance(toNanoseconds: UInt64(tick) * 10_000_000)
            for (s, mapping) in leader.robot.mappings.enumerated() {
                let bytes = try master.read(id: mapping.servoID, address: UInt16(present.address), length: 2)
                let counts = present.decode(raw: UInt32(bytes[0]) | UInt32(bytes[1]) << 8)
                let read = mapping.jointPositionRad(counts: counts)
                // The present state, or the physics step before it when the reply was made before that step.
                let truth = playback.state(column: s).positionRad
                worst = max(worst, abs(read - truth))
                low[s] = min(low[s], read)
                high[s] = max(high[s], read)
            }
            if tick % 500 == 0 {
                for mapping in leader.robot.mappings {
                    #expect(try master.read(id: mapping.servoID, address: UInt16(torque.address), length: 1) == [0])
                }
            }
        }
        print(String(format: "leader playback: worst reading vs motion %.2f mrad over 35 s", worst * 1000))
        #expect(worst <= 0.004, "worst \(worst) rad")
        #expect(playback.elapsedS > 34.9 && playback.elapsedS < 35.1)
        // It moved the way the file does: every joint through most of its range in the file.
        for (s, name) in Self.names.enumerated() {
            let column = try #require(leader.motion.jointIndex(named: name))
            let values = (0..<leader.motion.rowCount).map { leader.motion.positionRad(row: $0, joint: column) }
            let span = values.max()! - values.min()!
            #expect(high[s] - low[s] > 0.9 * span, "\(name): read \(low[s])…\(high[s]) of a \(span) rad span")
        }
    }

    /// The playback is where the file says, between its rows too: at a row's time the joints are at that row.
    @Test func theJointsPassThroughTheFilesRows() throws {
        let leader = try Self.leader(wireTiming: false)
        let playback = try #require(leader.robot.playback)
        var worst = 0.0
        // Physics steps are 1 ms; the file's rows are ~10 ms apart with jitter: compare at each step with the
        // motion sampled at the same time, and at the rows themselves through the spline.
        for step in 1...5000 {
            leader.bus.advance(toNs: UInt64(step) * 1_000_000)
            let expected = leader.motion.sample(atS: playback.elapsedS).positionsRad
            for (c, name) in leader.motion.jointNames.enumerated() {
                let j = try #require(leader.model.jointIndex(named: name))
                worst = max(worst, abs(leader.robot.positions[j] - expected[c]))
            }
        }
        #expect(worst < 1e-12)
        for row in [0, 100, 1000] {
            let sample = leader.motion.sample(atS: leader.motion.timeS(row: row)).positionsRad
            for c in 0..<6 { #expect(abs(sample[c] - leader.motion.positionRad(row: row, joint: c)) < 1e-12) }
        }
    }

    /// With 20 mrad of play at every joint the shafts — what the servos read — trail the hand: by up to half
    /// the play (plus the encoder's resolution), and by most of it after the motion reverses.
    @Test func withBacklashTheReadingTrailsTheJointByUpToHalfThePlay() throws {
        let play = 0.02
        let leader = try Self.leader(backlashRad: play, wireTiming: false)
        let playback = try #require(leader.robot.playback)
        var worst = 0.0
        for step in 1...30_000 {
            leader.bus.advance(toNs: UInt64(step) * 1_000_000)
            guard step % 10 == 0 else { continue }
            for (s, mapping) in leader.robot.mappings.enumerated() {
                let counts = try #require(leader.bus.servos[s].registerValue(named: "Present Position"))
                let gap = abs(mapping.jointPositionRad(counts: counts) - playback.state(column: s).positionRad)
                worst = max(worst, gap)
            }
        }
        print(String(format: "leader playback with %.0f mrad of play: worst lag %.2f mrad", play * 1000, worst * 1000))
        #expect(worst <= play / 2 + 2 * Double.pi / 4096 + 1e-9)
        #expect(worst > 0.4 * play, "the play shows in the readings")
    }

    /// Ten seconds of physics with the hand moving the arm, after a second's warm-up: not one allocation.
    @Test func playbackStepsWithoutAllocating() throws {
        let leader = try Self.leader(backlashRad: 0.01, wireTiming: false)
        leader.bus.advance(toNs: 1_000_000_000)
        let before = sinew_thread_allocations()
        leader.bus.advance(toNs: 11_000_000_000)
        #expect(sinew_thread_allocations() - before == 0)
    }

    @Test func aMotionOfJointsTheRobotDoesNotMoveIsRefused() throws {
        let leader = try Self.leader()
        let stray = try JointMotion(jointNames: ["elbow"], timesS: [0, 1], positionsRad: [[0], [1]], file: "m.csv")
        #expect(throws: RobotSimulationError.self) { try leader.robot.play(stray) }
        let urdf = """
            <robot name="hand">
              <link name="base"/><link name="a"/><link name="b"/>
              <joint name="driver" type="revolute"><parent link="base"/><child link="a"/><axis xyz="0 0 1"/>
                <limit lower="-1" upper="1" effort="1" velocity="1"/></joint>
              <joint name="follower" type="revolute"><parent link="base"/><child link="b"/><axis xyz="0 0 1"/>
                <limit lower="-1" upper="1" effort="1" velocity="1"/><mimic joint="driver" multiplier="1"/></joint>
            </robot>
            """
        let model = try RobotModel(URDFLoader.parse(urdf, file: "hand.urdf"))
        let mimic = try JointMotion(jointNames: ["follower"], timesS: [0, 1], positionsRad: [[0], [1]])
        do {
            _ = try JointMotionPlayback(motion: mimic, model: model)
            Issue.record("a mimic joint was accepted")
        } catch {
            #expect(error.description.contains("mimics \"driver\""))
        }
    }
}

/// A follower and a leader simulated in lockstep, each behind its own bus, advanced by one group clock.
@Suite struct SimulationClockGroupInSimulationTests {
    @Test func followerAndLeaderAdvanceTogether() throws {
        let follower = try JointMotionPlaybackTests.leader()
        let leader = try JointMotionPlaybackTests.leader()
        let followerClock = LockstepBusTransport(bus: follower.bus)
        let leaderClock = LockstepBusTransport(bus: leader.bus)
        let group = SimulationClockGroup([followerClock, leaderClock])
        group.advance(toNanoseconds: 100_000_000)
        let before = sinew_thread_allocations()
        for tick in 1...2_000 { group.advance(toNanoseconds: 100_000_000 + UInt64(tick) * 2_000_000) }
        #expect(sinew_thread_allocations() - before == 0)
        #expect(group.nanoseconds == followerClock.nanoseconds && group.nanoseconds == 4_100_000_000)
        #expect(leaderClock.nanoseconds == 4_100_000_000)
        #expect(follower.robot.playback?.elapsedS == leader.robot.playback?.elapsedS)
        #expect(abs((leader.robot.playback?.elapsedS ?? 0) - 4.1) < 1e-9)
    }
}
