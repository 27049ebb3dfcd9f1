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

    public var detail: StaticString {
        switch self {
        case .signal: "signal"
        case .file: "file"
        case .socket: "socket"
        case .keyboard: "keyboard"
        case .api: "api"
        }
    }

    public var description: String { "\(detail)" }
}

/// Errors setting up an emergency-stop source.
public enum EmergencyStopError: Error, Sendable, Equatable {
    case signalHandler(signal: Int32, errno: Int32)
    case socket(path: String, errno: Int32)
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

    public init() {}

    deinit { stopWatchers() }

    /// Triggers an emergency stop (any thread, allocation-free). The first source is kept.
    public func trigger(_ source: EmergencyStopSource) {
        _ = triggeredSource.compareExchange(expected: 0, desired: source.rawValue, ordering: .acquiringAndReleasing)
    }

    /// The keyboard source: the terminal view calls this on its e-stop key.
    public func pressKeyboardStop() { trigger(.keyboard) }

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

    /// Watches for a file at `path` (checked with `access` every `intervalSeconds` on a background thread).
    public func watchFile(atPath path: String, intervalSeconds: Double = 0.02) {
        let microseconds = UInt32(max(intervalSeconds, 0.001) * 1e6)
        startWatcher(name: "sinew-estop-file") { sources in
            while !sources.watchersStop.load(ordering: .relaxed) {
                if access(path, F_OK) == 0 { sources.trigger(.file) }
                usleep(microseconds)
            }
        }
    }

    /// Listens on a Unix stream socket at `path`; a client sending "estop" triggers (e.g.
    /// `echo estop | socat - UNIX-CONNECT:PATH`, or `EmergencyStopSources.send(toSocketAt:)`).
    public func listen(onSocketAt path: String) throws(EmergencyStopError) {
        let fd = sinew_estop_socket_listen(path)
        guard fd >= 0 else { throw .socket(path: path, errno: -fd) }
        startWatcher(name: "sinew-estop-socket") { sources in
            while !sources.watchersStop.load(ordering: .relaxed) {
                if sinew_estop_socket_poll(fd, 50) == 1 { sources.trigger(.socket) }
            }
            close(fd)
            unlink(path)
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

    private func startWatcher(name: String, _ body: @escaping @Sendable (EmergencyStopSources) -> Void) {
        watchersRunning.add(1, ordering: .acquiringAndReleasing)
        let thread = Thread { [self] in
            body(self)
            self.watchersRunning.subtract(1, ordering: .acquiringAndReleasing)
        }
        thread.name = name
        thread.start()
    }
}
