import CSinewSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A point on CLOCK_MONOTONIC, in nanoseconds. Every transport read takes one as its absolute deadline.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current time (one `clock_gettime`, no allocation).
    @inlinable
    public static func now() -> MonotonicInstant { MonotonicInstant(nanoseconds: sinew_monotonic_ns()) }

    /// This instant plus `nanoseconds`.
    @inlinable
    public func advanced(byNanoseconds delta: UInt64) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds &+ delta)
    }

    /// Nanoseconds from `earlier` to this instant (0 if `earlier` is later).
    @inlinable
    public func nanoseconds(since earlier: MonotonicInstant) -> UInt64 {
        nanoseconds > earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
    }

    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool { a.nanoseconds < b.nanoseconds }
}

/// Why a transport operation failed.
public enum TransportError: Error, Sendable, Equatable {
    /// A system call failed with `errno`.
    case system(call: String, errno: Int32)
    /// The other end of an in-process pipe is closed.
    case closed
    /// The device is gone for good: a hang-up (POLLHUP, or end of file on a terminal: the server of a
    /// pseudo-terminal exited, a USB adapter was unplugged) with `errno` 0, or EIO / ENXIO / ENODEV from a
    /// system call on it. The descriptor will not work again; reopen the port.
    case disconnected(errno: Int32)
    /// Not every byte could be written before the deadline.
    case writeTimeout(written: Int)
    /// No port with that path or USB serial number.
    case notFound(String)
    /// Another program holds the port (its advisory lock: another `sinew`, or a tool that locks its port):
    /// two masters on one half-duplex bus would garble each other's packets.
    case inUse(String)
    /// The adapter or driver refused the rate.
    case unsupportedBaudRate(Int)
    /// libserialport reported an error (`code` is its `sp_return`).
    case serialPort(call: String, code: Int32, message: String)
}

extension TransportError: CustomStringConvertible {
    /// What went wrong, in words (the port's path where the error carries it).
    public var description: String {
        switch self {
        case .system(let call, let errno):
            // ENOTTY from a terminal call: the path is a file or device, not a serial port (`--port /dev/null`).
            let hint = errno == ENOTTY ? " (not a serial port or terminal)" : ""
            return "\(call) failed: \(String(cString: strerror(errno)))\(hint)"
        case .closed: return "the other end of the in-process pipe is closed"
        case .disconnected(let errno):
            return errno == 0
                ? "port disconnected (hang-up)" : "port disconnected (\(String(cString: strerror(errno))))"
        case .writeTimeout(let written): return "write timed out after \(written) byte(s)"
        case .notFound(let what): return "no such port: \(what)"
        case .inUse(let path):
            return "\(path) is in use: another program holds its lock (another sinew, or a tool that locks its port)"
        case .unsupportedBaudRate(let rate): return "the port or its driver refuses \(rate) bit/s"
        case .serialPort(let call, let code, let message): return "libserialport \(call) failed (\(code)): \(message)"
        }
    }
}

/// Bytes in and out of a half-duplex servo bus. Implementations: ``SerialPortTransport`` (real ports
/// through libserialport), ``PseudoTerminalTransport`` (termios on a pty) and ``BytePipeEnd`` (in-process).
/// One thread uses a transport at a time; nothing here blocks past the deadline it is given.
public protocol ByteTransport: AnyObject {
    /// Writes every byte of `bytes`, or throws ``TransportError/writeTimeout(written:)`` at `deadline`.
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)

    /// Waits until at least one byte is available or `deadline` passes, then copies what is available
    /// (up to `buffer.count`). Returns the number of bytes read; 0 means the deadline passed.
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int

    /// Copies what is available right now (up to `buffer.count`) without waiting; 0 when nothing is.
    /// The busy-polling read (``read(into:spinUntil:deadline:)``) calls this in a loop, so it should cost
    /// one system call at most.
    func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int

    /// Discards every byte received and not yet read.
    func flushInput() throws(TransportError)

    /// The line rate in bit/s used to compute wire time; 0 when there is no wire (instantaneous).
    var baudRate: Int { get }

    /// Changes the line rate (8N1).
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError)

    /// A descriptor that polls readable (POLLIN) whenever bytes may be waiting, so that one thread can wait
    /// on several transports at once (``ConcurrentBusTransactions``); -1 when there is none (such a transport
    /// is waited on through its own ``read(into:deadline:)``). The default is -1.
    var readinessDescriptor: Int32 { get }

    /// Resets the readiness descriptor before a wait when it does not reset itself as bytes are read (an
    /// eventfd); call it before reading what is available, then wait. The default does nothing.
    func clearReadiness()

    /// The readiness descriptor polled ready (or hung up) but a read found nothing: throws when that means
    /// the port is gone (a terminal whose other side closed), returns when it was a stale wake-up. The default
    /// returns.
    func readinessWithoutData() throws(TransportError)
}

