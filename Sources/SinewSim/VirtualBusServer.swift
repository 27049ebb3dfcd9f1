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
    /// More link paths than buses, a bus given twice, or buses of a group served apart.
    case invalidBuses(String)

    public var description: String {
        switch self {
        case .transport(let error): return "cannot open a pseudo-terminal: \(error)"
        case .link(let path, let errno): return "cannot create the link \(path): \(String(cString: strerror(errno)))"
        case .linkInUse(let path, let target):
            return "the link \(path) already leads to \(target), a pseudo-terminal in use (another `sinew virtual-bus` "
                + "serving there?); choose another link path, or stop that server (or remove the link) first"
        case .invalidBuses(let reason): return reason
        }
    }
}

/// Serves ``VirtualBus``es over byte transports on one thread of its own, in real time: the physics follows
/// the monotonic clock, replies are written when the wire would have delivered them. Use
/// ``servePseudoTerminal(bus:linkPath:followTerminalBaudRate:busyPollNanoseconds:)`` so other programs (vendor
/// SDKs, LeRobot, `sinew scan`) can open the bus like a serial port, or ``serve(bus:transport:busyPollNanoseconds:)``
/// with one end of a `BytePipe` for in-process use.
///
/// A robot whose servos sit on several buses is served by one server (``servePseudoTerminals(buses:linkPaths:followTerminalBaudRate:busyPollNanoseconds:)``,
/// ``serve(buses:transports:busyPollNanoseconds:)``): one thread waits on every bus's port at once, and the
/// buses' ``VirtualBusGroup`` gives them one physics. Each bus keeps its own wire and answers on its own port.
///
/// The serving loop allocates nothing after start. The buses are owned by the server while it runs; reach them
/// only through ``withBus(_:)`` or ``withBuses(_:)``.
public final class VirtualBusServer: @unchecked Sendable {
    /// The path clients open for the first bus: the pty's secondary (`/dev/pts/N`); nil for a non-terminal
    /// transport.
    public var path: String? { ports[0].path }
    /// The symbolic link to ``path``, when one was requested.
    public var linkPath: String? { ports[0].linkPath }
    /// Every bus's path and link, in the order the buses were given.
    public var paths: [String?] { ports.map(\.path) }
    public var linkPaths: [String?] { ports.map(\.linkPath) }

    /// One bus and the port it answers on.
    final class Port {
        let bus: VirtualBus
        let transport: any ByteTransport
        let terminal: PseudoTerminalTransport?
        let path: String?
        let linkPath: String?
        /// Replies on their way out.
        let output: UnsafeMutableRawBufferPointer

        init(bus: VirtualBus, transport: any ByteTransport, terminal: PseudoTerminalTransport?, linkPath: String?) {
            self.bus = bus
            self.transport = transport
            self.terminal = terminal
            path = terminal?.path
            self.linkPath = linkPath
            output = .allocate(byteCount: 65536, alignment: 8)
        }

        deinit { output.deallocate() }
    }

