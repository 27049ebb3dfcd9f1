import Foundation
import SinewRuntime
import SinewSim
import Testing

@Suite struct BacklashInTheLoopTests {
    /// The SO-101 with 0.02 rad of play in every reducer, in lockstep through the whole stack: the pick-and-place
    /// trajectory runs to the end without a fault; the loop tracks what it measures, the servos' shafts, as
    /// well as without play, while the joints themselves sit up to half the play away from those readings;
    /// and the supervisor keeps commands half the play further inside the limits.
    @Test func theArmFollowsItsTrajectoryThroughThePlay() throws {
        func run(backlashRad: Double) throws -> (rig: SimulatedRig, trackingRMSRad: Double, largestPlayRad: Double) {
            let rig = try SimulatedRig(wireTiming: true, lockstep: true, backlashRad: backlashRad)
            try rig.loop.lifecycle.configure()
            try rig.loop.lifecycle.activate()
            var largestPlay = 0.0
            let body = ObservingBody(loop: rig.loop) { _ in
                for s in rig.robot.mappings.indices {
                    largestPlay = max(largestPlay, abs(rig.robot.playRad(forServo: s)))
                }
            }
            let scheduler = Scheduler(
                configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 5_000), body: body)
            _ = try scheduler.run()
            #expect(rig.loop.lifecycle.state == .active, "\(rig.loop.supervisor.events.events)")
            return (rig, rig.loop.trackingRMSRad, largestPlay)
        }
        let backlash = 0.02
        let tight = try run(backlashRad: 0)
        let loose = try run(backlashRad: backlash)
        print(
            "SO-101 over 10 s of its trajectory: tracking RMS \(tight.trackingRMSRad) rad without play, "
                + "\(loose.trackingRMSRad) rad with \(backlash) rad of play; largest play \(loose.largestPlayRad) rad")
        #expect(tight.largestPlayRad == 0)
        #expect(loose.largestPlayRad > 0.9 * backlash / 2 && loose.largestPlayRad <= backlash / 2 + 1e-12)
        #expect(loose.trackingRMSRad < tight.trackingRMSRad + backlash / 2)
        let base = loose.rig.configuration.safety.positionMarginRad
        for limits in loose.rig.loop.supervisor.configuration.joints {
            #expect(abs(limits.positionMarginRad - (base + backlash / 2)) < 1e-12)
        }
        for limits in tight.rig.loop.supervisor.configuration.joints { #expect(limits.positionMarginRad == base) }
    }
}
