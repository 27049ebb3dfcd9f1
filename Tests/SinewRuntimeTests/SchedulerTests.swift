import CAllocCounter
import Foundation
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

/// Busy-waits past the deadline of one tick, and stores every tick's deadline.
final class OverrunBody: ControlTickBody, @unchecked Sendable {
    let slowTick: Int64
    let busyNs: Int64
    var deadlines = [Int64](repeating: 0, count: 32)
    var overrunsInARowSeen = [Int](repeating: 0, count: 32)

    init(slowTick: Int64, busyNs: Int64) {
        self.slowTick = slowTick
        self.busyNs = busyNs
    }

    func sense(_ tick: inout TickInfo) {
        deadlines[Int(tick.index)] = tick.deadlineNs
        overrunsInARowSeen[Int(tick.index)] = tick.overrunsInARow
    }
    func decide(_ tick: inout TickInfo) {
        if tick.index == slowTick {
            while monotonicNanoseconds() < tick.deadlineNs + busyNs {}
        }
    }
    func guardCommands(_ tick: inout TickInfo) {}
    func act(_ tick: inout TickInfo) {}
    func record(_ tick: inout TickInfo) {}
}

@Suite("Scheduler", .serialized) struct SchedulerTests {
    static let periodNs: Int64 = 10_000_000

