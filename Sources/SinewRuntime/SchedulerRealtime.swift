import CRealtime

#if canImport(Glibc)
    import Glibc
#endif

/// Outcome of one real-time setup step of the loop thread.
public enum RealtimeStep: Sendable, Equatable {
    case notRequested
    case applied
    /// The system call failed with this errno; the loop runs without it.
    case failed(errno: Int32)

    public var succeeded: Bool { self == .applied }
}

/// Which real-time settings the loop thread obtained. The CLI prints `description` at start, e.g.
/// `SCHED_FIFO 80: yes / CPU 1: yes / memory locked: no (EPERM: run as root or grant CAP_IPC_LOCK / ulimit -l)`.
public struct RealtimeSetupReport: Sendable, Equatable, CustomStringConvertible {
    public var fifoPriority: Int?
    public var fifo: RealtimeStep
    public var cpu: Int?
    public var affinity: RealtimeStep
    public var memoryLock: RealtimeStep
    public var timerSlackNs: UInt?
    public var timerSlack: RealtimeStep
    /// The CPU the loop thread ran on when the setup finished (-1 if unknown).
    public var runningOnCPU: Int

    public init(
        fifoPriority: Int? = nil, fifo: RealtimeStep = .notRequested, cpu: Int? = nil,
        affinity: RealtimeStep = .notRequested, memoryLock: RealtimeStep = .notRequested,
        timerSlackNs: UInt? = nil, timerSlack: RealtimeStep = .notRequested, runningOnCPU: Int = -1
    ) {
        self.fifoPriority = fifoPriority
        self.fifo = fifo
        self.cpu = cpu
        self.affinity = affinity
        self.memoryLock = memoryLock
        self.timerSlackNs = timerSlackNs
        self.timerSlack = timerSlack
        self.runningOnCPU = runningOnCPU
    }

    public var description: String {
        let fifoLabel = fifoPriority.map { "SCHED_FIFO \($0)" } ?? "SCHED_FIFO"
        let cpuLabel = cpu.map { "CPU \($0)" } ?? "CPU affinity"
        return [
            "\(fifoLabel): \(Self.describe(fifo, hint: "run as root or grant CAP_SYS_NICE / ulimit -r"))",
            "\(cpuLabel): \(Self.describe(affinity, hint: "no such CPU or not allowed (\(sinew_rt_cpu_count()) online)"))",
            "memory locked: \(Self.describe(memoryLock, hint: "run as root or grant CAP_IPC_LOCK / ulimit -l"))",
        ].joined(separator: " / ")
    }

    static func describe(_ step: RealtimeStep, hint: String) -> String {
        switch step {
        case .notRequested: "not requested"
        case .applied: "yes"
        case .failed(let code): "no (\(errnoName(code)): \(hint))"
        }
    }
}

/// Symbolic name of the errno values the setup calls return.
public func errnoName(_ code: Int32) -> String {
    switch code {
    case EPERM: "EPERM"
    case ENOMEM: "ENOMEM"
    case EINVAL: "EINVAL"
    case EAGAIN: "EAGAIN"
    case ESRCH: "ESRCH"
    case EFAULT: "EFAULT"
    case EINTR: "EINTR"
    case ENOSYS: "ENOSYS"
    default: "errno \(code)"
    }
}

/// Applies the requested settings to the calling thread (memory locking is process-wide).
func applyRealtimeSettings(
    fifoPriority: Int?, cpu: Int?, lockMemory: Bool, timerSlackNs: UInt?
) -> RealtimeSetupReport {
    var report = RealtimeSetupReport(fifoPriority: fifoPriority, cpu: cpu, timerSlackNs: timerSlackNs)
    if lockMemory {
        let rc = sinew_rt_lock_memory()
        report.memoryLock = rc == 0 ? .applied : .failed(errno: rc)
    }
    if let cpu {
        let rc = sinew_rt_set_affinity(Int32(cpu))
        report.affinity = rc == 0 ? .applied : .failed(errno: rc)
    }
    if let fifoPriority {
        let rc = sinew_rt_set_fifo_priority(Int32(fifoPriority))
        report.fifo = rc == 0 ? .applied : .failed(errno: rc)
    }
    if let timerSlackNs {
        let rc = sinew_rt_set_timer_slack_ns(timerSlackNs)
        report.timerSlack = rc == 0 ? .applied : .failed(errno: rc)
    }
    report.runningOnCPU = Int(sinew_rt_current_cpu())
    return report
}

/// The bare C fixed-rate `clock_nanosleep` loop (no work in it): the in-run baseline that `sinew bench loop`
/// compares the Swift loop's wake-up lateness with. Runs on the calling thread; SCHED_FIFO (restored
/// afterwards) and CPU pinning (not restored) as requested. Returns each wake-up's lateness in ns.
public func measureBareTimerLoop(
    hertz: Double, ticks: Int, fifoPriority: Int? = nil, cpu: Int? = nil
) -> (latenessNs: [Int64], errno: Int32) {
    let periodNs = Int64((1e9 / hertz).rounded())
    var lateness = [Int64](repeating: 0, count: max(ticks, 0))
    let rc = lateness.withUnsafeMutableBufferPointer { buffer in
        sinew_rt_bare_loop(
            periodNs, Int64(ticks), buffer.baseAddress, Int32(fifoPriority ?? 0), Int32(cpu ?? -1))
    }
    return (lateness, rc)
}
