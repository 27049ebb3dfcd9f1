import CAllocCounter
import Foundation
import SinewRecording
import SinewTestSupport
import Testing

@Suite struct MCAPCRC32Tests {
    @Test func matchesTheStandardCheckValueAndABitwiseReference() {
        #expect(MCAPCRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(MCAPCRC32.checksum([UInt8]()) == 0)
        var generator = SeededGenerator(seed: 7)
        for length in [1, 7, 8, 9, 63, 64, 65, 1000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var reference: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                reference ^= UInt32(byte)
                for _ in 0..<8 { reference = (reference & 1) != 0 ? (reference >> 1) ^ 0xEDB8_8320 : reference >> 1 }
            }
            #expect(MCAPCRC32.checksum(bytes) == ~reference, "length \(length)")
            // Continued over two pieces, as the writer does across flushes.
            var split = MCAPCRC32()
            split.update(Array(bytes[0..<length / 3]))
            split.update(Array(bytes[(length / 3)...]))
            #expect(split.value == ~reference)
        }
    }
}

/// The little-endian integer at `offset`.
private func le<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, _: T.Type) -> T {
    bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
}

@Suite struct MCAPWriterReaderTests {
    @Test(arguments: [MCAPCompression.none, .zstd(level: 3)])
    func everyMessageAttachmentAndMetadataReadsBackThroughTheSummary(compression: MCAPCompression) throws {
        let folder = temporaryFolder("mcap-roundtrip")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(to: path, ticks: 3000, compression: compression)

        let reader = try MCAPReader(path: path)
        #expect(reader.readFromSummary)
        #expect(reader.damage == nil)
        #expect(reader.header == MCAPHeader(profile: SampleRecording.profile, library: SampleRecording.library))
        #expect(try allMessages(reader) == recording.messages)
        #expect(try reader.attachments() == recording.attachments)
        #expect(try reader.metadata() == recording.metadata)
        #expect(try reader.verifyDataSectionCRC())
        #expect(reader.schemas.count == 4 && reader.channels.count == 4)
        #expect(reader.channels[4]?.messageEncoding == "cdr")
        #expect(reader.schemas[4]?.data == ROS2JointStateEncoder.schemaData)
        #expect(reader.channels[3]?.metadata == ["severity": "event"])
        #expect(reader.channel(topic: "/joint_states")?.id == 4 && reader.channel(topic: "/nothing") == nil)

        let statistics = reader.statistics
        #expect(statistics == recording.statistics)
        #expect(statistics.messageCount == UInt64(recording.messages.count))
        #expect(statistics.channelMessageCounts == [1: 3000, 2: 3000, 3: 12, 4: 1500])
        #expect(statistics.messageStartTimeNs == SampleRecording.startNs)
        #expect(statistics.messageEndTimeNs == SampleRecording.startNs + 2999 * 1_000_000)
        #expect(statistics.attachmentCount == 3 && statistics.metadataCount == 2)
        #expect(Int(statistics.chunkCount) == reader.chunkIndexes.count && reader.chunkIndexes.count > 10)
        for index in reader.chunkIndexes {
            #expect(index.compression == (compression == .none ? "" : "zstd"))
            #expect(!index.messageIndexOffsets.isEmpty)
        }

        // One channel only: the safety events, which most chunks do not hold (their chunks are skipped by index).
        let safety = try allMessages(reader, onChannels: [3])
        #expect(safety == recording.messages.filter { $0.channelID == 3 })
        #expect(reader.chunkIndexes.filter { $0.messageIndexOffsets[3] != nil }.count <= 12)

        // The same file read by a forward scan (as if it had no summary) gives the same.
        let bytes = readFile(path)
        let scanned = try MCAPReader(
            bytes: withoutSummary(bytes), name: "scanned.mcap", options: MCAPReaderOptions(allowsIncompleteFile: false))
        #expect(!scanned.readFromSummary)
        #expect(try allMessages(scanned) == recording.messages)
        #expect(scanned.statistics == recording.statistics)
        #expect(scanned.chunkIndexes == reader.chunkIndexes)
        #expect(try scanned.attachments() == recording.attachments)
        #expect(try scanned.metadata() == recording.metadata)
    }

