import CAllocCounter
import SinewRuntime
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A dummy tick body: some arithmetic per stage, and the loop thread's allocation count read at the start
/// and the end of the counted window from inside the loop thread.
final class ArithmeticBody: ControlTickBody, @unchecked Sendable {
    let joints = 6
    let state: UnsafeMutableBufferPointer<Double>
    let command: UnsafeMutableBufferPointer<Double>
    let countFromTick: Int64
    let countToTick: Int64
    var allocationsAtStart: UInt64 = 0
    var allocationsAtEnd: UInt64 = 0
    var countedTicks: Int64 = 0
    var lastIndex: Int64 = -1
    var indicesInOrder = true
    var stopAfter: Int64 = .max
    var sawShutdown = false

    init(countFromTick: Int64, countToTick: Int64) {
        state = .allocate(capacity: joints)
        state.initialize(repeating: 0)
        command = .allocate(capacity: joints)
        command.initialize(repeating: 0)
        self.countFromTick = countFromTick
        self.countToTick = countToTick
    }

    deinit {
        state.deallocate()
        command.deallocate()
    }

    func sense(_ tick: inout TickInfo) {
        if tick.index == countFromTick { allocationsAtStart = sinew_thread_allocations() }
        if tick.index != lastIndex + 1 { indicesInOrder = false }
        lastIndex = tick.index
        let t = tick.secondsSinceStart
        for i in 0..<joints { state[i] = (t * Double(i + 1)).truncatingRemainder(dividingBy: 1.0) }
    }

    func decide(_ tick: inout TickInfo) {
        for i in 0..<joints { command[i] = 0.9 * command[i] + 0.1 * state[i] }
    }

    func guardCommands(_ tick: inout TickInfo) {
        for i in 0..<joints { command[i] = min(max(command[i], -0.5), 0.5) }
    }

    func act(_ tick: inout TickInfo) { tick.waitNs = 0 }

    func record(_ tick: inout TickInfo) {
        if tick.shutdownRequested { sawShutdown = true }
        if tick.index == countToTick {
            allocationsAtEnd = sinew_thread_allocations()
            countedTicks = countToTick - countFromTick
        }
        if tick.index + 1 >= stopAfter { tick.stopRequested = true }
    }
}

@Suite("Scheduler") struct SchedulerTests {
    @Test("zero heap allocations on the loop thread over 10,000 ticks at 10 kHz")
    func zeroAllocationsAtTenKilohertz() throws {
        let body = ArithmeticBody(countFromTick: 100, countToTick: 10_100)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 10_000), maxTicks: 10_101), body: body)
        let report = try scheduler.run()
        #expect(report.ticks == 10_101)
        #expect(report.stopReason == .maxTicks)
        #expect(body.countedTicks == 10_000)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0)
        #expect(body.indicesInOrder)
        #expect(report.wakeLateness.count == 10_101)
        #expect(report.stage(.decide).count == 10_101)
        #expect(report.achievedHz > 0)
    }

    @Test("zero heap allocations running as fast as possible")
    func zeroAllocationsAsFastAsPossible() throws {
        let body = ArithmeticBody(countFromTick: 10, countToTick: 50_010)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 50_011), body: body)
        let report = try scheduler.run()
        #expect(report.ticks == 50_011)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0)
        #expect(report.overruns == 0)
        #expect(report.wakeLateness.count == 0)
    }

    @Test("the body can end the loop; a second start is refused while running")
    func bodyStopsLoop() throws {
        let body = ArithmeticBody(countFromTick: 0, countToTick: 1)
        body.stopAfter = 20
        let scheduler = Scheduler(configuration: SchedulerConfiguration(rate: .fixed(hertz: 2_000)), body: body)
        try scheduler.start()
        #expect(throws: SchedulerError.alreadyStarted) { try scheduler.start() }
        let report = try scheduler.join()
        #expect(report.ticks == 20)
        #expect(report.stopReason == .bodyRequested)
    }

    @Test("requestStop ends a loop from another thread")
    func requestStop() throws {
        let body = ArithmeticBody(countFromTick: 0, countToTick: 1)
        let scheduler = Scheduler(configuration: SchedulerConfiguration(rate: .fixed(hertz: 1_000)), body: body)
        try scheduler.start()
        while scheduler.ticksCompleted < 10 { usleep(1_000) }
        scheduler.requestStop()
        let report = try scheduler.join()
        #expect(report.stopReason == .stopRequested)
        #expect(report.ticks >= 10)
    }
}
