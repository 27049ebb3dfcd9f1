import Foundation
import SinewRecording
import SinewTestSupport

func readFile(_ path: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: path) ?? Data())
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

/// SplitMix64: a small seeded generator, so mutated inputs are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A clock the test moves: chunk age by the test's own time, not the machine's.
final class ManualClock: @unchecked Sendable {
    var nowNs: UInt64 = 0
}

/// A recording like the flight recorder's: JSON channels with jsonschema schemas (a 6-joint state every tick, stage
/// timings every tick, a safety event every 250 ticks), a ROS 2 JointState in CDR every other tick, attachments and
/// metadata written between chunks. Everything written is kept for comparison.
struct SampleRecording {
    struct Message: Equatable {
        var channelID: UInt16
        var topic: String
        var logTimeNs: UInt64
        var publishTimeNs: UInt64
        var sequence: UInt32
        var data: [UInt8]
    }

    struct JointState {
        var topic: String
        var stampNs: UInt64
        var frameID: String
        var names: [String]
        var positionRad: [Double]
        var velocityRadPerS: [Double]
        var effortNm: [Double]
    }

    static let startNs: UInt64 = 1_700_000_000_000_000_000
    static let jointNames = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    static let profile = ""
    static let library = "sinew 0.5.0-test"

    var messages: [Message] = []
    var jointStates: [JointState] = []
    var attachments: [MCAPAttachment] = []
    var metadata: [MCAPMetadata] = []
    var statistics = MCAPStatistics()