    /// The file with its footer's summary_start set to 0 and the CRC dropped: a valid file without a summary.
    private func withoutSummary(_ bytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        let footer = copy.count - 8 - 29
        for i in (footer + 9)..<(footer + 29) { copy[i] = 0 }
        return copy
    }

    /// Spec: "A sequence of Message Index records occurs immediately after each chunk. Exactly one Message Index
    /// record must exist in the sequence for every channel on which a message occurs inside the chunk." Checked by
    /// walking the uncompressed file's bytes here, independently of the reader.
    @Test func eachChunkIsFollowedByOneMessageIndexPerChannelInItAndNoOther() throws {
        let folder = temporaryFolder("mcap-index")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(to: path, ticks: 2000, compression: .none, chunkSizeBytes: 8 << 10)
        let bytes = readFile(path)
        var offset = 8
        var chunks = 0
        var indexedMessages = 0
        var pendingChannels: [UInt16: [UInt64]]? = nil
        while offset < bytes.count - 8 {
            let opcode = bytes[offset]
            let length = Int(le(bytes, offset + 1, UInt64.self))
            let content = offset + 9
            if opcode != 0x07, let pending = pendingChannels {
                #expect(pending.isEmpty, "chunk \(chunks) lacks message indexes for channels \(pending.keys.sorted())")
                pendingChannels = nil
            }
            switch opcode {
            case 0x06:
                chunks += 1
                let compressionLength = Int(le(bytes, content + 28, UInt32.self))
                let recordsStart = content + 32 + compressionLength + 8
                let recordsEnd = content + length
                var channels: [UInt16: [UInt64]] = [:]
                var at = recordsStart
                while at < recordsEnd {
                    let innerLength = Int(le(bytes, at + 1, UInt64.self))
                    if bytes[at] == 0x05 {
                        let channel = le(bytes, at + 9, UInt16.self)
                        channels[channel, default: []] += [le(bytes, at + 15, UInt64.self), UInt64(at - recordsStart)]
                    }
                    at += 9 + innerLength
                }
                #expect(at == recordsEnd)
                pendingChannels = channels
            case 0x07:
                let channel = le(bytes, content, UInt16.self)
                let entryBytes = Int(le(bytes, content + 2, UInt32.self))
                let entries = (0..<(entryBytes / 8)).map { le(bytes, content + 6 + 8 * $0, UInt64.self) }
                let expected = pendingChannels?.removeValue(forKey: channel)
                #expect(expected != nil, "a MessageIndex for channel \(channel), which its chunk does not hold")
                #expect(entries == expected, "channel \(channel)'s index entries")
                #expect(!entries.isEmpty, "an empty MessageIndex")
                indexedMessages += entries.count / 2
            default: break
            }
            if opcode == 0x0F { break }
            offset = content + length
        }
        #expect(chunks > 20)
        #expect(indexedMessages == recording.messages.count)
    }

