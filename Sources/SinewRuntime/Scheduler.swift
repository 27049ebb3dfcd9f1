import CRealtime
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the loop does when a tick ends after the next tick's deadline.
public enum OverrunPolicy: Sendable, Equatable {
    /// Drop the missed ticks: the next deadline is the first one on the grid after the overrunning tick ended.
    case skip
    /// Run up to `max` late ticks back to back (no sleep) to catch up, then skip like `.skip`.
    case catchUp(max: Int)
}

/// How fast the loop runs.
public enum LoopRate: Sendable, Equatable {
    /// Fixed rate on absolute CLOCK_MONOTONIC deadlines, in Hz.
    case fixed(hertz: Double)
    /// No sleeping: each tick starts as soon as the previous one ends (batch simulation, benchmarks).
    case asFastAsPossible

    /// Tick period in ns; 0 when running as fast as possible.
    public var periodNs: Int64 {
        switch self {
        case .fixed(let hertz): hertz > 0 ? Int64((1e9 / hertz).rounded()) : 0
        case .asFastAsPossible: 0
        }
    }
}

/// Settings of a `Scheduler`, usually from robot.yaml's `loop` section.
public struct SchedulerConfiguration: Sendable, Equatable {
    public var rate: LoopRate
    public var overrunPolicy: OverrunPolicy
    /// SCHED_FIFO priority (1...99) of the loop thread, or nil for the default scheduler.
    public var fifoPriority: Int?
    /// CPU (0-based) the loop thread is pinned to, or nil.
    public var cpu: Int?
    /// mlockall(MCL_CURRENT | MCL_FUTURE) before the first tick (process-wide; not undone at stop).
    public var lockMemory: Bool
    /// Timer slack of the loop thread, ns (1 = tightest wake-ups); nil leaves the default (50 µs).
    public var timerSlackNs: UInt?
    /// Stop after this many ticks (nil: run until stopped).
    public var maxTicks: Int64?
    /// End the loop once SIGINT/SIGTERM was received (see `ShutdownSignals`), `shutdownGraceTicks` ticks
    /// after the first tick that saw the request (`TickInfo.shutdownRequested`), so the body can bring
    /// the robot to its safe state first.
    public var stopOnShutdownSignal: Bool
    public var shutdownGraceTicks: Int
    /// Stack size of the loop thread, bytes; `prefaultStackBytes` of it are touched before the first tick.
    public var threadStackBytes: Int
    public var prefaultStackBytes: Int

    public init(
        rate: LoopRate, overrunPolicy: OverrunPolicy = .skip, fifoPriority: Int? = nil, cpu: Int? = nil,
        lockMemory: Bool = false, timerSlackNs: UInt? = 1, maxTicks: Int64? = nil,
        stopOnShutdownSignal: Bool = true, shutdownGraceTicks: Int = 1,
        threadStackBytes: Int = 1 << 20, prefaultStackBytes: Int = 256 << 10
    ) {
        self.rate = rate
        self.overrunPolicy = overrunPolicy
        self.fifoPriority = fifoPriority
        self.cpu = cpu
        self.lockMemory = lockMemory
        self.timerSlackNs = timerSlackNs
        self.maxTicks = maxTicks
        self.stopOnShutdownSignal = stopOnShutdownSignal
        self.shutdownGraceTicks = shutdownGraceTicks
        self.threadStackBytes = threadStackBytes
        self.prefaultStackBytes = prefaultStackBytes
    }
}

