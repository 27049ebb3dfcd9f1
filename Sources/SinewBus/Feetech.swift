/// Feetech SCS/STS/SMS codec (see docs/protocols.md): `FF FF ID LEN INST|ERR params CHK` with
/// `LEN = params + 2` and `CHK = ~(ID + LEN + INST + Σparams)`. STS/SMS registers are little-endian,
/// SCS big-endian: pass the series' ``ByteOrder`` where a multi-byte value is written or read.
public enum Feetech {
    /// Bytes of a packet without parameters: FF FF ID LEN INST/ERR CHK.
    public static let overhead = 6

    /// Error bits of a status packet (hardware conditions).
    public static let errorVoltage: UInt8 = 1
    public static let errorAngle: UInt8 = 2
    public static let errorOverheat: UInt8 = 4
    public static let errorOvercurrent: UInt8 = 8
    public static let errorOverload: UInt8 = 32

    /// The checksum of `id`, `length`, `code` and `parameters`.
    @inlinable
    public static func checksum(id: UInt8, length: UInt8, code: UInt8, parameters: UnsafeRawBufferPointer) -> UInt8 {
        var sum = UInt(id) &+ UInt(length) &+ UInt(code)
        for b in parameters { sum &+= UInt(b) }
        return ~UInt8(truncatingIfNeeded: sum)
    }
}

/// Builds one Feetech packet in place; ``finish()`` patches LEN and appends the checksum.
public struct FeetechPacketWriter {
    @usableFromInline let out: UnsafeMutableRawBufferPointer
    @usableFromInline var count: Int
    @usableFromInline var overflow = false
    @usableFromInline let order: ByteOrder

    /// Starts a packet for `id`; `code` is the instruction, or the error byte for a status packet.
    @inlinable
    public init(into out: UnsafeMutableRawBufferPointer, id: ServoID, code: UInt8, byteOrder: ByteOrder = .littleEndian)
    {
        self.out = out
        order = byteOrder
        count = 0
        if out.count < Feetech.overhead {
            overflow = true
            return
        }
        out[0] = 0xFF
        out[1] = 0xFF
        out[2] = id
        out[3] = 0
        out[4] = code
        count = 5
    }

    @inlinable public var byteCount: Int { count }

    @inlinable
    public mutating func append(_ byte: UInt8) {
        if count + 1 >= out.count || count >= 4 + 254 {
            overflow = true
            return
        }
        out[count] = byte
        count += 1
    }

    /// Appends a 16-bit value in the writer's byte order.
    @inlinable
    public mutating func append(uint16 value: UInt16) {
        let lo = UInt8(truncatingIfNeeded: value)
        let hi = UInt8(truncatingIfNeeded: value >> 8)
        if order == .littleEndian {
            append(lo)
            append(hi)
        } else {
            append(hi)
            append(lo)
        }
    }

    @inlinable
    public mutating func append(bytes: UnsafeRawBufferPointer) {
        for b in bytes { append(b) }
    }

    /// Patches LEN, appends the checksum and returns the packet length in bytes.
    @inlinable
    public mutating func finish() throws(CodecError) -> Int {
        if overflow { throw count >= 4 + 254 ? .packetTooLong : .bufferTooSmall(needed: out.count + 1) }
        let length = count - 3
        out[3] = UInt8(length)
        var sum: UInt = 0
        for i in 2..<count { sum &+= UInt(out[i]) }
        out[count] = ~UInt8(truncatingIfNeeded: sum)
        count += 1
        return count
    }
}

extension Feetech {
    /// PING. Returns the packet length (6).
    @inlinable
    public static func encodePing(id: ServoID, into out: UnsafeMutableRawBufferPointer) throws(CodecError) -> Int {
        var w = FeetechPacketWriter(into: out, id: id, code: Instruction.ping.rawValue)
        return try w.finish()
    }

    /// READ `length` bytes at `address` (both one byte on this protocol).
    @inlinable
    public static func encodeRead(
        id: ServoID, address: UInt8, length: UInt8, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = FeetechPacketWriter(into: out, id: id, code: Instruction.read.rawValue)
        w.append(address)
        w.append(length)
        return try w.finish()
    }

