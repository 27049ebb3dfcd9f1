import Foundation

/// Why a sample from the DDS wire was refused: what is wrong and where (byte offset into the sample).
public struct CDRDecodeError: Error, Equatable, CustomStringConvertible {
    public var reason: String
    /// Offset of the problem, bytes from the sample's first byte (its encapsulation header).
    public var offset: Int
    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }
    public var description: String { "\(reason) (at byte \(offset))" }
}

/// Reads one serialised sample the way ROS 2 writes it: a 4-byte encapsulation header (CDR_BE 00 00 or CDR_LE 00 01,
/// two option bytes), then plain CDR (XCDR1): each primitive aligned to its size counted from the byte after the
/// header, strings as a uint32 length that counts a terminating NUL, then the bytes and the NUL, sequences as a uint32
/// count then the elements. Every read is bounds-checked; counts are checked against the bytes left before anything
/// is allocated for them, and against the limits given, so no sample can make the reader allocate more than a small
/// multiple of its own size.
public struct CDRReader {
    public let bytes: UnsafeRawBufferPointer
    /// Position, bytes from the start of the sample.
    public private(set) var offset: Int
    public let littleEndian: Bool
    /// The longest string accepted, bytes.
    public var maxStringBytes = 4096

    /// Encapsulation identifiers (the first two bytes, big-endian) of the representations ROS 2 uses.
    public static let cdrBigEndian: UInt16 = 0x0000
    public static let cdrLittleEndian: UInt16 = 0x0001

