import Foundation
import SinewBus
import Synchronization

/// Why a virtual bus could not be served.
public enum VirtualBusServerError: Error, Sendable, Equatable, CustomStringConvertible {
    case transport(TransportError)
    /// The symbolic link could not be made (`errno` from symlink(2), or EEXIST for a non-link in the way).
    case link(path: String, errno: Int32)
    /// The link exists and leads to a pseudo-terminal another server (another `sinew virtual-bus`, or this
    /// process) is serving on, and its clients use the link.
    case linkInUse(path: String, target: String)

    public var description: String {
        switch self {
        case .transport(let error): return "cannot open a pseudo-terminal: \(error)"
        case .link(let path, let errno): return "cannot create the link \(path): \(String(cString: strerror(errno)))"
        case .linkInUse(let path, let target):
            return "the link \(path) already leads to \(target), a pseudo-terminal in use (another `sinew virtual-bus` "
                + "serving there?); choose another link path, or stop that server (or remove the link) first"
        }
    }
}

/// Serves a ``VirtualBus`` over a byte transport on its own thread, in real time: the physics follows the
/// monotonic clock, replies are written when the wire would have delivered them. Use
/// ``servePseudoTerminal(bus:linkPath:followTerminalBaudRate:)`` so other programs (vendor SDKs, LeRobot,
/// `sinew scan`) can open the bus like a serial port, or ``serve(bus:transport:)`` with one end of a
/// `BytePipe` for in-process use.
///
/// The serving loop allocates nothing after start. The bus is owned by the server while it runs; reach it
/// only through ``withBus(_:)``.
public final class VirtualBusServer: @unchecked Sendable {
    /// The path clients open: the pty's secondary (`/dev/pts/N`); nil for a non-terminal transport.
    public let path: String?
    /// The symbolic link to ``path``, when one was requested.
    public let linkPath: String?