    @Test func chunksCloseAtTheirSizeAndOnceTheyAreOlderThanTheMaximumDuration() throws {
        let folder = temporaryFolder("mcap-chunking")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // By size: 64 KiB chunks of ~250-byte messages.
        let bySize = folder + "/size.mcap"
        _ = try SampleRecording.write(to: bySize, ticks: 3000, compression: .none, chunkSizeBytes: 64 << 10)
        let sizes = try MCAPReader(path: bySize).chunkIndexes.map(\.uncompressedSize)
        #expect(sizes.dropLast().allSatisfy { $0 >= 64 << 10 && $0 < (64 << 10) + 400 }, "\(sizes)")

        // By age, on the test's clock (1 ms a tick): 250 ms chunks, however large the size limit.
        let byAge = folder + "/age.mcap"
        _ = try SampleRecording.write(
            to: byAge, ticks: 3000, compression: .zstd(level: 3), chunkSizeBytes: 64 << 20,
            maxChunkDurationNs: 250_000_000)
        let spans = try MCAPReader(path: byAge).chunkIndexes.map { $0.messageEndTimeNs - $0.messageStartTimeNs }
        #expect(spans.count == 12, "\(spans)")
        #expect(spans.allSatisfy { $0 <= 250_000_000 }, "\(spans)")

        // An idle writer closes its chunk when asked once it is due, not before.
        let clock = ManualClock()
        let idlePath = folder + "/idle.mcap"
        let writer = try MCAPWriter(
            path: idlePath,
            options: MCAPWriterOptions(maxChunkDurationNs: 1_000_000_000, clockNs: { clock.nowNs }))
        let channel = try writer.addChannel(topic: "/log", messageEncoding: "json", schemaID: 0)
        try writer.write(channel: channel, logTimeNs: 1, publishTimeNs: 1, sequence: 0, data: Array("{}".utf8))
        clock.nowNs = 999_999_999
        try writer.closeChunkIfDue()
        try writer.closeChunkIfDue(maxAgeNs: 1_000_000_000)
        #expect(writer.openChunkMessageCount == 1)
        clock.nowNs = 1_000_000_000
        try writer.closeChunkIfDue()
        #expect(writer.openChunkMessageCount == 0)
        // Closed and written: another process reading the file now finds the message.
        let partial = try MCAPReader(path: idlePath, options: MCAPReaderOptions(allowsIncompleteFile: true))
        #expect(partial.damage != nil)
        #expect(try allMessages(partial).count == 1)
        try writer.finish()
    }

    @Test func messageIndexesAreSortedByLogTimeWhenMessagesComeOutOfOrder() throws {
        let folder = temporaryFolder("mcap-order")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/order.mcap"
        let writer = try MCAPWriter(path: path, options: MCAPWriterOptions(compression: .none))
        let channel = try writer.addChannel(topic: "/late", messageEncoding: "json", schemaID: 0)
        for (sequence, time) in [UInt64(30), 10, 20, 10].enumerated() {
            try writer.write(
                channel: channel, logTimeNs: time, publishTimeNs: time, sequence: UInt32(sequence), data: [0x7B, 0x7D])
        }
        try writer.finish()
        let reader = try MCAPReader(path: path)
        #expect(try allMessages(reader).map(\.logTimeNs) == [30, 10, 20, 10])  // file order
        #expect(reader.chunkIndexes.map { [$0.messageStartTimeNs, $0.messageEndTimeNs] } == [[10, 30]])
        let bytes = readFile(path)
        let indexOffset = Int(reader.chunkIndexes[0].messageIndexOffsets[channel]!)
        let entries = (0..<8).map { le(bytes, indexOffset + 9 + 6 + 8 * $0, UInt64.self) }
        let times = stride(from: 0, to: 8, by: 2).map { entries[$0] }
        let offsets = stride(from: 1, to: 8, by: 2).map { entries[$0] }
        #expect(times == [10, 10, 20, 30])
        #expect(offsets[0] < offsets[1], "equal times keep write order")
    }

