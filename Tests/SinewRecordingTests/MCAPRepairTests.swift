import Foundation
import SinewRecording
import SinewTestSupport
import Testing

/// What a file cut at some byte should keep, worked out from the whole file's bytes and summary.
private struct CutExpectation {
    /// Per chunk (file order): where it ends and how many messages it holds (from its MessageIndex records).
    var chunkEnds: [UInt64] = []
    var chunkMessages: [Int] = []
    var attachmentEnds: [UInt64] = []
    var metadataEnds: [UInt64] = []

    init(_ reader: MCAPReader, bytes: [UInt8]) {
        for index in reader.chunkIndexes {
            chunkEnds.append(index.chunkStartOffset + index.chunkLength)
            var count = 0
            for offset in index.messageIndexOffsets.values {
                let lengthAt = Int(offset) + 9 + 2
                count +=
                    bytes.withUnsafeBytes {
                        Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: lengthAt, as: UInt32.self)))
                    } / 16
            }
            chunkMessages.append(count)
        }
        attachmentEnds = reader.attachmentIndexes.map { $0.offset + $0.length }
        metadataEnds = reader.metadataIndexes.map { $0.offset + $0.length }
    }

    func completeChunks(cut: UInt64) -> Int { chunkEnds.filter { $0 <= cut }.count }
    func messages(cut: UInt64) -> Int { chunkMessages.prefix(completeChunks(cut: cut)).reduce(0, +) }
}

