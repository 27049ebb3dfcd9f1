/// MessagePack (msgpack.org's specification: the format families nil, bool, int, float, str, bin, array, map
/// and ext), the encoding openpi's policy servers speak. The decoder takes bytes from the network: every length is
/// checked against what is left and against ``MessagePackLimits`` before anything is allocated, nesting is
/// bounded, and every failure is a ``MessagePackError`` naming the byte offset.
public indirect enum MessagePackValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    /// A float32 on the wire is widened to Double exactly; `isFloat32` remembers which it was.
    case float(Double, isFloat32: Bool)
    case string(String)
    case binary([UInt8])
    case array([MessagePackValue])
    case map([MessagePackPair])
    case ext(type: Int8, data: [UInt8])

    /// A map's value under a string or binary key (msgpack-numpy writes its keys as binary).
    public subscript(key: String) -> MessagePackValue? {
        guard case .map(let pairs) = self else { return nil }
        let utf8 = Array(key.utf8)
        for pair in pairs {
            switch pair.key {
            case .string(let s) where s == key: return pair.value
            case .binary(let b) where b == utf8: return pair.value
            default: continue
            }
        }
        return nil
    }

    /// The value as a Double when it is a number.
    public var number: Double? {
        switch self {
        case .int(let v): Double(v)
        case .uint(let v): Double(v)
        case .float(let v, _): v
        default: nil
        }
    }

    /// The value as an Int when it is an integer that fits.
    public var integer: Int? {
        switch self {
        case .int(let v): Int(exactly: v)
        case .uint(let v): Int(exactly: v)
        default: nil
        }
    }

    /// Text from a str, or a bin holding UTF-8.
    public var text: String? {
        switch self {
        case .string(let s): s
        case .binary(let b): String(validating: b, as: UTF8.self)
        default: nil
        }
    }
}

/// One key–value pair of a map, in wire order.
public struct MessagePackPair: Sendable, Equatable {
    public var key: MessagePackValue
    public var value: MessagePackValue
    public init(_ key: MessagePackValue, _ value: MessagePackValue) {
        self.key = key
        self.value = value
    }
}

/// Bounds on what the decoder accepts from outside.
public struct MessagePackLimits: Sendable {
    /// The whole message, bytes.
    public var maximumBytes: Int
    /// Nesting of arrays and maps.
    public var maximumDepth: Int
    /// Elements of one array or pairs of one map.
    public var maximumContainerCount: Int
    public init(maximumBytes: Int = 64 << 20, maximumDepth: Int = 32, maximumContainerCount: Int = 1 << 20) {
        self.maximumBytes = maximumBytes
        self.maximumDepth = maximumDepth
        self.maximumContainerCount = maximumContainerCount
    }
}

/// Why bytes are not a MessagePack message we take.
public struct MessagePackError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset in the message.
    public var offset: Int
    public var reason: String
    public init(offset: Int, _ reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "msgpack: \(reason) (at byte \(offset))" }
}