/// Per-tick facts the scheduler hands to each stage. All times are CLOCK_MONOTONIC ns.
public struct TickInfo: Sendable {
    /// 0-based tick number.
    public var index: Int64
    /// Wake-up of the first tick.
    public var loopStartNs: Int64
    /// This tick's deadline (when it should have started).
    public var deadlineNs: Int64
    /// When the thread woke for this tick.
    public var wakeNs: Int64
    /// `wakeNs - deadlineNs` (0 when running as fast as possible).
    public var latenessNs: Int64
    /// Consecutive ticks before this one that ended after their successor's deadline.
    public var overrunsInARow: Int
    /// Overrunning ticks since the loop started.
    public var totalOverruns: Int64
    /// SIGINT/SIGTERM was received: bring the robot to its safe state; the loop ends soon.
    public var shutdownRequested: Bool
    /// Time the body spent waiting (on the bus) this tick, ns; the body adds to it, and it is subtracted
    /// from the tick time to give the compute time.
    public var waitNs: Int64
    /// Durations of this tick's stages that have already run, ns (index: `TickStage.rawValue`).
    public var stageNs: (Int64, Int64, Int64, Int64, Int64, Int64)
    /// Set by the body to end the loop after this tick.
    public var stopRequested: Bool

    public init(loopStartNs: Int64 = 0) {
        index = 0
        self.loopStartNs = loopStartNs
        deadlineNs = loopStartNs
        wakeNs = loopStartNs
        latenessNs = 0
        overrunsInARow = 0
        totalOverruns = 0
        shutdownRequested = false
        waitNs = 0
        stageNs = (0, 0, 0, 0, 0, 0)
        stopRequested = false
    }

    /// Seconds from the first tick's wake-up to this tick's wake-up.
    @inline(__always) public var secondsSinceStart: Double { Double(wakeNs - loopStartNs) * 1e-9 }

    /// Duration of a stage of this tick that has already run, ns.
    @inline(__always) public func duration(of stage: TickStage) -> Int64 {
        switch stage {
        case .sense: stageNs.0
        case .estimate: stageNs.1
        case .decide: stageNs.2
        case .guard: stageNs.3
        case .act: stageNs.4
        case .record: stageNs.5
        }
    }
}

/// The work of one tick, split in the six stages the scheduler times. Implement it as a `final class`
/// whose stage methods allocate nothing (preallocated workspaces; no closures, logging or formatting).
/// Every method runs on the loop thread.
public protocol ControlTickBody: AnyObject {
    /// Before the first tick, after the real-time setup: warm up here (first calls allocate metadata).
    func loopDidStart(_ tick: TickInfo)
    func sense(_ tick: inout TickInfo)
    func estimate(_ tick: inout TickInfo)
    func decide(_ tick: inout TickInfo)
    /// The safety supervisor's stage.
    func guardCommands(_ tick: inout TickInfo)
    func act(_ tick: inout TickInfo)
    /// Sees the durations of sense…act in `tick.stageNs`.
    func record(_ tick: inout TickInfo)
    /// After the last tick (the active phase is over; allocating is fine again).
    func loopWillStop(_ tick: TickInfo)
}

extension ControlTickBody {
    public func loopDidStart(_ tick: TickInfo) {}
    public func estimate(_ tick: inout TickInfo) {}
    public func loopWillStop(_ tick: TickInfo) {}
}

/// Why a loop ended.
public enum LoopStopReason: Sendable, Equatable {
    case stopRequested
    case maxTicks
    case bodyRequested
    case shutdownSignal
    /// clock_nanosleep failed with this errno.
    case sleepFailed(errno: Int32)
}

/// Figures of one run of the loop.
public struct LoopReport: Sendable {
    public var realtime: RealtimeSetupReport
    public var stopReason: LoopStopReason
    public var ticks: Int64
    /// From the first tick's wake-up to the end of the last tick, s.
    public var elapsedSeconds: Double
    /// Ticks per second of wall time.
    public var achievedHz: Double
    /// The configured rate (nil when running as fast as possible).
    public var targetHz: Double?
    /// Ticks that ended after the next tick's deadline.
    public var overruns: Int64
    /// Deadlines dropped by the overrun policy.
    public var skippedDeadlines: Int64
    public var wakeLateness: LatencySummary
    /// Per stage, indexed by `TickStage.rawValue`.
    public var stages: [LatencySummary]
    public var tick: LatencySummary
    public var compute: LatencySummary

    public func stage(_ stage: TickStage) -> LatencySummary { stages[stage.rawValue] }
}