extension ByteTransport {
    public var readinessDescriptor: Int32 { -1 }

    public func clearReadiness() {}

    public func readinessWithoutData() throws(TransportError) {}

    /// A read with a deadline already passed: whatever is available now.
    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        try read(into: buffer, deadline: MonotonicInstant(nanoseconds: 0))
    }

    /// Busy-polling read: sleeps in ``read(into:deadline:)`` until `spinFrom` (returning early with
    /// bytes that come sooner), then tries ``readAvailable(into:)`` without sleeping until `spinUntil`,
    /// then sleeps again until `deadline` (all capped at `deadline`). Spinning trades a CPU for latency:
    /// a sleeping reader pays a wake-up (tens of µs on a virtual machine) per arrival, a spinning one sees
    /// the bytes within a system call. Spin over the stretch when the bytes are due, on a thread that may
    /// burn its core meanwhile (an isolated real-time core, a benchmark): two SCHED_FIFO threads spinning
    /// without pause on a 2-core machine run into the kernel's real-time throttling (by default 50 ms of
    /// every second). Returns the count; 0 at the deadline.
    @inlinable
    public func read(
        into buffer: UnsafeMutableRawBufferPointer, spinFrom: MonotonicInstant = MonotonicInstant(nanoseconds: 0),
        spinUntil: MonotonicInstant, deadline: MonotonicInstant
    ) throws(TransportError) -> Int {
        let spinEnd = spinUntil < deadline ? spinUntil : deadline
        var now = MonotonicInstant.now()
        if now < spinFrom && spinFrom < spinEnd {
            let n = try read(into: buffer, deadline: spinFrom)
            if n > 0 { return n }
            now = MonotonicInstant.now()
        }
        if now < spinEnd {
            repeat {
                let n = try readAvailable(into: buffer)
                if n > 0 { return n }
            } while MonotonicInstant.now() < spinEnd
        }
        return try read(into: buffer, deadline: deadline)
    }
}

/// A transport in simulated time (a lockstep simulation): a read never waits (the bytes a request will bring are
/// there at the first read, or none ever come) and time is the simulation's. A ``BusMaster`` over one keeps its
/// deadlines, quiet periods and reply latencies on ``simulatedNowNs`` (reply latencies are then the simulated
/// wire's) and reads no wall clock.
public protocol SimulatedTimeTransport: ByteTransport {
    /// The simulated now, ns since an epoch of the transport's own.
    var simulatedNowNs: UInt64 { get }
}

/// Waits until one of `descriptors` (at most 64; ``ByteTransport/readinessDescriptor``s, -1 entries ignored)
/// polls readable or hung up, or the CLOCK_MONOTONIC `deadlineNs` passes; `events[i]` receives what `ppoll`
/// found on descriptor i (0: nothing). Returns how many had events, 0 at the deadline, -errno on failure.
/// Allocation-free.
public func waitForAnyReadable(
    _ descriptors: UnsafeBufferPointer<Int32>, events: UnsafeMutableBufferPointer<Int16>, deadlineNs: UInt64
) -> Int32 {
    sinew_wait_any_readable(
        descriptors.baseAddress, events.baseAddress, Int32(min(descriptors.count, events.count)), deadlineNs)
}

/// Nanoseconds that `byteCount` bytes take on an 8N1 line at `baudRate` (10 bits per byte); 0 when the
/// rate is 0 (no wire).
@inlinable
public func wireTimeNanoseconds(byteCount: Int, baudRate: Int) -> UInt64 {
    baudRate <= 0 ? 0 : UInt64(byteCount) * 10 * 1_000_000_000 / UInt64(baudRate)
}

/// Shared read/write over a non-blocking file descriptor with ppoll deadlines.
@usableFromInline
enum DescriptorIO {
    /// Whether `errno` from a call on a terminal means the device is gone (a hung-up terminal answers EIO,
    /// an unplugged USB adapter EIO, ENXIO or ENODEV).
    @inline(__always)
    static func isDisconnection(_ e: Int32) -> Bool { e == EIO || e == ENXIO || e == ENODEV }

