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
