import CRealtime

#if canImport(Glibc)
    import Glibc
#endif

/// What the bare C `clock_nanosleep` loop measured: the baseline a loop's wake-up lateness is compared with.
public struct BareTimerMeasurement: Sendable {
    /// Wake-up lateness of each tick, ns (wake time minus deadline).
    public var latenessNs: [Int64]
    /// Which real-time settings the measuring thread obtained.
    public var realtime: RealtimeSetupReport
    /// 0, or the errno clock_nanosleep (or pthread_create) failed with.
    public var errno: Int32

    /// Percentiles of the lateness.
    public var summary: LatencySummary { LatencySummary(samplesNs: latenessNs) }
}

/// Runs the bare C fixed-rate loop (`measureBareTimerLoop`, no work in it) for `ticks` ticks at `hertz` on
/// a new thread set up exactly as a `Scheduler` with `configuration` sets up its loop thread: the same
/// SCHED_FIFO priority, CPU pinning, memory locking, timer slack, stack size and stack prefault. This makes
/// it a fair in-run baseline for the loop's wake-up lateness. Blocks until the loop has finished.
public func measureBareTimerLoop(
    hertz: Double, ticks: Int, like configuration: SchedulerConfiguration
) -> BareTimerMeasurement {
    let job = BareTimerJob(hertz: hertz, ticks: ticks, configuration: configuration)
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, max(configuration.threadStackBytes, 256 << 10))
    let context = Unmanaged.passRetained(job).toOpaque()
    var handle = pthread_t()
    let rc = pthread_create(
        &handle, &attributes,
        { raw in
            Unmanaged<BareTimerJob>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, context)
    guard rc == 0 else {
        Unmanaged<BareTimerJob>.fromOpaque(context).release()
        return BareTimerMeasurement(latenessNs: [], realtime: RealtimeSetupReport(), errno: rc)
    }
    pthread_join(handle, nil)
    return job.result
}

/// The bare loop's work and result; written by the measuring thread, read after pthread_join.
private final class BareTimerJob: @unchecked Sendable {
    let hertz: Double
    let ticks: Int
    let configuration: SchedulerConfiguration
    var result = BareTimerMeasurement(latenessNs: [], realtime: RealtimeSetupReport(), errno: 0)

    init(hertz: Double, ticks: Int, configuration: SchedulerConfiguration) {
        self.hertz = hertz
        self.ticks = ticks
        self.configuration = configuration
    }

    func run() {
        let config = configuration
        let realtime = applyRealtimeSettings(
            fifoPriority: config.fifoPriority, cpu: config.cpu, lockMemory: config.lockMemory,
            timerSlackNs: config.timerSlackNs)
        if config.prefaultStackBytes > 0 { sinew_rt_prefault_stack(config.prefaultStackBytes) }
        // The thread already has its priority and CPU: the C loop need not (and must not restore) them.
        let measured = measureBareTimerLoop(hertz: hertz, ticks: ticks)
        result = BareTimerMeasurement(latenessNs: measured.latenessNs, realtime: realtime, errno: measured.errno)
    }
}

/// Runs `work` on a short-lived thread set up with `configuration`'s SCHED_FIFO priority and timer slack
/// (no CPU pinning), and waits for it. Threads that `work` starts inherit both (on Linux a new thread takes
/// its creator's scheduling policy and timer slack): start a simulator this way and its threads, which
/// stand in for hardware, are neither preempted by ordinary processes nor woken late by the default 50 µs
/// timer slack. Returns what the setup obtained.
@discardableResult
public func runOnThreadWithLoopScheduling(like configuration: SchedulerConfiguration, _ work: () -> Void)
    -> RealtimeSetupReport
{
    withoutActuallyEscaping(work) { escapable in
        let job = InheritingJob(configuration: configuration, work: escapable)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        let context = Unmanaged.passRetained(job).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(
            &handle, &attributes,
            { raw in
                Unmanaged<InheritingJob>.fromOpaque(raw!).takeRetainedValue().run()
                return nil
            }, context)
        guard rc == 0 else {
            Unmanaged<InheritingJob>.fromOpaque(context).release()
            // No thread: do the work here, with this thread's scheduling.
            escapable()
            return RealtimeSetupReport()
        }
        pthread_join(handle, nil)
        return job.report
    }
}

private final class InheritingJob: @unchecked Sendable {
    let configuration: SchedulerConfiguration
    let work: () -> Void
    var report = RealtimeSetupReport()

    init(configuration: SchedulerConfiguration, work: @escaping () -> Void) {
        self.configuration = configuration
        self.work = work
    }

    func run() {
        report = applyRealtimeSettings(
            fifoPriority: configuration.fifoPriority, cpu: nil, lockMemory: false,
            timerSlackNs: configuration.timerSlackNs)
        work()
    }
}
