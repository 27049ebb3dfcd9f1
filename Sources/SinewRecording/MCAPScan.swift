/// What a forward scan of the data section found: the content a summary would list, and how far the file is
/// whole. The reader uses it for files without a summary; the repair writes a summary from it.
struct MCAPScanResult {
    var header: MCAPHeader
    var headerEnd: UInt64
    var summary = MCAPSummaryContent()
    /// Where the DataEnd record starts, when the scan reached it, and the CRC it stores.
    var dataEndOffset: UInt64?
    var storedDataSectionCRC: UInt32 = 0
    /// Where the DataEnd record ends (the summary's start in a whole file).
    var dataEndRecordEnd: UInt64?
    /// The end of the whole, checked part of the data section: everything before it is kept by a repair.
    var keptEnd: UInt64
    /// The data section's CRC over the bytes before `keptEnd`.
    var crcAtKeptEnd = MCAPCRC32()
    /// The last kept chunk's message indexes, when the file ends before all of them were written: (log time,
    /// offset) pairs per channel, for the repair to write after `keptEnd`.
    var missingMessageIndexes: [UInt16: [UInt64]] = [:]
    /// Why the scan stopped before DataEnd (nil when it reached it).
    var stop: MCAPError?
    /// Kept chunks and messages, for the repair's report.
    var messagesInChunks: UInt64 = 0
}

/// Reads the data section forward, record by record, checking each record whole (chunks decompressed, their
/// CRCs and records checked, messages' channels defined) before counting it. It stops at DataEnd, or at the first
/// record that is cut off or wrong, and says why.
struct MCAPScanner {
    let access: MCAPRecordAccess

    /// The message indexes the open chunk (the last one scanned) is owed, and which ones have come.
    private struct OpenChunk {
        var indexPosition: Int
        var entries: [UInt16: [UInt64]]
        var seen: Set<UInt16> = []
        var firstIndexOffset: UInt64?
        var offsets: [UInt16: UInt64] = [:]
        var indexBytes: UInt64 = 0
        var chunkEnd: UInt64
        var crcAtChunkEnd: MCAPCRC32
        var complete: Bool { seen.count == entries.count }
    }

