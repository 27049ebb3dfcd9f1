import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `SINEW_EXIT_WITH_PARENT=1`: this process ends when the process that started it goes away (a test runner
/// that crashed, a supervisor killed with SIGKILL), instead of living on as an orphan holding a pty or the
/// servos. A thread notices the re-parenting within a quarter of a second and raises SIGTERM, so a run still
/// ends through the safe state, exactly as when it is stopped by hand.
enum ParentWatch {
    static let environmentKey = "SINEW_EXIT_WITH_PARENT"

    static func startIfRequested() {
        guard let value = ProcessInfo.processInfo.environment[environmentKey], value == "1" else { return }
        let parent = getppid()
        let thread = Thread {
            while getppid() == parent { usleep(250_000) }
            kill(getpid(), SIGTERM)
            // A command that does not handle SIGTERM has ended by now; one that does gets 5 s to finish.
            sleep(5)
            _exit(143)
        }
        thread.name = "sinew-parent-watch"
        thread.start()
    }
}