    @Test("overrun policy skip: the next deadline is the first grid point after the late tick")
    func overrunSkip() throws {
        let body = OverrunBody(slowTick: 5, busyNs: 35 * Self.periodNs / 10)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 100), overrunPolicy: .skip, maxTicks: 10),
            body: body)
        let report = try scheduler.run()
        // The slow tick ends 3.5 periods after its deadline: at least 3 deadlines are dropped (more when
        // this shared machine preempts the thread).
        let gap = body.deadlines[6] - body.deadlines[5]
        #expect(report.overruns >= 1)
        #expect(gap >= 4 * Self.periodNs && gap % Self.periodNs == 0)
        #expect(report.skippedDeadlines >= gap / Self.periodNs - 1)
        #expect(body.overrunsInARowSeen[6] >= 1)
        for k in 1..<10 { #expect((body.deadlines[k] - body.deadlines[0]) % Self.periodNs == 0) }
    }

    @Test("overrun policy catchUp(max: 2): two late ticks back to back, then skip")
    func overrunCatchUp() throws {
        let body = OverrunBody(slowTick: 5, busyNs: 35 * Self.periodNs / 10)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                rate: .fixed(hertz: 100), overrunPolicy: .catchUp(max: 2), maxTicks: 10),
            body: body)
        let report = try scheduler.run()
        let d = body.deadlines
        #expect(d[6] - d[5] == Self.periodNs)
        #expect(d[7] - d[5] == 2 * Self.periodNs)
        #expect(d[8] - d[5] >= 4 * Self.periodNs && (d[8] - d[5]) % Self.periodNs == 0)
        // At least the two caught-up ticks overran in a row (earlier ticks may have too, when this shared
        // machine preempts the loop thread).
        #expect(body.overrunsInARowSeen[7] >= 2)
        #expect(report.overruns >= 3)
        #expect(report.skippedDeadlines >= 1)
    }

    /// The real SIGINT goes to a child process (this test binary running only
    /// `shutdownSignalChild`), so that it cannot end loops of tests running in parallel here.
    @Test("SIGINT sets the shutdown flag; the loop ends after the body saw it")
    func shutdownSignal() throws {
        let directory = temporaryPath("sigint")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = ["--testing-library", "swift-testing", "--filter", "shutdownSignalChild"]
        child.environment = ProcessInfo.processInfo.environment.merging(["SINEW_SIGNAL_CHILD_DIR": directory]) {
            $1
        }
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        let ready = directory + "/running"
        var waited = 0
        while access(ready, F_OK) != 0 && waited < 30_000 && child.isRunning {
            usleep(1_000)
            waited += 1
        }
        #expect(access(ready, F_OK) == 0)
        kill(child.processIdentifier, SIGINT)
        child.waitUntilExit()
        #expect(child.terminationReason == .exit)
        #expect(child.terminationStatus == 0)
        let result = try String(contentsOfFile: directory + "/result", encoding: .utf8)
        #expect(result == "shutdownSignal saw=true signal=\(SIGINT)")
    }

    @Test("(child process of the SIGINT test; does nothing otherwise)")
    func shutdownSignalChild() throws {
        guard let directory = ProcessInfo.processInfo.environment["SINEW_SIGNAL_CHILD_DIR"] else { return }
        #expect(ShutdownSignals.install() == 0)
        let body = ArithmeticBody(countFromTick: 0, countToTick: 1)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 1_000), shutdownGraceTicks: 3), body: body)
        try scheduler.start()
        while scheduler.ticksCompleted < 5 { usleep(1_000) }
        _ = FileManager.default.createFile(atPath: directory + "/running", contents: nil)
        let report = try scheduler.join()
        let result = "\(report.stopReason) saw=\(body.sawShutdown) signal=\(ShutdownSignals.signal)"
        try result.write(toFile: directory + "/result", atomically: true, encoding: .utf8)
        #expect(report.stopReason == .shutdownSignal)
    }

    @Test("real-time setup reports what it obtained, and a CPU that does not exist is refused")
    func realtimeSetupReport() throws {
        let body = ArithmeticBody(countFromTick: 0, countToTick: 1)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 1_000), cpu: 4096, maxTicks: 3), body: body)
        let report = try scheduler.run()
        #expect(report.realtime.affinity == .failed(errno: EINVAL))
        #expect(report.realtime.fifo == .notRequested)
        #expect(report.realtime.description.hasPrefix("SCHED_FIFO: not requested / CPU 4096: no (EINVAL: "))
        let text = RealtimeSetupReport(
            fifoPriority: 80, fifo: .applied, cpu: 1, affinity: .applied, memoryLock: .failed(errno: EPERM)
        ).description
        #expect(
            text
                == "SCHED_FIFO 80: yes / CPU 1: yes / memory locked: no (EPERM: run as root or grant CAP_IPC_LOCK / ulimit -l)"
        )
    }

    @Test("SCHED_FIFO and pinning to CPU 0 are applied or refused with an errno, never silently")
    func fifoAndAffinity() throws {
        let body = ArithmeticBody(countFromTick: 0, countToTick: 1)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 1_000), fifoPriority: 10, cpu: 0, maxTicks: 20),
            body: body)
        let report = try scheduler.run()
        #expect(report.ticks == 20)
        #expect(report.realtime.fifo != .notRequested)
        #expect(report.realtime.affinity != .notRequested)
        if report.realtime.affinity == .applied { #expect(report.realtime.runningOnCPU == 0) }
    }

    @Test("the bare C timer loop measures each wake-up")
    func bareLoop() {
        let (lateness, rc) = measureBareTimerLoop(hertz: 2_000, ticks: 200)
        #expect(rc == 0)
        #expect(lateness.count == 200)
        #expect(lateness.allSatisfy { $0 >= 0 })
        let summary = LatencySummary(samplesNs: lateness)
        #expect(summary.count == 200)
        #expect(summary.p50Ns <= summary.p99Ns && summary.p99Ns <= summary.maxNs)
    }

    @Test("a loop that allocates is seen by the counter (the zero-allocation tests can fail)")
    func allocationCounterSeesLoopThread() throws {
        final class AllocatingBody: ControlTickBody, @unchecked Sendable {
            var sink: [Int] = []
            var allocationsAtStart: UInt64 = 0
            var allocationsAtEnd: UInt64 = 0
            func sense(_ tick: inout TickInfo) {
                if tick.index == 10 { allocationsAtStart = sinew_thread_allocations() }
            }
            func decide(_ tick: inout TickInfo) { sink = [Int](repeating: Int(tick.index), count: 3) }
            func guardCommands(_ tick: inout TickInfo) {}
            func act(_ tick: inout TickInfo) {}
            func record(_ tick: inout TickInfo) {
                if tick.index == 110 { allocationsAtEnd = sinew_thread_allocations() }
            }
        }
        let body = AllocatingBody()
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 111), body: body)
        _ = try scheduler.run()
        #expect(body.allocationsAtEnd - body.allocationsAtStart >= 100)
    }

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

    @Test("a rate that is not a positive number of Hz is refused")
    func invalidRate() {
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 0)),
            body: ArithmeticBody(countFromTick: 0, countToTick: 1))
        #expect(throws: SchedulerError.invalidRate(hertz: 0)) { try scheduler.start() }
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