    /// Starts after the encapsulation header; refuses a sample too short for one, or in a representation other than
    /// plain CDR (XCDR2's PLAIN_CDR2, DELIMITED and PL_CDR: ROS 2 neither writes nor reads them).
    public init(_ bytes: UnsafeRawBufferPointer) throws(CDRDecodeError) {
        self.bytes = bytes
        guard bytes.count >= 4 else {
            throw CDRDecodeError("shorter than the 4-byte encapsulation header (\(bytes.count) bytes)", at: 0)
        }
        let identifier = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        switch identifier {
        case Self.cdrBigEndian: littleEndian = false
        case Self.cdrLittleEndian: littleEndian = true
        case 0x0006, 0x0007, 0x0008, 0x0009, 0x000a, 0x000b:
            throw CDRDecodeError(
                "encapsulation 0x\(String(identifier, radix: 16)) is XCDR2; ROS 2 writes plain CDR (XCDR1)", at: 0)
        default:
            throw CDRDecodeError("unknown encapsulation 0x\(String(identifier, radix: 16))", at: 0)
        }
        offset = 4
    }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - offset }

    private mutating func align(_ size: Int) throws(CDRDecodeError) {
        let position = offset - 4
        let padding = (size - position % size) % size
        guard padding <= remaining else { throw CDRDecodeError("the sample ends inside padding", at: offset) }
        offset += padding
    }

    private mutating func take(_ size: Int, _ what: StaticString) throws(CDRDecodeError) -> Int {
        try align(size)
        guard size <= remaining else {
            throw CDRDecodeError("the sample ends inside \(what) (\(remaining) of \(size) bytes left)", at: offset)
        }
        defer { offset += size }
        return offset
    }

    public mutating func uint8() throws(CDRDecodeError) -> UInt8 {
        bytes[try take(1, "a byte")]
    }

    public mutating func uint32() throws(CDRDecodeError) -> UInt32 {
        let at = try take(4, "a 32-bit number")
        var value: UInt32 = 0
        for i in 0..<4 {
            let byte = UInt32(bytes[at + (littleEndian ? i : 3 - i)])
            value |= byte << UInt32(8 * i)
        }
        return value
    }

    public mutating func int32() throws(CDRDecodeError) -> Int32 { Int32(bitPattern: try uint32()) }

    public mutating func uint64() throws(CDRDecodeError) -> UInt64 {
        let at = try take(8, "a 64-bit number")
        var value: UInt64 = 0
        for i in 0..<8 {
            let byte = UInt64(bytes[at + (littleEndian ? i : 7 - i)])
            value |= byte << UInt64(8 * i)
        }
        return value
    }

    public mutating func double() throws(CDRDecodeError) -> Double { Double(bitPattern: try uint64()) }

    /// A string: its length (with the NUL) at most `maxStringBytes`, a NUL at its end, no NUL inside, UTF-8.
    public mutating func string(_ what: StaticString) throws(CDRDecodeError) -> String {
        let start = offset
        let length = Int(try uint32())
        guard length >= 1 else { throw CDRDecodeError("\(what): a string length of 0 (it counts its NUL)", at: start) }
        guard length <= maxStringBytes else {
            throw CDRDecodeError("\(what): a string of \(length) bytes (at most \(maxStringBytes))", at: start)
        }
        guard length <= remaining else {
            throw CDRDecodeError("\(what): a string of \(length) bytes with \(remaining) left", at: start)
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length - 1])
        guard bytes[offset + length - 1] == 0 else {
            throw CDRDecodeError("\(what): the string does not end in a NUL", at: offset + length - 1)
        }
        guard !body.contains(0) else { throw CDRDecodeError("\(what): a NUL inside the string", at: offset) }
        guard let text = String(validating: body, as: UTF8.self) else {
            throw CDRDecodeError("\(what): the string is not UTF-8", at: offset)
        }
        offset += length
        return text
    }

    /// A sequence's element count: at most `limit`, and no more than the bytes left allow at `minimumElementBytes`
    /// each (so a lying count is refused before anything is allocated for it).
    public mutating func count(_ what: StaticString, limit: Int, minimumElementBytes: Int) throws(CDRDecodeError) -> Int
    {
        let start = offset
        let n = Int(try uint32())
        guard n <= limit else { throw CDRDecodeError("\(what): \(n) elements (at most \(limit))", at: start) }
        guard n * max(1, minimumElementBytes) <= remaining else {
            throw CDRDecodeError("\(what): \(n) elements cannot fit in the \(remaining) bytes left", at: start)
        }
        return n
    }

    public mutating func doubles(_ what: StaticString, limit: Int) throws(CDRDecodeError) -> [Double] {
        let n = try count(what, limit: limit, minimumElementBytes: 8)
        var values: [Double] = []
        values.reserveCapacity(n)
        for _ in 0..<n { values.append(try double()) }
        return values
    }

    public mutating func strings(_ what: StaticString, limit: Int) throws(CDRDecodeError) -> [String] {
        let n = try count(what, limit: limit, minimumElementBytes: 5)
        var values: [String] = []
        values.reserveCapacity(n)
        for _ in 0..<n { values.append(try string(what)) }
        return values
    }

    /// The sample must end here, but for the padding a writer may add to a multiple of 4 bytes.
    public func expectEnd() throws(CDRDecodeError) {
        guard remaining < 4, bytes[offset...].allSatisfy({ $0 == 0 }) else {
            throw CDRDecodeError("\(remaining) bytes left over after the message", at: offset)
        }
    }
}

/// Writes plain CDR (XCDR1, little-endian) with its encapsulation header, as ROS 2 on a little-endian machine does:
/// the mirror of ``CDRReader``, for tests and tools that write raw samples.
public struct CDRWriter {
    public private(set) var bytes: [UInt8] = [0x00, 0x01, 0x00, 0x00]
    public init() {}

    private mutating func align(_ size: Int) {
        while (bytes.count - 4) % size != 0 { bytes.append(0) }
    }

    public mutating func uint8(_ value: UInt8) { bytes.append(value) }

    public mutating func uint32(_ value: UInt32) {
        align(4)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(8 * i))) }
    }

    public mutating func int32(_ value: Int32) { uint32(UInt32(bitPattern: value)) }

    public mutating func double(_ value: Double) {
        align(8)
        let bits = value.bitPattern
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(8 * i))) }
    }

    public mutating func string(_ value: String) {
        uint32(UInt32(value.utf8.count + 1))
        bytes.append(contentsOf: value.utf8)
        bytes.append(0)
    }

    public mutating func doubles(_ values: [Double]) {
        uint32(UInt32(values.count))
        for v in values { double(v) }
    }

    public mutating func strings(_ values: [String]) {
        uint32(UInt32(values.count))
        for v in values { string(v) }
    }
}
