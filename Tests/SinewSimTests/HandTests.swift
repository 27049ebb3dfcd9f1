import Foundation
import SinewBus
import SinewKinematics
import SinewSim
import Testing

/// A hand on a simulated arm (`sinew virtual-bus --hand`): it moves the joints whose servos are torque off, lets
/// go of a joint whose servo is switched on (the servo then holds it), and takes hold again when the torque goes
/// off; the live hand of `--hand keys` moves its joints towards targets at its own pace.
@Suite struct HandTests {
    /// The SO-101 leader's hand (its pick-and-place motion): with shoulder_pan's servo switched torque on, that
    /// joint stays where the servo holds it while the motion goes on moving the others; switched off, the joint
    /// is back where the motion is.
    @Test func aTorquedServoHoldsItsJointAgainstTheHand() throws {
        let leader = try JointMotionPlaybackTests.leader(wireTiming: false)
        let playback = try #require(leader.robot.playback)
        let pan = try #require(leader.model.jointIndex(named: "shoulder_pan"))
        let lift = try #require(leader.model.jointIndex(named: "shoulder_lift"))
        let panColumn = try #require(leader.motion.jointIndex(named: "shoulder_pan"))
        let liftColumn = try #require(leader.motion.jointIndex(named: "shoulder_lift"))
        leader.bus.advance(toNs: 1_000_000_000)
        leader.bus.servos[0].setRegisterValue(named: "Torque Enable", 1)
        leader.bus.servos[0].setRegisterValue(
            named: "Goal Position", leader.bus.servos[0].registerValue(named: "Present Position") ?? 0)
        let held = leader.robot.positions[pan]
        var panWander = 0.0
        var liftError = 0.0
        var motionSpan = (Double.infinity, -Double.infinity)
        for step in 1...4000 {
            leader.bus.advance(toNs: 1_000_000_000 + UInt64(step) * 1_000_000)
            panWander = max(panWander, abs(leader.robot.positions[pan] - held))
            liftError = max(
                liftError, abs(leader.robot.positions[lift] - playback.state(column: liftColumn).positionRad))
            let wanted = playback.state(column: panColumn).positionRad
            motionSpan = (min(motionSpan.0, wanted), max(motionSpan.1, wanted))
        }
        #expect(motionSpan.1 - motionSpan.0 > 0.2, "the motion moves shoulder_pan meanwhile")
        #expect(panWander < 0.01, "the servo holds its joint: \(panWander) rad")
        #expect(liftError < 1e-12, "the hand still moves the others")
        leader.bus.servos[0].setRegisterValue(named: "Torque Enable", 0)
        leader.bus.advance(toNs: 5_002_000_000)
        #expect(abs(leader.robot.positions[pan] - playback.state(column: panColumn).positionRad) < 1e-12)
    }

    /// The live hand moves a joint towards its target at its speed, stays within the URDF's limits, and grasps a
    /// joint again where it is after the servo let it go.
    @Test func aManualHandMovesJointsToTheirTargets() throws {
        let leader = try JointMotionPlaybackTests.leader(wireTiming: false)
        let model = leader.model
        let joints = JointMotionPlaybackTests.names.compactMap { model.jointIndex(named: $0) }
        let start = joints.map { leader.robot.positions[$0] }
        let hand = try ManualHand(model: model, joints: joints, initialPositionsRad: start, speedRadPerS: 1.0)
        try leader.robot.hold(with: hand)
        #expect(leader.robot.playback == nil)
        let lift = joints[1]
        let target = hand.nudge(column: 1, byRad: 0.5)
        #expect(abs(target - (start[1] + 0.5)) < 1e-12)
        leader.bus.advance(toNs: 250_000_000)
        #expect(abs(leader.robot.positions[lift] - (start[1] + 0.25)) < 2e-3, "1 rad/s for 0.25 s")
        leader.bus.advance(toNs: 1_000_000_000)
        #expect(abs(leader.robot.positions[lift] - target) < 1e-9)
        #expect(hand.nudge(column: 1, byRad: 100) == model.joints[lift].upperLimit)
        #expect(hand.nudge(column: 1, byRad: -200) == model.joints[lift].lowerLimit)
        for j in joints where j != lift { #expect(leader.robot.positions[j] == start[joints.firstIndex(of: j)!]) }
        #expect(throws: RobotSimulationError.self) {
            try ManualHand(model: model, joints: [joints[0]], initialPositionsRad: [])
        }
    }

    /// The keys of `--hand keys` decode from what terminals send, and any bytes at all decode without a crash.
    @Test func handKeysDecodeAndSurviveAnyBytes() {
        var decoder = ManualHandKeyDecoder()
        func feed(_ bytes: [UInt8]) -> [ManualHandKeyDecoder.Action] { bytes.compactMap { decoder.feed($0) } }
        #expect(feed([0x1B, 0x5B, 0x41, 0x1B, 0x5B, 0x42]) == [.pickNext(-1), .pickNext(1)])
        #expect(feed([0x1B, 0x4F, 0x43, 0x1B, 0x5B, 0x44]) == [.nudge(1), .nudge(-1)])
        #expect(feed(Array("3+-x".utf8)) == [.pick(2), .nudge(1), .nudge(-1)])
        #expect(feed([0x1B, 0x78, 0x31]) == [.pick(0)], "an unknown escape is dropped, the next key counts")
        var state: UInt64 = 0x5EED_4A4D
        for _ in 0..<100_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            _ = decoder.feed(UInt8(truncatingIfNeeded: state >> 56))
        }
        // Whatever state the noise left, a complete escape sequence decodes again after at most one lost key.
        _ = feed([0x1B, 0x5B, 0x43])
        #expect(feed([0x1B, 0x5B, 0x43]) == [.nudge(1)])
    }
}
