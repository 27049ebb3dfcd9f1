/// A transport that answers every write with the same precomputed bytes, instantly: lets a benchmark
/// time the bus stack itself (encode, decode, bookkeeping) without any wire or other thread.
public final class CannedReplyTransport: ByteTransport, @unchecked Sendable {
    private let reply: UnsafeMutableRawBufferPointer
    @exclusivity(unchecked) private var replyLength = 0
    @exclusivity(unchecked) private var pending = 0
    @exclusivity(unchecked) public private(set) var baudRate = 0
    /// Bytes written so far.
    @exclusivity(unchecked) public private(set) var bytesWritten = 0

    /// `replies` is what every request that expects an answer gets back.
    public init(replies: [UInt8]) {
        reply = .allocate(byteCount: Swift.max(replies.count, 1), alignment: 8)
        replies.withUnsafeBytes { reply.copyMemory(from: $0) }
        replyLength = replies.count
    }

    deinit { reply.deallocate() }

    public func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        bytesWritten &+= bytes.count
        // Sync/bulk writes go to broadcast and expect nothing; everything else gets the canned reply.
        let instructionOffset = bytes.count > 7 && bytes[2] == 0xFD ? 7 : 4
        let instruction = bytes.count > instructionOffset ? bytes[instructionOffset] : 0
        pending =
            instruction == Instruction.syncWrite.rawValue || instruction == Instruction.bulkWrite.rawValue
            ? 0 : replyLength
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)
        -> Int
    {
        let n = Swift.min(pending, buffer.count)
        if n == 0 { return 0 }
        let from = replyLength - pending
        buffer.baseAddress!.copyMemory(from: reply.baseAddress! + from, byteCount: n)
        pending -= n
        return n
    }

    public func flushInput() throws(TransportError) {}

    public func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { baudRate = bitsPerSecond }
}

/// Figures for `sinew bench bus`.
public enum BusBenchmark {
    /// Nanoseconds per cycle of the bus stack alone for `servos` servos: one sync read of `readLength`
    /// bytes (with `servos` replies decoded) plus one sync write of `writeLength` bytes, through
    /// ``BusMaster`` on a ``CannedReplyTransport`` (no wire, no other thread). Runs `iterations` cycles
    /// after a warm-up.
    public static func stackNanosecondsPerCycle(
        protocol busProtocol: BusProtocol, servos: Int = 6, readLength: Int = 10, writeLength: Int = 4,
        iterations: Int = 100_000
    ) throws(BusError) -> Double {
        let n = Swift.max(1, Swift.min(servos, 253))
        var canned: [UInt8] = []
        var packet = [UInt8](repeating: 0, count: 600)
        let values = [UInt8](repeating: 0x11, count: readLength)
        for i in 0..<n {
            let count = packet.withUnsafeMutableBytes { out in
                values.withUnsafeBytes { v in
                    busProtocol == .dynamixel
                        ? (try? Dynamixel.encodeStatus(id: ServoID(i + 1), error: 0, parameters: v, into: out)) ?? 0
                        : (try? Feetech.encodeStatus(id: ServoID(i + 1), error: 0, parameters: v, into: out)) ?? 0
                }
            }
            canned += packet[0..<count]
        }
        let transport = CannedReplyTransport(replies: canned)
        let bus = BusMaster(
            transport: transport, protocol: busProtocol,
            timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 1_000_000_000, retries: 0))
        let ids = UnsafeMutableBufferPointer<ServoID>.allocate(capacity: n)
        let present = UnsafeMutableRawBufferPointer.allocate(byteCount: n * readLength, alignment: 8)
        let goals = UnsafeMutableRawBufferPointer.allocate(byteCount: n * writeLength, alignment: 8)
        defer {
            ids.deallocate()
            present.deallocate()
            goals.deallocate()
        }
        for i in 0..<n { ids[i] = ServoID(i + 1) }
        goals.initializeMemory(as: UInt8.self, repeating: 0)
        let address: UInt16 = busProtocol == .dynamixel ? 126 : 56
        let goalAddress: UInt16 = busProtocol == .dynamixel ? 116 : 42
        for _ in 0..<100 {
            try bus.syncRead(ids: UnsafeBufferPointer(ids), address: address, length: readLength, into: present)
            try bus.syncWrite(
                ids: UnsafeBufferPointer(ids), address: goalAddress, length: writeLength,
                data: UnsafeRawBufferPointer(goals))
        }
        let start = MonotonicInstant.now()
        for _ in 0..<iterations {
            try bus.syncRead(ids: UnsafeBufferPointer(ids), address: address, length: readLength, into: present)
            try bus.syncWrite(
                ids: UnsafeBufferPointer(ids), address: goalAddress, length: writeLength,
                data: UnsafeRawBufferPointer(goals))
        }
        return Double(MonotonicInstant.now().nanoseconds(since: start)) / Double(Swift.max(iterations, 1))
    }

    /// The most cycles per second the wire allows: one sync read of `readLength` bytes from `servos`
    /// servos (each paying `returnDelayMicroseconds`) plus one sync write of `writeLength` bytes, at
    /// `baudRate` bit/s, 10 bits per byte (docs/protocols.md: Dynamixel, 6 servos, 4+4 bytes, 1 Mbit/s → ~650).
    public static func wireLimitCyclesPerSecond(
        protocol busProtocol: BusProtocol, servos: Int = 6, readLength: Int = 4, writeLength: Int = 4,
        baudRate: Int = 1_000_000, returnDelayMicroseconds: Int = 0
    ) -> Double {
        let bytes: Int
        if busProtocol == .dynamixel {
            bytes = (14 + servos) + servos * (Dynamixel.statusOverhead + readLength) + 14 + servos * (1 + writeLength)
        } else {
            bytes = (8 + servos) + servos * (Feetech.overhead + readLength) + 8 + servos * (1 + writeLength)
        }
        let seconds = Double(bytes) * 10 / Double(baudRate) + Double(servos * returnDelayMicroseconds) * 1e-6
        return 1 / seconds
    }
}
