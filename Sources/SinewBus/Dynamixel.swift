#if canImport(Glibc)
    import Glibc
#endif

/// ROBOTIS Dynamixel Protocol 2.0 codec (see docs/protocols.md): CRC-16/BUYPASS, byte stuffing,
/// instruction and status packets. All encoders write into caller-provided memory and allocate nothing.
public enum Dynamixel {
    /// Header length before the instruction byte: `FF FF FD 00 ID LEN_L LEN_H`.
    public static let headerLength = 7
    /// Bytes of a status packet without parameters: header, INST, ERR, CRC(2).
    public static let statusOverhead = 11
    /// Bytes of an instruction packet without parameters: header, INST, CRC(2).
    public static let instructionOverhead = 10

    /// Bit 7 of a status error byte: a hardware error is present (read Hardware Error Status, addr 70).
    public static let alertBit: UInt8 = 0x80

    /// CRC-16/BUYPASS (poly 0x8005, init 0, no reflection, no final XOR), continuing from `crc`.
    @inlinable
    public static func crc16(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt16 = 0) -> UInt16 {
        var c = crc
        crcTable.withUnsafeBufferPointer { table in
            for b in bytes {
                c = (c << 8) ^ table[Int((c >> 8) ^ UInt16(b)) & 0xFF]
            }
        }
        return c
    }

    @usableFromInline
    static let crcTable: [UInt16] = (0..<256).map { i -> UInt16 in
        var c = UInt16(i) << 8
        for _ in 0..<8 { c = c & 0x8000 != 0 ? (c << 1) ^ 0x8005 : c << 1 }
        return c
    }
}

/// Builds one Dynamixel 2.0 packet in place, stuffing as it goes: every `FF FF FD` in the body gets
/// an extra `FD`. Call ``finish()`` to patch LEN and append the CRC.
public struct DynamixelPacketWriter {
    @usableFromInline let out: UnsafeMutableRawBufferPointer
    @usableFromInline var count: Int
    @usableFromInline var overflow = false
    // The two previous unstuffed body bytes, to spot FF FF FD.
    @usableFromInline var previous1: UInt8 = 0
    @usableFromInline var previous2: UInt8 = 0

    /// Starts a packet for `id` with `instruction` (``Instruction/status`` for a status packet, after which
    /// the first appended byte is the error byte).
    @inlinable
    public init(into out: UnsafeMutableRawBufferPointer, id: ServoID, instruction: Instruction) {
        self.out = out
        count = 0
        if out.count < Dynamixel.instructionOverhead {
            overflow = true
            return
        }
        out[0] = 0xFF
        out[1] = 0xFF
        out[2] = 0xFD
        out[3] = 0x00
        out[4] = id
        count = Dynamixel.headerLength
        append(instruction.rawValue)
    }

    /// Bytes written so far (without the CRC).
    @inlinable public var byteCount: Int { count }

    @inlinable
    mutating func put(_ byte: UInt8) {
        // Keep room for the CRC so finish() never fails after a successful append.
        if count + 2 >= out.count {
            overflow = true
            return
        }
        out[count] = byte
        count += 1
    }

    /// Appends one parameter byte.
    @inlinable
    public mutating func append(_ byte: UInt8) {
        put(byte)
        if byte == 0xFD && previous1 == 0xFF && previous2 == 0xFF { put(0xFD) }
        previous2 = previous1
        previous1 = byte
    }

    /// Appends a 16-bit little-endian value.
    @inlinable
    public mutating func append(uint16 value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    /// Appends a 32-bit little-endian value.
    @inlinable
    public mutating func append(uint32 value: UInt32) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 24))
    }

    /// Appends raw bytes.
    @inlinable
    public mutating func append(bytes: UnsafeRawBufferPointer) {
        for b in bytes { append(b) }
    }

    /// Writes LEN now (``finish()`` writes the final value anyway), so that a running CRC taken before
    /// the end covers the real header, as a servo that already knows the total length would send it.
    @inlinable
    public mutating func presetLength(_ length: Int) {
        guard out.count >= Dynamixel.headerLength else { return }
        out[5] = UInt8(truncatingIfNeeded: length)
        out[6] = UInt8(truncatingIfNeeded: length >> 8)
    }

    /// Appends the CRC of everything written so far (used between the entries of a FAST_SYNC_READ reply).
    @inlinable
    public mutating func appendRunningCRC() {
        let crc = Dynamixel.crc16(UnsafeRawBufferPointer(rebasing: out[0..<Swift.min(count, out.count)]))
        append(uint16: crc)
    }

    /// Patches LEN, appends the CRC and returns the packet's total length in bytes.
    @inlinable
    public mutating func finish() throws(CodecError) -> Int {
        if overflow { throw .bufferTooSmall(needed: out.count + 1) }
        let length = count - Dynamixel.headerLength + 2
        if length > 0xFFFF { throw .packetTooLong }
        out[5] = UInt8(truncatingIfNeeded: length)
        out[6] = UInt8(truncatingIfNeeded: length >> 8)
        let crc = Dynamixel.crc16(UnsafeRawBufferPointer(rebasing: out[0..<count]))
        out[count] = UInt8(truncatingIfNeeded: crc)
        out[count + 1] = UInt8(truncatingIfNeeded: crc >> 8)
        count += 2
        return count
    }
}

