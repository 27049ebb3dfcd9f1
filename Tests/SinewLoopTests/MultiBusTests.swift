import Foundation
import SinewBus
import SinewRuntime
import SinewSim
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Fails every call once told to, as a USB adapter that was unplugged fails its port (EIO); until then it is
/// the transport it wraps, readiness included.
final class VanishingTransport: ByteTransport, @unchecked Sendable {
    let inner: any ByteTransport
    var vanished = false

    init(_ inner: any ByteTransport) { self.inner = inner }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        if vanished { throw .disconnected(errno: EIO) }
        try inner.write(bytes, deadline: deadline)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        if vanished { throw .disconnected(errno: EIO) }
        return try inner.read(into: buffer, deadline: deadline)
    }
    func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        if vanished { throw .disconnected(errno: EIO) }
        return try inner.readAvailable(into: buffer)
    }
    func flushInput() throws(TransportError) {
        if vanished { throw .disconnected(errno: EIO) }
        try inner.flushInput()
    }
    var baudRate: Int { inner.baudRate }
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { try inner.setBaudRate(bitsPerSecond) }
    var readinessDescriptor: Int32 { inner.readinessDescriptor }
    func clearReadiness() { inner.clearReadiness() }
}

/// Robots with several buses: the buses' transactions overlap (the sense stage takes the slowest bus's time,
/// not the sum), one physics drives them all, and a fault on one bus touches only that bus's joints' readings
/// and names the bus.
@Suite(.serialized) struct MultiBusTests {
    func describeEvents(_ loop: RobotLoop) -> String {
        loop.supervisor.events.events.map(loop.supervisor.describe).joined(separator: "; ")
    }