    @Test func writerErrorsAreValuesNamingTheFileAndTheCause() throws {
        #expect(throws: MCAPError(file: "/nonexistent/run.mcap", offset: nil, problem: .cannotOpen(errno: ENOENT))) {
            _ = try MCAPWriter(path: "/nonexistent/run.mcap")
        }
        // A descriptor that is not open: the magic cannot be written.
        #expect(throws: MCAPError(file: "fd -1", offset: 0, problem: .writeFailed(errno: EBADF))) {
            _ = try MCAPWriter(fileDescriptor: -1, name: "fd -1")
        }
        let folder = temporaryFolder("mcap-errors")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let writer = try MCAPWriter(path: folder + "/e.mcap")
        #expect(throws: MCAPError(file: folder + "/e.mcap", offset: nil, problem: .unknownSchema(3))) {
            _ = try writer.addChannel(topic: "/x", messageEncoding: "json", schemaID: 3)
        }
        #expect(throws: MCAPError(file: folder + "/e.mcap", offset: nil, problem: .unknownChannel(1))) {
            try writer.write(channel: 1, logTimeNs: 0, publishTimeNs: 0, sequence: 0, data: [UInt8]())
        }
        try writer.finish()
        #expect(throws: MCAPError(file: folder + "/e.mcap", offset: nil, problem: .writerClosed)) {
            try writer.write(channel: 1, logTimeNs: 0, publishTimeNs: 0, sequence: 0, data: [UInt8]())
        }
        // A full device: /dev/full fails every write with ENOSPC.
        let full = try MCAPWriter(
            fileDescriptor: open("/dev/null", O_WRONLY), name: "/dev/null", closesDescriptor: true)
        try full.finish()
        let fd = open("/dev/full", O_WRONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(throws: MCAPError(file: "/dev/full", offset: 0, problem: .writeFailed(errno: ENOSPC))) {
            _ = try MCAPWriter(fileDescriptor: fd, name: "/dev/full")
        }
        #expect(
            MCAPError(file: "/dev/full", offset: 0, problem: .writeFailed(errno: ENOSPC)).description
                == "cannot write /dev/full at byte 0: No space left on device (errno 28)")
    }

    @Test func anEmptyFileIsValidAndReadsAsEmpty() throws {
        let folder = temporaryFolder("mcap-empty")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let writer = try MCAPWriter(path: folder + "/empty.mcap", options: MCAPWriterOptions(library: "sinew"))
        let statistics = try writer.finish()
        #expect(statistics.messageCount == 0 && statistics.chunkCount == 0)
        let reader = try MCAPReader(path: folder + "/empty.mcap")
        #expect(try allMessages(reader).isEmpty)
        #expect(reader.header.library == "sinew")
        #expect(try reader.verifyDataSectionCRC())
    }

    @Test func readerErrorsNameTheFileTheOffsetAndTheProblem() throws {
        let folder = temporaryFolder("mcap-reader-errors")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        _ = try SampleRecording.write(to: path, ticks: 400, compression: .zstd(level: 3))
        let bytes = readFile(path)

        #expect(
            throws: MCAPError(
                file: "x.mcap", offset: 0, problem: .notMCAP("the file does not start with 0x89 MCAP0\\r\\n"))
        ) {
            _ = try MCAPReader(bytes: Array("PK\u{3}\u{4} not mcap".utf8), name: "x.mcap")
        }
        do {
            _ = try MCAPReader(bytes: Array(bytes[0..<(bytes.count / 2)]), name: "cut.mcap")
            Issue.record("a file cut in half opened")
        } catch {
            #expect(error.file == "cut.mcap")
            #expect(error.offset != nil)
            #expect(error.description.hasPrefix("cut.mcap at byte "), "\(error)")
        }
        // A flipped byte inside the first chunk's compressed records: decompression or CRC fails, at the chunk.
        let reader = try MCAPReader(path: path)
        let chunk = reader.chunkIndexes[0]
        var damaged = bytes
        damaged[Int(chunk.chunkStartOffset + chunk.chunkLength) - 20] ^= 0x40
        let damagedReader = try MCAPReader(bytes: damaged, name: "flip.mcap")
        do {
            _ = try allMessages(damagedReader)
            Issue.record("a damaged chunk read without error")
        } catch {
            #expect(error.offset == chunk.chunkStartOffset)
            switch error.problem {
            case .crcMismatch, .decompressionFailed: break
            default: Issue.record("unexpected problem \(error)")
            }
        }
    }

    @Test func lz4ChunksAreRefusedByName() throws {
        // A chunk that says lz4 (its content does not matter: it is refused before decompression).
        var bytes = mcapMagic
        func record(_ opcode: UInt8, _ content: [UInt8]) {
            bytes.append(opcode)
            withUnsafeBytes(of: UInt64(content.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: content)
        }
        func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        record(0x01, u32(0) + u32(0))
        let chunkOffset = UInt64(bytes.count)
        record(0x06, u64(1) + u64(1) + u64(16) + u32(0) + u32(3) + Array("lz4".utf8) + u64(4) + [1, 2, 3, 4])
        record(0x0F, u32(0))
        record(0x02, u64(0) + u64(0) + u32(0))
        bytes += mcapMagic
        let reader = try MCAPReader(
            bytes: bytes, name: "lz4.mcap", options: MCAPReaderOptions(allowsIncompleteFile: true))
        #expect(
            reader.damage == MCAPError(file: "lz4.mcap", offset: chunkOffset, problem: .unsupportedCompression("lz4")))
        #expect(reader.damage?.description.contains("mcap compress --compression zstd") == true)
        #expect(throws: MCAPError(file: "lz4.mcap", offset: chunkOffset, problem: .unsupportedCompression("lz4"))) {
            _ = try MCAPReader(bytes: bytes, name: "lz4.mcap")
        }
    }

    @Test func declaredSizesOverTheLimitsAreRefusedBeforeAllocating() throws {
        let folder = temporaryFolder("mcap-limits")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/run.mcap"
        _ = try SampleRecording.write(to: path, ticks: 400, compression: .zstd(level: 3), chunkSizeBytes: 64 << 10)
        let reader = try MCAPReader(path: path, options: MCAPReaderOptions(maxChunkUncompressedBytes: 1000))
        #expect {
            _ = try allMessages(reader)
        } throws: { error in
            guard let error = error as? MCAPError, case .tooLarge(let what, _, 1000) = error.problem else {
                return false
            }
            return what == "chunk (uncompressed)" && error.offset == reader.chunkIndexes[0].chunkStartOffset
        }
        // A record claiming 2^62 bytes in a small file: a truncation, found without reading.
        var bytes = readFile(path)
        let first = Int(reader.chunkIndexes[0].chunkStartOffset)
        bytes.replaceSubrange(
            (first + 1)..<(first + 9), with: withUnsafeBytes(of: UInt64(1 << 62).littleEndian) { Array($0) })
        let lying = try MCAPReader(bytes: bytes, name: "lying.mcap")
        #expect(throws: MCAPError.self) { _ = try allMessages(lying) }
    }

    @Test func writingAMessageAllocatesNothingOnceTheChunkBuffersHaveGrown() throws {
        let folder = temporaryFolder("mcap-alloc")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let writer = try MCAPWriter(
            path: folder + "/alloc.mcap",
            options: MCAPWriterOptions(compression: .zstd(level: 3), chunkSizeBytes: 1 << 20, maxChunkDurationNs: nil))
        let channel = try writer.addChannel(topic: "/state", messageEncoding: "json", schemaID: 0)
        let message = [UInt8](repeating: 0x41, count: 300)
        // Warm up: every buffer at its working size, one chunk closed.
        for i in 0..<5000 {
            try writer.write(
                channel: channel, logTimeNs: UInt64(i), publishTimeNs: UInt64(i), sequence: 0, data: message)
        }
        try writer.closeChunk()
        for i in 0..<100 {
            try writer.write(
                channel: channel, logTimeNs: UInt64(i), publishTimeNs: UInt64(i), sequence: 0, data: message)
        }
        let before = sinew_thread_allocations()
        try message.withUnsafeBytes { raw in
            for i in 100..<1100 {
                try writer.write(
                    channel: channel, logTimeNs: UInt64(i), publishTimeNs: UInt64(i), sequence: 0, data: raw)
            }
        }
        let allocations = sinew_thread_allocations() - before
        #expect(allocations == 0, "\(allocations) allocations in 1000 writes")
        try writer.finish()
    }
}
