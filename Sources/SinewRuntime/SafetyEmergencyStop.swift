import CRealtime
import Foundation
import Synchronization

/// Where an emergency stop came from.
public enum EmergencyStopSource: UInt8, Sendable, CustomStringConvertible {
    /// A signal (SIGUSR1 by default), see `EmergencyStopSignal`.
    case signal = 1
    /// A file appeared at the watched path.
    case file
    /// "estop" arrived on the Unix socket.
    case socket
    /// The terminal view's e-stop key.
    case keyboard
    /// `EmergencyStopSources.trigger(_:)` called by other code.
    case api
    /// The e-stop button of the web dashboard (`sinew run --dashboard`).
    case dashboard
    /// A sample on the robot's ROS 2 `estop` topic (docs/ros2.md).
    case ros

    public var detail: StaticString {
        switch self {
        case .signal: "signal"
        case .file: "file"
        case .socket: "socket"
        case .keyboard: "keyboard"
        case .api: "api"
        case .dashboard: "dashboard"
        case .ros: "ros"
        }
    }

    public var description: String { "\(detail)" }
}

/// Errors setting up an emergency-stop source.
public enum EmergencyStopError: Error, Sendable, Equatable, CustomStringConvertible {
    case signalHandler(signal: Int32, errno: Int32)
    case socket(path: String, errno: Int32)
    /// Another `sinew` holds the socket (its lock, or it listens there).
    case socketInUse(path: String)
    /// Something that is not a socket exists at the socket's path; it is left alone.
    case socketPathTaken(path: String)
    /// The file e-stop's directory cannot be watched.
    case fileWatch(path: String, errno: Int32)
    /// The e-stop file exists already: the robot is not armed while it does.
    case filePresent(path: String)
    /// The thread that watches a file or socket source could not be started (`pthread_create`'s error).
    case watcherThread(path: String, errno: Int32)

    public var description: String {
        func reason(_ code: Int32) -> String { "\(String(cString: strerror(code))) (errno \(code))" }
        switch self {
        case .signalHandler(let signal, let code): return "cannot handle signal \(signal): \(reason(code))"
        case .socket(let path, let code):
            if code == ENAMETOOLONG {
                return "e-stop socket \(path): the path is too long for a Unix socket (at most 107 bytes)"
            }
            return "e-stop socket \(path): \(reason(code))"
        case .socketInUse(let path):
            return "e-stop socket \(path) is in use by another running sinew (stop it, or give this robot its own "
                + "safety.estop.socket)"
        case .socketPathTaken(let path):
            return "e-stop socket \(path): something that is not a socket exists there; it is left alone (remove it "
                + "or choose another safety.estop.socket)"
        case .fileWatch(let path, let code): return "e-stop file \(path): cannot watch its folder: \(reason(code))"
        case .filePresent(let path): return "the e-stop file \(path) exists: remove it to arm the robot"
        case .watcherThread(let path, let code):
            return "e-stop \(path): cannot start the thread that watches it: \(reason(code))"
        }
    }
}

/// The e-stop sources: each sets one atomic the safety supervisor reads every tick (one load, plus one
/// for the signal count). The file and socket sources are watched by non-real-time threads. A trigger
/// latches until `clear()`.
public final class EmergencyStopSources: @unchecked Sendable {
    private let triggeredSource = Atomic<UInt8>(0)
    private let signalBaseline = Atomic<UInt64>(0)
    private let signalEnabled = Atomic<Bool>(false)
    private let watchersStop = Atomic<Bool>(false)
    private let watchersRunning = Atomic<Int>(0)
    private let recoveryRequests = Atomic<Int>(0)

    /// Stack size of the file and socket watcher threads, bytes (they wait in `poll` and read a few bytes).
    public var watcherStackBytes = 256 << 10

    public init() {}

    deinit { stopWatchers() }

    /// Triggers an emergency stop (any thread, allocation-free). The first source is kept.
    public func trigger(_ source: EmergencyStopSource) {
        _ = triggeredSource.compareExchange(expected: 0, desired: source.rawValue, ordering: .acquiringAndReleasing)
    }

    /// The keyboard source: the terminal view calls this on its e-stop key.
    public func pressKeyboardStop() { trigger(.keyboard) }

    /// Asks for recovery from the safe state (the line `recover` on the socket, the terminal's recover key);
    /// the session that runs the loop takes the request (`takeRecoveryRequest`) and recovers once every source
    /// reads clear.
    public func requestRecovery() { recoveryRequests.add(1, ordering: .releasing) }

    /// Whether recovery was asked for since the last call (any thread).
    public func takeRecoveryRequest() -> Bool { recoveryRequests.exchange(0, ordering: .acquiringAndReleasing) > 0 }

    /// The triggered source, or nil (the supervisor calls it every tick; allocation-free).
    @inline(__always)
    public func poll() -> EmergencyStopSource? {
        if signalEnabled.load(ordering: .relaxed)
            && EmergencyStopSignal.count != signalBaseline.load(ordering: .relaxed)
        {
            trigger(.signal)
        }
        let raw = triggeredSource.load(ordering: .acquiring)
        return raw == 0 ? nil : EmergencyStopSource(rawValue: raw)
    }

