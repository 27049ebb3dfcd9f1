import Foundation
import SinewRecording
import SinewTestSupport
import Testing

/// The reader and the repair on files damaged every way a seeded generator finds: bits flipped, lengths and offsets
/// replaced by extreme values, ranges cut out or repeated, files truncated. Nothing may crash or hang; every failure
/// is an `MCAPError` that names the file and a byte offset; and whatever the repair returns must open through its
/// summary with every CRC checked and hold the messages its report counts.
@Suite struct MCAPMutationTests {
    /// Offsets of the top-level records (lengths are where mutations do the most harm).
    private func recordStarts(_ bytes: [UInt8]) -> [Int] {
        var starts: [Int] = []
        var offset = 8
        while offset + 9 <= bytes.count - 8 {
            starts.append(offset)
            let length = bytes.withUnsafeBytes {
                UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset + 1, as: UInt64.self))
            }
            offset += 9 + Int(length)
        }
        return starts
    }

    private func mutate(_ seed: [UInt8], starts: [Int], _ generator: inout SeededGenerator) -> [UInt8] {
        var bytes = seed
        let extremes: [UInt64] = [0, 1, 8, 0x7F, 0xFFFF, 0xFFFF_FFFF, 1 << 32, 1 << 62, UInt64.max, UInt64(seed.count)]
        for _ in 0..<Int.random(in: 1...3, using: &generator) {
            guard bytes.count > 16 else { break }
            // Half the time near a record's start: its opcode, its length, its first fields.
            let position =
                Bool.random(using: &generator) && !starts.isEmpty
                ? min(
                    starts.randomElement(using: &generator)! + Int.random(in: 0..<32, using: &generator),
                    bytes.count - 1)
                : Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<8, using: &generator) {
            case 0:
                bytes[position] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
            case 1:
                bytes[position] = UInt8.random(in: 0...255, using: &generator)
            case 2, 3:
                let value = extremes.randomElement(using: &generator)! &+ UInt64.random(in: 0...2, using: &generator)
                let width = Bool.random(using: &generator) ? 8 : 4
                for i in 0..<width where position + i < bytes.count {
                    bytes[position + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
                }
            case 4:
                bytes.removeSubrange(position...)
            case 5:
                let end = min(bytes.count, position + Int.random(in: 1...200, using: &generator))
                bytes.removeSubrange(position..<end)
            case 6:
                let end = min(bytes.count, position + Int.random(in: 1...200, using: &generator))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            default:
                // An opcode swapped for another record's, or an unknown one.
                bytes[position] = [0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x08, 0x0F, 0x10, 0x80].randomElement(
                    using: &generator)!
            }
        }
        return bytes
    }

    @Test func twelveThousandMutatedFilesNeverCrashAndFailWithTheirFileAndOffset() throws {
        let folder = temporaryFolder("mcap-mutation")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var seeds: [[UInt8]] = []
        for (index, compression) in [MCAPCompression.zstd(level: 3), .none].enumerated() {
            let path = folder + "/seed\(index).mcap"
            _ = try SampleRecording.write(to: path, ticks: 40, compression: compression, chunkSizeBytes: 2048)
            seeds.append(readFile(path))
        }
        // A killed recorder's file (no summary): the scan's paths.
        seeds.append(Array(seeds[0][0..<(seeds[0].count * 2 / 3)]))
        let starts = seeds.map(recordStarts)

        var generator = SeededGenerator(seed: 0x5EED_3CA9)
        var opened = 0
        var failed = 0
        var repaired = 0
        var messages = 0
        for iteration in 0..<12_000 {
            let which = Int.random(in: 0..<seeds.count, using: &generator)
            let bytes = mutate(seeds[which], starts: starts[which], &generator)
            let name = "mutant-\(iteration).mcap"
            let options = MCAPReaderOptions(
                validateCRCs: Bool.random(using: &generator), allowsIncompleteFile: Bool.random(using: &generator),
                maxRecordBytes: 1 << 20, maxChunkUncompressedBytes: 1 << 20)
            do {
                let reader = try MCAPReader(bytes: bytes, name: name, options: options)
                opened += 1
                var iterator = reader.messages()
                while try iterator.next() != nil { messages += 1 }
                var filtered = reader.messages(onChannels: [2, 4])
                while try filtered.next() != nil {}
                _ = try reader.attachments()
                _ = try reader.metadata()
                _ = try reader.verifyDataSectionCRC()
            } catch {
                failed += 1
                #expect(error.file == name && error.offset != nil, "\(error)")
                #expect(error.description.hasPrefix(name), "\(error)")
            }
            do {
                let (fixed, report) = try MCAPRepair.repair(bytes: bytes, name: name)
                repaired += 1
                let reader = try MCAPReader(bytes: fixed, name: "repaired-" + name)
                var count: UInt64 = 0
                var iterator = reader.messages()
                while try iterator.next() != nil { count += 1 }
                #expect(count == report.messagesKept, "iteration \(iteration): \(report)")
                #expect(try reader.verifyDataSectionCRC() || report.wasComplete, "iteration \(iteration)")
                _ = try reader.attachments()
            } catch {
                // A repair may refuse (no whole header); a repaired file may not fail.
                #expect(error.file == name, "iteration \(iteration): \(error)")
            }
        }
        #expect(
            opened > 1000 && failed > 1000 && repaired > 5000,
            "opened \(opened), failed \(failed), repaired \(repaired)")
        #expect(messages > 10_000)
    }
}