/// One entry of a BULK_READ / BULK_WRITE: which servo, from which register, how many bytes.
public struct BulkEntry: Sendable, Equatable {
    public var id: ServoID
    public var address: UInt16
    public var length: UInt16
    public init(id: ServoID, address: UInt16, length: UInt16) {
        self.id = id
        self.address = address
        self.length = length
    }
}

// MARK: - Instruction encoders

extension Dynamixel {
    /// PING. Returns the packet length in bytes (10).
    @inlinable
    public static func encodePing(id: ServoID, into out: UnsafeMutableRawBufferPointer) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: .ping)
        return try w.finish()
    }

    /// READ `length` bytes from register `address`.
    @inlinable
    public static func encodeRead(
        id: ServoID, address: UInt16, length: UInt16, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: .read)
        w.append(uint16: address)
        w.append(uint16: length)
        return try w.finish()
    }

    /// WRITE (or REG_WRITE with `instruction: .regWrite`) `data` at register `address`.
    @inlinable
    public static func encodeWrite(
        id: ServoID, address: UInt16, data: UnsafeRawBufferPointer, instruction: Instruction = .write,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: instruction)
        w.append(uint16: address)
        w.append(bytes: data)
        return try w.finish()
    }

    /// ACTION (runs REG_WRITE-registered writes), usually to ``ServoID/broadcast``.
    @inlinable
    public static func encodeAction(id: ServoID, into out: UnsafeMutableRawBufferPointer) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: .action)
        return try w.finish()
    }

    /// REBOOT (the only way to clear a hardware error).
    @inlinable
    public static func encodeReboot(id: ServoID, into out: UnsafeMutableRawBufferPointer) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: .reboot)
        return try w.finish()
    }

    /// FACTORY_RESET with `option`: 0xFF resets everything, 0x01 all but ID, 0x02 all but ID and baud rate.
    @inlinable
    public static func encodeFactoryReset(
        id: ServoID, option: UInt8, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: .factoryReset)
        w.append(option)
        return try w.finish()
    }

    /// SYNC_READ (or FAST_SYNC_READ with `instruction: .fastSyncRead`) of `length` bytes at `address`
    /// from `ids`, sent to broadcast.
    @inlinable
    public static func encodeSyncRead(
        address: UInt16, length: UInt16, ids: UnsafeBufferPointer<ServoID>, instruction: Instruction = .syncRead,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: ServoID.broadcast, instruction: instruction)
        w.append(uint16: address)
        w.append(uint16: length)
        for id in ids { w.append(id) }
        return try w.finish()
    }

    /// SYNC_WRITE of `length` bytes at `address`: servo `ids[i]` gets `data[i*length ..< (i+1)*length]`.
    @inlinable
    public static func encodeSyncWrite(
        address: UInt16, length: UInt16, ids: UnsafeBufferPointer<ServoID>, data: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        let n = Int(length)
        if data.count < ids.count * n { throw .invalidArgument }
        var w = DynamixelPacketWriter(into: out, id: ServoID.broadcast, instruction: .syncWrite)
        w.append(uint16: address)
        w.append(uint16: length)
        for i in 0..<ids.count {
            w.append(ids[i])
            w.append(bytes: UnsafeRawBufferPointer(rebasing: data[i * n..<(i + 1) * n]))
        }
        return try w.finish()
    }

    /// BULK_READ (or FAST_BULK_READ): per entry `id addr(2) len(2)`.
    @inlinable
    public static func encodeBulkRead(
        entries: UnsafeBufferPointer<BulkEntry>, instruction: Instruction = .bulkRead,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: ServoID.broadcast, instruction: instruction)
        for e in entries {
            w.append(e.id)
            w.append(uint16: e.address)
            w.append(uint16: e.length)
        }
        return try w.finish()
    }

    /// BULK_WRITE: per entry `id addr(2) len(2) data[len]`; `data` holds the entries' bytes back to back.
    @inlinable
    public static func encodeBulkWrite(
        entries: UnsafeBufferPointer<BulkEntry>, data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var total = 0
        for e in entries { total += Int(e.length) }
        if data.count < total { throw .invalidArgument }
        var w = DynamixelPacketWriter(into: out, id: ServoID.broadcast, instruction: .bulkWrite)
        var offset = 0
        for e in entries {
            w.append(e.id)
            w.append(uint16: e.address)
            w.append(uint16: e.length)
            let n = Int(e.length)
            w.append(bytes: UnsafeRawBufferPointer(rebasing: data[offset..<offset + n]))
            offset += n
        }
        return try w.finish()
    }

    /// A status packet (what a servo sends back): `error` byte then `parameters`.
    @inlinable
    public static func encodeStatus(
        id: ServoID, error: UInt8, parameters: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = DynamixelPacketWriter(into: out, id: id, instruction: .status)
        w.append(error)
        w.append(bytes: parameters)
        return try w.finish()
    }

    /// The combined FAST_SYNC_READ reply (ID 0xFE): for each servo `ERR ID data[length]`, entries
    /// separated by the running CRC of the packet so far; the last entry's CRC is the packet CRC.
    /// `errors[i]`, `ids[i]` and `data[i*length ..< (i+1)*length]` describe servo i.
    @inlinable
    public static func encodeFastSyncReadReply(
        ids: UnsafeBufferPointer<ServoID>, errors: UnsafeBufferPointer<UInt8>, length: UInt16,
        data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        let n = Int(length)
        if errors.count < ids.count || data.count < ids.count * n { throw .invalidArgument }
        var w = DynamixelPacketWriter(into: out, id: ServoID.broadcast, instruction: .status)
        // Without stuffing this is the final LEN, so each intermediate CRC is the CRC of the packet so far.
        w.presetLength(ids.count * (4 + n) + 1)
        for i in 0..<ids.count {
            if i > 0 { w.appendRunningCRC() }
            w.append(errors[i])
            w.append(ids[i])
            w.append(bytes: UnsafeRawBufferPointer(rebasing: data[i * n..<(i + 1) * n]))
        }
        return try w.finish()
    }

    /// Bytes on the wire of a status packet with `parameterCount` parameters (without stuffing).
    @inlinable
    public static func statusPacketLength(parameterCount: Int) -> Int { statusOverhead + parameterCount }

    /// Bytes on the wire of a FAST_SYNC_READ reply for `servoCount` servos reading `length` bytes.
    @inlinable
    public static func fastSyncReplyLength(servoCount: Int, length: Int) -> Int { 8 + servoCount * (4 + length) }
}

