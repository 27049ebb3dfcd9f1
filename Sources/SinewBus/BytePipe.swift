import CSinewSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A single-producer single-consumer byte ring: the writer only advances `head`, the reader only
/// `tail`, both through atomics, so neither ever waits on a lock. An eventfd wakes a reader waiting
/// for data with a deadline.
final class ByteRing: @unchecked Sendable {
    let storage: UnsafeMutablePointer<UInt8>
    let capacity: Int
    let mask: Int
    // Monotonic byte counters; index = counter & mask.
    let head = Atomic<Int>(0)
    let tail = Atomic<Int>(0)
    let dataEvent: Int32

    init(capacity requested: Int) {
        var c = 64
        while c < requested { c <<= 1 }
        capacity = c
        mask = c - 1
        storage = .allocate(capacity: c)
        storage.initialize(repeating: 0, count: c)
        dataEvent = sinew_eventfd_create()
    }

    deinit {
        storage.deallocate()
        if dataEvent >= 0 { Glibc.close(dataEvent) }
    }

    /// Producer: copies as much of `bytes` as fits; returns the count.
    func push(_ bytes: UnsafeRawBufferPointer) -> Int {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        let n = Swift.min(bytes.count, capacity - (h - t))
        if n <= 0 { return 0 }
        let start = h & mask
        let first = Swift.min(n, capacity - start)
        (storage + start).update(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: first)
        if n > first {
            storage.update(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + first, count: n - first)
        }
        head.store(h + n, ordering: .releasing)
        _ = sinew_eventfd_signal(dataEvent)
        return n
    }

    /// Consumer: copies up to `buffer.count` available bytes; returns the count.
    func pop(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        let n = Swift.min(buffer.count, h - t)
        if n <= 0 { return 0 }
        let start = t & mask
        let first = Swift.min(n, capacity - start)
        let out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        out.update(from: storage + start, count: first)
        if n > first { (out + first).update(from: storage, count: n - first) }
        tail.store(t + n, ordering: .releasing)
        return n
    }

    /// Consumer: drops everything available.
    func discardAll() {
        tail.store(head.load(ordering: .acquiring), ordering: .releasing)
    }

    var isEmpty: Bool { head.load(ordering: .acquiring) == tail.load(ordering: .relaxed) }
}

/// One end of an in-process, full-duplex byte pipe (``BytePipe/makePair(capacity:baudRate:)``): what one
/// end writes, the other reads. Lock-free (SPSC rings with atomics); a reader with a deadline sleeps
/// in `ppoll` on an eventfd. Each direction has one writer thread and one reader thread.
public final class BytePipeEnd: ByteTransport, @unchecked Sendable {
    let incoming: ByteRing
    let outgoing: ByteRing
    let closedFlag: Atomic<Bool>
    let peerClosed: Atomic<Bool>
    weak var peer: BytePipeEnd?
    /// For wire-time arithmetic only: the pipe itself is instantaneous. Default 0 (no wire).
    public private(set) var baudRate: Int

    init(incoming: ByteRing, outgoing: ByteRing, baudRate: Int) {
        self.incoming = incoming
        self.outgoing = outgoing
        self.baudRate = baudRate
        closedFlag = Atomic(false)
        peerClosed = Atomic(false)
    }

    deinit { peer?.peerClosed.store(true, ordering: .releasing) }

    /// Marks this end closed: the peer's reads then fail with ``TransportError/closed`` once drained.
    public func close() {
        closedFlag.store(true, ordering: .releasing)
        peer?.peerClosed.store(true, ordering: .releasing)
        _ = sinew_eventfd_signal(outgoing.dataEvent)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        if closedFlag.load(ordering: .acquiring) || peerClosed.load(ordering: .acquiring) { throw .closed }
        var offset = 0
        while offset < bytes.count {
            offset += outgoing.push(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            if offset < bytes.count {
                // Full: the reader is behind. Back off briefly rather than spin on a shared core.
                if MonotonicInstant.now() >= deadline { throw .writeTimeout(written: offset) }
                var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
                nanosleep(&pause, nil)
            }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)
        -> Int
    {
        while true {
            let n = try readAvailable(into: buffer)
            if n > 0 { return n }
            let r = sinew_wait_readable(incoming.dataEvent, deadline.nanoseconds)
            if r < 0 { throw .system(call: "ppoll", errno: -r) }
            if r == 2 { throw .closed }
            sinew_eventfd_drain(incoming.dataEvent)
            if r == 0 { return incoming.pop(into: buffer) }
        }
    }

    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        let n = incoming.pop(into: buffer)
        if n == 0 && (peerClosed.load(ordering: .acquiring) || closedFlag.load(ordering: .acquiring)) {
            if incoming.isEmpty { throw .closed }
            return incoming.pop(into: buffer)
        }
        return n
    }

    public func flushInput() throws(TransportError) { incoming.discardAll() }

    /// The eventfd the writing end signals after each push.
    public var readinessDescriptor: Int32 { incoming.dataEvent }

    public func clearReadiness() { sinew_eventfd_drain(incoming.dataEvent) }

    public func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) {
        if bitsPerSecond < 0 { throw .unsupportedBaudRate(bitsPerSecond) }
        baudRate = bitsPerSecond
    }
}

/// The in-process byte pipe, for the simulator and tests.
public enum BytePipe {
    /// Two connected ends, each direction buffering `capacity` bytes (rounded up to a power of two).
    /// `baudRate` is reported by both ends for wire-time arithmetic (0 = no wire).
    public static func makePair(capacity: Int = 65536, baudRate: Int = 0) -> (BytePipeEnd, BytePipeEnd) {
        let aToB = ByteRing(capacity: capacity)
        let bToA = ByteRing(capacity: capacity)
        let a = BytePipeEnd(incoming: bToA, outgoing: aToB, baudRate: baudRate)
        let b = BytePipeEnd(incoming: aToB, outgoing: bToA, baudRate: baudRate)
        a.peer = b
        b.peer = a
        return (a, b)
    }
}
