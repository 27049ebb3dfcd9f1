import CSinewDDS
import Foundation
import SinewPolicy
import SinewROS
import SinewTestSupport
import Testing

/// Loopback-only DDS for the tests in this process.
let loopbackConfiguration =
    "<CycloneDDS><Domain id=\"any\"><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
    + "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    + "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers><Peer address=\"127.0.0.1\"/></Peers>"
    + "</Discovery></Domain></CycloneDDS>"

/// A domain of this test process's own.
func testDomain(_ k: Int) -> Int { 100 + Int(getpid() % 30) * 4 + k }

func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// The reference vectors of Tests/python/ros_cdr_vectors.py (ROS 2 CDR by mcap-ros2-support, from the ROS 2 message
/// definitions), by name.
func referenceVectors() throws -> [String: [UInt8]] {
    let python = try testPython(importing: ["mcap_ros2"])
    let result = runProcess(python, [repositoryRoot + "/Tests/python/ros_cdr_vectors.py"])
    try #require(result.status == 0, "\(result.output)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: String])
    return object.mapValues(hexBytes)
}

/// A serialised sample without the padding a writer may add after it (the encapsulation options' two low bits count
/// it, as XCDR2 defines and Cyclone DDS writes for XCDR1 too), and with the options zeroed.
func withoutPadding(_ bytes: [UInt8]) -> [UInt8] {
    guard bytes.count >= 4 else { return bytes }
    let padding = Int(bytes[3] & 3)
    var out = Array(bytes.prefix(bytes.count - padding))
    out[2] = 0
    out[3] = 0
    return out
}

@Suite struct ROSMessageTests {
    /// Sinew's own encoders (the subscription side's mirror) give the reference bytes, and its decoders read them.
    @Test func theSwiftCodecMatchesROS2sBytes() throws {
        let vectors = try referenceVectors()
        let trajectory = JointTrajectoryMessage(
            jointNames: ["elbow_flex"],
            points: [
                JointTrajectoryPointMessage(
                    positions: [1.0], velocities: [0.5], timeFromStart: ROSTime(sec: 1, nanosec: 250_000_000))
            ])
        #expect(trajectory.encode() == vectors["joint_trajectory"])
        let decoded = try (vectors["joint_trajectory"] ?? []).withUnsafeBytes { try JointTrajectoryMessage.decode($0) }
        #expect(decoded == trajectory)
        let state = JointStateMessage(
            header: ROSHeader(stamp: ROSTime(sec: 1_234_567_890, nanosec: 500_000_000), frameID: "base_link"),
            name: ["shoulder_pan", "gripper"], position: [0.5, -1.25], velocity: [0.0, 2.0])
        #expect(state.encode() == vectors["joint_state"])
        #expect(try (vectors["joint_state"] ?? []).withUnsafeBytes { try JointStateMessage.decode($0) } == state)
        let diagnostics = try (vectors["diagnostic_array"] ?? []).withUnsafeBytes {
            try DiagnosticArrayMessage.decode($0)
        }
        #expect(diagnostics.status.first?.value("state") == "safe" && diagnostics.status.first?.level == 2)
    }