/// Encodes values; the bytes accumulate in ``bytes``.
public struct MessagePackWriter: Sendable {
    public var bytes: [UInt8] = []
    public init(reservingCapacity capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    @inline(__always) mutating func put<T: FixedWidthInteger>(_ value: T) {
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeNil() { bytes.append(0xC0) }
    public mutating func write(_ value: Bool) { bytes.append(value ? 0xC3 : 0xC2) }

    public mutating func write(_ value: Int64) {
        if value >= 0 { return write(UInt64(value)) }
        if value >= -32 {
            bytes.append(UInt8(bitPattern: Int8(value)))
        } else if value >= Int64(Int8.min) {
            bytes.append(0xD0)
            put(Int8(value))
        } else if value >= Int64(Int16.min) {
            bytes.append(0xD1)
            put(Int16(value))
        } else if value >= Int64(Int32.min) {
            bytes.append(0xD2)
            put(Int32(value))
        } else {
            bytes.append(0xD3)
            put(value)
        }
    }

    public mutating func write(_ value: UInt64) {
        if value < 0x80 {
            bytes.append(UInt8(value))
        } else if value <= UInt64(UInt8.max) {
            bytes.append(0xCC)
            put(UInt8(value))
        } else if value <= UInt64(UInt16.max) {
            bytes.append(0xCD)
            put(UInt16(value))
        } else if value <= UInt64(UInt32.max) {
            bytes.append(0xCE)
            put(UInt32(value))
        } else {
            bytes.append(0xCF)
            put(value)
        }
    }

    public mutating func write(_ value: Double) {
        bytes.append(0xCB)
        put(value.bitPattern)
    }

    public mutating func write(float32 value: Float) {
        bytes.append(0xCA)
        put(value.bitPattern)
    }

    public mutating func write(_ value: String) {
        let utf8 = Array(value.utf8)
        let n = utf8.count
        if n < 32 {
            bytes.append(0xA0 | UInt8(n))
        } else if n <= Int(UInt8.max) {
            bytes.append(0xD9)
            put(UInt8(n))
        } else if n <= Int(UInt16.max) {
            bytes.append(0xDA)
            put(UInt16(n))
        } else {
            bytes.append(0xDB)
            put(UInt32(n))
        }
        bytes.append(contentsOf: utf8)
    }

    public mutating func write<C: Collection>(binary data: C) where C.Element == UInt8 {
        let n = data.count
        if n <= Int(UInt8.max) {
            bytes.append(0xC4)
            put(UInt8(n))
        } else if n <= Int(UInt16.max) {
            bytes.append(0xC5)
            put(UInt16(n))
        } else {
            bytes.append(0xC6)
            put(UInt32(n))
        }
        bytes.append(contentsOf: data)
    }

    public mutating func writeArrayHeader(_ count: Int) {
        if count < 16 {
            bytes.append(0x90 | UInt8(count))
        } else if count <= Int(UInt16.max) {
            bytes.append(0xDC)
            put(UInt16(count))
        } else {
            bytes.append(0xDD)
            put(UInt32(count))
        }
    }

    public mutating func writeMapHeader(_ count: Int) {
        if count < 16 {
            bytes.append(0x80 | UInt8(count))
        } else if count <= Int(UInt16.max) {
            bytes.append(0xDE)
            put(UInt16(count))
        } else {
            bytes.append(0xDF)
            put(UInt32(count))
        }
    }

    public mutating func write(_ value: MessagePackValue) {
        switch value {
        case .null: writeNil()
        case .bool(let b): write(b)
        case .int(let v): write(v)
        case .uint(let v): write(v)
        case .float(let v, let isFloat32): isFloat32 ? write(float32: Float(v)) : write(v)
        case .string(let s): write(s)
        case .binary(let b): write(binary: b)
        case .array(let items):
            writeArrayHeader(items.count)
            for item in items { write(item) }
        case .map(let pairs):
            writeMapHeader(pairs.count)
            for pair in pairs {
                write(pair.key)
                write(pair.value)
            }
        case .ext(let type, let data):
            let n = data.count
            switch n {
            case 1: bytes.append(0xD4)
            case 2: bytes.append(0xD5)
            case 4: bytes.append(0xD6)
            case 8: bytes.append(0xD7)
            case 16: bytes.append(0xD8)
            default:
                if n <= Int(UInt8.max) {
                    bytes.append(0xC7)
                    put(UInt8(n))
                } else if n <= Int(UInt16.max) {
                    bytes.append(0xC8)
                    put(UInt16(n))
                } else {
                    bytes.append(0xC9)
                    put(UInt32(n))
                }
            }
            bytes.append(UInt8(bitPattern: type))
            bytes.append(contentsOf: data)
        }
    }
}

/// Decodes one message.
public enum MessagePack {
    /// The value `bytes` hold: exactly one, with nothing after it.
    public static func decode(_ bytes: [UInt8], limits: MessagePackLimits = MessagePackLimits())
        throws(MessagePackError)
        -> MessagePackValue
    {
        guard bytes.count <= limits.maximumBytes else {
            throw MessagePackError(offset: 0, "message of \(bytes.count) bytes, more than \(limits.maximumBytes)")
        }
        var reader = Reader(bytes: bytes, limits: limits)
        let value = try reader.value(depth: 0)
        guard reader.offset == bytes.count else {
            throw MessagePackError(offset: reader.offset, "\(bytes.count - reader.offset) bytes after the value")
        }
        return value
    }

    /// The bytes of one value.
    public static func encode(_ value: MessagePackValue) -> [UInt8] {
        var writer = MessagePackWriter()
        writer.write(value)
        return writer.bytes
    }

    struct Reader {
        let bytes: [UInt8]
        let limits: MessagePackLimits
        var offset = 0

        mutating func take(_ n: Int) throws(MessagePackError) -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - offset else {
                throw MessagePackError(offset: offset, "truncated: \(n) bytes needed, \(bytes.count - offset) left")
            }
            defer { offset += n }
            return bytes[offset..<(offset + n)]
        }

        mutating func unsigned(_ size: Int) throws(MessagePackError) -> UInt64 {
            var v: UInt64 = 0
            for b in try take(size) { v = v << 8 | UInt64(b) }
            return v
        }

        mutating func length(_ size: Int, _ what: String) throws(MessagePackError) -> Int {
            let start = offset
            let n = try unsigned(size)
            guard n <= UInt64(bytes.count - offset) || what == "array" || what == "map" else {
                throw MessagePackError(offset: start, "\(what) of \(n) bytes, but only \(bytes.count - offset) left")
            }
            guard n <= UInt64(Int.max) else { throw MessagePackError(offset: start, "\(what) length \(n)") }
            return Int(n)
        }

        mutating func value(depth: Int) throws(MessagePackError) -> MessagePackValue {
            let start = offset
            let tag = try take(1).first!
            switch tag {
            case 0x00...0x7F: return .uint(UInt64(tag))
            case 0xE0...0xFF: return .int(Int64(Int8(bitPattern: tag)))
            case 0x80...0x8F: return try map(Int(tag & 0x0F), depth: depth, at: start)
            case 0x90...0x9F: return try array(Int(tag & 0x0F), depth: depth, at: start)
            case 0xA0...0xBF: return try string(Int(tag & 0x1F), at: start)
            case 0xC0: return .null
            case 0xC2: return .bool(false)
            case 0xC3: return .bool(true)
            case 0xC4: return .binary(Array(try take(try length(1, "bin"))))
            case 0xC5: return .binary(Array(try take(try length(2, "bin"))))
            case 0xC6: return .binary(Array(try take(try length(4, "bin"))))
            case 0xC7, 0xC8, 0xC9:
                let n = try length(tag == 0xC7 ? 1 : tag == 0xC8 ? 2 : 4, "ext")
                let type = Int8(bitPattern: try take(1).first!)
                return .ext(type: type, data: Array(try take(n)))
            case 0xCA: return .float(Double(Float(bitPattern: UInt32(try unsigned(4)))), isFloat32: true)
            case 0xCB: return .float(Double(bitPattern: try unsigned(8)), isFloat32: false)
            case 0xCC: return .uint(try unsigned(1))
            case 0xCD: return .uint(try unsigned(2))
            case 0xCE: return .uint(try unsigned(4))
            case 0xCF: return .uint(try unsigned(8))
            case 0xD0: return .int(Int64(Int8(truncatingIfNeeded: try unsigned(1))))
            case 0xD1: return .int(Int64(Int16(truncatingIfNeeded: try unsigned(2))))
            case 0xD2: return .int(Int64(Int32(truncatingIfNeeded: try unsigned(4))))
            case 0xD3: return .int(Int64(bitPattern: try unsigned(8)))
            case 0xD4, 0xD5, 0xD6, 0xD7, 0xD8:
                let n = [1, 2, 4, 8, 16][Int(tag - 0xD4)]
                let type = Int8(bitPattern: try take(1).first!)
                return .ext(type: type, data: Array(try take(n)))
            case 0xD9: return try string(try length(1, "str"), at: start)
            case 0xDA: return try string(try length(2, "str"), at: start)
            case 0xDB: return try string(try length(4, "str"), at: start)
            case 0xDC: return try array(try length(2, "array"), depth: depth, at: start)
            case 0xDD: return try array(try length(4, "array"), depth: depth, at: start)
            case 0xDE: return try map(try length(2, "map"), depth: depth, at: start)
            case 0xDF: return try map(try length(4, "map"), depth: depth, at: start)
            default:
                throw MessagePackError(offset: start, "byte 0x\(String(tag, radix: 16)) is not a MessagePack type")
            }
        }

        mutating func string(_ n: Int, at start: Int) throws(MessagePackError) -> MessagePackValue {
            let raw = try take(n)
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw MessagePackError(offset: start, "a str that is not UTF-8")
            }
            return .string(text)
        }

        mutating func container(_ n: Int, depth: Int, at start: Int, _ what: String) throws(MessagePackError) {
            guard depth < limits.maximumDepth else {
                throw MessagePackError(offset: start, "nested deeper than \(limits.maximumDepth)")
            }
            guard n <= limits.maximumContainerCount else {
                throw MessagePackError(
                    offset: start, "\(what) of \(n) elements, more than \(limits.maximumContainerCount)")
            }
            // Every element takes at least one byte: a count beyond what is left cannot be honest.
            guard n <= bytes.count - offset else {
                throw MessagePackError(
                    offset: start, "truncated: \(what) of \(n) elements, \(bytes.count - offset) bytes left")
            }
        }

        mutating func array(_ n: Int, depth: Int, at start: Int) throws(MessagePackError) -> MessagePackValue {
            try container(n, depth: depth, at: start, "array")
            var items: [MessagePackValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(depth: depth + 1)) }
            return .array(items)
        }