extension LoopReport: CustomStringConvertible {
    /// A few lines for the terminal: rate, overruns, wake-up lateness and per-stage times in µs.
    public var description: String {
        func us(_ ns: UInt64) -> String {
            let value = Double(ns) / 1000
            return value < 10 ? String(format: "%.2f", value) : String(format: "%.1f", value)
        }
        func row(_ label: String, _ s: LatencySummary) -> String {
            "\(label.padding(toLength: 14, withPad: " ", startingAt: 0)) p50 \(us(s.p50Ns)) µs  p99 \(us(s.p99Ns)) µs  "
                + "p99.9 \(us(s.p999Ns)) µs  max \(us(s.maxNs)) µs"
        }
        let target = targetHz.map { String(format: " of %.0f Hz", $0) } ?? " (as fast as possible)"
        var lines = [
            String(format: "%lld ticks in %.3f s: %.1f Hz", ticks, elapsedSeconds, achievedHz) + target
                + ", \(overruns) overruns, \(skippedDeadlines) deadlines skipped",
            "real-time: \(realtime)",
        ]
        if wakeLateness.count > 0 { lines.append(row("wake-up late", wakeLateness)) }
        for stage in TickStage.allCases { lines.append(row("\(stage.name)", self.stage(stage))) }
        lines.append(row("tick", tick))
        lines.append(row("compute", compute))
        return lines.joined(separator: "\n")
    }
}

/// Errors starting a loop.
public enum SchedulerError: Error, Sendable, Equatable {
    case alreadyStarted
    /// pthread_create failed.
    case threadCreationFailed(errno: Int32)
    case notStarted
    /// A fixed rate that is not a positive, finite number of Hz.
    case invalidRate(hertz: Double)
}

/// Runs a `ControlTickBody` at a fixed rate on a dedicated thread: absolute CLOCK_MONOTONIC deadlines with
/// `clock_nanosleep(TIMER_ABSTIME)`, SCHED_FIFO / CPU affinity / locked memory when permitted, an
/// overrun policy, and the time of every stage recorded into preallocated histograms.
public final class Scheduler<Body: ControlTickBody>: @unchecked Sendable {
    public let configuration: SchedulerConfiguration
    public let body: Body
    /// Written by the loop thread only; read them after `join()`.
    public let histograms = LoopHistograms()

    private let stopFlag = Atomic<Bool>(false)
    private let phase = Atomic<Int>(0)  // 0 idle, 1 starting, 2 running, 3 finished
    private let ticksDone = Atomic<Int64>(0)
    private let overrunsSoFar = Atomic<Int64>(0)
    private var thread: pthread_t?
    // Written by the loop thread before `phase` becomes 2/3; read after that (acquire).
    private var realtimeReport = RealtimeSetupReport()
    private var outcome = LoopOutcome()

    struct LoopOutcome {
        var stopReason = LoopStopReason.stopRequested
        var ticks: Int64 = 0
        var firstWakeNs: Int64 = 0
        var lastEndNs: Int64 = 0
        var overruns: Int64 = 0
        var skipped: Int64 = 0
    }

    public init(configuration: SchedulerConfiguration, body: Body) {
        self.configuration = configuration
        self.body = body
    }

    /// Ticks completed so far (any thread).
    public var ticksCompleted: Int64 { ticksDone.load(ordering: .relaxed) }

    /// Overrunning ticks so far (any thread; for a live status line).
    public var overrunsSoFarCount: Int64 { overrunsSoFar.load(ordering: .relaxed) }

    /// Whether the loop thread is running ticks.
    public var isRunning: Bool { phase.load(ordering: .acquiring) == 2 }

    /// Asks the loop to end after the current tick (any thread, async-signal-safe in effect: one store).
    public func requestStop() { stopFlag.store(true, ordering: .releasing) }