    func scan() throws(MCAPError) -> MCAPScanResult {
        let (header, headerEnd) = try access.header()
        var result = MCAPScanResult(header: header, headerEnd: headerEnd, keptEnd: headerEnd)
        var crc = MCAPCRC32()
        crc.update(try access.source.read(at: 0, count: Int(headerEnd)))
        result.crcAtKeptEnd = crc
        var schemas: [UInt16: MCAPSchema] = [:]
        var channels: [UInt16: MCAPChannel] = [:]
        var channelCounts: [UInt16: UInt64] = [:]
        var open: OpenChunk?
        var offset = headerEnd

        func keep(_ end: UInt64) {
            result.keptEnd = end
            result.crcAtKeptEnd = crc
        }
        /// Ends the scan at a problem; a chunk still owed message indexes is kept and owed them.
        func stop(_ error: MCAPError) {
            if let owed = open, !owed.complete {
                result.keptEnd = owed.chunkEnd
                result.crcAtKeptEnd = owed.crcAtChunkEnd
                result.missingMessageIndexes = owed.entries
            }
            result.stop = error
        }

        scanning: while true {
            let record: MCAPRecordLocation
            let content: [UInt8]
            do throws(MCAPError) {
                guard offset < access.source.size else {
                    throw access.error(offset, .truncated("the data section ends without a DataEnd record"))
                }
                record = try access.location(at: offset)
                content = try access.content(of: record)
            } catch {
                stop(error)
                break scanning
            }
            var c = access.cursor(content, record)
            let opcode = MCAPOpcode(rawValue: record.opcode)
            do throws(MCAPError) {
                // A chunk's message indexes follow it; anything else means they are all there (or it had none).
                if let pending = open, opcode != .messageIndex {
                    if !pending.seen.isEmpty && !pending.complete {
                        throw access.error(
                            record.offset,
                            .malformed(
                                "the chunk at byte \(result.summary.chunkIndexes[pending.indexPosition].chunkStartOffset)"
                                    + " has message indexes for \(pending.seen.count) of its \(pending.entries.count) "
                                    + "channels"))
                    }
                    // No message indexes at all (a writer that does not index): the chunk stands as it is.
                    keep(pending.chunkEnd)
                    open = nil
                }
                switch opcode {
                case .schema:
                    let schema = try MCAPRecordDecoder.schema(&c)
                    try define(schema, in: &schemas, at: record.offset)
                case .channel:
                    let channel = try MCAPRecordDecoder.channel(&c)
                    try define(channel, in: &channels, schemas: schemas, at: record.offset)
                case .message:
                    let message = try MCAPRecordDecoder.message(&c)
                    guard channels[message.channelID] != nil else {
                        throw access.error(record.offset, .unknownChannel(message.channelID))
                    }
                    result.summary.statistics.countMessage(logTimeNs: message.logTimeNs)
                    channelCounts[message.channelID, default: 0] += 1
                case .chunk:
                    var chunkSchemas = schemas
                    var chunkChannels = channels
                    let (chunkHeader, records) = try access.chunkRecords(content, at: record.offset)
                    var entries: [UInt16: [UInt64]] = [:]
                    var statistics = result.summary.statistics
                    var counts = channelCounts
                    var messages: UInt64 = 0
                    var walker = MCAPInnerRecordWalker(records)
                    while let next = walker.next() {
                        let inner: MCAPInnerRecord
                        switch next {
                        case .success(let found): inner = found
                        case .failure(let failure):
                            throw access.error(record.offset, .malformed("in the chunk: \(failure.detail)"))
                        }
                        var ic = MCAPFieldCursor(
                            records, start: inner.content.lowerBound, end: inner.content.upperBound, file: access.file,
                            record: "\(recordName(inner.opcode)) (at byte \(inner.offset) of the chunk's records)",
                            recordOffset: record.offset)
                        switch MCAPOpcode(rawValue: inner.opcode) {
                        case .schema:
                            try define(try MCAPRecordDecoder.schema(&ic), in: &chunkSchemas, at: record.offset)
                        case .channel:
                            try define(
                                try MCAPRecordDecoder.channel(&ic), in: &chunkChannels, schemas: chunkSchemas,
                                at: record.offset)
                        case .message:
                            let message = try MCAPRecordDecoder.message(&ic)
                            guard chunkChannels[message.channelID] != nil else {
                                throw access.error(record.offset, .unknownChannel(message.channelID))
                            }
                            statistics.countMessage(logTimeNs: message.logTimeNs)
                            counts[message.channelID, default: 0] += 1
                            entries[message.channelID, default: []].append(message.logTimeNs)
                            entries[message.channelID, default: []].append(UInt64(inner.offset))
                            messages += 1
                        default:
                            guard inner.opcode >= 0x80 else {
                                throw access.error(
                                    record.offset,
                                    .malformed("a \(recordName(inner.opcode)) record inside a chunk"))
                            }
                        }
                    }
                    schemas = chunkSchemas
                    channels = chunkChannels
                    result.summary.statistics = statistics
                    result.summary.statistics.chunkCount += 1
                    channelCounts = counts
                    result.messagesInChunks += messages
                    result.summary.chunkIndexes.append(
                        MCAPChunkIndex(
                            messageStartTimeNs: chunkHeader.messageStartTimeNs,
                            messageEndTimeNs: chunkHeader.messageEndTimeNs, chunkStartOffset: record.offset,
                            chunkLength: record.end - record.offset, messageIndexOffsets: [:], messageIndexLength: 0,
                            compression: chunkHeader.compression, compressedSize: UInt64(chunkHeader.records.count),
                            uncompressedSize: chunkHeader.uncompressedSize))
                    crc.update(recordPrefix(record))
                    crc.update(content)
                    if !entries.isEmpty {
                        for key in entries.keys { sortPairs(&entries[key]!) }
                        open = OpenChunk(
                            indexPosition: result.summary.chunkIndexes.count - 1, entries: entries,
                            chunkEnd: record.end,
                            crcAtChunkEnd: crc)
                    } else {
                        keep(record.end)
                    }
                    offset = record.end
                    continue scanning
                case .messageIndex:
                    guard var pending = open else {
                        throw access.error(record.offset, .malformed("a MessageIndex record that follows no chunk"))
                    }
                    let (channelID, indexEntries) = try MCAPRecordDecoder.messageIndex(&c)
                    guard let expected = pending.entries[channelID], !pending.seen.contains(channelID) else {
                        throw access.error(
                            record.offset,
                            .malformed(
                                "a MessageIndex for channel \(channelID), which its chunk does not hold or "
                                    + "which came twice"))
                    }
                    guard indexEntries.count == expected.count else {
                        throw access.error(
                            record.offset,
                            .malformed(
                                "the MessageIndex for channel \(channelID) lists \(indexEntries.count / 2) messages, "
                                    + "its chunk holds \(expected.count / 2)"))
                    }
                    pending.seen.insert(channelID)
                    pending.offsets[channelID] = record.offset
                    pending.indexBytes += record.end - record.offset
                    crc.update(recordPrefix(record))
                    crc.update(content)
                    offset = record.end
                    if pending.complete {
                        result.summary.chunkIndexes[pending.indexPosition].messageIndexOffsets = pending.offsets
                        result.summary.chunkIndexes[pending.indexPosition].messageIndexLength = pending.indexBytes
                        open = nil
                        keep(record.end)
                    } else {
                        open = pending
                    }
                    continue scanning
                case .attachment:
                    let attachment = try MCAPRecordDecoder.attachment(&c, validateCRC: true)
                    result.summary.attachmentIndexes.append(
                        MCAPAttachmentIndex(
                            offset: record.offset, length: record.end - record.offset, logTimeNs: attachment.logTimeNs,
                            createTimeNs: attachment.createTimeNs, dataSize: UInt64(attachment.data.count),
                            name: attachment.name, mediaType: attachment.mediaType))
                    result.summary.statistics.attachmentCount += 1
                case .metadata:
                    let metadata = try MCAPRecordDecoder.metadata(&c)
                    result.summary.metadataIndexes.append(
                        MCAPMetadataIndex(
                            offset: record.offset, length: record.end - record.offset, name: metadata.name))
                    result.summary.statistics.metadataCount += 1
                case .dataEnd:
                    result.storedDataSectionCRC = try MCAPRecordDecoder.dataEnd(&c)
                    result.dataEndOffset = record.offset
                    result.dataEndRecordEnd = record.end
                    break scanning
                case nil where record.opcode >= 0x80:
                    break  // an application's own record: kept as it is
                default:
                    throw access.error(
                        record.offset, .malformed("a \(recordName(record.opcode)) record in the data section"))
                }
            } catch {
                stop(error)
                break scanning
            }
            crc.update(recordPrefix(record))
            crc.update(content)
            offset = record.end
            keep(offset)
        }
        result.summary.schemas = Array(schemas.values)
        result.summary.channels = Array(channels.values)
        result.summary.statistics.schemaCount = UInt16(clamping: schemas.count)
        result.summary.statistics.channelCount = UInt32(clamping: channels.count)
        result.summary.statistics.channelMessageCounts = channelCounts
        return result
    }

