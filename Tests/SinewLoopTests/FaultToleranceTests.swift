import Foundation
import SinewBus
import SinewRuntime
import SinewSim
import Testing

/// Stops the loop when it leaves the active state (or after `maxTicks`).
final class StopWhenSafe: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    var beforeSense: ((Int64) -> Void)?

    init(loop: RobotLoop) { self.loop = loop }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) {
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

@Suite(.serialized) struct FaultToleranceTests {
    func run(_ rig: SimulatedRig, seconds: Double, body: StopWhenSafe? = nil) throws -> LoopReport {
        let rate = rig.configuration.loop.rateHz
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: rate), maxTicks: Int64(seconds * rate)),
            body: body ?? StopWhenSafe(loop: rig.loop))
        return try scheduler.run()
    }

    /// Corrupt and lost packets on the wire (1 % and 0.1 % of them) cost retries, not the robot: the loop
    /// keeps its rate, stays active and tracks its trajectory.
    @Test func corruptAndDroppedPacketsAreRetriedWithoutLosingTheRobot() throws {
        var faults = FaultInjection()
        faults.corruptProbability = 0.01
        faults.dropProbability = 0.001
        let rig = try SimulatedRig(wireTiming: true, faults: faults)
        defer { rig.server.stop() }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let report = try run(rig, seconds: 4)
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
        #expect(report.achievedHz > 0.9 * rig.configuration.loop.rateHz)
        #expect(rig.loop.trackingRMSRad < 0.05)
        let statistics = rig.loop.busStatistics()[0].servos
        #expect(statistics.reduce(0) { $0 + $1.statistics.checksumErrors + $1.statistics.timeouts } > 0)
    }

    /// A servo that overloads drops its torque: the loop goes safe naming the joint and the cause, and
    /// recovers without restarting (REBOOT clears the servo's error, the loop ramps from the present pose).
    @Test func anOverloadedServoIsNamedAndTheRobotRecovers() throws {
        var faults = FaultInjection()
        faults.overloads = [.init(id: 3, afterSeconds: 1.0)]
        let rig = try SimulatedRig(wireTiming: true, faults: faults)
        defer { rig.server.stop() }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        _ = try run(rig, seconds: 4)
        #expect(rig.loop.lifecycle.state == .safe)
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("elbow_flex") && text.contains("servoHardwareError"), "\(text)")

        try rig.loop.lifecycle.recover()
        #expect(rig.loop.lifecycle.state == .active)
        _ = try run(rig, seconds: 1)
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
    }

    /// A servo that falls silent mid-run: the loop goes safe within its bus-error budget and names the joint.
    @Test func aSilentServoIsNamed() throws {
        let rig = try SimulatedRig(wireTiming: true)
        defer { rig.server.stop() }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = StopWhenSafe(loop: rig.loop)
        body.beforeSense = { tick in
            // The servo is renumbered behind the loop's back: ID 3 no longer answers.
            if tick == 200 { rig.server.withBus { $0.servo(id: 3)?.setRegisterValue(named: "ID", 42) } }
        }
        _ = try run(rig, seconds: 4, body: body)
        #expect(rig.loop.lifecycle.state == .safe)
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("elbow_flex") && text.contains("busErrors"), "\(text)")
    }
}