@Suite struct MCAPRepairTests {
    /// The file a killed recorder leaves, at every kind of place: inside a chunk, just after it, inside its message
    /// indexes, inside an attachment, a metadata record, the DataEnd or the summary. The repaired file opens through
    /// its new summary with every CRC checked and holds exactly the messages of the chunks that were whole.
    @Test(arguments: [MCAPCompression.none, .zstd(level: 3)])
    func aFileCutAnywhereKeepsEveryCompleteChunk(compression: MCAPCompression) throws {
        let folder = temporaryFolder("mcap-repair")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(
            to: path, ticks: 1500, compression: compression, chunkSizeBytes: 12 << 10)
        let bytes = readFile(path)
        let whole = try MCAPReader(path: path)
        let expectation = CutExpectation(whole, bytes: bytes)
        #expect(expectation.chunkMessages.reduce(0, +) == recording.messages.count)
        #expect(whole.chunkIndexes.count >= 20)

        // Cuts around every chunk, message index group, attachment and metadata record, and at seeded random places.
        var cuts: Set<UInt64> = []
        for index in whole.chunkIndexes {
            let end = index.chunkStartOffset + index.chunkLength
            for delta: Int64 in [-9, -1, 0, 1, 9, 17] { cuts.insert(UInt64(Int64(end) + delta)) }
            cuts.insert(index.chunkStartOffset + index.chunkLength / 2)
            let groupEnd = end + index.messageIndexLength
            for delta: Int64 in [-1, 0, 5] { cuts.insert(UInt64(Int64(groupEnd) + delta)) }
        }
        for end in expectation.attachmentEnds + expectation.metadataEnds {
            for delta: Int64 in [-40, -1, 0] { cuts.insert(UInt64(Int64(end) + delta)) }
        }
        var generator = SeededGenerator(seed: 12)
        for _ in 0..<300 { cuts.insert(UInt64.random(in: 60..<UInt64(bytes.count), using: &generator)) }
        let dataEndOffset = try #require(whole.footer).summaryStart - 13
        cuts.insert(dataEndOffset)
        cuts.insert(dataEndOffset + 13)
        let footerStart = UInt64(bytes.count - 37)
        cuts.insert(footerStart)
        cuts.insert(UInt64(bytes.count - 1))

        var checked = 0
        for cut in cuts.sorted() where cut < UInt64(bytes.count) {
            let (repaired, report) = try MCAPRepair.repair(bytes: Array(bytes[0..<Int(cut)]), name: "cut-\(cut).mcap")
            let reader = try MCAPReader(bytes: repaired, name: "repaired-\(cut).mcap")
            #expect(reader.readFromSummary)
            #expect(try reader.verifyDataSectionCRC())
            let messages = try allMessages(reader)
            let expectedCount = expectation.messages(cut: cut)
            #expect(messages.count == expectedCount, "cut at \(cut)")
            #expect(messages == Array(recording.messages.prefix(expectedCount)), "cut at \(cut)")
            #expect(report.messagesKept == UInt64(expectedCount), "cut at \(cut)")
            #expect(report.chunksKept == expectation.completeChunks(cut: cut), "cut at \(cut)")
            #expect(reader.statistics.messageCount == UInt64(expectedCount))
            // Every kept chunk is indexed, its message indexes (written again when they were cut) list its messages.
            #expect(reader.chunkIndexes.allSatisfy { !$0.messageIndexOffsets.isEmpty })
            #expect(CutExpectation(reader, bytes: repaired).chunkMessages.reduce(0, +) == expectedCount)
            #expect(report.bytesDiscarded < cut)
            let chunkEnd = expectation.chunkEnds.last { $0 <= cut } ?? 0
            #expect(report.bytesDiscarded <= cut - chunkEnd, "cut at \(cut): \(report)")
            // Cut after DataEnd (in the summary) the data section is whole: only the summary is written again.
            #expect((report.damage == nil) == (cut >= dataEndOffset + 13), "cut at \(cut): \(report)")
            let attachments = try reader.attachments()
            #expect(
                attachments
                    == Array(recording.attachments.prefix(expectation.attachmentEnds.filter { $0 <= cut }.count)))
            #expect(try reader.metadata().count == expectation.metadataEnds.filter { $0 <= cut }.count)
            checked += 1
        }
        #expect(checked > 400)
    }

    @Test func repairsInPlaceOrToAnotherFileAndLeavesACompleteFileAsItIs() throws {
        let folder = temporaryFolder("mcap-repair-files")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(
            to: path, ticks: 800, compression: .zstd(level: 3), chunkSizeBytes: 8 << 10)
        let bytes = readFile(path)
        let whole = try MCAPReader(path: path)

        // Complete: nothing to do.
        let untouched = try MCAPRepair.repair(path: path)
        #expect(
            untouched.wasComplete && untouched.bytesDiscarded == 0
                && untouched.messagesKept == UInt64(recording.messages.count))
        #expect(readFile(path) == bytes)

        // Cut in the middle of the fifth chunk, then 4 KiB of zeros (a file system that extended the file before the
        // data reached it): in place.
        let fifth = whole.chunkIndexes[4]
        let cut = Int(fifth.chunkStartOffset + fifth.chunkLength / 2)
        writeFile(path, Array(bytes[0..<cut]) + [UInt8](repeating: 0, count: 4096))
        #expect(throws: MCAPError.self) { _ = try MCAPReader(path: path) }
        let report = try MCAPRepair.repair(path: path)
        #expect(!report.wasComplete)
        #expect(report.chunksKept == 4)
        #expect(report.bytesDiscarded == UInt64(cut) + 4096 - fifth.chunkStartOffset)
        #expect(report.damage?.offset == fifth.chunkStartOffset)
        #expect(report.file == path)
        let repaired = try MCAPReader(path: path)
        #expect(repaired.chunkIndexes == Array(whole.chunkIndexes.prefix(4)))
        #expect(try allMessages(repaired).count == Int(report.messagesKept))

        // To another file: the damaged one stays as it was.
        let damaged = Array(bytes[0..<(Int(whole.chunkIndexes[6].chunkStartOffset) + 3)])
        writeFile(path, damaged)
        let copy = try MCAPRepair.repair(path: path, outputPath: folder + "/fixed.mcap")
        #expect(readFile(path) == damaged)
        #expect(copy.file == folder + "/fixed.mcap" && copy.chunksKept == 6)
        #expect(try MCAPReader(path: folder + "/fixed.mcap").chunkIndexes == Array(whole.chunkIndexes.prefix(6)))
        #expect(!FileManager.default.fileExists(atPath: folder + "/fixed.mcap.repairing"))

        // Not even a whole header: nothing to keep, an error naming the file.
        writeFile(path, Array(bytes[0..<12]))
        #expect {
            try MCAPRepair.repair(path: path)
        } throws: { error in
            (error as? MCAPError)?.file == path && (error as? MCAPError)?.offset == 8
        }
    }

    /// A writer that is dropped without `finish()` (an error path) leaves what a killed process would: a file the
    /// repair completes with every closed chunk.
    @Test func aWriterDroppedWithoutFinishingLeavesARepairableFile() throws {
        let folder = temporaryFolder("mcap-repair-drop")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(
            to: path, ticks: 600, compression: .zstd(level: 3), chunkSizeBytes: 8 << 10, finish: false)
        let report = try MCAPRepair.repair(path: path)
        #expect(report.messagesKept == UInt64(recording.messages.count))
        #expect(report.bytesDiscarded == 0 && report.messageIndexesRewritten == 0)
        let reader = try MCAPReader(path: path)
        #expect(try allMessages(reader) == recording.messages)
        #expect(try reader.attachments() == recording.attachments)
        #expect(reader.statistics == recording.statistics)
    }

    /// The official tools agree: repaired files read with every CRC checked and pass the doctor.
    @Test func repairedFilesPassTheOfficialReaderAndTheDoctor() throws {
        let python = try testPython(importing: ["mcap", "mcap_ros2", "pymcap_cli"])
        let folder = temporaryFolder("mcap-repair-python")
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(
            to: path, ticks: 1200, compression: .zstd(level: 3), chunkSizeBytes: 16 << 10)
        let bytes = readFile(path)
        let whole = try MCAPReader(path: path)
        let expectation = CutExpectation(whole, bytes: bytes)
        let third = whole.chunkIndexes[2]
        let cuts = [
            third.chunkStartOffset + 100,  // inside a chunk
            third.chunkStartOffset + third.chunkLength,  // after a chunk, before its message indexes
            third.chunkStartOffset + third.chunkLength + third.messageIndexLength - 3,  // inside its message indexes
        ]
        var allPassed = true
        for cut in cuts {
            let cutPath = folder + "/cut-\(cut).mcap"
            writeFile(cutPath, Array(bytes[0..<Int(cut)]))
            let report = try MCAPRepair.repair(path: cutPath)
            let count = expectation.messages(cut: cut)
            #expect(report.messagesKept == UInt64(count))
            var kept = recording
            kept.messages = Array(recording.messages.prefix(count))
            kept.jointStates = Array(recording.jointStates.prefix(kept.messages.filter { $0.channelID == 4 }.count))
            kept.attachments = Array(
                recording.attachments.prefix(expectation.attachmentEnds.filter { $0 <= cut }.count))
            kept.metadata = Array(recording.metadata.prefix(expectation.metadataEnds.filter { $0 <= cut }.count))
            let expectedPath = cutPath + ".json"
            try kept.expectedJSON().write(to: URL(fileURLWithPath: expectedPath))
            let check = runProcess(python, [repositoryRoot + "/Tests/python/mcap_check.py", cutPath, expectedPath])
            #expect(check.status == 0, "cut at \(cut): \(check.output.suffix(3000))")
            let doctor = try doctorFindings(cutPath, python: python)
            #expect(doctor.errors == 0 && doctor.warnings == 0, "cut at \(cut): \(doctor.output.suffix(3000))")
            allPassed = allPassed && check.status == 0 && doctor.errors == 0 && doctor.warnings == 0
        }
        if allPassed { try? FileManager.default.removeItem(atPath: folder) }
    }
}