    private func recordPrefix(_ record: MCAPRecordLocation) -> [UInt8] {
        var prefix: [UInt8] = [record.opcode]
        prefix.appendLE(record.length)
        return prefix
    }

    /// Schema 0 is reserved; a repeated ID must repeat the same schema (spec, "Schema").
    private func define(_ schema: MCAPSchema, in schemas: inout [UInt16: MCAPSchema], at offset: UInt64)
        throws(MCAPError)
    {
        guard schema.id != 0 else { throw access.error(offset, .malformed("a Schema with the reserved id 0")) }
        if let previous = schemas[schema.id], previous != schema {
            throw access.error(offset, .malformed("schema \(schema.id) is defined twice, differently"))
        }
        schemas[schema.id] = schema
    }

    private func define(
        _ channel: MCAPChannel, in channels: inout [UInt16: MCAPChannel], schemas: [UInt16: MCAPSchema],
        at offset: UInt64
    ) throws(MCAPError) {
        guard channel.schemaID == 0 || schemas[channel.schemaID] != nil else {
            throw access.error(offset, .unknownSchema(channel.schemaID))
        }
        if let previous = channels[channel.id], previous != channel {
            throw access.error(offset, .malformed("channel \(channel.id) is defined twice, differently"))
        }
        channels[channel.id] = channel
    }
}

/// Sorts flat (time, offset) pairs by time, then offset (write order for equal times).
func sortPairs(_ values: inout [UInt64]) {
    var sorted = true
    var i = 2
    while i < values.count {
        if values[i] < values[i - 2] {
            sorted = false
            break
        }
        i += 2
    }
    if sorted { return }
    var pairs = (0..<values.count / 2).map { (values[2 * $0], values[2 * $0 + 1]) }
    pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
    values.removeAll(keepingCapacity: true)
    for (time, offset) in pairs {
        values.append(time)
        values.append(offset)
    }
}