    /// WRITE (or REG_WRITE) `data` at `address`; `data` is already in the series' byte order.
    @inlinable
    public static func encodeWrite(
        id: ServoID, address: UInt8, data: UnsafeRawBufferPointer, instruction: Instruction = .write,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = FeetechPacketWriter(into: out, id: id, code: instruction.rawValue)
        w.append(address)
        w.append(bytes: data)
        return try w.finish()
    }

    /// ACTION, usually to broadcast.
    @inlinable
    public static func encodeAction(id: ServoID, into out: UnsafeMutableRawBufferPointer) throws(CodecError) -> Int {
        var w = FeetechPacketWriter(into: out, id: id, code: Instruction.action.rawValue)
        return try w.finish()
    }

    /// SYNC_READ of `length` bytes at `address` from `ids` (each replies with its own packet, in order).
    @inlinable
    public static func encodeSyncRead(
        address: UInt8, length: UInt8, ids: UnsafeBufferPointer<ServoID>, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = FeetechPacketWriter(into: out, id: ServoID.broadcast, code: Instruction.syncRead.rawValue)
        w.append(address)
        w.append(length)
        for id in ids { w.append(id) }
        return try w.finish()
    }

    /// SYNC_WRITE: servo `ids[i]` gets `data[i*length ..< (i+1)*length]`.
    @inlinable
    public static func encodeSyncWrite(
        address: UInt8, length: UInt8, ids: UnsafeBufferPointer<ServoID>, data: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        let n = Int(length)
        if data.count < ids.count * n { throw .invalidArgument }
        var w = FeetechPacketWriter(into: out, id: ServoID.broadcast, code: Instruction.syncWrite.rawValue)
        w.append(address)
        w.append(length)
        for i in 0..<ids.count {
            w.append(ids[i])
            w.append(bytes: UnsafeRawBufferPointer(rebasing: data[i * n..<(i + 1) * n]))
        }
        return try w.finish()
    }

    /// A status packet: `error` byte then `parameters`.
    @inlinable
    public static func encodeStatus(
        id: ServoID, error: UInt8, parameters: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer
    ) throws(CodecError) -> Int {
        var w = FeetechPacketWriter(into: out, id: id, code: error)
        w.append(bytes: parameters)
        return try w.finish()
    }

    /// Bytes on the wire of a status packet with `parameterCount` parameters.
    @inlinable
    public static func statusPacketLength(parameterCount: Int) -> Int { overhead + parameterCount }
}

/// A decoded, checksum-verified Feetech packet. The wire format does not say whether it is an
/// instruction or a status: `code` is the instruction byte of a request or the error byte of a reply.
public struct FeetechFrame {
    public var id: ServoID
    public var code: UInt8
    public var parameters: UnsafeRawBufferPointer

    public init(id: ServoID, code: UInt8, parameters: UnsafeRawBufferPointer) {
        self.id = id
        self.code = code
        self.parameters = parameters
    }

    /// `code` read as an instruction.
    @inlinable public var instruction: Instruction { Instruction(rawValue: code) }
    /// `code` read as a status error byte.
    @inlinable public var statusError: UInt8 { code }
}

/// A parsed Feetech instruction packet.
public enum FeetechRequest {
    case ping
    case read(address: UInt8, length: UInt8)
    case write(address: UInt8, data: UnsafeRawBufferPointer)
    case regWrite(address: UInt8, data: UnsafeRawBufferPointer)
    case action
    /// `ids` one byte each, in reply order.
    case syncRead(address: UInt8, length: UInt8, ids: UnsafeRawBufferPointer)
    /// `records` are `id data[length]` back to back.
    case syncWrite(address: UInt8, length: UInt8, records: UnsafeRawBufferPointer)
    case malformed(instruction: Instruction)

