import CAllocCounter
import SinewRecording
import Testing

@Suite struct ROS2JointStateTests {
    /// Worked out by hand from the CDR rules (XCDR1, little-endian): alignment counted from the end of the
    /// encapsulation header, strings as uint32 length with the terminating NUL, sequences as a uint32 count, doubles
    /// aligned to 8 (only when the sequence has any).
    @Test func encodesTheCDRLayoutByteForByte() {
        let encoder = ROS2JointStateEncoder(jointNames: ["abcd"], frameID: "")
        var out: [UInt8] = []
        encoder.encode(stampNs: 1_500_000_002, positionRad: [1.0], velocityRadPerS: [], effortNm: [-2.0], into: &out)
        let expected: [UInt8] =
            [0x00, 0x01, 0x00, 0x00]  // encapsulation: CDR little-endian, no options
            + [0x01, 0x00, 0x00, 0x00]  // 0: stamp.sec 1
            + [0x02, 0x65, 0xCD, 0x1D]  // 4: stamp.nanosec 500000002
            + [0x01, 0x00, 0x00, 0x00, 0x00]  // 8: frame_id "" (length 1: the NUL)
            + [0x00, 0x00, 0x00]  // 13: pad to 16
            + [0x01, 0x00, 0x00, 0x00]  // 16: name: 1 string
            + [0x05, 0x00, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64, 0x00]  // 20: "abcd"
            + [0x00, 0x00, 0x00]  // 29: pad to 32
            + [0x01, 0x00, 0x00, 0x00]  // 32: position: 1 double
            + [0x00, 0x00, 0x00, 0x00]  // 36: pad to 40
            + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF0, 0x3F]  // 40: 1.0
            + [0x00, 0x00, 0x00, 0x00]  // 48: velocity: empty (no padding)
            + [0x01, 0x00, 0x00, 0x00]  // 52: effort: 1 double, already at 56
            + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0]  // 56: -2.0
        #expect(out == expected)
        #expect(out.count <= encoder.encodedByteCount)
    }

    @Test func theSchemaIsTheRos2msgTextRosbag2Writes() {
        let text = ROS2JointStateEncoder.schemaText
        let separator = String(repeating: "=", count: 80)
        #expect(text.hasPrefix("std_msgs/Header header\n\nstring[] name\nfloat64[] position\n"))
        #expect(text.contains("\n\(separator)\nMSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"))
        #expect(text.hasSuffix("\n\(separator)\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"))
        #expect(ROS2JointStateEncoder.schemaName == "sensor_msgs/msg/JointState")
        #expect(ROS2JointStateEncoder.channelMetadata() == ["offered_qos_profiles": ""])
    }

    @Test func encodingIntoAReservedBufferAllocatesNothing() {
        let names = (1...12).map { "joint_\($0)" }
        let encoder = ROS2JointStateEncoder(jointNames: names, frameID: "base_link")
        let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: 12)
        values.initialize(repeating: 0.25)
        defer { values.deallocate() }
        var out: [UInt8] = []
        out.reserveCapacity(encoder.encodedByteCount)
        let readOnly = UnsafeBufferPointer(values)
        encoder.encode(stampNs: 1, positionRad: readOnly, velocityRadPerS: readOnly, effortNm: readOnly, into: &out)
        let before = sinew_thread_allocations()
        for tick in 0..<1000 {
            out.removeAll(keepingCapacity: true)
            encoder.encode(
                stampNs: UInt64(tick) * 1_000_000, positionRad: readOnly, velocityRadPerS: readOnly,
                effortNm: readOnly, into: &out)
        }
        #expect(sinew_thread_allocations() - before == 0)
        #expect(out.count <= encoder.encodedByteCount)
    }

    /// What the encoder writes decodes back to the same names, stamp and values, bit for bit.
    @Test func theDecoderReadsBackWhatTheEncoderWrote() throws {
        let names = ["shoulder_pan", "elbow", "gripper"]
        let encoder = ROS2JointStateEncoder(jointNames: names, frameID: "base")
        var out: [UInt8] = []
        let position = [0.1, -2.5e-9, .pi]
        encoder.encode(
            stampNs: 1_765_000_000_123_456_789, positionRad: position, velocityRadPerS: [], effortNm: [1, 2, 3],
            into: &out)
        let message = try ROS2JointStateDecoder.decode(out)
        #expect(message.names == names)
        #expect(message.frameID == "base")
        #expect(message.stampNs == 1_765_000_000_123_456_789)
        #expect(message.positionRad.map(\.bitPattern) == position.map(\.bitPattern))
        #expect(message.velocityRadPerS.isEmpty)
        #expect(message.effortNm == [1, 2, 3])
    }

    /// 20,000 seeded mutations (flipped bytes, cuts, lying lengths) of a real message: every one decodes or fails
    /// with its offset, none crashes or allocates what a length claims.
    @Test func mutatedMessagesFailWithTheirOffsetAndNeverCrash() {
        let encoder = ROS2JointStateEncoder(jointNames: ["a", "bb", "ccc", "dddd", "e", "f"])
        var valid: [UInt8] = []
        encoder.encode(
            stampNs: 42, positionRad: [1, 2, 3, 4, 5, 6], velocityRadPerS: [1, 2, 3, 4, 5, 6],
            effortNm: [1, 2, 3, 4, 5, 6], into: &valid)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var decoded = 0
        var failed = 0
        for _ in 0..<20_000 {
            var bytes = valid
            switch next() % 4 {
            case 0:
                for _ in 0..<(1 + next() % 4) {
                    bytes[Int(next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: next())
                }
            case 1: bytes = Array(bytes.prefix(Int(next() % UInt64(bytes.count))))
            case 2:
                let at = 4 + 4 * Int(next() % UInt64((bytes.count - 8) / 4))
                for b in 0..<4 { bytes[at + b] = UInt8(truncatingIfNeeded: next() >> (8 * UInt64(b))) }
            default: bytes += (0..<Int(next() % 16)).map { _ in UInt8(truncatingIfNeeded: next()) }
            }
            do {
                let message = try ROS2JointStateDecoder.decode(bytes, maxElements: 1000)
                #expect(message.names.count <= 1000)
                decoded += 1
            } catch {
                #expect(error.offset >= 0 && error.offset <= bytes.count, "\(error)")
                failed += 1
            }
        }
        #expect(decoded + failed == 20_000)
        #expect(failed > 1000)
    }
}
