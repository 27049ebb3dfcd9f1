import Foundation

/// A tensor's element type, by the name a safetensors header gives it (`dtype`).
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case i64 = "I64"
    case u64 = "U64"
    case f64 = "F64"

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0: 1
        case .i16, .u16, .f16, .bf16: 2
        case .i32, .u32, .f32: 4
        case .i64, .u64, .f64: 8
        }
    }

    /// Whether ``SafeTensorsFile/values(_:)`` reads it (the floating-point types a network is stored in).
    public var isReadableAsDouble: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }
}

/// One tensor a safetensors header describes.
public struct SafeTensorsTensor: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    /// Row-major ("C" order) dimensions, outermost first; `[]` is a scalar.
    public let shape: [Int]
    /// The product of `shape` (1 for a scalar).
    public let elementCount: Int
    /// Its bytes, relative to the start of the data section (the header's `data_offsets`).
    public let dataOffsets: Range<Int>
}

/// A malformed, truncated or oversized safetensors file, or a tensor that is not there or not readable as
/// asked: which file, which tensor (when one is at fault) and what is wrong.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var tensor: String?
    public var message: String

    public init(file: String, tensor: String? = nil, _ message: String) {
        self.file = file
        self.tensor = tensor
        self.message = message
    }

    public var description: String {
        if let tensor { return "\(file): tensor \"\(tensor)\": \(message)" }
        return "\(file): \(message)"
    }
}

/// A safetensors file (Hugging Face's tensor format), parsed and checked once, then read by name.
///
/// The format (huggingface/safetensors README, "Format"): 8 bytes of N, an unsigned little-endian 64-bit
/// integer; N bytes of UTF-8 JSON that starts with `{` and may be padded at the end with spaces, mapping
/// each tensor's name to `{"dtype", "shape", "data_offsets": [BEGIN, END]}` (offsets relative to the data
/// section, END one past the last byte), with an optional `"__metadata__"` object of string values; then
/// the data section, little-endian, row-major.
///
/// The file is outside input and is refused, with the file and the tensor named, unless: the header length
/// fits in the file and under ``Limits/maximumHeaderBytes``, the file under ``Limits/maximumFileBytes``; the
/// header is valid UTF-8 JSON with no duplicate keys and no nesting deeper than the format uses; every
/// tensor has a known dtype, non-negative dimensions whose product times the dtype's size does not overflow
/// and equals END − BEGIN; and the tensors' ranges tile the data section exactly, sorted by offset: no
/// overlap, no hole, nothing after the last (the format's rules; a hole could hide a second file inside).
public struct SafeTensorsFile: Sendable {
    /// Caps on what is read: a policy network is small, and a hostile header length must not make us
    /// allocate gigabytes.
    public struct Limits: Sendable, Equatable {
        /// The whole file, bytes (default 256 MiB).
        public var maximumFileBytes: Int
        /// The JSON header, bytes (default 16 MiB; the reference implementation stops at 100 MB).
        public var maximumHeaderBytes: Int
        public init(maximumFileBytes: Int = 256 << 20, maximumHeaderBytes: Int = 16 << 20) {
            self.maximumFileBytes = maximumFileBytes
            self.maximumHeaderBytes = maximumHeaderBytes
        }
    }

    /// The name errors give the file (its path when loaded from one).
    public let file: String
    /// The header's `__metadata__` (empty when it has none).
    public let metadata: [String: String]
    /// The tensors, in the header's order.
    public let tensors: [SafeTensorsTensor]
    private let indexByName: [String: Int]
    private let bytes: [UInt8]
    private let dataStart: Int

