import Glibc

/// What `MCAPRepair.repair` did.
public struct MCAPRepairReport: Sendable, Equatable {
    /// The repaired file (the input, or the output path given).
    public var file: String
    /// The file was whole and readable through its summary: nothing was changed (or it was copied as it is).
    public var wasComplete: Bool
    public var chunksKept: Int
    /// Messages kept, in chunks and outside them.
    public var messagesKept: UInt64
    public var attachmentsKept: Int
    public var metadataKept: Int
    /// Bytes of the original after the kept part: a record cut off (the chunk being written when the process died),
    /// a damaged record and what followed it, or a summary that was rewritten.
    public var bytesDiscarded: UInt64
    /// Message indexes written again for the last kept chunk, whose own were cut off.
    public var messageIndexesRewritten: Int
    /// Where and why the kept part ends (nil when the data section was whole).
    public var damage: MCAPError?
}

/// Completes an MCAP file that a killed process left without its end: keeps every whole record of the data
/// section — every chunk that decompresses and matches its CRC, with its message indexes (written again when they
/// were cut off), schemas, channels, attachments and metadata outside chunks — up to the first record that is cut
/// off or damaged, and writes DataEnd, a new summary, summary offsets, footer and magic after it.
public enum MCAPRepair {
    /// Repairs `path` in place (the damaged tail is cut off and the new end written; the kept bytes are not moved),
    /// or writes the repaired file to `outputPath` (through a temporary file renamed at the end), leaving `path` as
    /// it is.
    @discardableResult
    public static func repair(
        path: String, outputPath: String? = nil, options: MCAPReaderOptions = MCAPReaderOptions()
    ) throws(MCAPError) -> MCAPRepairReport {
        let source = try MCAPFileSource(path: path)
        var plan = try plan(source, options: options)
        plan.report.file = outputPath ?? path
        if let outputPath, outputPath != path {
            try write(prefixOf: source, count: plan.keptEnd, appendix: plan.appendix, to: outputPath)
        } else if !plan.report.wasComplete {
            try rewriteTail(path: path, keptEnd: plan.keptEnd, appendix: plan.appendix)
        }
        return plan.report
    }

    /// Repairs a file held in memory; returns the repaired bytes (the same bytes when it was complete).
    public static func repair(
        bytes: [UInt8], name: String, options: MCAPReaderOptions = MCAPReaderOptions()
    ) throws(MCAPError) -> (bytes: [UInt8], report: MCAPRepairReport) {
        let plan = try plan(MCAPMemorySource(bytes: bytes, name: name), options: options)
        return (Array(bytes[0..<Int(plan.keptEnd)]) + plan.appendix, plan.report)
    }

    /// The bytes to keep (the first `keptEnd`) and what to write after them.
    private struct Plan {
        var keptEnd: UInt64
        var appendix: [UInt8]
        var report: MCAPRepairReport
    }

