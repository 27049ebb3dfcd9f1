import Foundation
import SinewRuntime
import SinewSim
import Testing

@Suite struct LockstepSimulationTests {
    func simulate(seconds: Double) throws -> (positions: [Double], simulatedS: Double, wallS: Double) {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let ticks = Int64(seconds * rig.configuration.loop.rateHz)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: ticks),
            body: StopWhenSafe(loop: rig.loop))
        let report = try scheduler.run()
        #expect(rig.loop.lifecycle.state == .active)
        let clock = try #require(rig.loop.simulationClock)
        return (Array(rig.robot.positions), Double(clock.nanoseconds) * 1e-9, report.elapsedSeconds)
    }

    /// As fast as possible, in simulated time: the same run twice gives the same robot, to the bit, and the
    /// simulated time is the ticks' time however long the wall clock took.
    @Test func lockstepRunsAreDeterministic() throws {
        let a = try simulate(seconds: 3)
        let b = try simulate(seconds: 3)
        #expect(a.positions == b.positions)
        #expect(abs(a.simulatedS - 3) < 0.05)
    }
}
