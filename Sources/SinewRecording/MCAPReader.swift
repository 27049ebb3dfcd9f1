/// Reads an MCAP file, from a path or from memory. It checks the magic and the Header, then reads the summary
/// through the footer when the file has one (schemas, channels, statistics and indexes without touching the data),
/// else scans the data section forward (decompressing each chunk once) to build the same. Messages are read in file
/// order, chunk by chunk, optionally only some channels' (chunks without them are skipped by their index).
///
/// Files come from outside: every length is checked, sizes are capped (`MCAPReaderOptions`), and every problem is
/// an `MCAPError` naming the file and the byte offset. Compression: zstd and none; lz4 is refused by name.
public final class MCAPReader {
    public let file: String
    public let options: MCAPReaderOptions
    public let header: MCAPHeader
    /// By ID. From the summary, or from the whole data section when the file has no summary.
    public let schemas: [UInt16: MCAPSchema]
    public let channels: [UInt16: MCAPChannel]
    /// From the summary; computed by the scan when the file has no summary.
    public let statistics: MCAPStatistics
    /// In file order.
    public let chunkIndexes: [MCAPChunkIndex]
    public let attachmentIndexes: [MCAPAttachmentIndex]
    public let metadataIndexes: [MCAPMetadataIndex]
    /// The footer, when the file ends with one and the closing magic.
    public let footer: MCAPFooter?
    /// Whether the schemas, channels and indexes came from the file's summary (else from a scan).
    public let readFromSummary: Bool
    /// Why the file is incomplete (no footer, a record cut off or wrong), when `allowsIncompleteFile` let it be
    /// read anyway; what is before the damage is read. nil: the file is whole.
    public let damage: MCAPError?

    private let access: MCAPRecordAccess
    private let headerEnd: UInt64
    /// Where a forward walk of the data section ends (DataEnd, the summary, or the end of what is whole).
    private let dataWalkEnd: UInt64

    /// Opens the file at `path`.
    public convenience init(path: String, options: MCAPReaderOptions = MCAPReaderOptions()) throws(MCAPError) {
        try self.init(source: try MCAPFileSource(path: path), options: options)
    }

    /// Reads a file held in memory; `name` appears in errors.
    public convenience init(bytes: [UInt8], name: String, options: MCAPReaderOptions = MCAPReaderOptions())
        throws(MCAPError)
    {
        try self.init(source: MCAPMemorySource(bytes: bytes, name: name), options: options)
    }