// MARK: - Decoding

/// A decoded, CRC-checked, unstuffed Dynamixel packet. `payload` is every byte after INST (for a status
/// packet: the error byte, then the parameters) and points into the decoder's buffer.
public struct DynamixelFrame {
    public var id: ServoID
    public var instruction: Instruction
    public var payload: UnsafeRawBufferPointer

    public init(id: ServoID, instruction: Instruction, payload: UnsafeRawBufferPointer) {
        self.id = id
        self.instruction = instruction
        self.payload = payload
    }

    /// True for a status (reply) packet.
    @inlinable public var isStatus: Bool { instruction == .status }

    /// The status error byte (0 for an instruction packet or an empty status).
    @inlinable public var statusError: UInt8 { isStatus && payload.count > 0 ? payload[0] : 0 }

    /// The status parameters (after the error byte); for an instruction packet, all parameters.
    @inlinable
    public var parameters: UnsafeRawBufferPointer {
        if isStatus {
            return payload.count > 0 ? UnsafeRawBufferPointer(rebasing: payload[1...]) : payload
        }
        return payload
    }
}

/// A parsed instruction packet, for a servo (or a virtual one) to act on. Byte views point into the frame.
public enum DynamixelRequest {
    case ping
    case read(address: UInt16, length: UInt16)
    case write(address: UInt16, data: UnsafeRawBufferPointer)
    case regWrite(address: UInt16, data: UnsafeRawBufferPointer)
    case action
    case factoryReset(option: UInt8)
    case reboot
    case clear(parameters: UnsafeRawBufferPointer)
    /// `ids` are one byte each, in reply order.
    case syncRead(address: UInt16, length: UInt16, ids: UnsafeRawBufferPointer)
    case fastSyncRead(address: UInt16, length: UInt16, ids: UnsafeRawBufferPointer)
    /// `records` are `id data[length]` back to back; see ``DynamixelRequest/syncWriteData(for:)``.
    case syncWrite(address: UInt16, length: UInt16, records: UnsafeRawBufferPointer)
    /// `records` are `id addr(2) len(2)` (5 bytes each).
    case bulkRead(records: UnsafeRawBufferPointer)
    case fastBulkRead(records: UnsafeRawBufferPointer)
    /// `records` are `id addr(2) len(2) data[len]`.
    case bulkWrite(records: UnsafeRawBufferPointer)
    /// Parameters too short for the instruction, or an unknown instruction.
    case malformed(instruction: Instruction)