    /// Re-arms every source (at recovery). A source still asserted (the file still there) triggers again.
    public func clear() {
        signalBaseline.store(EmergencyStopSignal.count, ordering: .relaxed)
        triggeredSource.store(0, ordering: .releasing)
    }

    /// Treats `signal` (SIGUSR1 by default) as an emergency stop, installing its handler.
    public func enableSignal(_ signal: Int32 = SIGUSR1) throws(EmergencyStopError) {
        signalBaseline.store(EmergencyStopSignal.count, ordering: .relaxed)
        let rc = EmergencyStopSignal.install(signal: signal)
        guard rc == 0 else { throw .signalHandler(signal: signal, errno: rc) }
        signalEnabled.store(true, ordering: .releasing)
    }

    /// Watches for a file at `path`: an inotify watch on its folder wakes a background thread the moment the
    /// file is created (or moved in), which sets the flag the guard stage reads every tick, so the safe state
    /// comes in the next tick. Refuses when the file exists already (the robot is not armed while it does).
    public func watchFile(atPath path: String) throws(EmergencyStopError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        let fd = sinew_estop_file_watch(directory)
        guard fd >= 0 else { throw .fileWatch(path: path, errno: -fd) }
        // Checked after the watch is in place: a file created in between is seen one way or the other.
        guard access(path, F_OK) != 0 else {
            close(fd)
            throw .filePresent(path: path)
        }
        let started = startWatcher { sources in
            while !sources.watchersStop.load(ordering: .relaxed) {
                let event = sinew_estop_file_poll(fd, name, 50)
                // The periodic check also covers a watch that stopped working (its folder was removed).
                if event == 1 || access(path, F_OK) == 0 { sources.trigger(.file) }
                if event < 0 { usleep(50_000) }
            }
            close(fd)
        }
        guard started == 0 else {
            close(fd)
            throw .watcherThread(path: path, errno: started)
        }
    }

    /// Listens on a Unix stream socket at `path`; a client sending the line "estop" triggers (e.g.
    /// `echo estop | socat - UNIX-CONNECT:PATH`, or `EmergencyStopSources.send(toSocketAt:)`). An advisory
    /// lock (`PATH.lock`) keeps a second run off the same socket; a stale socket is replaced, anything else at
    /// the path is refused. The socket and its lock are removed when the watchers stop.
    public func listen(onSocketAt path: String) throws(EmergencyStopError) {
        let lockPath = path + ".lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw .socket(path: lockPath, errno: errno) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            close(lock)
            throw .socketInUse(path: path)
        }
        let fd = sinew_estop_socket_listen(path)
        guard fd >= 0 else {
            close(lock)
            switch -fd {
            case EEXIST: throw .socketPathTaken(path: path)
            case EADDRINUSE: throw .socketInUse(path: path)
            default: throw .socket(path: path, errno: -fd)
            }
        }
        let started = startWatcher { sources in
            while !sources.watchersStop.load(ordering: .relaxed) {
                let result = sinew_estop_socket_poll(fd, 50)
                if result == 1 { sources.trigger(.socket) }
                if result == 2 { sources.requestRecovery() }
                // A failing socket must not spin the watcher.
                if result < 0 { usleep(50_000) }
            }
            close(fd)
            unlink(path)
            unlink(lockPath)
            close(lock)
        }
        guard started == 0 else {
            // Nobody would answer on it: the socket and its lock go, as when a watcher ends.
            close(fd)
            unlink(path)
            unlink(lockPath)
            close(lock)
            throw .watcherThread(path: path, errno: started)
        }
    }

    /// Sends "estop" to a listening socket (a client for scripts and the CLI). Returns 0 or errno.
    @discardableResult
    public static func send(toSocketAt path: String, message: String = "estop\n") -> Int32 {
        sinew_estop_socket_send(path, message)
    }

    /// Ends the file and socket watcher threads and waits for them.
    public func stopWatchers() {
        watchersStop.store(true, ordering: .releasing)
        while watchersRunning.load(ordering: .acquiring) > 0 { usleep(1_000) }
        watchersStop.store(false, ordering: .releasing)
    }

    /// Starts a detached watcher thread running `body`; returns 0, or `pthread_create`'s error, when no thread
    /// started (a watcher that silently never ran would leave its source dead and `stopWatchers` waiting
    /// for it forever).
    private func startWatcher(_ body: @escaping @Sendable (EmergencyStopSources) -> Void) -> Int32 {
        watchersRunning.add(1, ordering: .acquiringAndReleasing)
        let entry = Unmanaged.passRetained(
            WatcherThreadEntry { [self] in
                body(self)
                self.watchersRunning.subtract(1, ordering: .acquiringAndReleasing)
            }
        ).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, max(watcherStackBytes, Int(PTHREAD_STACK_MIN)))
        var handle = pthread_t()
        let rc = pthread_create(
            &handle, &attributes,
            { raw in
                Unmanaged<WatcherThreadEntry>.fromOpaque(raw!).takeRetainedValue().main()
                return nil
            }, entry)
        if rc != 0 {
            Unmanaged<WatcherThreadEntry>.fromOpaque(entry).release()
            watchersRunning.subtract(1, ordering: .acquiringAndReleasing)
        }
        return rc
    }
}

private final class WatcherThreadEntry {
    let main: () -> Void
    init(_ main: @escaping () -> Void) { self.main = main }
}