    let bus: VirtualBus
    let transport: any ByteTransport
    let terminal: PseudoTerminalTransport?
    let followTerminalBaudRate: Bool
    /// After traffic (bytes received or a reply written), the serving loop polls without sleeping for
    /// this long; a reply falling due is waited for the same way over the last stretch of this length
    /// before it. A real servo answers without an operating system's wake-up: polling keeps both the
    /// time a request is received and the time a reply is written free of the simulator's own wake-up
    /// latency (tens of µs on a virtual machine). 0 (the default): it sleeps in the kernel between
    /// packets and pays that latency.
    public let busyPollNanoseconds: UInt64
    /// When traffic last passed, ns (CLOCK_MONOTONIC); only the serving loop touches it.
    private var lastTrafficNs: UInt64 = 0
    let lock = NSLock()
    let stopRequested = Atomic<Bool>(false)
    let finished = DispatchSemaphore(value: 0)
    let input: UnsafeMutableRawBufferPointer
    let output: UnsafeMutableRawBufferPointer
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)

    /// Longest the loop sleeps without traffic, so physics and stop requests stay responsive.
    static let idleWaitNs: UInt64 = 2_000_000

    init(
        bus: VirtualBus, transport: any ByteTransport, terminal: PseudoTerminalTransport?, linkPath: String?,
        followTerminalBaudRate: Bool, busyPollNanoseconds: UInt64
    ) {
        self.busyPollNanoseconds = busyPollNanoseconds
        self.bus = bus
        self.transport = transport
        self.terminal = terminal
        self.path = terminal?.path
        self.linkPath = linkPath
        self.followTerminalBaudRate = followTerminalBaudRate
        input = .allocate(byteCount: 4096, alignment: 8)
        output = .allocate(byteCount: 65536, alignment: 8)
    }

    deinit {
        stop()
        input.deallocate()
        output.deallocate()
    }

    /// Creates a pseudo-terminal, optionally links `linkPath` to it (replacing an existing symbolic link),
    /// and starts serving. Clients open ``path`` (or the link) at the bus's baud rate.
    /// - Parameter followTerminalBaudRate: when true, the rate a client sets on the terminal is the host's
    ///   rate: servos configured for another rate do not hear it, as on a real bus.
    /// - Parameter busyPollNanoseconds: see ``busyPollNanoseconds``.
    public static func servePseudoTerminal(
        bus: VirtualBus, linkPath: String? = nil, followTerminalBaudRate: Bool = true, busyPollNanoseconds: UInt64 = 0
    ) throws(VirtualBusServerError) -> VirtualBusServer {
        let terminal: PseudoTerminalTransport
        do {
            terminal = try PseudoTerminalTransport.createPair(baudRate: bus.hostBaudRate)
            try terminal.setBaudRate(bus.hostBaudRate)
        } catch {
            throw .transport(error)
        }
        if let linkPath {
            var info = stat()
            if lstat(linkPath, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFLNK else { throw .link(path: linkPath, errno: EEXIST) }
                // A link left behind is replaced (its pseudo-terminal is gone, or its number now belongs to
                // some other program's terminal, or to the one just opened here: devpts hands out the lowest
                // free number, so a server started again after one was killed usually gets the same); one to a
                // pseudo-terminal another server of ours still serves is that server's, whose clients would
                // silently lose it.
                if let target = linkTarget(linkPath), target != terminal.path, isServedPseudoTerminal(target) {
                    throw .linkInUse(path: linkPath, target: target)
                }
                unlink(linkPath)
            }
            if symlink(terminal.path, linkPath) != 0 { throw .link(path: linkPath, errno: errno) }
        }
        let server = VirtualBusServer(
            bus: bus, transport: terminal, terminal: terminal, linkPath: linkPath,
            followTerminalBaudRate: followTerminalBaudRate, busyPollNanoseconds: busyPollNanoseconds)
        server.start()
        return server
    }

    /// Starts serving over any transport, e.g. one end of `BytePipe.makePair()`.
    public static func serve(
        bus: VirtualBus, transport: any ByteTransport, busyPollNanoseconds: UInt64 = 0
    ) -> VirtualBusServer {
        let server = VirtualBusServer(bus: bus, transport: transport, busyPollNanoseconds: busyPollNanoseconds)
        server.start()
        return server
    }

    /// A server over `transport` that is not running yet: call ``start()``, or drive it yourself with
    /// ``serviceOnce(maximumWaitNs:)``.
    public convenience init(bus: VirtualBus, transport: any ByteTransport, busyPollNanoseconds: UInt64 = 0) {
        self.init(
            bus: bus, transport: transport, terminal: nil, linkPath: nil, followTerminalBaudRate: false,
            busyPollNanoseconds: busyPollNanoseconds)
        lock.lock()
        bus.rebaseClock(toNs: MonotonicInstant.now().nanoseconds)
        lock.unlock()
    }

    /// Runs `body` with exclusive access to the bus (the serving loop waits meanwhile).
    public func withBus<Result>(_ body: (VirtualBus) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(bus)
    }

    /// Stops serving, waits for the loop to end and removes the link if it still leads to this server's
    /// pseudo-terminal (not when something else has replaced it since). Idempotent.
    public func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        stopRequested.store(true, ordering: .releasing)
        if started.load(ordering: .acquiring) { finished.wait() }
        if let linkPath { Self.removeLink(linkPath, ifLeadingTo: path) }
    }

    /// Removes the symbolic link at `linkPath` only when it leads to `target`; true when it did.
    @discardableResult
    public static func removeLink(_ linkPath: String, ifLeadingTo target: String?) -> Bool {
        guard let target, linkTarget(linkPath) == target else { return false }
        return unlink(linkPath) == 0
    }

    /// Starts the serving thread (once).
    public func start() {
        if started.exchange(true, ordering: .acquiringAndReleasing) { return }
        lock.lock()
        bus.rebaseClock(toNs: MonotonicInstant.now().nanoseconds)
        lock.unlock()
        let thread = Thread { [self] in run() }
        thread.name = "sinew-virtual-bus"
        thread.start()
    }

    /// Whether the serving thread got real-time (SCHED_FIFO) scheduling; false where the system refuses.
    public var isRealTime: Bool { realTime.load(ordering: .acquiring) }
    private let realTime = Atomic<Bool>(false)

    /// Emulating hardware timing: a client like the vendor SDKs gives up after ~34 ms, so on a loaded
    /// machine the serving thread asks for SCHED_FIFO (it sleeps in ppoll between packets, so it cannot
    /// starve others). Without the privilege it keeps the default scheduler.
    func requestRealTimeScheduling() {
        var parameters = sched_param()
        parameters.sched_priority = 10
        realTime.store(pthread_setschedparam(pthread_self(), SCHED_FIFO, &parameters) == 0, ordering: .releasing)
    }

    func run() {
        defer { finished.signal() }
        requestRealTimeScheduling()
        while !stopRequested.load(ordering: .acquiring) {
            if !serviceOnce(maximumWaitNs: Self.idleWaitNs) { return }
        }
    }

    /// One pass of the serving loop: steps the physics to now, writes the replies that are due, then
    /// waits up to `maximumWaitNs` (less when a reply falls due sooner) for the host's bytes and hands them
    /// to the bus. Returns false when the transport is closed for good. Allocation-free.
    ///
    /// The server's own thread calls this; it is public so a test or a single-threaded simulation can
    /// drive a server made with ``init(bus:transport:)`` without starting the thread.
    @discardableResult
    public func serviceOnce(maximumWaitNs: UInt64) -> Bool {
        var now = MonotonicInstant.now().nanoseconds
        lock.lock()
        bus.advance(toNs: now)
        let ready = bus.readReplies(upToNs: now, into: output)
        let next = bus.nextReplyReadyNs
        // A host far ahead of the wire: its bytes wait in the transport (a pty's buffer fills and the host's
        // `write` blocks, as a serial driver's would) rather than being taken and lost.
        let room = min(bus.hostRoomBytes(atNs: now), input.count)
        let drainNs = bus.byteNs * 64
        lock.unlock()
        if ready > 0 {
            do {
                try transport.write(
                    UnsafeRawBufferPointer(rebasing: output[0..<ready]),
                    deadline: MonotonicInstant(nanoseconds: now + 100_000_000))
            } catch {
                if error == .closed && terminal == nil { return false }
            }
            lastTrafficNs = now
        }
        var deadline = now + maximumWaitNs
        if let next, next < deadline { deadline = max(next, now) }
        var spinUntil = now
        if busyPollNanoseconds > 0 {
            spinUntil = max(now, lastTrafficNs &+ busyPollNanoseconds)
            if let next {
                // A reply due within the window is waited for by polling; a later one by sleeping until
                // the window before it, so that the next pass polls up to it.
                if next <= now + busyPollNanoseconds {
                    spinUntil = max(spinUntil, next)
                } else {
                    deadline = min(deadline, next - busyPollNanoseconds)
                }
            }
        }
        if room == 0 {
            var pause = timespec(tv_sec: 0, tv_nsec: Int(min(drainNs, deadline > now ? deadline - now : 0)))
            nanosleep(&pause, nil)
            return true
        }
        let count: Int
        do {
            count = try transport.read(
                into: UnsafeMutableRawBufferPointer(rebasing: input[0..<room]),
                spinUntil: MonotonicInstant(nanoseconds: spinUntil), deadline: MonotonicInstant(nanoseconds: deadline))
        } catch {
            return !(error == .closed && terminal == nil)
        }
        if count > 0 {
            now = MonotonicInstant.now().nanoseconds
            lastTrafficNs = now
            lock.lock()
            // Any rate the client set, standard or not (termios2); one that cannot be read is noise to every
            // servo rather than the previous rate kept.
            if followTerminalBaudRate, let terminal { bus.hostBaudRate = terminal.terminalBaudRate ?? 0 }
            bus.receive(UnsafeRawBufferPointer(rebasing: input[0..<count]), atNs: now)
            lock.unlock()
        }
        return true
    }
}

