/// `sensor_msgs/msg/JointState` as ROS 2 puts it on the wire and rosbag2 stores it in MCAP: message encoding
/// "cdr" (classic CDR, XCDR1, little-endian, after the 4-byte encapsulation header 0x00 0x01 0x00 0x00), schema
/// encoding "ros2msg" (the message definition, then each type it uses after a line of 80 "=" and a
/// "MSG: package/Type" line: rosbag2's docs/message_definition_encoding.md), in a file of profile "ros2" whose
/// channels carry `offered_qos_profiles` metadata (mcap.dev spec, profiles/ros2.md).
///
/// The joint names and frame are encoded once; `encode` then appends the stamp and the three arrays, without
/// allocating when the output's capacity suffices (`encodedByteCount`).
public struct ROS2JointStateEncoder: Sendable {
    public static let schemaName = "sensor_msgs/msg/JointState"
    public static let schemaEncoding = "ros2msg"
    public static let messageEncoding = "cdr"
    public static let profile = "ros2"

    /// JointState and the types it uses (std_msgs/Header, builtin_interfaces/Time), fields only, in the order
    /// rosbag2 resolves them (depth first, dependencies sorted by name).
    public static let schemaText: String = {
        let separator = String(repeating: "=", count: 80)
        return """
            std_msgs/Header header

            string[] name
            float64[] position
            float64[] velocity
            float64[] effort

            \(separator)
            MSG: std_msgs/Header
            builtin_interfaces/Time stamp
            string frame_id

            \(separator)
            MSG: builtin_interfaces/Time
            int32 sec
            uint32 nanosec

            """
    }()

    public static var schemaData: [UInt8] { Array(schemaText.utf8) }

    /// The channel metadata rosbag2 writes: `offered_qos_profiles` (YAML; empty: the player's default QoS).
    public static func channelMetadata(offeredQoSProfiles: String = "") -> [String: String] {
        ["offered_qos_profiles": offeredQoSProfiles]
    }

    public let jointNames: [String]
    public let frameID: String
    /// frame_id and name[], encoded from body offset 8 (after the stamp), where their alignment is fixed.
    private let namesSection: [UInt8]

    public init(jointNames: [String], frameID: String = "") {
        self.jointNames = jointNames
        self.frameID = frameID
        var section: [UInt8] = []
        var offset = 8
        func append(_ bytes: some Collection<UInt8>) {
            section.append(contentsOf: bytes)
            offset += bytes.count
        }
        func align(_ n: Int) {
            while offset % n != 0 { append(CollectionOfOne(0)) }
        }
        func appendString(_ text: String) {
            align(4)
            let utf8 = Array(text.utf8)
            withUnsafeBytes(of: UInt32(utf8.count + 1).littleEndian) { append($0) }
            append(utf8)
            append(CollectionOfOne(0))
        }
        appendString(frameID)
        align(4)
        withUnsafeBytes(of: UInt32(jointNames.count).littleEndian) { append($0) }
        for name in jointNames { appendString(name) }
        namesSection = section
    }

    /// The most bytes one message takes (encapsulation header, stamp, names, three full arrays with padding).
    public var encodedByteCount: Int { 4 + 8 + namesSection.count + 3 * (8 + 8 * jointNames.count) + 4 }

    /// Appends one message: the header's stamp (`stampNs`, ns since the Unix epoch, split into sec and nanosec),
    /// then the positions (rad), velocities (rad/s) and efforts (N·m) — each may be empty (unknown), as the
    /// message allows.
    public func encode(
        stampNs: UInt64, positionRad: UnsafeBufferPointer<Double>, velocityRadPerS: UnsafeBufferPointer<Double>,
        effortNm: UnsafeBufferPointer<Double>, into out: inout [UInt8]
    ) {
        let bodyStart = out.count + 4
        out.append(0x00)
        out.append(0x01)  // CDR_LE
        out.append(0x00)
        out.append(0x00)
        let seconds = Int32(clamping: stampNs / 1_000_000_000)
        let nanoseconds = UInt32(stampNs % 1_000_000_000)
        out.appendLE(UInt32(bitPattern: seconds))
        out.appendLE(nanoseconds)
        out.append(contentsOf: namesSection)
        Self.appendSequence(positionRad, to: &out, bodyStart: bodyStart)
        Self.appendSequence(velocityRadPerS, to: &out, bodyStart: bodyStart)
        Self.appendSequence(effortNm, to: &out, bodyStart: bodyStart)
    }