    /// Starts the loop thread and waits until its real-time setup is done; returns what the setup obtained.
    @discardableResult
    public func start() throws(SchedulerError) -> RealtimeSetupReport {
        if case .fixed(let hertz) = configuration.rate, !(hertz > 0 && hertz.isFinite) {
            throw .invalidRate(hertz: hertz)
        }
        guard phase.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged else {
            throw .alreadyStarted
        }
        stopFlag.store(false, ordering: .releasing)
        ticksDone.store(0, ordering: .relaxed)
        overrunsSoFar.store(0, ordering: .relaxed)
        histograms.reset()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, max(configuration.threadStackBytes, 256 << 10))
        let entry = Unmanaged.passRetained(LoopThreadEntry(self.runOnLoopThread)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(
            &handle, &attributes,
            { raw in
                Unmanaged<LoopThreadEntry>.fromOpaque(raw!).takeRetainedValue().main()
                return nil
            }, entry)
        guard rc == 0 else {
            Unmanaged<LoopThreadEntry>.fromOpaque(entry).release()
            phase.store(0, ordering: .releasing)
            throw .threadCreationFailed(errno: rc)
        }
        thread = handle
        while phase.load(ordering: .acquiring) == 1 { usleep(100) }
        return realtimeReport
    }

    /// Waits for the loop thread to end (after `requestStop()`, `maxTicks`, the body's request or a
    /// shutdown signal) and returns the run's figures.
    public func join() throws(SchedulerError) -> LoopReport {
        guard let handle = thread else { throw .notStarted }
        pthread_join(handle, nil)
        thread = nil
        phase.store(0, ordering: .releasing)
        return makeReport()
    }

    /// `start()` then `join()`.
    public func run() throws(SchedulerError) -> LoopReport {
        try start()
        return try join()
    }

    private func makeReport() -> LoopReport {
        // No tick, no time: without a first wake-up, the difference would be the machine's uptime.
        let elapsed = outcome.ticks == 0 ? 0 : Double(max(outcome.lastEndNs - outcome.firstWakeNs, 0)) * 1e-9
        var targetHz: Double? = nil
        if case .fixed(let hertz) = configuration.rate { targetHz = hertz }
        return LoopReport(
            realtime: realtimeReport, stopReason: outcome.stopReason, ticks: outcome.ticks,
            elapsedSeconds: elapsed, achievedHz: elapsed > 0 ? Double(outcome.ticks) / elapsed : 0,
            targetHz: targetHz, overruns: outcome.overruns, skippedDeadlines: outcome.skipped,
            wakeLateness: LatencySummary(histograms.wakeLateness),
            stages: TickStage.allCases.map { LatencySummary(histograms.stage($0)) },
            tick: LatencySummary(histograms.tick), compute: LatencySummary(histograms.compute))
    }

    private func runOnLoopThread() {
        let config = configuration
        realtimeReport = applyRealtimeSettings(
            fifoPriority: config.fifoPriority, cpu: config.cpu, lockMemory: config.lockMemory,
            timerSlackNs: config.timerSlackNs)
        if config.prefaultStackBytes > 0 { sinew_rt_prefault_stack(config.prefaultStackBytes) }
        phase.store(2, ordering: .releasing)
        tickLoop(config)
        phase.store(3, ordering: .releasing)
    }

