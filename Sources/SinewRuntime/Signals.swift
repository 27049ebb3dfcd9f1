import CRealtime

#if canImport(Glibc)
    import Glibc
#endif

/// SIGINT/SIGTERM/SIGHUP handling: the handlers (installed by `install()`, the only `sigaction` setup of the
/// runtime, in CRealtime) only set an atomic flag; the scheduler reads it at the start of every tick
/// (`TickInfo.shutdownRequested`) and ends the loop once the body had a tick to reach its safe state.
public enum ShutdownSignals {
    /// Installs the SIGINT, SIGTERM and SIGHUP handlers and unblocks them in the calling thread (threads
    /// started from it afterwards inherit that): a process launched with them blocked — some launchers block
    /// every signal in the child — would otherwise never see Ctrl-C. Returns 0 or the errno of sigaction.
    @discardableResult
    public static func install() -> Int32 {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
        return sinew_signals_install_shutdown_handlers()
    }

    /// Restores the default SIGINT/SIGTERM/SIGHUP dispositions (a second Ctrl-C then kills the process).
    public static func restoreDefaults() {
        _ = sinew_signals_restore_default(SIGINT)
        _ = sinew_signals_restore_default(SIGTERM)
        _ = sinew_signals_restore_default(SIGHUP)
    }

    /// Ignores SIGPIPE for the whole process: a closed standard output or a hung-up socket peer makes writes
    /// fail with EPIPE instead of ending the process (with the robot torqued). Call once, first thing.
    @discardableResult
    public static func ignoreBrokenPipes() -> Int32 { sinew_signals_ignore_broken_pipes() }

    /// Whether a shutdown was requested and not yet cleared (one atomic load; allocation-free).
    @inline(__always) public static var isRequested: Bool { sinew_signals_shutdown_signal() != 0 }

    /// The signal that requested shutdown (SIGINT, SIGTERM or SIGHUP), or 0.
    public static var signal: Int32 { sinew_signals_shutdown_signal() }

    /// Shutdown requests received since the process started.
    public static var requestCount: UInt64 { sinew_signals_shutdown_count() }

    /// Forgets the request (after handling it, or between runs in one process).
    public static func clear() { sinew_signals_clear_shutdown() }
}

/// Emergency stop by signal (SIGUSR1 by default): the handler counts requests; the safety supervisor
/// compares the count with the one it saw last.
public enum EmergencyStopSignal {
    /// Installs the handler for `signal`. Returns 0 or the errno of sigaction.
    @discardableResult
    public static func install(signal: Int32 = SIGUSR1) -> Int32 { sinew_signals_install_estop_handler(signal) }

    /// Emergency-stop signals received since the process started (one atomic load).
    @inline(__always) public static var count: UInt64 { sinew_signals_estop_count() }
}
