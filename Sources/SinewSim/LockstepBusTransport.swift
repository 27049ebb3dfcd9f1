import SinewBus
import SinewCore

/// The host end of a virtual bus in simulated time, for runs as fast as the machine allows: no serving
/// thread, no wall clock. A write hands the request to the bus at the simulated now; a read jumps the
/// simulated clock to when the wire would deliver the reply (so wire timing still shapes every exchange)
/// and returns it, or returns 0 at once when no reply will come (a silent servo times out without
/// waiting). The control loop moves the clock to each tick's start through ``SimulationClock``.
///
/// The buses of one robot (``VirtualBusGroup``) share one simulated now (``group(_:)``): requests sent to
/// several buses at the same moment travel their wires together, and reading them all takes the simulated
/// time of the slowest, as on the real wires. Single-threaded; allocation-free after the first exchanges.
public final class LockstepBusTransport: SimulatedTimeTransport, SimulationClock {
    public let bus: VirtualBus
    private let time: LockstepTime
    /// Time between the host's write and its bytes going onto the wire, ns (a USB adapter's and its driver's
    /// latency; 0 by default): paid once per transaction, so the replies come that much later.
    public var requestLatencyNs: UInt64 = 0

    public init(bus: VirtualBus) {
        self.bus = bus
        time = LockstepTime(buses: [bus])
    }

    private init(bus: VirtualBus, time: LockstepTime) {
        self.bus = bus
        self.time = time
    }

    /// One transport per bus, all on one simulated now: any of them is the robot's ``SimulationClock``
    /// (advancing it advances every bus). Start the buses on one clock (a ``VirtualBusGroup`` does).
    public static func group(_ buses: [VirtualBus]) -> [LockstepBusTransport] {
        let time = LockstepTime(buses: buses)
        return buses.map { LockstepBusTransport(bus: $0, time: time) }
    }

    public var nanoseconds: UInt64 { time.nowNs - time.startNs }

    public var simulatedNowNs: UInt64 { time.nowNs }

    public func advance(toNanoseconds nanoseconds: UInt64) {
        let target = time.startNs + nanoseconds
        if target > time.nowNs { time.nowNs = target }
        time.advanceBuses()
    }

    public func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        let onWireNs = time.nowNs + requestLatencyNs
        bus.advance(toNs: onWireNs)
        bus.receive(bytes, atNs: onWireNs)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)
        -> Int
    {
        guard let ready = bus.nextReplyReadyNs else { return 0 }
        if ready > time.nowNs { time.nowNs = ready }
        bus.advance(toNs: time.nowNs)
        return bus.readReplies(upToNs: time.nowNs, into: buffer)
    }

    public func flushInput() throws(TransportError) { bus.discardReplies() }

    public var baudRate: Int { bus.hostBaudRate }

    public func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { bus.hostBaudRate = bitsPerSecond }
}

/// The simulated now that the lockstep transports of one robot's buses share.
private final class LockstepTime {
    let buses: [VirtualBus]
    let startNs: UInt64
    var nowNs: UInt64

    init(buses: [VirtualBus]) {
        self.buses = buses
        startNs = buses.map(\.timeNs).max() ?? 0
        nowNs = startNs
    }

    /// Every bus to now (the buses of a group advance together, so the later calls find nothing to do).
    func advanceBuses() {
        for b in 0..<buses.count { buses[b].advance(toNs: nowNs) }
    }
}
