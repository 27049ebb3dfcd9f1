import Foundation
import SinewRecording

// The MCAP writer's throughput on what the flight recorder writes: small JSON messages (a 12-joint state, a command,
// stage timings) and a ROS 2 JointState in CDR, four channels at 1 kHz log times. Printed beside its peer from the
// same run — a bare write(2) of the same message bytes to the same disk — for uncompressed and zstd chunks, and the
// reader's speed on each file. `swift run -c release sinew-bench-mcap [SECONDS_OF_1KHZ_TICKS] [DIR]`.

let arguments = CommandLine.arguments
let ticks = (arguments.count > 1 ? Int(arguments[1]) ?? 60 : 60) * 1000
let directory = arguments.count > 2 ? arguments[2] : NSTemporaryDirectory()
let jointNames = (1...12).map { "joint_\($0)" }
let startNs: UInt64 = 1_700_000_000_000_000_000

/// One tick's messages: (channel slot, bytes). Deterministic values that change every tick, as a run's do.
func tickMessages(_ tick: Int, ros2: ROS2JointStateEncoder, into messages: inout [[UInt8]]) {
    let t = Double(tick) * 0.001
    var state = "{\"tick\":\(tick),\"t_s\":\(t),\"position_rad\":["
    var command = "{\"tick\":\(tick),\"command_rad\":["
    var positions: [Double] = []
    for j in 0..<12 {
        let q = sin(t + Double(j)) * 0.8
        positions.append(q)
        state += (j > 0 ? "," : "") + String(q)
        command += (j > 0 ? "," : "") + String(q + 0.001)
    }
    state += "],\"velocity_rad_s\":[" + positions.map { String($0 * 0.5) }.joined(separator: ",") + "]}"
    command += "]}"
    let timing =
        "{\"tick\":\(tick),\"sense_ns\":\(41_000 + tick % 997),\"decide_ns\":\(12_000 + tick % 89),"
        + "\"act_ns\":\(38_000 + tick % 71),\"wake_lateness_ns\":\(3_000 + tick % 1013)}"
    messages[0] = Array(state.utf8)
    messages[1] = Array(command.utf8)
    messages[2] = Array(timing.utf8)
    messages[3].removeAll(keepingCapacity: true)
    ros2.encode(
        stampNs: startNs + UInt64(tick) * 1_000_000, positionRad: positions, velocityRadPerS: positions,
        effortNm: positions, into: &messages[3])
}

print("sinew-bench-mcap: \(ticks) ticks × 4 channels (12-joint JSON state and command, timings, ROS 2 JointState)")
let ros2 = ROS2JointStateEncoder(jointNames: jointNames)
// Messages are made before timing, so only the writer is measured.
var allMessages: [[[UInt8]]] = []
allMessages.reserveCapacity(ticks)
var scratch: [[UInt8]] = [[], [], [], []]
var payloadBytes = 0
for tick in 0..<ticks {
    tickMessages(tick, ros2: ros2, into: &scratch)
    allMessages.append(scratch)
    payloadBytes += scratch.reduce(0) { $0 + $1.count }
}
let messageCount = ticks * 4
let megabytes = Double(payloadBytes) / 1e6
print(
    String(
        format: "payload: %d messages, %.1f MB (%.0f B per message on average)", messageCount, megabytes,
        Double(payloadBytes) / Double(messageCount)))

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = monotonicClockNs()
    try body()
    return Double(monotonicClockNs() - start) / 1e9
}

func report(_ name: String, _ elapsedS: Double, fileBytes: Int?) {
    let size = fileBytes.map { String(format: ", file %.1f MB", Double($0) / 1e6) } ?? ""
    print(
        String(
            format: "%-28@ %9.0f messages/s  %7.1f MB/s of messages  (%.3f s%@)", name as NSString,
            Double(messageCount) / elapsedS, megabytes / elapsedS, elapsedS, size as NSString))
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}

// The peer: the same bytes through write(2), 64 KiB at a time, then fsync, as the writer does at its end.
let rawPath = directory + "/sinew-bench-raw.bin"
let rawS = seconds {
    let fd = open(rawPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var buffer: [UInt8] = []
    buffer.reserveCapacity(1 << 17)
    for tick in allMessages {
        for message in tick {
            buffer.append(contentsOf: message)
            if buffer.count >= 1 << 16 {
                _ = buffer.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
    }
    _ = buffer.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fsync(fd)
    close(fd)
}
report("write(2) of the bytes", rawS, fileBytes: fileSize(rawPath))
unlink(rawPath)

for (name, compression) in [("mcap uncompressed", MCAPCompression.none), ("mcap zstd level 3", .zstd(level: 3))] {
    let path = directory + "/sinew-bench.mcap"
    do {
        let writeS = try seconds {
            let writer = try MCAPWriter(
                path: path, options: MCAPWriterOptions(library: "sinew-bench", compression: compression))
            let schema = try writer.addSchema(name: "sinew.Json", encoding: "jsonschema", data: Array("{}".utf8))
            let rosSchema = try writer.addSchema(
                name: ROS2JointStateEncoder.schemaName, encoding: ROS2JointStateEncoder.schemaEncoding,
                data: ROS2JointStateEncoder.schemaData)
            let channels = [
                try writer.addChannel(topic: "/joint_state", messageEncoding: "json", schemaID: schema),
                try writer.addChannel(topic: "/command", messageEncoding: "json", schemaID: schema),
                try writer.addChannel(topic: "/timing", messageEncoding: "json", schemaID: schema),
                try writer.addChannel(
                    topic: "/joint_states", messageEncoding: "cdr", schemaID: rosSchema,
                    metadata: ROS2JointStateEncoder.channelMetadata()),
            ]
            for (tick, messages) in allMessages.enumerated() {
                let timeNs = startNs + UInt64(tick) * 1_000_000
                for (slot, message) in messages.enumerated() {
                    try writer.write(
                        channel: channels[slot], logTimeNs: timeNs, publishTimeNs: timeNs, sequence: UInt32(tick),
                        data: message)
                }
            }
            try writer.finish()
        }
        report(name + " write", writeS, fileBytes: fileSize(path))
        var readCount = 0
        let readS = try seconds {
            let reader = try MCAPReader(path: path)
            try reader.forEachMessage { _ in readCount += 1 }
        }
        precondition(readCount == messageCount, "read back \(readCount) of \(messageCount) messages")
        report(name + " read", readS, fileBytes: nil)
    } catch {
        print("\(name): \(error)")
        exit(1)
    }
    unlink(path)
}
