import Foundation
import SinewBus
import SinewCore
import SinewPolicy
import SinewRuntime
import SinewSim
import Testing

/// Teleoperation on the simulator: the SO-101 leader (Hardware/robots/so101/leader.yaml, torque off, its joints
/// following the shipped pick-and-place motion as a hand would move them) drives the simulated SO-101 follower,
/// both in lockstep on one clock.
@Suite(.serialized) struct TeleopPolicyLoopTests {
    @Test func theFollowerTracksTheLeader() throws {
        let leaderPath = "\(repositoryRoot)/Hardware/robots/so101/leader.yaml"
        let leader = try SimulatedRig(configurationPath: leaderPath, lockstep: true)
        let playback = try #require(leader.robot.playback, "leader.yaml names a motion")
        let leaderPort = LockstepBusTransport(bus: leader.bus)
        let (path, directory) = try MLPPolicyLoopTests.robotYAML(policy: ["type: teleop", "leader: \(leaderPath)"])
        defer { try? FileManager.default.removeItem(at: directory) }
        let rig = try SimulatedRig(
            configurationPath: path, lockstep: true,
            policyTransports: [TeleopPolicySettings.leaderTransportName: leaderPort],
            alsoAdvancing: [leaderPort])
        let policy = try #require(rig.loop.policy as? TeleopPolicy)
        for notice in policy.notices { print(notice) }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let n = rig.configuration.joints.count
        let rate = rig.configuration.loop.rateHz
        // The motion's joints by the follower's joint order.
        let columns = try rig.configuration.joints.map { joint in
            try #require(playback.motion.jointNames.firstIndex(of: joint.name))
        }
        var squares = 0.0
        var count = 0
        var worst = 0.0
        var rampEndTick: Int64 = -1
        let body = ProbeBody(loop: rig.loop)
        body.afterSense = { tick in
            if rampEndTick < 0 && !policy.ramping { rampEndTick = tick }
            guard rampEndTick >= 0 && tick > rampEndTick + Int64(rate) / 2 else { return }
            for j in 0..<n {
                let e = rig.loop.supervisor.measuredPositionRad[j] - playback.state(column: columns[j]).positionRad
                squares += e * e
                count += 1
                worst = max(worst, abs(e))
            }
        }
        body.stopAtTick = Int64(20 * rate)
        _ = try Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: body.stopAtTick + 10), body: body
        ).run()
        let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
        #expect(events.isEmpty, "\(events)")
        let rms = (squares / Double(max(count, 1))).squareRoot()
        print(
            "teleop so101: ramp ended at t=\(Double(rampEndTick) / rate) s; follower − leader over the next "
                + "\(Double(count / n) / rate) s: RMS \(rms * 1000) mrad, worst \(worst * 1000) mrad")
        #expect(rampEndTick > 0 && Double(rampEndTick) / rate < 5, "the follower ramped to the leader")
        #expect(count > n * 10 * Int(rate))
        #expect(rms < 0.03)
        #expect(worst < 0.1)
        try rig.loop.lifecycle.shutdown()
    }
}