    @inlinable
    public init(_ frame: FeetechFrame) {
        let p = frame.parameters
        switch frame.instruction {
        case .ping: self = .ping
        case .read: self = p.count >= 2 ? .read(address: p[0], length: p[1]) : .malformed(instruction: .read)
        case .write, .regWrite:
            guard p.count >= 1 else {
                self = .malformed(instruction: frame.instruction)
                return
            }
            let data = UnsafeRawBufferPointer(rebasing: p[1...])
            self =
                frame.instruction == .write ? .write(address: p[0], data: data) : .regWrite(address: p[0], data: data)
        case .action: self = .action
        case .syncRead:
            self =
                p.count >= 2
                ? .syncRead(address: p[0], length: p[1], ids: UnsafeRawBufferPointer(rebasing: p[2...]))
                : .malformed(instruction: .syncRead)
        case .syncWrite:
            guard p.count >= 2, p[1] > 0, (p.count - 2) % (Int(p[1]) + 1) == 0 else {
                self = .malformed(instruction: .syncWrite)
                return
            }
            self = .syncWrite(address: p[0], length: p[1], records: UnsafeRawBufferPointer(rebasing: p[2...]))
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

    /// For a sync read: the position of `id` in the list (its reply order), if listed.
    @inlinable
    public func syncReadIndex(of id: ServoID) -> Int? {
        guard case .syncRead(_, _, let ids) = self else { return nil }
        for i in 0..<ids.count where ids[i] == id { return i }
        return nil
    }
}

/// Finds Feetech packets in a byte stream (resync after garbage, split reads, concatenated packets).
/// Fixed capacity, allocation-free after init. One reader.
public final class FeetechStreamDecoder {
    // One reader by contract; dynamic exclusivity checks cost more than the decoding itself.
    @exclusivity(unchecked) @usableFromInline var window: ByteWindow
    /// Bytes skipped while looking for a header (garbage).
    @exclusivity(unchecked) public private(set) var discardedBytes = 0
    /// Complete packets whose checksum did not match.
    @exclusivity(unchecked) public private(set) var corruptPackets = 0
    /// Candidate packets longer than this many bytes (whole packet) are treated as garbage. A bus master
    /// sets it to the longest reply it expects, so a false header with a huge LEN inside garbage cannot
    /// hold back the real reply until the deadline. Defaults to the capacity.
    @exclusivity(unchecked) public var maximumPacketLength: Int

    public init(capacity: Int = 1024) {
        window = ByteWindow(capacity: Swift.max(capacity, 260))
        maximumPacketLength = window.capacity
    }

    deinit { window.deallocate() }

    public var bufferedCount: Int { window.count }

    /// The fixed buffer size in bytes.
    public var capacity: Int { window.capacity }

    /// True when the buffer starts with a plausible header whose packet has not fully arrived.
    public var hasPartialPacket: Bool {
        let b = window.base + window.start
        return window.count >= 2 && b[0] == 0xFF && b[1] == 0xFF
    }

    public func writableBuffer(minimum: Int = 64) -> UnsafeMutableRawBufferPointer {
        let (buffer, dropped) = window.writableTail(minimum: minimum)
        discardedBytes += dropped
        return buffer
    }

    public func commit(_ count: Int) { window.commit(count) }

    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let room = writableBuffer(minimum: Swift.min(bytes.count, window.capacity))
        let n = Swift.min(room.count, bytes.count)
        if n > 0 { room.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        commit(n)
        return n
    }

    public func reset() { window.reset() }

    public func resetStatistics() {
        discardedBytes = 0
        corruptPackets = 0
    }

    public func next() -> StreamEvent<FeetechFrame> {
        while true {
            let b = window.base + window.start
            let avail = window.count
            var i = 0
            var found = false
            while i + 2 <= avail {
                if b[i] == 0xFF && b[i + 1] == 0xFF {
                    found = true
                    break
                }
                i += 1
            }
            if !found {
                let keep = avail >= 1 && b[avail - 1] == 0xFF ? 1 : 0
                skip(avail - keep)
                return .needMoreData
            }
            if i > 0 {
                skip(i)
                continue
            }
            if avail < 4 { return .needMoreData }
            let id = b[2]
            let length = Int(b[3])
            // FF FF FF …: the header may start one byte later.
            if id == 0xFF || length < 2 || 4 + length > maximumPacketLength {
                skip(1)
                continue
            }
            let total = 4 + length
            if avail < total { return .needMoreData }
            var sum: UInt = 0
            for k in 2..<(total - 1) { sum &+= UInt(b[k]) }
            let code = b[4]
            if ~UInt8(truncatingIfNeeded: sum) != b[total - 1] {
                corruptPackets += 1
                skip(1)
                discardedBytes -= 1
                return .corrupt(id: id, code: code)
            }
            let frame = FeetechFrame(
                id: id, code: code, parameters: UnsafeRawBufferPointer(start: b + 5, count: length - 2))
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