    let ports: [Port]
    var bus: VirtualBus { ports[0].bus }
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
    /// Per port: the bytes of replies ready this pass, and the wait's descriptors and events.
    private let readyBytes: UnsafeMutableBufferPointer<Int>
    /// Per port: how many of the host's bytes its bus can take this pass (a serial driver's buffer).
    private let roomBytes: UnsafeMutableBufferPointer<Int>
    /// Per port: its in-process pipe was closed by the host (the others are still served).
    private let portClosed: UnsafeMutableBufferPointer<Bool>
    private let descriptors: UnsafeMutableBufferPointer<Int32>
    private let events: UnsafeMutableBufferPointer<Int16>
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)

    /// Longest the loop sleeps without traffic, so physics and stop requests stay responsive.
    static let idleWaitNs: UInt64 = 2_000_000

    init(ports: [Port], followTerminalBaudRate: Bool, busyPollNanoseconds: UInt64) {
        self.busyPollNanoseconds = busyPollNanoseconds
        self.ports = ports
        self.followTerminalBaudRate = followTerminalBaudRate
        input = .allocate(byteCount: 4096, alignment: 8)
        readyBytes = .allocate(capacity: ports.count)
        readyBytes.initialize(repeating: 0)
        roomBytes = .allocate(capacity: ports.count)
        roomBytes.initialize(repeating: 0)
        portClosed = .allocate(capacity: ports.count)
        portClosed.initialize(repeating: false)
        descriptors = .allocate(capacity: ports.count)
        descriptors.initialize(repeating: -1)
        events = .allocate(capacity: ports.count)
        events.initialize(repeating: 0)
    }

    deinit {
        stop()
        input.deallocate()
        readyBytes.deallocate()
        roomBytes.deallocate()
        portClosed.deallocate()
        descriptors.deallocate()
        events.deallocate()
    }

    /// Creates a pseudo-terminal, optionally links `linkPath` to it (replacing an existing symbolic link),
    /// and starts serving. Clients open ``path`` (or the link) at the bus's baud rate.
    /// - Parameter followTerminalBaudRate: when true, the rate a client sets on the terminal is the host's
    ///   rate: servos configured for another rate do not hear it, as on a real bus.
    /// - Parameter busyPollNanoseconds: see ``busyPollNanoseconds``.
    public static func servePseudoTerminal(
        bus: VirtualBus, linkPath: String? = nil, followTerminalBaudRate: Bool = true, busyPollNanoseconds: UInt64 = 0
    ) throws(VirtualBusServerError) -> VirtualBusServer {
        try servePseudoTerminals(
            buses: [bus], linkPaths: [linkPath], followTerminalBaudRate: followTerminalBaudRate,
            busyPollNanoseconds: busyPollNanoseconds)
    }

    /// Serves each bus on a pseudo-terminal of its own (with a link where `linkPaths` gives one, in the buses'
    /// order), all from one thread; buses of one robot share their ``VirtualBusGroup``'s physics.
    public static func servePseudoTerminals(
        buses: [VirtualBus], linkPaths: [String?] = [], followTerminalBaudRate: Bool = true,
        busyPollNanoseconds: UInt64 = 0
    ) throws(VirtualBusServerError) -> VirtualBusServer {
        try check(buses: buses, links: linkPaths.count)
        var ports: [Port] = []
        var made: [(link: String, target: String?)] = []
        do throws(VirtualBusServerError) {
            for (index, bus) in buses.enumerated() {
                let terminal: PseudoTerminalTransport
                do {
                    terminal = try PseudoTerminalTransport.createPair(baudRate: bus.hostBaudRate)
                    try terminal.setBaudRate(bus.hostBaudRate)
                } catch {
                    throw .transport(error)
                }
                let linkPath = index < linkPaths.count ? linkPaths[index] : nil
                if let linkPath {
                    try link(linkPath, to: terminal.path)
                    made.append((linkPath, terminal.path))
                }
                ports.append(Port(bus: bus, transport: terminal, terminal: terminal, linkPath: linkPath))
            }
        } catch {
            for entry in made { removeLink(entry.link, ifLeadingTo: entry.target) }
            throw error
        }
        let server = VirtualBusServer(
            ports: ports, followTerminalBaudRate: followTerminalBaudRate, busyPollNanoseconds: busyPollNanoseconds)
        server.start()
        return server
    }

    /// Links `linkPath` to a pseudo-terminal's path: a link left behind is replaced, one to a terminal another
    /// server of ours still serves is refused.
    private static func link(_ linkPath: String, to target: String) throws(VirtualBusServerError) {
        var info = stat()
        if lstat(linkPath, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFLNK else { throw .link(path: linkPath, errno: EEXIST) }
            // A link left behind is replaced (its pseudo-terminal is gone, or its number now belongs to
            // some other program's terminal, or to the one just opened here: devpts hands out the lowest
            // free number, so a server started again after one was killed usually gets the same); one to a
            // pseudo-terminal another server of ours still serves is that server's, whose clients would
            // silently lose it.
            if let current = linkTarget(linkPath), current != target, isServedPseudoTerminal(current) {
                throw .linkInUse(path: linkPath, target: current)
            }
            unlink(linkPath)
        }
        if symlink(target, linkPath) != 0 { throw .link(path: linkPath, errno: errno) }
    }

    private static func check(buses: [VirtualBus], links: Int) throws(VirtualBusServerError) {
        guard !buses.isEmpty else { throw .invalidBuses("nothing to serve: no bus given") }
        guard links <= buses.count else { throw .invalidBuses("\(links) link paths for \(buses.count) buses") }
        for (i, bus) in buses.enumerated() where buses[..<i].contains(where: { $0 === bus }) {
            throw .invalidBuses("bus \(i) is given twice")
        }
        // The buses of a group are stepped together: serving some of them on another thread would race.
        for bus in buses {
            if let group = bus.group, !group.buses.allSatisfy({ member in buses.contains { $0 === member } }) {
                throw .invalidBuses("the buses of one group (one robot's physics) are served by one server")
            }
        }
    }

    /// Starts serving over any transport, e.g. one end of `BytePipe.makePair()`.
    public static func serve(
        bus: VirtualBus, transport: any ByteTransport, busyPollNanoseconds: UInt64 = 0
    ) -> VirtualBusServer {
        let server = VirtualBusServer(bus: bus, transport: transport, busyPollNanoseconds: busyPollNanoseconds)
        server.start()
        return server
    }

    /// Starts serving each bus over its transport (e.g. the device ends of `BytePipe.makePair()`), all from one
    /// thread.
    public static func serve(
        buses: [VirtualBus], transports: [any ByteTransport], busyPollNanoseconds: UInt64 = 0
    ) throws(VirtualBusServerError) -> VirtualBusServer {
        try check(buses: buses, links: 0)
        guard transports.count == buses.count else {
            throw .invalidBuses("\(transports.count) transports for \(buses.count) buses")
        }
        let server = VirtualBusServer(
            ports: zip(buses, transports).map { Port(bus: $0, transport: $1, terminal: nil, linkPath: nil) },
            followTerminalBaudRate: false, busyPollNanoseconds: busyPollNanoseconds)
        server.start()
        return server
    }

    /// A server over `transport` that is not running yet: call ``start()``, or drive it yourself with
    /// ``serviceOnce(maximumWaitNs:)``.
    public convenience init(bus: VirtualBus, transport: any ByteTransport, busyPollNanoseconds: UInt64 = 0) {
        self.init(
            ports: [Port(bus: bus, transport: transport, terminal: nil, linkPath: nil)],
            followTerminalBaudRate: false, busyPollNanoseconds: busyPollNanoseconds)
        lock.lock()
        rebaseClocks(toNs: MonotonicInstant.now().nanoseconds)
        lock.unlock()
    }

    /// Moves every bus onto the monotonic clock (a group as a whole).
    private func rebaseClocks(toNs nowNs: UInt64) {
        for port in ports {
            if let group = port.bus.group {
                if group.buses.first === port.bus { group.rebaseClock(toNs: nowNs) }
            } else {
                port.bus.rebaseClock(toNs: nowNs)
            }
        }
    }

    /// Runs `body` with exclusive access to the (first) bus (the serving loop waits meanwhile).
    public func withBus<Result>(_ body: (VirtualBus) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(ports[0].bus)
    }

    /// Runs `body` with exclusive access to bus `index` (in the order the buses were given). Allocation-free.
    public func withBus<Result>(at index: Int, _ body: (VirtualBus) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(ports[index].bus)
    }

    /// Runs `body` with exclusive access to every bus, in the order they were given.
    public func withBuses<Result>(_ body: ([VirtualBus]) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(ports.map(\.bus))
    }

    /// Stops serving, waits for the loop to end and removes the links that still lead to this server's
    /// pseudo-terminals (not those something else has replaced since). Idempotent.
    public func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        stopRequested.store(true, ordering: .releasing)
        if started.load(ordering: .acquiring) { finished.wait() }
        for port in ports {
            if let linkPath = port.linkPath { Self.removeLink(linkPath, ifLeadingTo: port.path) }
        }
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
        rebaseClocks(toNs: MonotonicInstant.now().nanoseconds)
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
    /// waits up to `maximumWaitNs` (less when a reply falls due sooner) for the host's bytes on any bus and
    /// hands them to their bus. Returns false when a transport is closed for good. Allocation-free.
    ///
    /// The server's own thread calls this; it is public so a test or a single-threaded simulation can
    /// drive a server made with ``init(bus:transport:busyPollNanoseconds:)`` without starting the thread.
    @discardableResult
    public func serviceOnce(maximumWaitNs: UInt64) -> Bool {
        let now = MonotonicInstant.now().nanoseconds
        var next: UInt64?
        lock.lock()
        var drainNs: UInt64 = 0
        for p in 0..<ports.count {
            let bus = ports[p].bus
            bus.advance(toNs: now)
            readyBytes[p] = bus.readReplies(upToNs: now, into: ports[p].output)
            if let due = bus.nextReplyReadyNs { next = min(next ?? due, due) }
            // A host far ahead of the wire: its bytes wait in the transport (a pty's buffer fills and the host's
            // `write` blocks, as a serial driver's would) rather than being taken and lost.
            roomBytes[p] = min(bus.hostRoomBytes(atNs: now), input.count)
            drainNs = max(drainNs, bus.byteNs * 64)
        }
        lock.unlock()
        for p in 0..<ports.count where readyBytes[p] > 0 && !portClosed[p] {
            let port = ports[p]
            do {
                try port.transport.write(
                    UnsafeRawBufferPointer(rebasing: port.output[0..<readyBytes[p]]),
                    deadline: MonotonicInstant(nanoseconds: now + 100_000_000))
            } catch {
                if error == .closed && port.terminal == nil && !closePort(p) { return false }
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
        var anyRoom = false
        for p in 0..<ports.count where roomBytes[p] > 0 && !portClosed[p] { anyRoom = true }
        if !anyRoom {
            var pause = timespec(tv_sec: 0, tv_nsec: Int(min(drainNs, deadline > now ? deadline - now : 0)))
            nanosleep(&pause, nil)
            return true
        }
        if ports.count == 1 {
            let port = ports[0]
            let count: Int
            do {
                count = try port.transport.read(
                    into: UnsafeMutableRawBufferPointer(rebasing: input[0..<roomBytes[0]]),
                    spinUntil: MonotonicInstant(nanoseconds: spinUntil),
                    deadline: MonotonicInstant(nanoseconds: deadline))
            } catch {
                return !(error == .closed && port.terminal == nil)
            }
            if count > 0 { received(count, on: port) }
            return true
        }
        return receiveFromAny(spinUntil: spinUntil, deadline: deadline)
    }

    /// Port `p`'s pipe was closed by its host: it is served no more. Returns whether another port is left.
    private func closePort(_ p: Int) -> Bool {
        portClosed[p] = true
        for q in 0..<ports.count where !portClosed[q] { return true }
        return false
    }

    /// Hands `count` bytes of `input` from `port`'s host to its bus.
    private func received(_ count: Int, on port: Port) {
        let now = MonotonicInstant.now().nanoseconds
        lastTrafficNs = now
        lock.lock()
        // Any rate the client set, standard or not (termios2); one that cannot be read is noise to every servo
        // rather than the previous rate kept.
        if followTerminalBaudRate, let terminal = port.terminal {
            port.bus.hostBaudRate = terminal.terminalBaudRate ?? 0
        }
        port.bus.receive(UnsafeRawBufferPointer(rebasing: input[0..<count]), atNs: now)
        lock.unlock()
    }

    /// Several buses: polls them all without sleeping until `spinUntil`, then sleeps in one `ppoll` on all
    /// their ports until bytes come or `deadline`, and hands what came to each bus. False when a pipe closed.
    private func receiveFromAny(spinUntil: UInt64, deadline: UInt64) -> Bool {
        var sleeping = false
        while true {
            var got = false
            for p in 0..<ports.count where !portClosed[p] && roomBytes[p] > 0 {
                let port = ports[p]
                if sleeping { port.transport.clearReadiness() }
                do {
                    let count = try port.transport.readAvailable(
                        into: UnsafeMutableRawBufferPointer(rebasing: input[0..<roomBytes[p]]))
                    if count > 0 {
                        received(count, on: port)
                        got = true
                    }
                } catch {
                    if error == .closed && port.terminal == nil && !closePort(p) { return false }
                }
            }
            if got { return true }
            let now = MonotonicInstant.now().nanoseconds
            if now >= deadline { return true }
            if now < spinUntil { continue }
            if !sleeping {
                // Reset the descriptors, then look once more before sleeping (the pass above).
                sleeping = true
                continue
            }
            for p in 0..<ports.count {
                descriptors[p] = portClosed[p] || roomBytes[p] == 0 ? -1 : ports[p].transport.readinessDescriptor
            }
            _ = waitForAnyReadable(UnsafeBufferPointer(descriptors), events: events, deadlineNs: deadline)
            // What came is read in the next pass of the serving loop.
            return true
        }
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