    /// What Cyclone DDS puts on the wire for the idlc-generated types (our IDL) is ROS 2's CDR, byte for byte: each
    /// reference sample written by a typed writer and read back raw, on loopback.
    @Test func theIDLsWireBytesMatchROS2s() throws {
        let vectors = try referenceVectors()
        let participant = try DDSParticipant(domainID: testDomain(0), configuration: loopbackConfiguration)
        func roundTrip(_ topic: String, _ type: sinew_ros_type, _ typeName: String, write: (dds_entity_t) -> Void)
            throws -> [UInt8]
        {
            let writer = try participant.typedWriter(topic: topic, type: type, qos: .rosDefault)
            let taker = DDSRawTaker(
                reader: try participant.rawReader(topic: topic, typeName: typeName, qos: .rosDefault), capacity: 1 << 16
            )
            var bytes: [UInt8]?
            let end = Date().addingTimeInterval(10)
            while sinew_dds_matched_subscriptions(writer) < 1 && Date() < end { usleep(10_000) }
            write(writer)
            while bytes == nil && Date() < end {
                _ = taker.take { raw, _, _ in bytes = Array(raw) }
                usleep(5_000)
            }
            return try #require(bytes, "no sample came back on \(topic)")
        }
        let frame = strdup("base_link")!
        defer { free(frame) }
        var names: [UnsafeMutablePointer<CChar>?] = [strdup("shoulder_pan"), strdup("gripper")]
        defer { names.forEach { free($0) } }
        var position = [0.5, -1.25]
        var velocity = [0.0, 2.0]
        let jointState = try roundTrip(
            "rt/vectors/joint_states", SINEW_ROS_JOINT_STATE, "sensor_msgs::msg::dds_::JointState_"
        ) {
            writer in
            names.withUnsafeMutableBufferPointer { n in
                position.withUnsafeMutableBufferPointer { p in
                    velocity.withUnsafeMutableBufferPointer { v in
                        var m = sensor_msgs_msg_dds__JointState_()
                        m.header.stamp = builtin_interfaces_msg_dds__Time_(sec: 1_234_567_890, nanosec: 500_000_000)
                        m.header.frame_id = frame
                        m.name = dds_sequence_string(_maximum: 2, _length: 2, _buffer: n.baseAddress, _release: false)
                        m.position = dds_sequence_double(
                            _maximum: 2, _length: 2, _buffer: p.baseAddress, _release: false)
                        m.velocity = dds_sequence_double(
                            _maximum: 2, _length: 2, _buffer: v.baseAddress, _release: false)
                        _ = dds_write(writer, &m)
                    }
                }
            }
        }
        #expect(withoutPadding(jointState) == vectors["joint_state"], "\(jointState)")
        let child = strdup("shoulder_link")!
        defer { free(child) }
        let tf = try roundTrip("rt/vectors/tf", SINEW_ROS_TF_MESSAGE, "tf2_msgs::msg::dds_::TFMessage_") { writer in
            var t = geometry_msgs_msg_dds__TransformStamped_()
            t.header.stamp = builtin_interfaces_msg_dds__Time_(sec: 10, nanosec: 20)
            t.header.frame_id = frame
            t.child_frame_id = child
            t.transform.translation = geometry_msgs_msg_dds__Vector3_(x: 0.1, y: 0.2, z: 0.3)
            t.transform.rotation = geometry_msgs_msg_dds__Quaternion_(x: 0, y: 0, z: 0.6, w: 0.8)
            withUnsafeMutablePointer(to: &t) { tp in
                var m = tf2_msgs_msg_dds__TFMessage_(
                    transforms: dds_sequence_geometry_msgs_msg_dds__TransformStamped_(
                        _maximum: 1, _length: 1, _buffer: tp, _release: false))
                _ = dds_write(writer, &m)
            }
        }
        #expect(withoutPadding(tf) == vectors["tf_message"], "\(tf)")
        let wrist = strdup("wrist_link")!
        defer { free(wrist) }
        let imu = try roundTrip("rt/vectors/imu", SINEW_ROS_IMU, "sensor_msgs::msg::dds_::Imu_") { writer in
            var m = sensor_msgs_msg_dds__Imu_()
            m.header.stamp = builtin_interfaces_msg_dds__Time_(sec: 7, nanosec: 8)
            m.header.frame_id = wrist
            m.orientation = geometry_msgs_msg_dds__Quaternion_(x: 0, y: 0.6, z: 0, w: 0.8)
            m.angular_velocity_covariance.0 = -1
            m.linear_acceleration_covariance.0 = -1
            _ = dds_write(writer, &m)
        }
        #expect(withoutPadding(imu) == vectors["imu"], "\(imu)")
        let words = ["state", "safe", "sinew: so101", "safe: emergencyStop", "so101", ""]
        let texts: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) }
        defer { texts.forEach { free($0) } }
        let diagnostics = try roundTrip(
            "rt/vectors/diagnostics", SINEW_ROS_DIAGNOSTIC_ARRAY, "diagnostic_msgs::msg::dds_::DiagnosticArray_"
        ) { writer in
            var kv = diagnostic_msgs_msg_dds__KeyValue_(key: texts[0], value: texts[1])
            withUnsafeMutablePointer(to: &kv) { kvp in
                var status = diagnostic_msgs_msg_dds__DiagnosticStatus_(
                    level: 2, name: texts[2], message: texts[3], hardware_id: texts[4],
                    values: dds_sequence_diagnostic_msgs_msg_dds__KeyValue_(
                        _maximum: 1, _length: 1, _buffer: kvp, _release: false))
                withUnsafeMutablePointer(to: &status) { sp in
                    var m = diagnostic_msgs_msg_dds__DiagnosticArray_()
                    m.header.stamp = builtin_interfaces_msg_dds__Time_(sec: 5, nanosec: 6)
                    m.header.frame_id = texts[5]
                    m.status = dds_sequence_diagnostic_msgs_msg_dds__DiagnosticStatus_(
                        _maximum: 1, _length: 1, _buffer: sp, _release: false)
                    _ = dds_write(writer, &m)
                }
            }
        }
        #expect(withoutPadding(diagnostics) == vectors["diagnostic_array"], "\(diagnostics)")
        let description = strdup("<robot name=\"so101\"/>")!
        defer { free(description) }
        let string = try roundTrip("rt/vectors/string", SINEW_ROS_STRING, "std_msgs::msg::dds_::String_") { writer in
            var m = std_msgs_msg_dds__String_(data: description)
            _ = dds_write(writer, &m)
        }
        #expect(withoutPadding(string) == vectors["string"], "\(string)")
    }

    /// Seeded mutations of valid samples of every type Sinew decodes — bits flipped, bytes changed, cut short,
    /// lengths rewritten, bytes inserted — never crash the decoders, and every refusal says what and where (an
    /// offset inside the sample).
    @Test func mutatedSamplesAreRefusedWithReasonsNeverACrash() throws {
        var rng = SplitMix64(seed: 0x5EED_D05)
        let seeds: [[UInt8]] = [
            JointTrajectoryMessage(
                header: ROSHeader(stamp: ROSTime(sec: 3, nanosec: 4), frameID: "base_link"),
                jointNames: ["shoulder_pan", "elbow_flex"],
                points: (0..<4).map {
                    JointTrajectoryPointMessage(
                        positions: [0.1 * Double($0), 0.2], velocities: [0, 0.1],
                        timeFromStart: ROSTime(sec: Int32($0), nanosec: 0))
                }
            ).encode(),
            JointStateMessage(name: ["gripper"], position: [0.3]).encode(), EmptyMessage.encode(),
        ]
        var refused = 0
        var accepted = 0
        for round in 0..<30_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0...Int(rng.next() % 4) {
                guard !bytes.isEmpty else { break }
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 6 {
                case 0: bytes[at] ^= UInt8(1 << (rng.next() % 8))
                case 1: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
                case 3:
                    // A length or count rewritten: small, large, or the largest.
                    let value: UInt32 = [0, 1, 7, 1000, 0x7FFF_FFFF, 0xFFFF_FFFF][Int(rng.next() % 6)]
                    let aligned = 4 + (max(at, 4) - 4) / 4 * 4
                    if aligned + 4 <= bytes.count {
                        for i in 0..<4 { bytes[aligned + i] = UInt8(truncatingIfNeeded: value >> UInt32(8 * i)) }
                    }
                case 4: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                default: bytes[at] = 0
                }
            }
            let outcomes = bytes.withUnsafeBytes { raw in decodeEveryType(raw) }
            for outcome in outcomes {
                if let error = outcome {
                    refused += 1
                    #expect(!error.reason.isEmpty && error.offset >= 0 && error.offset <= bytes.count)
                } else {
                    accepted += 1
                }
            }
        }
        print("mutated ROS samples: \(refused) refused, \(accepted) decoded (120,000 decodes)")
        #expect(refused > 60_000)
    }

    /// Limits: a count larger than the bytes left is refused before anything is allocated for it; XCDR2 is named.
    @Test func lyingCountsAndOtherEncodingsAreRefusedClearly() throws {
        var w = CDRWriter()
        ROSHeader().encodeForTest(&w)
        w.uint32(1_000_000_000)
        let error = try #require(throws: CDRDecodeError.self) {
            try w.bytes.withUnsafeBytes { _ = try JointTrajectoryMessage.decode($0) }
        }
        #expect(error.reason.contains("joint_names") && error.reason.contains("1000000000"))
        var xcdr2 = EmptyMessage.encode()
        xcdr2[1] = 0x07
        let other = try #require(throws: CDRDecodeError.self) {
            try xcdr2.withUnsafeBytes { try EmptyMessage.decode($0) }
        }
        #expect(other.reason.contains("XCDR2"))
    }
}

extension ROSHeader {
    func encodeForTest(_ w: inout CDRWriter) {
        w.int32(stamp.sec)
        w.uint32(stamp.nanosec)
        w.string(frameID)
    }
}

/// Each decoder on the same bytes: nil where it decoded, its error where it refused.
func decodeEveryType(_ raw: UnsafeRawBufferPointer) -> [CDRDecodeError?] {
    var out: [CDRDecodeError?] = []
    do { _ = try JointTrajectoryMessage.decode(raw); out.append(nil) } catch { out.append(error) }
    do { _ = try JointStateMessage.decode(raw); out.append(nil) } catch { out.append(error) }
    do { _ = try DiagnosticArrayMessage.decode(raw); out.append(nil) } catch { out.append(error) }
    do { try EmptyMessage.decode(raw); out.append(nil) } catch { out.append(error) }
    return out
}
