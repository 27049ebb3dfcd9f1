import Foundation
import SinewBus
import SinewRuntime
import SinewSim
import Testing

/// Stops the loop when it leaves the active state (or after `maxTicks`), and keeps the longest interval
/// between two ticks' wake-ups (a stall of the test machine).
final class StopWhenSafe: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    var beforeSense: ((Int64) -> Void)?
    private(set) var longestTickIntervalS = 0.0
    private var previousWakeNs: Int64?

    init(loop: RobotLoop) { self.loop = loop }

    func loopDidStart(_ tick: TickInfo) {
        previousWakeNs = nil
        loop.loopDidStart(tick)
    }
    func sense(_ tick: inout TickInfo) {
        if let previous = previousWakeNs {
            longestTickIntervalS = max(longestTickIntervalS, Double(tick.wakeNs - previous) * 1e-9)
        }
        previousWakeNs = tick.wakeNs
        beforeSense?(tick.index)
        loop.sense(&tick)
    }
    func estimate(_ tick: inout TickInfo) { loop.estimate(&tick) }
    func decide(_ tick: inout TickInfo) { loop.decide(&tick) }
    func guardCommands(_ tick: inout TickInfo) {
        loop.guardCommands(&tick)
        if loop.lifecycle.state == .safe { tick.stopRequested = true }
    }
    func act(_ tick: inout TickInfo) { loop.act(&tick) }
    func record(_ tick: inout TickInfo) { loop.record(&tick) }
}

/// Faults on the bus and in the servos, in lockstep on the simulation clock (wire timing on): what is tested is
/// the loop's behaviour, not real time, so each run is deterministic and is scored as it comes, without retries.
@Suite(.serialized) struct FaultToleranceTests {
    func run(_ rig: SimulatedRig, seconds: Double, body: StopWhenSafe) throws -> LoopReport {
        let rate = rig.configuration.loop.rateHz
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: Int64(seconds * rate)),
            body: body)
        return try scheduler.run()
    }

    /// Corrupt and lost packets on the wire (1 % and 0.1 % of them) cost retries, not the robot: the loop
    /// runs on, stays active and tracks its trajectory.
    @Test func corruptAndDroppedPacketsAreRetriedWithoutLosingTheRobot() throws {
        var faults = FaultInjection()
        faults.corruptProbability = 0.01
        faults.dropProbability = 0.001
        let rig = try SimulatedRig(wireTiming: true, faults: faults, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = StopWhenSafe(loop: rig.loop)
        let report = try run(rig, seconds: 4, body: body)
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
        #expect(report.ticks == Int64(4 * rig.configuration.loop.rateHz), "the loop ran every tick")
        #expect(rig.loop.trackingRMSRad < 0.05)
        let statistics = try #require(rig.loop.busStatistics().first).servos
        #expect(statistics.reduce(0) { $0 + $1.statistics.checksumErrors + $1.statistics.timeouts } > 0)
    }

    /// A servo that overloads drops its torque: the loop goes safe naming the joint and the cause, and
    /// recovers without restarting (REBOOT clears the servo's error, the loop ramps from the present pose).
    @Test func anOverloadedServoIsNamedAndTheRobotRecovers() throws {
        var faults = FaultInjection()
        faults.overloads = [.init(id: 3, afterSeconds: 1.0)]
        let rig = try SimulatedRig(wireTiming: true, faults: faults, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = StopWhenSafe(loop: rig.loop)
        _ = try run(rig, seconds: 4, body: body)
        #expect(rig.loop.lifecycle.state == .safe)
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("elbow_flex") && text.contains("servoHardwareError"), "\(text)")

        try rig.loop.lifecycle.recover()
        #expect(rig.loop.lifecycle.state == .active)
        let recovered = StopWhenSafe(loop: rig.loop)
        _ = try run(rig, seconds: 1, body: recovered)
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
    }

    /// A servo that falls silent mid-run: the loop goes safe within its bus-error budget and names the joint.
    @Test func aSilentServoIsNamed() throws {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = StopWhenSafe(loop: rig.loop)
        let elbow = try #require(rig.configuration.jointIndex(named: "elbow_flex"))
        var firstUnreadTick: Int64 = -1
        body.beforeSense = { tick in
            // The servo is renumbered behind the loop's back: ID 3 no longer answers.
            if tick == 200 { rig.server.withBus { $0.servo(id: 3)?.setRegisterValue(named: "ID", 42) } }
            // Before this tick's read: whether the previous tick's read of the elbow failed.
            if firstUnreadTick < 0 && tick > 200 && !rig.loop.supervisor.readingFresh[elbow] {
                firstUnreadTick = tick - 1
            }
        }
        let report = try run(rig, seconds: 4, body: body)
        #expect(rig.loop.lifecycle.state == .safe)
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("elbow_flex") && text.contains("busErrors"), "\(text)")
        // The loop stops in the tick that went safe: the budget's worth of unread ticks after the first.
        let safeTick = report.ticks - 1
        #expect(firstUnreadTick >= 200)
        #expect(
            safeTick - firstUnreadTick == Int64(rig.configuration.safety.busErrorBudget),
            "first unread in tick \(firstUnreadTick), safe in tick \(safeTick)")
    }
}
