/// A servo's bus address. Dynamixel 2.0 uses 0–252, Feetech 0–253; ``broadcast`` (0xFE) addresses all.
public typealias ServoID = UInt8

extension ServoID {
    /// The broadcast ID of both protocols; servos do not answer broadcast READ/WRITE.
    public static let broadcast: UInt8 = 0xFE
}

/// An instruction code. Both protocols share the codes they have in common.
public struct Instruction: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let ping = Instruction(rawValue: 0x01)
    public static let read = Instruction(rawValue: 0x02)
    public static let write = Instruction(rawValue: 0x03)
    public static let regWrite = Instruction(rawValue: 0x04)
    public static let action = Instruction(rawValue: 0x05)
    /// Dynamixel only.
    public static let factoryReset = Instruction(rawValue: 0x06)
    /// Dynamixel only.
    public static let reboot = Instruction(rawValue: 0x08)
    /// Dynamixel only.
    public static let clear = Instruction(rawValue: 0x10)
    /// Dynamixel only: the instruction byte of every status packet.
    public static let status = Instruction(rawValue: 0x55)
    public static let syncRead = Instruction(rawValue: 0x82)
    public static let syncWrite = Instruction(rawValue: 0x83)
    /// Dynamixel only.
    public static let fastSyncRead = Instruction(rawValue: 0x8A)
    /// Dynamixel only.
    public static let bulkRead = Instruction(rawValue: 0x92)
    /// Dynamixel only.
    public static let bulkWrite = Instruction(rawValue: 0x93)
    /// Dynamixel only.
    public static let fastBulkRead = Instruction(rawValue: 0x9A)

    public var description: String {
        switch rawValue {
        case 0x01: return "PING"
        case 0x02: return "READ"
        case 0x03: return "WRITE"
        case 0x04: return "REG_WRITE"
        case 0x05: return "ACTION"
        case 0x06: return "FACTORY_RESET"
        case 0x08: return "REBOOT"
        case 0x10: return "CLEAR"
        case 0x55: return "STATUS"
        case 0x82: return "SYNC_READ"
        case 0x83: return "SYNC_WRITE"
        case 0x8A: return "FAST_SYNC_READ"
        case 0x92: return "BULK_READ"
        case 0x93: return "BULK_WRITE"
        case 0x9A: return "FAST_BULK_READ"
        default: return "INST(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// Why an encoder could not produce a packet.
public enum CodecError: Error, Sendable, Equatable {
    /// The caller's output buffer is smaller than the packet (`needed` is a lower bound in bytes).
    case bufferTooSmall(needed: Int)
    /// The packet would exceed the protocol's length field (Feetech: 255; Dynamixel: 65535).
    case packetTooLong
    /// Mismatched argument sizes, e.g. sync-write data that is not `ids.count × length` bytes.
    case invalidArgument
}

/// Byte order of multi-byte register values on the wire.
public enum ByteOrder: Sendable, Equatable {
    /// Dynamixel and Feetech STS/SMS.
    case littleEndian
    /// Feetech SCS.
    case bigEndian
}

/// Reads and writes register values in a given byte order.
extension UnsafeRawBufferPointer {
    /// The unsigned 16-bit value at `offset` (bounds-checked by the caller).
    @inlinable
    public func loadUInt16(at offset: Int, _ order: ByteOrder = .littleEndian) -> UInt16 {
        let a = UInt16(self[offset])
        let b = UInt16(self[offset + 1])
        return order == .littleEndian ? a | b << 8 : a << 8 | b
    }

    /// The unsigned 32-bit little-endian value at `offset`.
    @inlinable
    public func loadUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }
}

/// Sign-magnitude register fields (Feetech): the sign is one bit, the rest is the magnitude.
public enum SignMagnitude {
    /// Decodes `raw` whose sign lives at bit `signBit` (15 for positions/velocities, 11 for the homing
    /// offset, 10 for the load). Bits above the sign bit are ignored.
    @inlinable
    public static func decode(_ raw: UInt16, signBit: Int) -> Int {
        let magnitude = Int(raw & ((1 << UInt16(signBit)) - 1))
        return raw & (1 << UInt16(signBit)) != 0 ? -magnitude : magnitude
    }

    /// Encodes `value`, saturating the magnitude to what fits below `signBit`.
    @inlinable
    public static func encode(_ value: Int, signBit: Int) -> UInt16 {
        let limit = (1 << signBit) - 1
        let magnitude = UInt16(Swift.min(value.magnitude, UInt(limit)))
        return value < 0 ? magnitude | (1 << UInt16(signBit)) : magnitude
    }
}

/// A fixed-capacity byte accumulator for the streaming decoders: bytes arrive at the tail, packets are
/// consumed from the head, and the live region is moved to the front when the tail runs out of room.
/// Never grows; when full, the oldest bytes are dropped (they could only have been garbage or a
/// packet longer than the capacity).
@usableFromInline
struct ByteWindow {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>
    @usableFromInline let capacity: Int
    @usableFromInline var start = 0
    @usableFromInline var end = 0

    init(capacity: Int) {
        self.capacity = Swift.max(capacity, 16)
        base = .allocate(capacity: self.capacity)
        base.initialize(repeating: 0, count: self.capacity)
    }

    func deallocate() { base.deallocate() }

    @inlinable var count: Int { end - start }

    /// Room at the tail for a read, compacting first; drops the oldest bytes when the window is full.
    /// Returns the room and how many bytes had to be dropped.
    @inlinable
    mutating func writableTail(minimum: Int) -> (UnsafeMutableRawBufferPointer, dropped: Int) {
        var dropped = 0
        if capacity - end < minimum {
            if start > 0 {
                let live = end - start
                if live > 0 { (base).update(from: base + start, count: live) }
                start = 0
                end = live
            }
            if capacity - end < minimum {
                dropped = Swift.min(end, minimum - (capacity - end))
                let live = end - dropped
                if live > 0 { base.update(from: base + dropped, count: live) }
                end = live
            }
        }
        return (UnsafeMutableRawBufferPointer(start: base + end, count: capacity - end), dropped)
    }

    @inlinable
    mutating func commit(_ n: Int) { end = Swift.min(end + n, capacity) }

    @inlinable
    mutating func reset() {
        start = 0
        end = 0
    }
}

/// Stream decoders deliver these.
public enum StreamEvent<Frame> {
    /// A complete, checksum-verified packet. Its byte views point into the decoder and stay valid only
    /// until the next call that mutates the decoder.
    case frame(Frame)
    /// A complete packet whose checksum did not match (already skipped). `id`/`code` are as received.
    case corrupt(id: UInt8, code: UInt8)
    /// No complete packet in the buffer; feed more bytes.
    case needMoreData
}