    /// A failed system call as a transport error: ``TransportError/disconnected(errno:)`` when the device
    /// is gone, ``TransportError/system(call:errno:)`` otherwise.
    @inline(__always)
    static func failure(_ call: String, _ e: Int32) -> TransportError {
        isDisconnection(e) ? .disconnected(errno: e) : .system(call: call, errno: e)
    }

    static func read(
        fd: Int32, into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant
    ) throws(TransportError) -> Int {
        var polledReadable = false
        while true {
            let n = try readAvailable(fd: fd, into: buffer)
            if n > 0 { return n }
            // Nothing although the poll said readable: end of file. A hung-up terminal (its pty's server
            // gone, its USB adapter unplugged) polls readable (POLLIN | POLLHUP) and reads 0 for ever; a live
            // one reads bytes or fails with EAGAIN (VMIN 1) when readable. Retrying would spin to the deadline.
            if polledReadable { throw .disconnected(errno: 0) }
            // n == 0 on a terminal is "nothing now" (VMIN 0), not end of file: the poll tells hang-ups apart.
            let r = sinew_wait_readable(fd, deadline.nanoseconds)
            if r == 0 { return 0 }
            if r == 2 { throw .disconnected(errno: 0) }
            if r < 0 { throw .system(call: "ppoll", errno: -r) }
            polledReadable = true
        }
    }

    /// One non-blocking read(2): what is there now, 0 when nothing is.
    static func readAvailable(fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n > 0 { return n }
        if n < 0 {
            let e = errno
            if e != EAGAIN && e != EWOULDBLOCK && e != EINTR { throw failure("read", e) }
        }
        return 0
    }

    /// Reads and drops whatever is readable right now (tcflush alone can miss bytes in flight on a pty).
    static func drain(fd: Int32) throws(TransportError) {
        var sink: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let size = MemoryLayout.size(ofValue: sink)
        while true {
            let n = withUnsafeMutableBytes(of: &sink) { Glibc.read(fd, $0.baseAddress, size) }
            if n > 0 { continue }
            if n == 0 { return }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return }
            if e == EINTR { continue }
            throw failure("read", e)
        }
    }

    static func write(fd: Int32, _ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 {
                offset += n
                continue
            }
            let e = errno
            if n < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR { throw failure("write", e) }
            let r = sinew_wait_writable(fd, deadline.nanoseconds)
            if r == 0 { throw .writeTimeout(written: offset) }
            if r == 2 { throw .disconnected(errno: 0) }
            if r < 0 { throw .system(call: "ppoll", errno: -r) }
        }
    }
}

/// A pseudo-terminal used through termios: raw 8N1, non-blocking, ppoll deadlines. libserialport refuses
/// ptys, so this is how Sinew talks to a virtual bus served on one (or serves one itself).
public final class PseudoTerminalTransport: ByteTransport, @unchecked Sendable {
    /// The file descriptor (owned; closed on deinit).
    public let fileDescriptor: Int32
    /// The path this was opened from (the secondary's path for a created pair's primary).
    public let path: String
    public private(set) var baudRate: Int
    // Held open on the serving side so reads on the primary do not fail with EIO while no client is attached.
    private var secondaryKeepAlive: Int32 = -1
    // A client's side of the terminal is held exclusively (see `claimExclusively`).
    private var claimed = false