    /// The active phase. Everything here is allocation-free.
    private func tickLoop(_ config: SchedulerConfiguration) {
        let body = self.body
        let histograms = self.histograms
        let periodNs = config.rate.periodNs
        let maxTicks = config.maxTicks ?? Int64.max
        var catchUpLimit = 0
        if case .catchUp(let limit) = config.overrunPolicy { catchUpLimit = max(limit, 0) }

        let startNs = monotonicNanoseconds()
        var info = TickInfo(loopStartNs: startNs)
        body.loopDidStart(info)
        var deadline = monotonicNanoseconds() + periodNs
        var firstWake: Int64 = 0
        var lastEnd = startNs
        var ticks: Int64 = 0
        var overruns: Int64 = 0
        var skipped: Int64 = 0
        var overrunsInARow = 0
        var caughtUpInARow = 0
        var shutdownGraceLeft = -1
        var reason = LoopStopReason.stopRequested

        while true {
            if stopFlag.load(ordering: .relaxed) {
                reason = .stopRequested
                break
            }
            if ticks >= maxTicks {
                reason = .maxTicks
                break
            }
            if periodNs > 0 {
                let rc = sinew_rt_sleep_until_ns(deadline)
                if rc != 0 {
                    reason = .sleepFailed(errno: rc)
                    break
                }
            }
            let wake = monotonicNanoseconds()
            if ticks == 0 {
                firstWake = wake
                info.loopStartNs = wake
            }
            if periodNs == 0 { deadline = wake }
            info.index = ticks
            info.deadlineNs = deadline
            info.wakeNs = wake
            info.latenessNs = wake - deadline
            info.overrunsInARow = overrunsInARow
            info.totalOverruns = overruns
            info.waitNs = 0
            info.stageNs = (0, 0, 0, 0, 0, 0)
            if !info.shutdownRequested && sinew_signals_shutdown_signal() != 0 {
                info.shutdownRequested = true
                if config.stopOnShutdownSignal { shutdownGraceLeft = max(config.shutdownGraceTicks, 1) }
            }

            // The stages are timed from here; the bookkeeping above counts in the whole tick only.
            let t0 = monotonicNanoseconds()
            body.sense(&info)
            let t1 = monotonicNanoseconds()
            info.stageNs.0 = t1 - t0
            body.estimate(&info)
            let t2 = monotonicNanoseconds()
            info.stageNs.1 = t2 - t1
            body.decide(&info)
            let t3 = monotonicNanoseconds()
            info.stageNs.2 = t3 - t2
            body.guardCommands(&info)
            let t4 = monotonicNanoseconds()
            info.stageNs.3 = t4 - t3
            body.act(&info)
            let t5 = monotonicNanoseconds()
            info.stageNs.4 = t5 - t4
            body.record(&info)
            let end = monotonicNanoseconds()
            info.stageNs.5 = end - t5

            if periodNs > 0 { histograms.recordWakeLateness(wake - deadline) }
            histograms.recordStage(0, info.stageNs.0)
            histograms.recordStage(1, info.stageNs.1)
            histograms.recordStage(2, info.stageNs.2)
            histograms.recordStage(3, info.stageNs.3)
            histograms.recordStage(4, info.stageNs.4)
            histograms.recordStage(5, info.stageNs.5)
            histograms.recordTick(end - wake)
            histograms.recordCompute(end - wake - info.waitNs)
            ticks += 1
            lastEnd = end
            ticksDone.store(ticks, ordering: .relaxed)

            if periodNs > 0 {
                var next = deadline + periodNs
                if end > next {
                    overruns += 1
                    overrunsInARow += 1
                    overrunsSoFar.store(overruns, ordering: .relaxed)
                    if caughtUpInARow < catchUpLimit {
                        // Leave `next` in the past: the next tick starts at once.
                        caughtUpInARow += 1
                    } else {
                        let missed = (end - deadline) / periodNs
                        next = deadline + (missed + 1) * periodNs
                        skipped += missed
                        caughtUpInARow = 0
                    }
                } else {
                    overrunsInARow = 0
                    caughtUpInARow = 0
                }
                deadline = next
            }

            if info.stopRequested {
                reason = .bodyRequested
                break
            }
            if shutdownGraceLeft > 0 {
                shutdownGraceLeft -= 1
                if shutdownGraceLeft == 0 {
                    reason = .shutdownSignal
                    break
                }
            }
        }
        outcome = LoopOutcome(
            stopReason: reason, ticks: ticks, firstWakeNs: firstWake, lastEndNs: lastEnd, overruns: overruns,
            skipped: skipped)
        body.loopWillStop(info)
    }
}

/// Carries the loop's entry point through pthread_create's context pointer.
private final class LoopThreadEntry {
    let main: () -> Void
    init(_ main: @escaping () -> Void) { self.main = main }
}