    /// Parses an instruction frame.
    @inlinable
    public init(_ frame: DynamixelFrame) {
        let p = frame.payload
        switch frame.instruction {
        case .ping: self = .ping
        case .read:
            self =
                p.count >= 4
                ? .read(address: p.loadUInt16(at: 0), length: p.loadUInt16(at: 2)) : .malformed(instruction: .read)
        case .write, .regWrite:
            guard p.count >= 2 else {
                self = .malformed(instruction: frame.instruction)
                return
            }
            let data = UnsafeRawBufferPointer(rebasing: p[2...])
            self =
                frame.instruction == .write
                ? .write(address: p.loadUInt16(at: 0), data: data) : .regWrite(address: p.loadUInt16(at: 0), data: data)
        case .action: self = .action
        case .factoryReset: self = .factoryReset(option: p.count > 0 ? p[0] : 0xFF)
        case .reboot: self = .reboot
        case .clear: self = .clear(parameters: p)
        case .syncRead, .fastSyncRead:
            guard p.count >= 4 else {
                self = .malformed(instruction: frame.instruction)
                return
            }
            let ids = UnsafeRawBufferPointer(rebasing: p[4...])
            let (a, l) = (p.loadUInt16(at: 0), p.loadUInt16(at: 2))
            self =
                frame.instruction == .syncRead
                ? .syncRead(address: a, length: l, ids: ids) : .fastSyncRead(address: a, length: l, ids: ids)
        case .syncWrite:
            guard p.count >= 4, p.loadUInt16(at: 2) > 0, (p.count - 4) % (Int(p.loadUInt16(at: 2)) + 1) == 0 else {
                self = .malformed(instruction: .syncWrite)
                return
            }
            self = .syncWrite(
                address: p.loadUInt16(at: 0), length: p.loadUInt16(at: 2),
                records: UnsafeRawBufferPointer(rebasing: p[4...]))
        case .bulkRead, .fastBulkRead:
            guard p.count % 5 == 0 else {
                self = .malformed(instruction: frame.instruction)
                return
            }
            self = frame.instruction == .bulkRead ? .bulkRead(records: p) : .fastBulkRead(records: p)
        case .bulkWrite: self = .bulkWrite(records: p)
        default: self = .malformed(instruction: frame.instruction)
        }
    }

    /// For a sync write: the data addressed to `id`, if any.
    @inlinable
    public func syncWriteData(for id: ServoID) -> UnsafeRawBufferPointer? {
        guard case .syncWrite(_, let length, let records) = self else { return nil }
        let stride = Int(length) + 1
        var i = 0
        while i + stride <= records.count {
            if records[i] == id { return UnsafeRawBufferPointer(rebasing: records[i + 1..<i + stride]) }
            i += stride
        }
        return nil
    }

    /// For a bulk read: the `(address, length)` asked of `id`, if any.
    @inlinable
    public func bulkReadEntry(for id: ServoID) -> (address: UInt16, length: UInt16)? {
        let records: UnsafeRawBufferPointer
        switch self {
        case .bulkRead(let r), .fastBulkRead(let r): records = r
        default: return nil
        }
        var i = 0
        while i + 5 <= records.count {
            if records[i] == id { return (records.loadUInt16(at: i + 1), records.loadUInt16(at: i + 3)) }
            i += 5
        }
        return nil
    }