    /// Writes `ticks` ticks of 1 ms to `path`. With a `clock`, chunk age is measured on it (moved 1 ms a tick).
    static func write(
        to path: String, ticks: Int, compression: MCAPCompression, chunkSizeBytes: Int = 16 << 10,
        maxChunkDurationNs: UInt64? = nil, finish: Bool = true
    ) throws -> SampleRecording {
        let clock = ManualClock()
        let options = MCAPWriterOptions(
            profile: profile, library: library, compression: compression, chunkSizeBytes: chunkSizeBytes,
            maxChunkDurationNs: maxChunkDurationNs, clockNs: { clock.nowNs })
        let writer = try MCAPWriter(path: path, options: options)
        var recording = SampleRecording()
        let stateSchema = try writer.addSchema(
            name: "sinew.JointState", encoding: "jsonschema",
            data: Array(
                """
                {"type":"object","properties":{"tick":{"type":"integer"},\
                "position_rad":{"type":"array","items":{"type":"number"}},\
                "velocity_rad_s":{"type":"array","items":{"type":"number"}}}}
                """.utf8))
        let timingSchema = try writer.addSchema(
            name: "sinew.TickTiming", encoding: "jsonschema",
            data: Array(#"{"type":"object","properties":{"sense_ns":{"type":"integer"}}}"#.utf8))
        let safetySchema = try writer.addSchema(
            name: "sinew.SafetyEvent", encoding: "jsonschema",
            data: Array(#"{"type":"object","properties":{"cause":{"type":"string"}}}"#.utf8))
        let rosSchema = try writer.addSchema(
            name: ROS2JointStateEncoder.schemaName, encoding: ROS2JointStateEncoder.schemaEncoding,
            data: ROS2JointStateEncoder.schemaData)
        let channels: [(id: UInt16, topic: String)] = [
            (
                try writer.addChannel(topic: "/sinew/joint_state", messageEncoding: "json", schemaID: stateSchema),
                "/sinew/joint_state"
            ),
            (
                try writer.addChannel(topic: "/sinew/timing", messageEncoding: "json", schemaID: timingSchema),
                "/sinew/timing"
            ),
            (
                try writer.addChannel(
                    topic: "/sinew/safety", messageEncoding: "json", schemaID: safetySchema,
                    metadata: ["severity": "event"]), "/sinew/safety"
            ),
            (
                try writer.addChannel(
                    topic: "/joint_states", messageEncoding: ROS2JointStateEncoder.messageEncoding,
                    schemaID: rosSchema, metadata: ROS2JointStateEncoder.channelMetadata()), "/joint_states"
            ),
        ]
        let encoder = ROS2JointStateEncoder(jointNames: jointNames, frameID: "base_link")
        var sequences = [UInt32](repeating: 0, count: channels.count)
        var cdr: [UInt8] = []
        cdr.reserveCapacity(encoder.encodedByteCount)

        func emit(_ slot: Int, _ logTimeNs: UInt64, _ data: [UInt8]) throws {
            let message = Message(
                channelID: channels[slot].id, topic: channels[slot].topic, logTimeNs: logTimeNs,
                publishTimeNs: logTimeNs - 50_000, sequence: sequences[slot], data: data)
            sequences[slot] += 1
            try writer.write(
                channel: message.channelID, logTimeNs: message.logTimeNs, publishTimeNs: message.publishTimeNs,
                sequence: message.sequence, data: message.data)
            recording.messages.append(message)
        }

        for tick in 0..<ticks {
            clock.nowNs = UInt64(tick) * 1_000_000
            let timeNs = startNs + UInt64(tick) * 1_000_000
            let t = Double(tick) * 0.001
            let position = (0..<jointNames.count).map { sin(t + Double($0)) * 0.7 }
            // Every 100th tick without velocities: an empty sequence between two full ones (CDR alignment).
            let velocity = tick % 100 == 0 ? [] : (0..<jointNames.count).map { cos(t + Double($0)) * 0.7 }
            let effort = (0..<jointNames.count).map { Double($0) * 0.25 - t }
            let state =
                "{\"tick\":\(tick),\"position_rad\":[" + position.map { "\($0)" }.joined(separator: ",")
                + "],\"velocity_rad_s\":[" + velocity.map { "\($0)" }.joined(separator: ",") + "]}"
            try emit(0, timeNs, Array(state.utf8))
            try emit(1, timeNs, Array("{\"tick\":\(tick),\"sense_ns\":\(40_000 + tick % 977)}".utf8))
            if tick % 250 == 125 {
                try emit(2, timeNs, Array("{\"tick\":\(tick),\"cause\":\"velocity limit\"}".utf8))
            }
            if tick % 2 == 0 {
                cdr.removeAll(keepingCapacity: true)
                encoder.encode(
                    stampNs: timeNs, positionRad: position, velocityRadPerS: velocity, effortNm: effort, into: &cdr)
                try emit(3, timeNs, cdr)
                recording.jointStates.append(
                    JointState(
                        topic: "/joint_states", stampNs: timeNs, frameID: "base_link", names: jointNames,
                        positionRad: position, velocityRadPerS: velocity, effortNm: effort))
            }
            if tick == ticks / 2 {
                let attachments = [
                    MCAPAttachment(
                        logTimeNs: timeNs, createTimeNs: startNs - 5_000_000_000, name: "robot.yaml",
                        mediaType: "application/yaml", data: Array("name: so101\nrate_hz: 1000\n".utf8)),
                    MCAPAttachment(
                        logTimeNs: timeNs, createTimeNs: 0, name: "calibration.bin",
                        mediaType: "application/octet-stream", data: (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
                    ),
                ]
                for attachment in attachments {
                    try writer.attach(
                        name: attachment.name, mediaType: attachment.mediaType, data: attachment.data,
                        logTimeNs: attachment.logTimeNs, createTimeNs: attachment.createTimeNs)
                }
                recording.attachments += attachments
                let metadata = MCAPMetadata(
                    name: "sinew", values: ["version": "0.5.0", "robot": "so101", "ticks": "\(ticks)"])
                try writer.addMetadata(name: metadata.name, values: metadata.values)
                recording.metadata.append(metadata)
            }
        }
        let commandLine = MCAPAttachment(
            logTimeNs: startNs + UInt64(ticks) * 1_000_000, createTimeNs: 0, name: "command_line",
            mediaType: "text/plain",
            data: Array("sinew run Hardware/robots/so101/robot.yaml --record /tmp".utf8))
        try writer.attach(
            name: commandLine.name, mediaType: commandLine.mediaType, data: commandLine.data,
            logTimeNs: commandLine.logTimeNs)
        recording.attachments.append(commandLine)
        let realtime = MCAPMetadata(name: "realtime", values: ["scheduler": "SCHED_FIFO", "priority": "80"])
        try writer.addMetadata(name: realtime.name, values: realtime.values)
        recording.metadata.append(realtime)
        if finish {
            recording.statistics = try writer.finish()
        } else {
            try writer.closeChunk()
            recording.statistics = writer.statistics
        }
        return recording
    }

    /// What `Tests/python/mcap_check.py` compares the file with.
    func expectedJSON() throws -> Data {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let object: [String: Any] = [
            "profile": Self.profile,
            "library": Self.library,
            "messages": messages.map {
                [
                    "topic": $0.topic, "log_time": $0.logTimeNs, "publish_time": $0.publishTimeNs,
                    "sequence": $0.sequence, "data": hex($0.data),
                ] as [String: Any]
            },
            "joint_states": jointStates.map {
                [
                    "topic": $0.topic, "sec": Int($0.stampNs / 1_000_000_000),
                    "nanosec": Int($0.stampNs % 1_000_000_000),
                    "frame_id": $0.frameID, "name": $0.names, "position": $0.positionRad,
                    "velocity": $0.velocityRadPerS, "effort": $0.effortNm,
                ] as [String: Any]
            },
            "attachments": attachments.map {
                [
                    "name": $0.name, "media_type": $0.mediaType, "log_time": $0.logTimeNs,
                    "create_time": $0.createTimeNs, "data": hex($0.data),
                ] as [String: Any]
            },
            "metadata": metadata.map { ["name": $0.name, "metadata": $0.values] as [String: Any] },
        ]
        return try JSONSerialization.data(withJSONObject: object)
    }
}

/// Every message of a reader, data copied.
func allMessages(
    _ reader: MCAPReader, onChannels channels: Set<UInt16>? = nil
) throws(MCAPError) -> [SampleRecording.Message] {
    var messages: [SampleRecording.Message] = []
    try reader.forEachMessage(onChannels: channels) { message in
        messages.append(
            SampleRecording.Message(
                channelID: message.channelID, topic: reader.channels[message.channelID]?.topic ?? "?",
                logTimeNs: message.logTimeNs, publishTimeNs: message.publishTimeNs, sequence: message.sequence,
                data: Array(message.data)))
    }
    return messages
}