/// Where the symbolic link at `path` leads (its text), or nil when `path` is not a symbolic link.
func linkTarget(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count >= 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Whether `path` is a pseudo-terminal (`/dev/pts/N`) whose primary is held by a server like this one: this
/// process, or another running the same program (another `sinew virtual-bus`). devpts keeps /dev/pts/N only
/// while someone holds its primary, but the number is reused: a link left behind by a server that was
/// killed may lead to someone's shell by now, and that does not make the link in use.
func isServedPseudoTerminal(_ path: String) -> Bool {
    var info = stat()
    guard path.hasPrefix("/dev/pts/"), let index = Int(path.dropFirst("/dev/pts/".count)), stat(path, &info) == 0,
        info.st_mode & S_IFMT == S_IFCHR
    else { return false }
    let ownProgram = procText("/proc/self/comm")
    let ownExecutable = linkTarget("/proc/self/exe")
    let ownPID = getpid()
    return pseudoTerminalPrimaryHolders(index: index).contains { pid in
        pid == ownPID || (ownExecutable != nil && linkTarget("/proc/\(pid)/exe") == ownExecutable)
            || (ownProgram != nil && procText("/proc/\(pid)/comm") == ownProgram)
    }
}

/// The processes (of those this user may inspect) that hold the primary of `/dev/pts/<index>` open: their
/// descriptors on /dev/ptmx whose fdinfo says `tty-index: <index>`.
func pseudoTerminalPrimaryHolders(index: Int) -> [pid_t] {
    guard let processes = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    var holders: [pid_t] = []
    for entry in processes {
        guard let pid = pid_t(entry),
            let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        else { continue }
        for fd in descriptors {
            guard let target = linkTarget("/proc/\(pid)/fd/\(fd)"), target == "/dev/ptmx" || target == "/dev/pts/ptmx",
                let fdinfo = procText("/proc/\(pid)/fdinfo/\(fd)")
            else { continue }
            let line = fdinfo.split(separator: "\n").first { $0.hasPrefix("tty-index:") }
            if let line, Int(line.dropFirst("tty-index:".count).trimmingCharacters(in: .whitespaces)) == index {
                holders.append(pid)
                break
            }
        }
    }
    return holders
}

/// A small /proc file's text without its trailing newline, nil when it cannot be read.
private func procText(_ path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    var text = String(decoding: data, as: UTF8.self)
    while text.hasSuffix("\n") { text.removeLast() }
    return text
}