    /// For a bulk write: the `(address, data)` addressed to `id`, if any.
    @inlinable
    public func bulkWriteEntry(for id: ServoID) -> (address: UInt16, data: UnsafeRawBufferPointer)? {
        guard case .bulkWrite(let records) = self else { return nil }
        var i = 0
        while i + 5 <= records.count {
            let n = Int(records.loadUInt16(at: i + 3))
            guard i + 5 + n <= records.count else { return nil }
            if records[i] == id {
                return (records.loadUInt16(at: i + 1), UnsafeRawBufferPointer(rebasing: records[i + 5..<i + 5 + n]))
            }
            i += 5 + n
        }
        return nil
    }

    /// For a sync read or fast sync read: the position of `id` in the list (its reply order), if listed.
    @inlinable
    public func syncReadIndex(of id: ServoID) -> Int? {
        switch self {
        case .syncRead(_, _, let ids), .fastSyncRead(_, _, let ids):
            for i in 0..<ids.count where ids[i] == id { return i }
            return nil
        default: return nil
        }
    }
}

/// One servo's part of a FAST_SYNC_READ reply.
public struct FastSyncEntry {
    public var id: ServoID
    public var error: UInt8
    public var data: UnsafeRawBufferPointer

    public init(id: ServoID, error: UInt8, data: UnsafeRawBufferPointer) {
        self.id = id
        self.error = error
        self.data = data
    }
}

extension DynamixelFrame {
    /// Splits a FAST_SYNC_READ reply (status from ID 0xFE) into entries of `length` data bytes, calling
    /// `body` for each. Returns the number of entries, or nil if the payload does not have that shape.
    /// The intermediate CRCs are not checked separately: the packet CRC covers them.
    @inlinable
    public func forEachFastSyncEntry(length: Int, _ body: (FastSyncEntry) -> Void) -> Int? {
        guard isStatus else { return nil }
        let p = payload
        let entry = 2 + length
        // N entries take N·entry bytes plus 2 CRC bytes between consecutive entries.
        guard p.count >= entry, (p.count + 2) % (entry + 2) == 0 else { return nil }
        let n = (p.count + 2) / (entry + 2)
        for i in 0..<n {
            let o = i * (entry + 2)
            body(FastSyncEntry(id: p[o + 1], error: p[o], data: UnsafeRawBufferPointer(rebasing: p[o + 2..<o + entry])))
        }
        return n
    }
}

/// Finds Dynamixel 2.0 packets in a byte stream: resynchronises after garbage, waits across split reads,
/// separates concatenated packets, checks the CRC on the stuffed bytes and unstuffs in place.
/// Fixed capacity, allocation-free after init. Not thread-safe: one reader.
public final class DynamixelStreamDecoder {
    // One reader by contract; dynamic exclusivity checks cost more than the decoding itself.
    @exclusivity(unchecked) @usableFromInline var window: ByteWindow
    /// Bytes skipped while looking for a header (garbage), since init or ``resetStatistics()``.
    @exclusivity(unchecked) public private(set) var discardedBytes = 0
    /// Complete packets whose CRC did not match.
    @exclusivity(unchecked) public private(set) var corruptPackets = 0
    /// Candidate packets longer than this many bytes (whole packet) are treated as garbage. A bus master
    /// sets it to the longest reply it expects, so a false header with a huge LEN inside garbage cannot
    /// hold back the real reply until the deadline. Defaults to the capacity.
    @exclusivity(unchecked) public var maximumPacketLength: Int

    /// `capacity` bounds the largest packet that can be decoded (header + LEN).
    public init(capacity: Int = 1024) {
        window = ByteWindow(capacity: capacity)
        maximumPacketLength = window.capacity
    }

    deinit { window.deallocate() }

    /// Bytes buffered and not yet consumed.
    public var bufferedCount: Int { window.count }

    /// The fixed buffer size in bytes.
    public var capacity: Int { window.capacity }

    /// True when the buffer starts with a plausible header whose packet has not fully arrived.
    public var hasPartialPacket: Bool {
        let b = window.base + window.start
        return window.count >= 4 && b[0] == 0xFF && b[1] == 0xFF && b[2] == 0xFD && b[3] == 0
    }

    /// Room to read into; call ``commit(_:)`` with the number of bytes written.
    public func writableBuffer(minimum: Int = 64) -> UnsafeMutableRawBufferPointer {
        let (buffer, dropped) = window.writableTail(minimum: minimum)
        discardedBytes += dropped
        return buffer
    }