    init(source: MCAPByteSource, options: MCAPReaderOptions) throws(MCAPError) {
        access = MCAPRecordAccess(source: source, options: options, decompressor: ZstdDecompressor())
        file = source.name
        self.options = options
        let (header, headerEnd) = try access.header()
        self.header = header
        self.headerEnd = headerEnd

        var footerProblem: MCAPError?
        let found: (footer: MCAPFooter, offset: UInt64)?
        do throws(MCAPError) {
            found = try Self.footer(access, after: headerEnd)
        } catch {
            found = nil
            footerProblem = error
        }
        footer = found?.footer
        if let (footer, footerOffset) = found, footer.summaryStart != 0 {
            do throws(MCAPError) {
                let summary = try Self.summary(access, footer: footer, footerOffset: footerOffset, after: headerEnd)
                schemas = Dictionary(summary.schemas.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
                channels = Dictionary(summary.channels.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
                statistics = summary.statistics
                chunkIndexes = summary.chunkIndexes.sorted { $0.chunkStartOffset < $1.chunkStartOffset }
                attachmentIndexes = summary.attachmentIndexes
                metadataIndexes = summary.metadataIndexes
                readFromSummary = true
                damage = nil
                dataWalkEnd = footer.summaryStart
                return
            } catch {
                if !options.allowsIncompleteFile { throw error }
                footerProblem = error
            }
        }
        // No summary (or an unreadable one that the options let pass): scan the data section.
        let scan = try MCAPScanner(access: access).scan()
        var problem = scan.stop ?? footerProblem
        if problem == nil && found == nil {
            problem = access.error(source.size, .truncated("no footer after DataEnd"))
        }
        let storedCRC = scan.storedDataSectionCRC
        if problem == nil, options.validateCRCs, storedCRC != 0, scan.crcAtKeptEnd.value != storedCRC {
            problem = access.error(
                scan.dataEndOffset,
                .crcMismatch(what: "data section", stored: storedCRC, computed: scan.crcAtKeptEnd.value))
        }
        if let problem, !options.allowsIncompleteFile { throw problem }
        schemas = Dictionary(scan.summary.schemas.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        channels = Dictionary(scan.summary.channels.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        statistics = scan.summary.statistics
        chunkIndexes = scan.summary.chunkIndexes
        attachmentIndexes = scan.summary.attachmentIndexes
        metadataIndexes = scan.summary.metadataIndexes
        readFromSummary = false
        damage = problem
        dataWalkEnd = scan.dataEndOffset ?? scan.keptEnd
    }

    /// The footer and the closing magic, or nil when the file does not end with them (not finished).
    private static func footer(_ access: MCAPRecordAccess, after headerEnd: UInt64) throws(MCAPError) -> (
        MCAPFooter, UInt64
    )? {
        let size = access.source.size
        let tailBytes = UInt64(mcapFooterRecordBytes + mcapMagic.count)
        guard size >= headerEnd + tailBytes else { return nil }
        let tail = try access.source.read(at: size - tailBytes, count: Int(tailBytes))
        guard Array(tail[mcapFooterRecordBytes...]) == mcapMagic, tail[0] == MCAPOpcode.footer.rawValue else {
            return nil
        }
        let offset = size - tailBytes
        var c = MCAPFieldCursor(
            tail, start: 1, end: mcapFooterRecordBytes, file: access.file, record: "Footer", recordOffset: offset)
        guard try c.u64("length") == 20 else {
            throw access.error(offset, .malformed("Footer record: its length is not 20"))
        }
        return (try MCAPRecordDecoder.footer(&c), offset)
    }

    /// The summary section's records, checked against the summary CRC.
    private static func summary(
        _ access: MCAPRecordAccess, footer: MCAPFooter, footerOffset: UInt64, after headerEnd: UInt64
    ) throws(MCAPError) -> MCAPSummaryContent {
        let start = footer.summaryStart
        guard start >= headerEnd && start <= footerOffset else {
            throw access.error(
                footerOffset, .malformed("Footer: summary_start \(start) is outside the file's sections"))
        }
        let summaryEnd: UInt64
        if footer.summaryOffsetStart != 0 {
            guard footer.summaryOffsetStart >= start && footer.summaryOffsetStart <= footerOffset else {
                throw access.error(
                    footerOffset,
                    .malformed("Footer: summary_offset_start \(footer.summaryOffsetStart) is outside the summary"))
            }
            summaryEnd = footer.summaryOffsetStart
        } else {
            summaryEnd = footerOffset
        }
        let crcBytes = footerOffset + 1 + 8 + 16 - start
        guard crcBytes <= access.options.maxRecordBytes else {
            throw access.error(start, .tooLarge(what: "summary", bytes: crcBytes, limit: access.options.maxRecordBytes))
        }
        let bytes = try access.source.read(at: start, count: Int(crcBytes))
        if access.options.validateCRCs && footer.summaryCRC != 0 {
            let computed = MCAPCRC32.checksum(bytes)
            guard computed == footer.summaryCRC else {
                throw access.error(
                    footerOffset, .crcMismatch(what: "summary", stored: footer.summaryCRC, computed: computed))
            }
        }
        var summary = MCAPSummaryContent()
        var sawStatistics = false
        var walker = MCAPInnerRecordWalker(bytes, start: 0, end: Int(summaryEnd - start))
        while let next = walker.next() {
            let record: MCAPInnerRecord
            switch next {
            case .success(let found): record = found
            case .failure(let failure): throw access.error(start, .malformed("in the summary: \(failure.detail)"))
            }
            let offset = start + UInt64(record.offset)
            var c = MCAPFieldCursor(
                bytes, start: record.content.lowerBound, end: record.content.upperBound, file: access.file,
                record: recordName(record.opcode), recordOffset: offset)
            switch MCAPOpcode(rawValue: record.opcode) {
            case .schema: summary.schemas.append(try MCAPRecordDecoder.schema(&c))
            case .channel: summary.channels.append(try MCAPRecordDecoder.channel(&c))
            case .chunkIndex: summary.chunkIndexes.append(try MCAPRecordDecoder.chunkIndex(&c))
            case .attachmentIndex: summary.attachmentIndexes.append(try MCAPRecordDecoder.attachmentIndex(&c))
            case .metadataIndex: summary.metadataIndexes.append(try MCAPRecordDecoder.metadataIndex(&c))
            case .statistics:
                summary.statistics = try MCAPRecordDecoder.statistics(&c)
                sawStatistics = true
            default: break  // other records (a newer format's, an application's) are not needed here
            }
        }
        if !sawStatistics {
            // A summary without statistics: count what the indexes tell.
            summary.statistics.schemaCount = UInt16(clamping: summary.schemas.count)
            summary.statistics.channelCount = UInt32(clamping: summary.channels.count)
            summary.statistics.chunkCount = UInt32(clamping: summary.chunkIndexes.count)
            summary.statistics.attachmentCount = UInt32(clamping: summary.attachmentIndexes.count)
            summary.statistics.metadataCount = UInt32(clamping: summary.metadataIndexes.count)
        }
        return summary
    }

    /// The channel of a topic (the first, if a file has several with one topic).
    public func channel(topic: String) -> MCAPChannel? {
        channels.values.filter { $0.topic == topic }.min { $0.id < $1.id }
    }

    /// The messages, in file order; only `channels`' when given.
    public func messages(onChannels channels: Set<UInt16>? = nil) -> MCAPMessageIterator {
        MCAPMessageIterator(reader: self, channels: channels)
    }

    /// Calls `body` with every message (of `channels`, when given) in file order.
    public func forEachMessage(
        onChannels channels: Set<UInt16>? = nil, _ body: (MCAPMessage) -> Void
    ) throws(MCAPError) {
        var iterator = messages(onChannels: channels)
        while let message = try iterator.next() { body(message) }
    }

    /// Every attachment, in file order, each checked against its CRC when `validateCRCs`.
    public func attachments() throws(MCAPError) -> [MCAPAttachment] {
        var attachments: [MCAPAttachment] = []
        for index in attachmentIndexes { attachments.append(try attachment(index)) }
        return attachments
    }

    public func attachment(_ index: MCAPAttachmentIndex) throws(MCAPError) -> MCAPAttachment {
        let (content, record) = try indexedRecord(at: index.offset, length: index.length, opcode: .attachment)
        var c = access.cursor(content, record)
        return try MCAPRecordDecoder.attachment(&c, validateCRC: options.validateCRCs)
    }

    /// Every metadata record, in file order.
    public func metadata() throws(MCAPError) -> [MCAPMetadata] {
        var metadata: [MCAPMetadata] = []
        for index in metadataIndexes {
            let (content, record) = try indexedRecord(at: index.offset, length: index.length, opcode: .metadata)
            var c = access.cursor(content, record)
            metadata.append(try MCAPRecordDecoder.metadata(&c))
        }
        return metadata
    }

    /// Checks the DataEnd record's CRC against the data section (the whole file up to DataEnd is read). Returns
    /// false when the file stores no CRC (0); throws on a mismatch.
    @discardableResult
    public func verifyDataSectionCRC() throws(MCAPError) -> Bool {
        var offset = headerEnd
        while true {
            let record = try access.location(at: offset)
            if record.opcode == MCAPOpcode.dataEnd.rawValue {
                let content = try access.content(of: record)
                var c = access.cursor(content, record)
                let stored = try MCAPRecordDecoder.dataEnd(&c)
                guard stored != 0 else { return false }
                var crc = MCAPCRC32()
                var at: UInt64 = 0
                while at < record.offset {
                    let count = Int(min(UInt64(4 << 20), record.offset - at))
                    crc.update(try access.source.read(at: at, count: count))
                    at += UInt64(count)
                }
                guard crc.value == stored else {
                    throw access.error(
                        record.offset, .crcMismatch(what: "data section", stored: stored, computed: crc.value))
                }
                return true
            }
            offset = record.end
        }
    }

    /// A record an index points at, which must be of `opcode` and `length` long.
    fileprivate func indexedRecord(
        at offset: UInt64, length: UInt64, opcode: MCAPOpcode
    ) throws(MCAPError) -> ([UInt8], MCAPRecordLocation) {
        let record = try access.location(at: offset)
        guard record.opcode == opcode.rawValue, record.end - record.offset == length else {
            throw access.error(
                offset,
                .malformed(
                    "the summary points at a \(opcode.recordName) of \(length) bytes here, the file has a "
                        + "\(recordName(record.opcode)) of \(record.end - record.offset)"))
        }
        return (try access.content(of: record), record)
    }

    fileprivate var recordAccess: MCAPRecordAccess { access }
    fileprivate var walkRange: (start: UInt64, end: UInt64) { (headerEnd, dataWalkEnd) }
}

/// Messages of one reader in file order: a walk over the data section's records (so messages outside chunks are
/// read too) that decompresses each chunk when it reaches it, and skips, by their index, the chunks that hold none of
/// the channels asked for.
public struct MCAPMessageIterator {
    private let reader: MCAPReader
    private let channels: Set<UInt16>?
    /// Offsets of the chunks whose index says they hold none of `channels`.
    private let skippedChunks: Set<UInt64>
    private var walkOffset: UInt64
    private let walkEnd: UInt64
    private var records: [UInt8] = []
    private var walker = MCAPInnerRecordWalker([])
    private var chunkOffset: UInt64 = 0

    init(reader: MCAPReader, channels: Set<UInt16>?) {
        self.reader = reader
        self.channels = channels
        if let channels {
            skippedChunks = Set(
                reader.chunkIndexes.filter { index in
                    !index.messageIndexOffsets.isEmpty
                        && !index.messageIndexOffsets.keys.contains { channels.contains($0) }
                }.map(\.chunkStartOffset))
        } else {
            skippedChunks = []
        }
        (walkOffset, walkEnd) = reader.walkRange
    }

    /// The next message, nil after the last.
    public mutating func next() throws(MCAPError) -> MCAPMessage? {
        let access = reader.recordAccess
        while true {
            while let found = walker.next() {
                let inner: MCAPInnerRecord
                switch found {
                case .success(let record): inner = record
                case .failure(let failure):
                    throw access.error(chunkOffset, .malformed("in the chunk: \(failure.detail)"))
                }
                guard inner.opcode == MCAPOpcode.message.rawValue else { continue }
                var c = MCAPFieldCursor(
                    records, start: inner.content.lowerBound, end: inner.content.upperBound, file: access.file,
                    record: "Message (at byte \(inner.offset) of the chunk's records)", recordOffset: chunkOffset)
                let message = try MCAPRecordDecoder.message(&c)
                if let channels, !channels.contains(message.channelID) { continue }
                return message
            }
            guard walkOffset < walkEnd else { return nil }
            let record = try access.location(at: walkOffset, limit: walkEnd)
            walkOffset = record.end
            switch MCAPOpcode(rawValue: record.opcode) {
            case .chunk:
                if skippedChunks.contains(record.offset) { continue }
                try load(try access.content(of: record), at: record.offset, access)
            case .message:
                let content = try access.content(of: record)
                var c = access.cursor(content, record)
                let message = try MCAPRecordDecoder.message(&c)
                if let channels, !channels.contains(message.channelID) { continue }
                return message
            case .dataEnd:
                walkOffset = walkEnd
            default:
                continue
            }
        }
    }

    private mutating func load(_ content: [UInt8], at offset: UInt64, _ access: MCAPRecordAccess) throws(MCAPError) {
        let (_, decompressed) = try access.chunkRecords(content, at: offset)
        records = decompressed
        walker = MCAPInnerRecordWalker(records)
        chunkOffset = offset
    }
}