    private static func plan(_ source: MCAPByteSource, options: MCAPReaderOptions) throws(MCAPError) -> Plan {
        var scanOptions = options
        scanOptions.validateCRCs = true
        let access = MCAPRecordAccess(source: source, options: scanOptions, decompressor: ZstdDecompressor())
        var scan = try MCAPScanner(access: access).scan()
        var report = MCAPRepairReport(
            file: source.name, wasComplete: false, chunksKept: scan.summary.chunkIndexes.count,
            messagesKept: scan.summary.statistics.messageCount, attachmentsKept: scan.summary.attachmentIndexes.count,
            metadataKept: scan.summary.metadataIndexes.count, bytesDiscarded: source.size - scan.keptEnd,
            messageIndexesRewritten: scan.missingMessageIndexes.count, damage: scan.stop)

        let crcHolds = scan.storedDataSectionCRC == 0 || scan.storedDataSectionCRC == scan.crcAtKeptEnd.value
        if scan.stop == nil, crcHolds, summaryMatches(scan, source: source, options: scanOptions) {
            report.wasComplete = true
            report.bytesDiscarded = 0
            return Plan(keptEnd: source.size, appendix: [], report: report)
        }

        // The last chunk's message indexes, when the process died while writing them.
        var appendix: [UInt8] = []
        var crc = scan.crcAtKeptEnd
        if !scan.missingMessageIndexes.isEmpty, let last = scan.summary.chunkIndexes.indices.last {
            var offsets: [UInt16: UInt64] = [:]
            for channel in scan.missingMessageIndexes.keys.sorted() {
                offsets[channel] = scan.keptEnd + UInt64(appendix.count)
                MCAPRecordEncoder.messageIndex(
                    channelID: channel, entries: scan.missingMessageIndexes[channel]!, into: &appendix)
            }
            scan.summary.chunkIndexes[last].messageIndexOffsets = offsets
            scan.summary.chunkIndexes[last].messageIndexLength = UInt64(appendix.count)
            crc.update(appendix)
        }
        appendix += scan.summary.tail(dataEndOffset: scan.keptEnd + UInt64(appendix.count), dataSectionCRC: crc.value)
        return Plan(keptEnd: scan.keptEnd, appendix: appendix, report: report)
    }

    /// Whether the file's own summary opens and lists exactly what the scan found (else it is written again).
    private static func summaryMatches(
        _ scan: MCAPScanResult, source: MCAPByteSource, options: MCAPReaderOptions
    ) -> Bool {
        guard let reader = try? MCAPReader(source: source, options: options), reader.readFromSummary,
            reader.footer?.summaryStart == scan.dataEndRecordEnd
        else {
            return false
        }
        let found = scan.summary
        return reader.statistics == found.statistics && reader.chunkIndexes == found.chunkIndexes
            && reader.attachmentIndexes == found.attachmentIndexes && reader.metadataIndexes == found.metadataIndexes
            && reader.schemas == Dictionary(found.schemas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            && reader.channels == Dictionary(found.channels.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Cuts the file at `keptEnd` and writes `appendix` there.
    private static func rewriteTail(path: String, keptEnd: UInt64, appendix: [UInt8]) throws(MCAPError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw MCAPError(file: path, offset: nil, problem: .cannotOpen(errno: errno)) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(keptEnd)) == 0 else {
            throw MCAPError(file: path, offset: keptEnd, problem: .writeFailed(errno: errno))
        }
        try writeAll(fd, appendix, at: keptEnd, file: path)
        guard fsync(fd) == 0 else { throw MCAPError(file: path, offset: nil, problem: .writeFailed(errno: errno)) }
    }

    /// Writes the source's first `count` bytes and `appendix` to a temporary file beside `path`, then renames it.
    private static func write(
        prefixOf source: MCAPByteSource, count: UInt64, appendix: [UInt8], to path: String
    ) throws(MCAPError) {
        let temporary = path + ".repairing"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MCAPError(file: temporary, offset: nil, problem: .cannotOpen(errno: errno)) }
        do throws(MCAPError) {
            var offset: UInt64 = 0
            while offset < count {
                let block = Int(min(UInt64(4 << 20), count - offset))
                try writeAll(fd, try source.read(at: offset, count: block), at: offset, file: temporary)
                offset += UInt64(block)
            }
            try writeAll(fd, appendix, at: count, file: temporary)
            guard fsync(fd) == 0 else {
                throw MCAPError(file: temporary, offset: nil, problem: .writeFailed(errno: errno))
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw MCAPError(file: path, offset: nil, problem: .writeFailed(errno: code))
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64, file: String) throws(MCAPError) {
        var done = 0
        let failure: Int32? = bytes.withUnsafeBytes { raw in
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                done += n
            }
            return nil
        }
        if let failure {
            throw MCAPError(file: file, offset: offset + UInt64(done), problem: .writeFailed(errno: failure))
        }
    }
}