    /// Opens a terminal device (normally a pty's secondary, e.g. `/dev/pts/3`, or a symlink to one) in raw
    /// mode at `baudRate` (set on the terminal as ``setBaudRate(_:)`` does: a pty has no wire, but its other
    /// side reads the rate back, and wire-time arithmetic uses it).
    public init(path: String, baudRate: Int = 1_000_000) throws(TransportError) {
        let fd = Glibc.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw e == ENOENT ? .notFound(path) : .system(call: "open", errno: e)
        }
        do throws(TransportError) {
            try claimExclusively(fd: fd, path: path)
        } catch {
            Glibc.close(fd)
            throw error
        }
        let r = sinew_termios_make_raw(fd)
        if r < 0 {
            Glibc.close(fd)
            throw .system(call: "tcsetattr", errno: -r)
        }
        fileDescriptor = fd
        self.path = path
        self.baudRate = baudRate
        claimed = true
        try setBaudRate(baudRate)
    }

    private init(primary fd: Int32, secondaryPath: String, keepAlive: Int32, baudRate: Int) {
        fileDescriptor = fd
        path = secondaryPath
        secondaryKeepAlive = keepAlive
        self.baudRate = baudRate
    }

    /// Creates a new pseudo-terminal pair and returns a transport on its primary (master) side, for a
    /// program that serves a bus; clients open ``path`` (the secondary, `/dev/pts/N`). The secondary is
    /// put in raw mode (no echo, no line discipline) and kept open by this object so the primary stays
    /// readable across client reconnects.
    public static func createPair(baudRate: Int = 1_000_000) throws(TransportError) -> PseudoTerminalTransport {
        var name = [CChar](repeating: 0, count: 256)
        let fd = name.withUnsafeMutableBufferPointer { sinew_pty_open_primary($0.baseAddress, $0.count) }
        if fd < 0 { throw .system(call: "posix_openpt", errno: -fd) }
        let secondaryPath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let keep = Glibc.open(secondaryPath, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        if keep < 0 {
            let e = errno
            Glibc.close(fd)
            throw .system(call: "open", errno: e)
        }
        let r = sinew_termios_make_raw(keep)
        if r < 0 {
            Glibc.close(keep)
            Glibc.close(fd)
            throw .system(call: "tcsetattr", errno: -r)
        }
        return PseudoTerminalTransport(primary: fd, secondaryPath: secondaryPath, keepAlive: keep, baudRate: baudRate)
    }

    deinit {
        if claimed { releaseExclusive(fd: fileDescriptor) }
        Glibc.close(fileDescriptor)
        if secondaryKeepAlive >= 0 { Glibc.close(secondaryKeepAlive) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        try DescriptorIO.write(fd: fileDescriptor, bytes, deadline: deadline)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)
        -> Int
    {
        try DescriptorIO.read(fd: fileDescriptor, into: buffer, deadline: deadline)
    }

    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        try DescriptorIO.readAvailable(fd: fileDescriptor, into: buffer)
    }

    public var readinessDescriptor: Int32 { fileDescriptor }

    /// A terminal that polls readable and reads nothing has hung up (see `DescriptorIO.read`).
    public func readinessWithoutData() throws(TransportError) { throw .disconnected(errno: 0) }

    public func flushInput() throws(TransportError) {
        let r = sinew_termios_flush_input(fileDescriptor)
        if r < 0 { throw DescriptorIO.failure("tcflush", -r) }
        try DescriptorIO.drain(fd: fileDescriptor)
    }

    /// Sets the terminal's line rate (any rate from 50 bit/s to 12 Mbit/s, standard or not, through termios2 as
    /// pyserial sets its custom rates) and records it for wire-time arithmetic. On a pty nothing physical
    /// changes, but the serving side reads the rate back (``terminalBaudRate``): servos listening at another
    /// rate hear garbage. A rate the terminal refuses throws ``TransportError/unsupportedBaudRate(_:)`` and
    /// leaves the previous one in place — never silently.
    public func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) {
        guard bitsPerSecond >= Int(SINEW_MIN_BAUD), bitsPerSecond <= Int(SINEW_MAX_BAUD) else {
            throw .unsupportedBaudRate(bitsPerSecond)
        }
        let r = sinew_termios_set_speed(fileDescriptor, Int32(bitsPerSecond))
        if r == -EINVAL { throw .unsupportedBaudRate(bitsPerSecond) }
        if r < 0 { throw DescriptorIO.failure("ioctl(TCSETS2)", -r) }
        baudRate = bitsPerSecond
    }

    /// The rate currently set in the terminal (by either side of a pty), in bit/s, standard or not; nil when
    /// it cannot be read.
    public var terminalBaudRate: Int? {
        let r = sinew_termios_get_speed(fileDescriptor)
        return r > 0 ? Int(r) : nil
    }
}

/// Takes a port for this process alone: an advisory lock (`flock`, which a second `sinew`, or any tool that
/// locks its ports, respects) and the terminal's exclusive mode (`TIOCEXCL`: other opens fail with EBUSY,
/// except root's). Two bus masters on one half-duplex bus garble each other's packets.
func claimExclusively(fd: Int32, path: String) throws(TransportError) {
    if flock(fd, LOCK_EX | LOCK_NB) != 0 {
        let code = errno
        throw code == EWOULDBLOCK ? .inUse(path) : .system(call: "flock", errno: code)
    }
    _ = ioctl(fd, UInt(TIOCEXCL))
}

/// Ends the exclusive mode before the descriptor closes: a pseudo-terminal whose server keeps it open would
/// otherwise stay exclusive after this process is gone. The lock goes with the descriptor.
func releaseExclusive(fd: Int32) {
    _ = ioctl(fd, UInt(TIOCNXCL))
}
