import SinewBus
import SinewCore

/// The host end of a virtual bus in simulated time, for runs as fast as the machine allows: no serving
/// thread, no wall clock. A write hands the request to the bus at the simulated now; a read jumps the
/// simulated clock to when the wire would deliver the reply (so wire timing still shapes every exchange)
/// and returns it, or returns 0 at once when no reply will come (a silent servo times out without
/// waiting). The control loop moves the clock to each tick's start through ``SimulationClock``.
/// Single-threaded; allocation-free after the first exchanges.
public final class LockstepBusTransport: ByteTransport, SimulationClock {
    public let bus: VirtualBus
    private let startNs: UInt64
    /// Simulated now, on the bus's clock (ns).
    private var nowNs: UInt64
    /// Time between the host's write and its bytes going onto the wire, ns (a USB adapter's and its driver's
    /// latency; 0 by default): paid once per transaction, so the replies come that much later.
    public var requestLatencyNs: UInt64 = 0

    public init(bus: VirtualBus) {
        self.bus = bus
        startNs = bus.timeNs
        nowNs = bus.timeNs
    }

    public var nanoseconds: UInt64 { nowNs - startNs }

    public func advance(toNanoseconds nanoseconds: UInt64) {
        let target = startNs + nanoseconds
        if target > nowNs { nowNs = target }
        bus.advance(toNs: nowNs)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        let onWireNs = nowNs + requestLatencyNs
        bus.advance(toNs: onWireNs)
        bus.receive(bytes, atNs: onWireNs)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)
        -> Int
    {
        guard let ready = bus.nextReplyReadyNs else { return 0 }
        if ready > nowNs { nowNs = ready }
        bus.advance(toNs: nowNs)
        return bus.readReplies(upToNs: nowNs, into: buffer)
    }

    public func flushInput() throws(TransportError) { bus.discardReplies() }

    public var baudRate: Int { bus.hostBaudRate }

    public func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { bus.hostBaudRate = bitsPerSecond }
}