    @inline(__always)
    private static func appendSequence(_ values: UnsafeBufferPointer<Double>, to out: inout [UInt8], bodyStart: Int) {
        align(&out, bodyStart: bodyStart, to: 4)
        out.appendLE(UInt32(values.count))
        // Fast CDR aligns a sequence's elements only when there are some (an empty one adds no padding).
        guard values.count > 0 else { return }
        align(&out, bodyStart: bodyStart, to: 8)
        #if _endian(little)
            out.append(contentsOf: UnsafeRawBufferPointer(values))
        #else
            for value in values { out.appendLE(value.bitPattern) }
        #endif
    }

    /// `encode` from arrays.
    public func encode(
        stampNs: UInt64, positionRad: [Double], velocityRadPerS: [Double], effortNm: [Double], into out: inout [UInt8]
    ) {
        positionRad.withUnsafeBufferPointer { position in
            velocityRadPerS.withUnsafeBufferPointer { velocity in
                effortNm.withUnsafeBufferPointer { effort in
                    encode(
                        stampNs: stampNs, positionRad: position, velocityRadPerS: velocity, effortNm: effort, into: &out
                    )
                }
            }
        }
    }

    @inline(__always)
    private static func align(_ out: inout [UInt8], bodyStart: Int, to n: Int) {
        while (out.count - bodyStart) % n != 0 { out.append(0) }
    }
}

/// Reads back what ``ROS2JointStateEncoder`` writes (or any little-endian XCDR1 `sensor_msgs/msg/JointState`):
/// bounds-checked, for files from outside.
public enum ROS2JointStateDecoder {
    public struct Message: Sendable, Equatable {
        public var stampNs: UInt64
        public var frameID: String
        public var names: [String]
        public var positionRad: [Double]
        public var velocityRadPerS: [Double]
        public var effortNm: [Double]
    }

    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "JointState CDR at byte \(offset): \(reason)" }
    }

    /// Decodes one message. At most `maxElements` names or values per array (a lying length is an error, not an
    /// allocation).
    public static func decode(_ bytes: some Collection<UInt8>, maxElements: Int = 100_000) throws(DecodingError)
        -> Message
    {
        let data = Array(bytes)
        guard data.count >= 4 else { throw DecodingError(offset: 0, reason: "shorter than the encapsulation header") }
        guard data[0] == 0, data[1] == 1 else {
            throw DecodingError(offset: 0, reason: "not little-endian plain CDR (header \(data[0]) \(data[1]))")
        }
        var offset = 4
        func align(_ n: Int) { offset += (n - (offset - 4) % n) % n }
        func need(_ n: Int) throws(DecodingError) {
            guard n >= 0, offset + n <= data.count else {
                throw DecodingError(offset: min(offset, data.count), reason: "ends before \(n) more bytes")
            }
        }
        func uint32() throws(DecodingError) -> UInt32 {
            align(4)
            try need(4)
            defer { offset += 4 }
            return UInt32(data[offset]) | UInt32(data[offset + 1]) << 8 | UInt32(data[offset + 2]) << 16
                | UInt32(data[offset + 3]) << 24
        }
        func count() throws(DecodingError) -> Int {
            let n = Int(try uint32())
            guard n <= maxElements else { throw DecodingError(offset: offset - 4, reason: "length \(n) is too long") }
            return n
        }
        func string() throws(DecodingError) -> String {
            let n = try count()
            guard n >= 1 else { throw DecodingError(offset: offset - 4, reason: "a string without its terminator") }
            try need(n)
            defer { offset += n }
            return String(decoding: data[offset..<(offset + n - 1)], as: UTF8.self)
        }
        func doubles() throws(DecodingError) -> [Double] {
            let n = try count()
            guard n > 0 else { return [] }
            align(8)
            try need(8 * n)
            var values: [Double] = []
            values.reserveCapacity(n)
            for k in 0..<n {
                var bits: UInt64 = 0
                for b in 0..<8 { bits |= UInt64(data[offset + 8 * k + b]) << (8 * UInt64(b)) }
                values.append(Double(bitPattern: bits))
            }
            offset += 8 * n
            return values
        }
        let seconds = Int32(bitPattern: try uint32())
        let nanoseconds = try uint32()
        let frameID = try string()
        var names: [String] = []
        for _ in 0..<(try count()) { names.append(try string()) }
        let position = try doubles()
        let velocity = try doubles()
        let effort = try doubles()
        return Message(
            stampNs: UInt64(max(0, Int64(seconds))) * 1_000_000_000 + UInt64(nanoseconds), frameID: frameID,
            names: names, positionRad: position, velocityRadPerS: velocity, effortNm: effort)
    }
}
