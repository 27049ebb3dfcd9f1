import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The responder half of the bare-floor benchmark: on its own thread, answers each request of a fixed
/// length with fixed bytes, and swallows the sync write that follows. Nothing else.
private final class FloorResponder: @unchecked Sendable {
    let transport: PseudoTerminalTransport
    let readRequestBytes: Int
    let writeRequestBytes: Int
    let reply: [UInt8]
    let busyPoll: Bool
    let stop = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)

    init(
        transport: PseudoTerminalTransport, readRequestBytes: Int, writeRequestBytes: Int, reply: [UInt8],
        busyPoll: Bool
    ) {
        self.busyPoll = busyPoll
        self.transport = transport
        self.readRequestBytes = readRequestBytes
        self.writeRequestBytes = writeRequestBytes
        self.reply = reply
    }

    func run() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var received = 0  // bytes of the current cycle (read request + write request)
        let cycle = readRequestBytes + writeRequestBytes
        buffer.withUnsafeMutableBytes { buf in
            reply.withUnsafeBytes { answer in
                while !stop.load(ordering: .relaxed) {
                    let deadline = MonotonicInstant.now().advanced(byNanoseconds: 20_000_000)
                    let spinUntil = busyPoll ? deadline : MonotonicInstant(nanoseconds: 0)
                    guard let n = try? transport.read(into: buf, spinUntil: spinUntil, deadline: deadline) else {
                        break
                    }
                    var left = n
                    while left > 0 {
                        let take = Swift.min(left, cycle - received)
                        let before = received
                        received += take
                        left -= take
                        if before < readRequestBytes && received >= readRequestBytes {
                            if (try? transport.write(
                                answer, deadline: MonotonicInstant.now().advanced(byNanoseconds: 100_000_000)))
                                == nil
                            {
                                return
                            }
                        }
                        if received == cycle { received = 0 }
                    }
                }
            }
        }
        finished.store(true, ordering: .releasing)
    }
}

extension BusBenchmark {
    /// Cycles per second of `bus` doing one sync read of `readLength` bytes at `readAddress` from `ids`
    /// and one sync write of `writeLength` zero bytes at `writeAddress`, for about `seconds`.
    /// Failed cycles are counted in the result's second element, not in the rate.
    public static func cyclesPerSecond(
        bus: BusMaster, ids: [ServoID], readAddress: UInt16, readLength: Int, writeAddress: UInt16, writeLength: Int,
        seconds: Double = 2
    ) -> (cyclesPerSecond: Double, failures: Int) {
        let present = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Swift.max(1, ids.count * readLength), alignment: 8)
        let goals = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Swift.max(1, ids.count * writeLength), alignment: 8)
        defer {
            present.deallocate()
            goals.deallocate()
        }
        goals.initializeMemory(as: UInt8.self, repeating: 0)
        var cycles = 0
        var failures = 0
        let start = MonotonicInstant.now()
        let end = start.advanced(byNanoseconds: UInt64(seconds * 1e9))
        ids.withUnsafeBufferPointer { ids in
            while MonotonicInstant.now() < end {
                do throws(BusError) {
                    try bus.syncRead(ids: ids, address: readAddress, length: readLength, into: present)
                    try bus.syncWrite(
                        ids: ids, address: writeAddress, length: writeLength, data: UnsafeRawBufferPointer(goals))
                    cycles += 1
                } catch {
                    failures += 1
                }
            }
        }
        let elapsed = Double(MonotonicInstant.now().nanoseconds(since: start)) / 1e9
        return (Double(cycles) / elapsed, failures)
    }

    /// The bare floor over a pseudo-terminal: a minimal termios master writes a sync-read request of the
    /// real length, waits for the replies' total length in bytes, writes a sync-write request; a minimal
    /// responder on the pty's other side answers each read request with precomputed bytes. No decoding,
    /// no checks: what the pty and two threads cost. Returns cycles per second over about `seconds`.
    /// With `busyPoll` both sides poll without sleeping (as Sinew's bus master and virtual bus do with
    /// busy polling on): the pty's own cost without the threads' wake-ups.
    public static func floorCyclesPerSecond(
        protocol busProtocol: BusProtocol, servos: Int = 6, readLength: Int = 10, writeLength: Int = 4,
        seconds: Double = 2, busyPoll: Bool = false
    ) throws(TransportError) -> Double {
        let n = Swift.max(1, Swift.min(servos, 253))
        let dynamixel = busProtocol == .dynamixel
        let readRequest = [UInt8](repeating: 0x55, count: dynamixel ? 14 + n : 8 + n)
        let writeRequest = [UInt8](
            repeating: 0x55, count: dynamixel ? 14 + n * (1 + writeLength) : 8 + n * (1 + writeLength))
        let reply = [UInt8](
            repeating: 0x33,
            count: n * (dynamixel ? Dynamixel.statusOverhead + readLength : Feetech.overhead + readLength))
        let primary = try PseudoTerminalTransport.createPair()
        let client = try PseudoTerminalTransport(path: primary.path)
        let responder = FloorResponder(
            transport: primary, readRequestBytes: readRequest.count, writeRequestBytes: writeRequest.count,
            reply: reply,
            busyPoll: busyPoll)
        let context = Unmanaged.passRetained(responder).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let r = Unmanaged<FloorResponder>.fromOpaque(raw!).takeRetainedValue()
                r.run()
                return nil
            }, context)
        if created != 0 {
            Unmanaged<FloorResponder>.fromOpaque(context).release()
            throw .system(call: "pthread_create", errno: created)
        }
        defer {
            responder.stop.store(true, ordering: .releasing)
            pthread_join(thread, nil)
        }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        let readBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: readRequest.count, alignment: 8)
        let writeBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: writeRequest.count, alignment: 8)
        defer {
            buf.deallocate()
            readBytes.deallocate()
            writeBytes.deallocate()
        }
        readRequest.withUnsafeBytes { readBytes.copyMemory(from: $0) }
        writeRequest.withUnsafeBytes { writeBytes.copyMemory(from: $0) }
        var cycles = 0
        let start = MonotonicInstant.now()
        let end = start.advanced(byNanoseconds: UInt64(seconds * 1e9))
        while MonotonicInstant.now() < end {
            // Generous: a machine busy with other programs can hold either thread off the CPU for a while;
            // only a responder that never answers is a failure.
            let deadline = MonotonicInstant.now().advanced(byNanoseconds: 2_000_000_000)
            try client.write(UnsafeRawBufferPointer(readBytes), deadline: deadline)
            var got = 0
            while got < reply.count {
                let k = try client.read(
                    into: buf, spinUntil: busyPoll ? deadline : MonotonicInstant(nanoseconds: 0), deadline: deadline)
                if k == 0 { throw .system(call: "read", errno: ETIMEDOUT) }
                got += k
            }
            try client.write(UnsafeRawBufferPointer(writeBytes), deadline: deadline)
            cycles += 1
        }
        return Double(cycles) / (Double(MonotonicInstant.now().nanoseconds(since: start)) / 1e9)
    }
}