        mutating func map(_ n: Int, depth: Int, at start: Int) throws(MessagePackError) -> MessagePackValue {
            try container(n, depth: depth, at: start, "map")
            var pairs: [MessagePackPair] = []
            pairs.reserveCapacity(n)
            for _ in 0..<n {
                let key = try value(depth: depth + 1)
                pairs.append(MessagePackPair(key, try value(depth: depth + 1)))
            }
            return .map(pairs)
        }
    }
}

/// A numpy array as msgpack-numpy (openpi's `openpi_client.msgpack_numpy`) lays it out: a map with the binary keys
/// `__ndarray__` (true), `data` (the raw bytes, C order), `dtype` (numpy's `dtype.str`, e.g. `<f4`) and `shape`.
public struct NumpyArray: Sendable, Equatable {
    public var dtype: String
    public var shape: [Int]
    public var data: [UInt8]

    public init(dtype: String, shape: [Int], data: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// Float64 values (`<f8`), row-major.
    public init(float64 values: [Double], shape: [Int]) {
        var data: [UInt8] = []
        data.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        self.init(dtype: "<f8", shape: shape, data: data)
    }

    /// Float32 values (`<f4`), row-major.
    public init(float32 values: [Double], shape: [Int]) {
        var data: [UInt8] = []
        data.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        self.init(dtype: "<f4", shape: shape, data: data)
    }

    /// The number of elements the shape says.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Its msgpack-numpy map.
    public var messagePack: MessagePackValue {
        .map([
            MessagePackPair(.binary(Array("__ndarray__".utf8)), .bool(true)),
            MessagePackPair(.binary(Array("data".utf8)), .binary(data)),
            MessagePackPair(.binary(Array("dtype".utf8)), .string(dtype)),
            MessagePackPair(.binary(Array("shape".utf8)), .array(shape.map { .uint(UInt64($0)) })),
        ])
    }

    /// The array a msgpack-numpy map holds, checked: a known dtype, a shape of non-negative sizes whose
    /// product (at most `maximumElements`) times the item size is the data's length.
    public init(_ value: MessagePackValue, maximumElements: Int = 1 << 26) throws(MessagePackError) {
        guard value["__ndarray__"] == .bool(true) else {
            throw MessagePackError(offset: 0, "not a numpy array (no __ndarray__ key)")
        }
        guard case .binary(let data) = value["data"] ?? .null else {
            throw MessagePackError(offset: 0, "numpy array without binary data")
        }
        guard let dtype = value["dtype"]?.text, let itemSize = Self.itemSize(dtype) else {
            throw MessagePackError(offset: 0, "numpy array of unsupported dtype \(value["dtype"]?.text ?? "?")")
        }
        guard case .array(let dims) = value["shape"] ?? .null else {
            throw MessagePackError(offset: 0, "numpy array without a shape")
        }
        var shape: [Int] = []
        var count = 1
        for dim in dims {
            guard let n = dim.integer, n >= 0 else { throw MessagePackError(offset: 0, "numpy shape \(dims)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow, product <= maximumElements else {
                throw MessagePackError(offset: 0, "numpy array of more than \(maximumElements) elements")
            }
            count = product
            shape.append(n)
        }
        guard count * itemSize == data.count else {
            throw MessagePackError(
                offset: 0,
                "numpy array of shape \(shape) and dtype \(dtype) needs \(count * itemSize) bytes, has \(data.count)")
        }
        self.init(dtype: dtype, shape: shape, data: data)
    }

    /// Bytes per element of the dtypes read here: floats, signed and unsigned integers, bool; `<`, `>`, `|`
    /// or `=` byte order.
    static func itemSize(_ dtype: String) -> Int? {
        let body = dtype.drop { "<>|=".contains($0) }
        switch body {
        case "f2", "i2", "u2": return 2
        case "f4", "i4", "u4": return 4
        case "f8", "i8", "u8": return 8
        case "i1", "u1", "b1": return 1
        default: return nil
        }
    }

    /// The elements as Doubles, row-major.
    public func doubles() -> [Double] {
        guard let size = Self.itemSize(dtype) else { return [] }
        let bigEndian = dtype.hasPrefix(">")
        let kind = dtype.drop { "<>|=".contains($0) }.first ?? "f"
        var out: [Double] = []
        out.reserveCapacity(data.count / size)
        var i = 0
        while i + size <= data.count {
            var raw: UInt64 = 0
            for k in 0..<size {
                let byte = UInt64(data[i + (bigEndian ? size - 1 - k : k)])
                raw |= byte << UInt64(8 * k)
            }
            switch (kind, size) {
            case ("f", 2): out.append(Double(Float16(bitPattern: UInt16(raw))))
            case ("f", 4): out.append(Double(Float(bitPattern: UInt32(raw))))
            case ("f", 8): out.append(Double(bitPattern: raw))
            case ("i", _):
                let shift = UInt64(64 - 8 * size)
                out.append(Double(Int64(bitPattern: raw << shift) >> Int64(shift)))
            default: out.append(Double(raw))
            }
            i += size
        }
        return out
    }
}
