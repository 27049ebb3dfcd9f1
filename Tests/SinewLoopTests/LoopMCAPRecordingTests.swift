import Foundation
import SinewRecording
import SinewRuntime
import Testing

@Suite(.serialized) struct LoopMCAPRecordingTests {
    struct JointStates: Decodable {
        let tick: Int64
        let position: [String: Double]
    }

    /// One run written twice by the same writer thread, to CSV and to MCAP: every snapshot is a message on
    /// `/joint_states`, `/commands`, `/estimates` and `/timing`, with the CSV's values to the bit; the lifecycle,
    /// bus, transforms and robot description are there, and so are the attachments.
    @Test func mcapHoldsEveryTickWithTheCSVsValues() throws {
        let rig = try SimulatedRig(wireTiming: false)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let recorder = rig.loop.attachRecorder(decimation: 1, capacity: 4096)
        let csvPath = temporaryFile("both.csv")
        let mcapPath = temporaryFile("both.mcap")
        defer {
            unlink(csvPath)
            unlink(mcapPath)
        }
        let urdf = try Array(Data(contentsOf: URL(fileURLWithPath: rig.configuration.modelPath)))
        let context = MCAPRecordingContext(
            configuration: rig.configuration, model: rig.model, chunkSizeBytes: 64 * 1024,
            attachments: [("robot.urdf", "application/xml", urdf), ("version.txt", "text/plain", Array("test".utf8))],
            metadata: [("sinew", ["robot": rig.configuration.name])], library: "sinew test")
        let writer = RecordingWriter(
            recorder: recorder, path: mcapPath,
            sinks: [
                try CSVRecordingSink(path: csvPath, recorder: recorder),
                try MCAPRecordingSink(path: mcapPath, recorder: recorder, context: context),
            ], pollIntervalSeconds: 0.001)
        writer.log("a notice")
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 600), body: rig.loop)
        let report = try scheduler.run()
        try writer.close()
        #expect(report.ticks == 600)
        #expect(recorder.dropped == 0)

        let lines = try String(contentsOfFile: csvPath, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == 601)
        let header = lines[0].split(separator: ",").map(String.init)
        let names = rig.configuration.joints.map(\.name)

        let reader = try MCAPReader(path: mcapPath, options: MCAPReaderOptions(validateCRCs: true))
        #expect(reader.header.library == "sinew test")
        #expect(try reader.verifyDataSectionCRC())
        var topics: [UInt16: String] = [:]
        for (id, channel) in reader.channels { topics[id] = channel.topic }
        var counts: [String: Int] = [:]
        var mismatches = 0
        var row = 1
        try reader.forEachMessage { message in
            let topic = topics[message.channelID] ?? "?"
            counts[topic, default: 0] += 1
            guard topic == "/joint_states", row < lines.count else { return }
            let fields = lines[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            row += 1
            // JSONDecoder reads numbers exactly (JSONSerialization's `as? Double` may not).
            guard let state = try? JSONDecoder().decode(JointStates.self, from: Data(message.data)) else {
                mismatches += 1
                return
            }
            if String(state.tick) != fields[0] { mismatches += 1 }
            for name in names {
                guard let column = header.firstIndex(of: "\(name).position_rad"),
                    let expected = Double(fields[column]), state.position[name]?.bitPattern == expected.bitPattern
                else {
                    mismatches += 1
                    continue
                }
            }
        }
        #expect(mismatches == 0)
        for topic in ["/joint_states", "/commands", "/estimates", "/timing"] {
            #expect(counts[topic] == 600, "\(topic): \(counts[topic] ?? 0)")
        }
        #expect(counts["/lifecycle"] == 1, "one state, active, all run")
        #expect((counts["/tf"] ?? 0) >= 1)
        #expect((counts["/bus"] ?? 0) >= 1)
        #expect(counts["/robot_description"] == 1)
        #expect(counts["/log"] == 1)
        #expect(reader.statistics.messageCount == UInt64(counts.values.reduce(0, +)))
        let attachments = try reader.attachments().map(\.name)
        #expect(attachments == ["robot.urdf", "version.txt"])
        #expect(try reader.metadata().first?.values["robot"] == rig.configuration.name)
    }
}