    /// Reads and checks the file at `path`.
    public static func load(path: String, limits: Limits = Limits()) throws(SafeTensorsError) -> SafeTensorsFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SafeTensorsError(file: path, "no such file")
        }
        guard !isDirectory.boolValue else { throw SafeTensorsError(file: path, "is a directory, not a file") }
        // The size is checked before anything is read: a device or a huge file is refused, not slurped.
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let type = attributes?[.type] as? FileAttributeType, type == .typeRegular,
            let size = (attributes?[.size] as? NSNumber)?.intValue
        else { throw SafeTensorsError(file: path, "is not a regular file") }
        guard size <= limits.maximumFileBytes else {
            throw SafeTensorsError(
                file: path, "is \(size) bytes; the limit for a policy network is \(limits.maximumFileBytes) bytes")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw SafeTensorsError(file: path, "cannot be opened for reading")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: limits.maximumFileBytes + 1) ?? Data()
        } catch {
            throw SafeTensorsError(file: path, "cannot be read: \(error.localizedDescription)")
        }
        guard data.count <= limits.maximumFileBytes else {
            throw SafeTensorsError(file: path, "grew past \(limits.maximumFileBytes) bytes while being read")
        }
        return try SafeTensorsFile(bytes: [UInt8](data), file: path, limits: limits)
    }

    /// Parses and checks a file's bytes; `file` names it in errors.
    public init(bytes: [UInt8], file: String, limits: Limits = Limits()) throws(SafeTensorsError) {
        self.file = file
        guard bytes.count <= limits.maximumFileBytes else {
            throw SafeTensorsError(
                file: file,
                "is \(bytes.count) bytes; the limit for a policy network is \(limits.maximumFileBytes) bytes")
        }
        guard bytes.count >= 8 else {
            throw SafeTensorsError(
                file: file, "is \(bytes.count) bytes long; a safetensors file starts with an 8-byte header length")
        }
        var headerLength: UInt64 = 0
        for k in 0..<8 { headerLength |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard headerLength <= UInt64(limits.maximumHeaderBytes) else {
            throw SafeTensorsError(
                file: file, "declares a header of \(headerLength) bytes; the limit is \(limits.maximumHeaderBytes)")
        }
        let headerEnd = 8 + Int(headerLength)
        guard headerEnd <= bytes.count else {
            throw SafeTensorsError(
                file: file,
                "is truncated: it declares a header of \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        guard headerLength > 0, bytes[8] == UInt8(ascii: "{") else {
            throw SafeTensorsError(file: file, "the header does not start with '{' (is this a safetensors file?)")
        }
        guard String(validating: bytes[8..<headerEnd], as: UTF8.self) != nil else {
            throw SafeTensorsError(file: file, "the header is not valid UTF-8")
        }
        var parser = HeaderJSONParser(bytes: bytes, start: 8, end: headerEnd, file: file)
        let root = try parser.parseDocument()
        guard case .object(let entries) = root else {
            throw SafeTensorsError(file: file, "the header is not a JSON object")
        }
        let dataLength = bytes.count - headerEnd
        var metadata: [String: String] = [:]
        var tensors: [SafeTensorsTensor] = []
        tensors.reserveCapacity(entries.count)
        for (name, value) in entries {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw SafeTensorsError(file: file, "__metadata__ is \(value.kindName), not an object of strings")
                }
                for (key, item) in pairs {
                    guard case .string(let text) = item else {
                        throw SafeTensorsError(
                            file: file, "__metadata__ \"\(key)\" is \(item.kindName); metadata values are strings")
                    }
                    metadata[key] = text
                }
                continue
            }
            tensors.append(try Self.tensor(name, value, dataLength: dataLength, file: file))
        }
        try Self.checkTiling(tensors, dataLength: dataLength, file: file)
        var index: [String: Int] = [:]
        for (k, tensor) in tensors.enumerated() { index[tensor.name] = k }
        self.metadata = metadata
        self.tensors = tensors
        self.indexByName = index
        self.bytes = bytes
        self.dataStart = headerEnd
    }

    private static func tensor(
        _ name: String, _ value: HeaderJSON, dataLength: Int, file: String
    ) throws(SafeTensorsError) -> SafeTensorsTensor {
        guard case .object(let fields) = value else {
            throw SafeTensorsError(file: file, tensor: name, "is described by \(value.kindName), not an object")
        }
        var dtypeName: String?
        var shapeValues: [HeaderJSON]?
        var offsetValues: [HeaderJSON]?
        for (key, field) in fields {
            switch (key, field) {
            case ("dtype", .string(let text)): dtypeName = text
            case ("shape", .array(let items)): shapeValues = items
            case ("data_offsets", .array(let items)): offsetValues = items
            case ("dtype", _), ("shape", _), ("data_offsets", _):
                throw SafeTensorsError(file: file, tensor: name, "\(key) is \(field.kindName)")
            default:
                throw SafeTensorsError(
                    file: file, tensor: name, "unknown field \"\(key)\" (a tensor has dtype, shape, data_offsets)")
            }
        }
        guard let dtypeName else { throw SafeTensorsError(file: file, tensor: name, "has no dtype") }
        guard let shapeValues else { throw SafeTensorsError(file: file, tensor: name, "has no shape") }
        guard let offsetValues else { throw SafeTensorsError(file: file, tensor: name, "has no data_offsets") }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw SafeTensorsError(file: file, tensor: name, "unknown dtype \"\(dtypeName)\" (known: \(known))")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeValues.count)
        var elementCount = 1
        for item in shapeValues {
            guard case .integer(let dimension) = item, dimension <= UInt64(Int.max) else {
                throw SafeTensorsError(
                    file: file, tensor: name, "shape holds \(item.kindName); dimensions are non-negative integers")
            }
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: Int(dimension))
            guard !overflow else {
                throw SafeTensorsError(file: file, tensor: name, "shape \(Self.render(shapeValues)) overflows")
            }
            shape.append(Int(dimension))
            elementCount = product
        }
        let (byteCount, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow else {
            throw SafeTensorsError(file: file, tensor: name, "shape \(shape) of \(dtypeName) overflows")
        }
        guard offsetValues.count == 2, case .integer(let begin) = offsetValues[0],
            case .integer(let end) = offsetValues[1]
        else {
            throw SafeTensorsError(
                file: file, tensor: name,
                "data_offsets \(Self.render(offsetValues)) is not [BEGIN, END] of non-negative integers")
        }
        guard begin <= end else {
            throw SafeTensorsError(file: file, tensor: name, "data_offsets [\(begin), \(end)] ends before it begins")
        }
        guard end <= UInt64(dataLength) else {
            throw SafeTensorsError(
                file: file, tensor: name,
                "data_offsets [\(begin), \(end)] reach past the data section, which is \(dataLength) bytes "
                    + "(truncated file?)")
        }
        guard end - begin == UInt64(byteCount) else {
            throw SafeTensorsError(
                file: file, tensor: name,
                "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but \(dtypeName) \(shape) is "
                    + "\(byteCount) bytes")
        }
        return SafeTensorsTensor(
            name: name, dtype: dtype, shape: shape, elementCount: elementCount, dataOffsets: Int(begin)..<Int(end))
    }

    /// The format's rule that the data section is exactly the tensors' ranges, in order, without gaps.
    private static func checkTiling(
        _ tensors: [SafeTensorsTensor], dataLength: Int, file: String
    ) throws(SafeTensorsError) {
        let sorted = tensors.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < (
                $1.dataOffsets.lowerBound, $1.dataOffsets.upperBound
            )
        }
        var expected = 0
        var previous: String?
        for tensor in sorted {
            let range = tensor.dataOffsets
            if range.lowerBound < expected {
                throw SafeTensorsError(
                    file: file, tensor: tensor.name,
                    "data_offsets [\(range.lowerBound), \(range.upperBound)] overlap tensor \"\(previous ?? "")\", "
                        + "which ends at \(expected)")
            }
            if range.lowerBound > expected {
                throw SafeTensorsError(
                    file: file, tensor: tensor.name,
                    "data_offsets [\(range.lowerBound), \(range.upperBound)] leave bytes \(expected)..<"
                        + "\(range.lowerBound) of the data section unused; the format allows no holes")
            }
            expected = range.upperBound
            previous = tensor.name
        }
        guard expected == dataLength else {
            throw SafeTensorsError(
                file: file,
                "the data section is \(dataLength) bytes but its tensors cover \(expected); the format allows no "
                    + "bytes that no tensor owns")
        }
    }

    private static func render(_ values: [HeaderJSON]) -> String {
        "[" + values.map(\.kindName).joined(separator: ", ") + "]"
    }

    /// The tensor named `name`, if the file has one.
    public func tensor(_ name: String) -> SafeTensorsTensor? {
        indexByName[name].map { tensors[$0] }
    }

    /// The values of the tensor named `name`, row-major, widened to Double (exact for F32, F16 and BF16).
    /// Throws when there is no such tensor or its dtype is not a floating-point one.
    public func values(_ name: String) throws(SafeTensorsError) -> [Double] {
        guard let tensor = tensor(name) else {
            let names = tensors.prefix(12).map(\.name).joined(separator: ", ")
            throw SafeTensorsError(
                file: file, tensor: name,
                "is not in the file (it has \(tensors.count) tensor\(tensors.count == 1 ? "" : "s")"
                    + (tensors.isEmpty ? "" : ": \(names)\(tensors.count > 12 ? ", …" : "")") + ")")
        }
        guard tensor.dtype.isReadableAsDouble else {
            throw SafeTensorsError(
                file: file, tensor: name, "is \(tensor.dtype.rawValue); only F64, F32, F16 and BF16 are read")
        }
        let start = dataStart + tensor.dataOffsets.lowerBound
        let size = tensor.dtype.byteCount
        return bytes.withUnsafeBytes { raw in
            (0..<tensor.elementCount).map { k -> Double in
                let at = start + k * size
                switch tensor.dtype {
                case .f64:
                    return Double(
                        bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
                case .f32:
                    return Double(
                        Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))))
                case .bf16:
                    let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))
                    return Double(Float(bitPattern: UInt32(bits) << 16))
                default:
                    return Self.half(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                }
            }
        }
    }

    /// IEEE 754 binary16 to Double, by hand (Float16 is not on every platform Swift targets).
    private static func half(_ bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let fraction = Double(bits & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    /// One tensor to write with ``encode(_:metadata:)``: F32 or F64 values, row-major.
    public struct TensorToWrite: Sendable {
        public var name: String
        public var dtype: SafeTensorsDType
        public var shape: [Int]
        public var values: [Double]
        /// `dtype` is `.f32` or `.f64`; `values.count` is the product of `shape`.
        public init(name: String, dtype: SafeTensorsDType = .f32, shape: [Int], values: [Double]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.values = values
        }
    }

    /// The bytes of a safetensors file holding `tensors` (F32 or F64, in the order given) and `metadata`,
    /// the header padded with spaces so the data starts 8-byte aligned, as the reference writer does. For
    /// tests, benchmarks and tools; Sinew itself only reads.
    public static func encode(_ tensors: [TensorToWrite], metadata: [String: String] = [:]) -> [UInt8] {
        var header = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            fields.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        var data: [UInt8] = []
        for tensor in tensors {
            let size = tensor.dtype == .f64 ? 8 : 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            let dtype = tensor.dtype == .f64 ? "F64" : "F32"
            fields.append(
                "\(jsonString(tensor.name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(offset + size * tensor.values.count)]}")
            offset += size * tensor.values.count
            for value in tensor.values {
                if size == 8 {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
                } else {
                    withUnsafeBytes(of: Float(value).bitPattern.littleEndian) { data.append(contentsOf: $0) }
                }
            }
        }
        header += fields.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + data.count)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out += headerBytes
        out += data
        return out
    }

    private static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A JSON value of a safetensors header. Numbers are kept only as non-negative integers (the only numbers
/// the format has); any other number is remembered as such, to be refused where it appears.
indirect enum HeaderJSON {
    case object([(String, HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    case integer(UInt64)
    /// A negative, fractional, exponent or too large number.
    case otherNumber
    case bool
    case null

    var kindName: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .integer(let value): "\(value)"
        case .otherNumber: "a number that is not a non-negative 64-bit integer"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// A strict JSON parser for one header: RFC 8259 syntax, duplicate keys refused (JSON parsers differ on which
/// duplicate wins, so a duplicate could show two readers two different files), nesting bounded.
struct HeaderJSONParser {
    let bytes: [UInt8]
    var at: Int
    let end: Int
    let file: String
    /// The format nests three deep (header, tensor, shape); a little slack for metadata mistakes to be
    /// reported as such.
    static let maximumDepth = 8

    init(bytes: [UInt8], start: Int, end: Int, file: String) {
        self.bytes = bytes
        self.at = start
        self.end = end
        self.file = file
    }

    private func failure(_ what: String) -> SafeTensorsError {
        SafeTensorsError(file: file, "header JSON, byte \(at): \(what)")
    }

    mutating func parseDocument() throws(SafeTensorsError) -> HeaderJSON {
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard at == end else { throw failure("unexpected bytes after the header's closing '}'") }
        return value
    }

    private mutating func skipWhitespace() {
        while at < end, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
    }

    private mutating func parseValue(depth: Int) throws(SafeTensorsError) -> HeaderJSON {
        guard depth < Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth) levels") }
        skipWhitespace()
        guard at < end else { throw failure("the header ends where a value was expected") }
        switch bytes[at] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectWord("true")
            return .bool
        case UInt8(ascii: "f"):
            try expectWord("false")
            return .bool
        case UInt8(ascii: "n"):
            try expectWord("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected character where a value was expected")
        }
    }

    private mutating func expectWord(_ word: StaticString) throws(SafeTensorsError) {
        let count = word.utf8CodeUnitCount
        guard end - at >= count else { throw failure("unexpected end of the header") }
        for k in 0..<count where bytes[at + k] != word.utf8Start[k] {
            throw failure("unexpected character where a value was expected")
        }
        at += count
    }

    private mutating func parseObject(depth: Int) throws(SafeTensorsError) -> HeaderJSON {
        at += 1
        var entries: [(String, HeaderJSON)] = []
        var keys: Set<String> = []
        skipWhitespace()
        if at < end, bytes[at] == UInt8(ascii: "}") {
            at += 1
            return .object(entries)
        }
        while true {
            skipWhitespace()
            guard at < end, bytes[at] == UInt8(ascii: "\"") else { throw failure("expected a key in quotes") }
            let keyStart = at
            let key = try parseString()
            guard keys.insert(key).inserted else {
                at = keyStart
                throw failure("key \"\(key)\" appears twice in one object")
            }
            skipWhitespace()
            guard at < end, bytes[at] == UInt8(ascii: ":") else { throw failure("expected ':' after a key") }
            at += 1
            entries.append((key, try parseValue(depth: depth + 1)))
            skipWhitespace()
            guard at < end else { throw failure("the header ends inside an object") }
            if bytes[at] == UInt8(ascii: ",") {
                at += 1
                continue
            }
            guard bytes[at] == UInt8(ascii: "}") else { throw failure("expected ',' or '}' in an object") }
            at += 1
            return .object(entries)
        }
    }

    private mutating func parseArray(depth: Int) throws(SafeTensorsError) -> HeaderJSON {
        at += 1
        var items: [HeaderJSON] = []
        skipWhitespace()
        if at < end, bytes[at] == UInt8(ascii: "]") {
            at += 1
            return .array(items)
        }
        while true {
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard at < end else { throw failure("the header ends inside an array") }
            if bytes[at] == UInt8(ascii: ",") {
                at += 1
                continue
            }
            guard bytes[at] == UInt8(ascii: "]") else { throw failure("expected ',' or ']' in an array") }
            at += 1
            return .array(items)
        }
    }

    private mutating func parseNumber() throws(SafeTensorsError) -> HeaderJSON {
        var representable = true
        if bytes[at] == UInt8(ascii: "-") {
            representable = false
            at += 1
        }
        guard at < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) else {
            throw failure("a number needs a digit")
        }
        var value: UInt64 = 0
        if bytes[at] == UInt8(ascii: "0") {
            at += 1
            if at < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) {
                throw failure("a number may not have leading zeros")
            }
        } else {
            while at < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(UInt64(bytes[at] - UInt8(ascii: "0")))
                if o1 || o2 { representable = false }
                value = sum
                at += 1
            }
        }
        if at < end, bytes[at] == UInt8(ascii: ".") {
            representable = false
            at += 1
            try digits()
        }
        if at < end, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
            representable = false
            at += 1
            if at < end, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
            try digits()
        }
        return representable ? .integer(value) : .otherNumber
    }

    private mutating func digits() throws(SafeTensorsError) {
        let start = at
        while at < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
        guard at > start else { throw failure("a number needs a digit") }
    }

    private mutating func parseString() throws(SafeTensorsError) -> String {
        at += 1
        var utf8: [UInt8] = []
        while true {
            guard at < end else { throw failure("the header ends inside a string") }
            let byte = bytes[at]
            if byte == UInt8(ascii: "\"") {
                at += 1
                // The header was checked to be UTF-8, and escapes add only whole scalars.
                return String(decoding: utf8, as: UTF8.self)
            }
            guard byte >= 0x20 else { throw failure("control character in a string (it must be escaped)") }
            if byte != UInt8(ascii: "\\") {
                utf8.append(byte)
                at += 1
                continue
            }
            at += 1
            guard at < end else { throw failure("the header ends inside an escape") }
            let escape = bytes[at]
            at += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard end - at >= 2, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                        throw failure("a high surrogate \\u escape without its low surrogate")
                    }
                    at += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw failure("a high surrogate \\u escape without its low surrogate")
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw failure("a low surrogate \\u escape without a high one")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw failure("an invalid \\u escape") }
                UTF8.encode(unicode) { utf8.append($0) }
            default:
                throw failure("unknown escape in a string")
            }
        }
    }

    private mutating func hex4() throws(SafeTensorsError) -> UInt32 {
        guard end - at >= 4 else { throw failure("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[at]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw failure("a \\u escape needs four hex digits")
            }
            value = value * 16 + digit
            at += 1
        }
        return value
    }
}