    /// Simulated time the sense stage takes, ticks 20 to 120 of a lockstep run with wire timing.
    func lockstepSenseNs(robot: String, busIO: RobotConfiguration.BusIO) throws -> (median: UInt64, rig: MultiBusRig) {
        let rig = try MultiBusRig(robot: robot, busIO: busIO, wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = BusWatchBody(loop: rig.loop, lastTick: 120, watched: [])
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 200), body: body)
            .run()
        #expect(rig.loop.lifecycle.state == .active, "\(describeEvents(rig.loop))")
        let sorted = body.senseNs.dropFirst(20).sorted()
        return (sorted[sorted.count / 2], rig)
    }

    /// In lockstep (simulated time, wire timing on), reading every bus at once takes the simulated time of one
    /// bus's sync read; one after another, the sum: two buses twice as long, four buses four times.
    @Test(arguments: [("so101-bimanual", 2), ("humanoid-upper", 4)])
    func theBusesReadTogetherTakeTheSlowestBusTime(robot: String, buses: Int) throws {
        let together = try lockstepSenseNs(robot: robot, busIO: .poll)
        let sequential = try lockstepSenseNs(robot: robot, busIO: .sequential)
        #expect(together.rig.loop.busIO == .poll)
        #expect(sequential.rig.loop.busIO == .sequential)
        let ratio = Double(sequential.median) / Double(together.median)
        print(
            "\(robot): sense stage \(together.median / 1000) µs with the buses together, "
                + "\(sequential.median / 1000) µs one after another (×\(String(format: "%.2f", ratio)))")
        #expect(ratio > Double(buses) * 0.85 && ratio < Double(buses) * 1.15)
    }

    /// A lockstep run of a robot with four buses is deterministic: twice the same run, the same robot to the bit.
    @Test func lockstepRunsOfAFourBusRobotAreDeterministic() throws {
        func simulate() throws -> [Double] {
            let rig = try MultiBusRig(robot: "humanoid-upper", wireTiming: true, lockstep: true)
            try rig.loop.lifecycle.configure()
            try rig.loop.lifecycle.activate()
            let body = BusWatchBody(loop: rig.loop, lastTick: 500, watched: [])
            _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 600), body: body)
                .run()
            #expect(rig.loop.lifecycle.state == .active, "\(describeEvents(rig.loop))")
            return Array(rig.robot.positions)
        }
        let a = try simulate()
        let b = try simulate()
        #expect(a == b)
        #expect(a.count == 26)
    }

    /// Every servo of one bus falls silent (a cable pulled off that bus): its joints lose their readings and the
    /// robot goes to its safe state within that bus's error budget, with an event naming the bus; the joints
    /// of the other bus keep a fresh reading in every tick, before and after, and keep tracking the simulator.
    @Test func aSilentBusTouchesOnlyItsOwnJoints() throws {
        let rig = try MultiBusRig(robot: "so101-bimanual", wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let left = rig.joints(onBus: "left")
        let right = rig.joints(onBus: "right")
        let silenceTick: Int64 = 300
        let body = BusWatchBody(loop: rig.loop, lastTick: 600, watched: left)
        var rightStaleFrom: Int64 = -1
        body.onTick = { tick in
            if tick == silenceTick {
                rig.silence(bus: 1)
            }
            if tick > silenceTick && rightStaleFrom < 0 && right.allSatisfy({ !rig.loop.supervisor.readingFresh[$0] }) {
                rightStaleFrom = tick - 1
            }
        }
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 700), body: body)
            .run()
        print("silent bus: \(describeEvents(rig.loop)); safe from tick \(body.firstSafeTick)")
        let budget = Int64(rig.configuration.safety.busErrorBudget)
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(rig.loop.supervisor.safeStateCause == .busErrors)
        #expect(body.firstSafeTick >= silenceTick && body.firstSafeTick <= silenceTick + budget + 1)
        let event = try #require(rig.loop.supervisor.events.events.first)
        #expect(rig.loop.supervisor.busName(event.busIndex) == "right", "\(describeEvents(rig.loop))")
        #expect(rig.loop.supervisor.describe(event).contains("bus \"right\""))
        for event in rig.loop.supervisor.events.events {
            #expect(rig.loop.supervisor.busName(event.busIndex) != "left", "\(rig.loop.supervisor.describe(event))")
        }
        #expect(body.staleWatchedTicks.isEmpty, "the left arm lost its readings in ticks \(body.staleWatchedTicks)")
        #expect(rightStaleFrom == silenceTick, "the right arm's readings stop with its bus")
        // The left arm still reads where the simulator has it (it holds its pose in the safe state).
        for j in left {
            #expect(abs(rig.loop.supervisor.measuredPositionRad[j] - rig.truePositionRad(joint: j)) < 0.01)
        }
        let statistics = rig.loop.busStatistics()
        let leftTimeouts = statistics[0].servos.reduce(0) { $0 + $1.statistics.timeouts }
        let rightTimeouts = statistics[1].servos.reduce(0) { $0 + $1.statistics.timeouts }
        #expect(statistics[0].bus == "left" && leftTimeouts == 0)
        #expect(statistics[1].bus == "right" && rightTimeouts > 0)
    }

    /// The same in real time, with the buses read together from the loop thread and with an I/O thread per
    /// bus: a servo bus gone silent costs its own deadline, overlapping the other bus's read, whose joints stay
    /// fresh in every tick.
    @Test(arguments: [RobotConfiguration.BusIO.poll, .threads])
    func aSilentBusInRealTime(busIO: RobotConfiguration.BusIO) throws {
        try retryingDisturbedRuns { isLastAttempt in
            // A margin patient enough that a machine busy with other tests does not make the healthy bus miss a
            // deadline, short enough that the silent bus's ticks (two attempts, each to its deadline) do not
            // make the trajectory jump between ticks. The silence comes after the approach to the first waypoint.
            let rig = try MultiBusRig(robot: "so101-bimanual", busIO: busIO, runMarginNs: 4_000_000)
            try rig.loop.lifecycle.configure()
            try rig.loop.lifecycle.activate()
            #expect(rig.loop.busIO == busIO)
            let left = rig.joints(onBus: "left")
            let silenceTick: Int64 = 700
            let body = BusWatchBody(loop: rig.loop, lastTick: 900, watched: left)
            body.onTick = { tick in
                if tick == silenceTick {
                    rig.silence(bus: 1)
                }
            }
            let report = try Scheduler(
                configuration: SchedulerConfiguration(
                    rate: .fixed(hertz: 500), overrunPolicy: .skip, fifoPriority: loopTestPriority, maxTicks: 1_000),
                body: body
            ).run()
            let firstEvent = rig.loop.supervisor.events.events.first
            if let firstEvent, rig.loop.supervisor.busName(firstEvent.busIndex) != "right", !isLastAttempt {
                print("silent bus (\(busIO)): run again, the machine disturbed the run: \(describeEvents(rig.loop))")
                return false
            }
            print(
                "silent bus in real time (\(busIO)): \(describeEvents(rig.loop)); safe from tick "
                    + "\(body.firstSafeTick); \(report.overruns) overruns")
            let event = try #require(firstEvent)
            #expect(rig.loop.supervisor.busName(event.busIndex) == "right", "\(describeEvents(rig.loop))")
            #expect(event.cause == .busErrors)
            #expect(body.firstSafeTick >= silenceTick)
            #expect(body.staleWatchedTicks.isEmpty, "the left arm lost its readings in ticks \(body.staleWatchedTicks)")
            let leftTimeouts = rig.loop.busStatistics()[0].servos.reduce(0) { $0 + $1.statistics.timeouts }
            #expect(leftTimeouts == 0)
            return true
        }
    }

    /// One bus's USB adapter vanishes mid-run (its port fails with EIO): that bus is published as
    /// disconnected, the robot goes to its safe state with an event naming the bus, and the other bus's joints
    /// keep their fresh readings in every tick.
    @Test func aVanishedAdapterOnOneBus() throws {
        try retryingDisturbedRuns { isLastAttempt in
            var vanishing: VanishingTransport?
            let rig = try MultiBusRig(
                robot: "so101-bimanual", runMarginNs: 20_000_000,
                wrapTransport: { name, inner in
                    guard name == "right" else { return inner }
                    let wrapper = VanishingTransport(inner)
                    vanishing = wrapper
                    return wrapper
                })
            let right = try #require(vanishing)
            try rig.loop.lifecycle.configure()
            try rig.loop.lifecycle.activate()
            let left = rig.joints(onBus: "left")
            let vanishTick: Int64 = 200
            let body = BusWatchBody(loop: rig.loop, lastTick: 400, watched: left)
            body.onTick = { tick in if tick == vanishTick { right.vanished = true } }
            _ = try Scheduler(
                configuration: SchedulerConfiguration(
                    rate: .fixed(hertz: 500), overrunPolicy: .skip, fifoPriority: loopTestPriority, maxTicks: 500),
                body: body
            ).run()
            let firstEvent = rig.loop.supervisor.events.events.first
            if let firstEvent, rig.loop.supervisor.busName(firstEvent.busIndex) != "right", !isLastAttempt {
                print("vanished adapter: run again, the machine disturbed the run: \(describeEvents(rig.loop))")
                return false
            }
            print("vanished adapter: \(describeEvents(rig.loop)); safe from tick \(body.firstSafeTick)")
            #expect(rig.loop.busDisconnected)
            #expect(rig.loop.disconnectedBusName == "right")
            #expect(rig.loop.disconnectedBusErrno == EIO)
            let event = try #require(firstEvent)
            let text = rig.loop.supervisor.describe(event)
            #expect(text.contains("bus \"right\"") && text.contains("disconnected"), "\(text)")
            #expect(body.firstSafeTick >= vanishTick)
            #expect(body.firstSafeTick - vanishTick <= Int64(rig.configuration.safety.busErrorBudget) + 1)
            #expect(body.staleWatchedTicks.isEmpty, "the left arm lost its readings in ticks \(body.staleWatchedTicks)")
            return true
        }
    }

    /// Failures on two buses in turns never add up: each bus has a budget of its own. Sync writes that fail
    /// (commands that do not reach a bus) on one bus for `budget` ticks, then on the other, eight times over,
    /// leave the robot active; one bus failing for one tick more than its budget stops it, naming that bus.
    @Test func eachBusHasABudgetOfItsOwn() throws {
        func run(phaseTicks: (Int) -> Int) throws -> MultiBusRig {
            var probes: [String: ProbedTransport] = [:]
            let rig = try MultiBusRig(
                robot: "so101-bimanual", wireTiming: true, lockstep: true,
                wrapTransport: { name, inner in
                    let probe = ProbedTransport(inner)
                    probes[name] = probe
                    return probe
                })
            let left = try #require(probes["left"])
            let right = try #require(probes["right"])
            try rig.loop.lifecycle.configure()
            try rig.loop.lifecycle.activate()
            let budget = rig.configuration.safety.busErrorBudget
            let phases = (0..<8).map { phaseTicks($0) }
            let body = BusWatchBody(loop: rig.loop, lastTick: 400, watched: [])
            body.onTick = { tick in
                var start = 100
                left.failSyncWrites = false
                right.failSyncWrites = false
                for (p, length) in phases.enumerated() {
                    if tick >= start && tick < start + length {
                        left.failSyncWrites = p % 2 == 0
                        right.failSyncWrites = p % 2 == 1
                    }
                    start += length
                }
                _ = budget
            }
            _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 500), body: body)
                .run()
            return rig
        }
        let budget = try MultiBusRig(robot: "so101-bimanual", lockstep: true).configuration.safety.busErrorBudget
        let turns = try run { _ in budget }
        #expect(turns.loop.busErrorCount == 8 * budget)
        #expect(turns.loop.lifecycle.state == .active, "\(describeEvents(turns.loop))")
        let tooMany = try run { $0 == 3 ? budget + 1 : budget }
        #expect(tooMany.loop.lifecycle.state == .safe)
        let event = try #require(tooMany.loop.supervisor.events.events.first)
        #expect(event.cause == .busErrors)
        #expect(tooMany.loop.supervisor.busName(event.busIndex) == "right", "\(describeEvents(tooMany.loop))")
    }
}