    /// Declares `count` bytes written into ``writableBuffer(minimum:)``.
    public func commit(_ count: Int) { window.commit(count) }

    /// Copies `bytes` in (splitting as needed) — convenience for tests and in-memory sources.
    /// Returns how many bytes were taken (fewer only if `bytes` exceeds the capacity in one go).
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let room = writableBuffer(minimum: Swift.min(bytes.count, window.capacity))
        let n = Swift.min(room.count, bytes.count)
        if n > 0 { room.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        commit(n)
        return n
    }

    /// Forgets every buffered byte.
    public func reset() { window.reset() }

    /// Zeroes ``discardedBytes`` and ``corruptPackets``.
    public func resetStatistics() {
        discardedBytes = 0
        corruptPackets = 0
    }

    /// The next event from the buffered bytes.
    public func next() -> StreamEvent<DynamixelFrame> {
        while true {
            let b = window.base + window.start
            let avail = window.count
            // Look for FF FF FD 00; keep a tail that could still become a header.
            var i = 0
            var found = false
            while i + 4 <= avail {
                if b[i] == 0xFF && b[i + 1] == 0xFF && b[i + 2] == 0xFD && b[i + 3] == 0x00 {
                    found = true
                    break
                }
                i += 1
            }
            if !found {
                // Keep the longest suffix that is a prefix of the header.
                var keep = 0
                if avail >= 3 && b[avail - 3] == 0xFF && b[avail - 2] == 0xFF && b[avail - 1] == 0xFD {
                    keep = 3
                } else if avail >= 2 && b[avail - 2] == 0xFF && b[avail - 1] == 0xFF {
                    keep = 2
                } else if avail >= 1 && b[avail - 1] == 0xFF {
                    keep = 1
                }
                skip(avail - keep)
                return .needMoreData
            }
            if i > 0 {
                skip(i)
                continue
            }
            if avail < Dynamixel.headerLength { return .needMoreData }
            let id = b[4]
            let length = Int(b[5]) | Int(b[6]) << 8
            if id == 0xFF || id == 0xFD || length < 3
                || Dynamixel.headerLength + length > Swift.min(window.capacity, maximumPacketLength)
            {
                skip(1)
                continue
            }
            let total = Dynamixel.headerLength + length
            if avail < total { return .needMoreData }
            let crcOffset = total - 2
            let expected = UInt16(b[crcOffset]) | UInt16(b[crcOffset + 1]) << 8
            let actual = Dynamixel.crc16(UnsafeRawBufferPointer(start: b, count: crcOffset))
            let code = b[7]
            if expected != actual {
                corruptPackets += 1
                // The real packet may begin inside this bogus one: skip only the header's first byte.
                skip(1)
                discardedBytes -= 1
                return .corrupt(id: id, code: code)
            }
            // Unstuff the body (INST … last parameter) in place: after FF FF FD, a further FD is stuffing.
            // Most packets have none; memchr finds the rare FD bytes faster than a byte loop.
            var write = crcOffset
            var read = crcOffset
            var search = b + Dynamixel.headerLength + 2
            while search < b + crcOffset {
                guard let hit = memchr(search, 0xFD, b + crcOffset - search) else { break }
                let at = hit.assumingMemoryBound(to: UInt8.self)
                if at[-1] == 0xFF && at[-2] == 0xFF {
                    write = Dynamixel.headerLength
                    read = Dynamixel.headerLength
                    break
                }
                search = at + 1
            }
            var previous1: UInt8 = 0
            var previous2: UInt8 = 0
            while read < crcOffset {
                let byte = b[read]
                read += 1
                b[write] = byte
                write += 1
                if byte == 0xFD && previous1 == 0xFF && previous2 == 0xFF && read < crcOffset && b[read] == 0xFD {
                    read += 1
                }
                previous2 = previous1
                previous1 = byte
            }
            let frame = DynamixelFrame(
                id: id, instruction: Instruction(rawValue: code),
                payload: UnsafeRawBufferPointer(start: b + 8, count: write - 8))
            window.start += total
            if window.start == window.end { window.reset() }
            return .frame(frame)
        }
    }

    @inline(__always)
    func skip(_ n: Int) {
        window.start += n
        discardedBytes += n
        if window.start == window.end { window.reset() }
    }
}
