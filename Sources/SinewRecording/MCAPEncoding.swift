// Serialising records (spec, "Serialization"): fixed-width integers little-endian; String = uint32 byte length +
// UTF-8; Map and Array = uint32 byte length + entries. Maps are written in key order so that a file's bytes depend
// only on its content.

extension Array where Element == UInt8 {
    @inline(__always) mutating func appendLE(_ value: UInt8) { append(value) }

    @inline(__always) mutating func appendLE(_ value: UInt16) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always) mutating func appendLE(_ value: UInt32) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always) mutating func appendLE(_ value: UInt64) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Overwrites 8 bytes at `index` (a length written before it was known).
    @inline(__always) mutating func patchLE(_ value: UInt64, at index: Int) {
        withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: index, as: UInt64.self) }
    }

    mutating func appendMCAPString(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            appendLE(UInt32(utf8.count))
            append(contentsOf: utf8)
        }
    }

    /// Starts a record: opcode and a length to patch with `endRecord(at:)`. Returns where the length is.
    @inline(__always) mutating func beginRecord(_ opcode: MCAPOpcode) -> Int {
        append(opcode.rawValue)
        let lengthIndex = count
        appendLE(UInt64(0))
        return lengthIndex
    }

    @inline(__always) mutating func endRecord(lengthAt index: Int) {
        patchLE(UInt64(count - index - 8), at: index)
    }

    mutating func appendStringMap(_ map: [String: String]) {
        let lengthIndex = count
        appendLE(UInt32(0))
        for key in map.keys.sorted() {
            appendMCAPString(key)
            appendMCAPString(map[key]!)
        }
        patchMapLength(at: lengthIndex)
    }

    mutating func appendUInt16UInt64Map(_ map: [UInt16: UInt64]) {
        appendLE(UInt32(map.count * 10))
        for key in map.keys.sorted() {
            appendLE(key)
            appendLE(map[key]!)
        }
    }

    private mutating func patchMapLength(at index: Int) {
        let length = UInt32(count - index - 4)
        withUnsafeMutableBytes { $0.storeBytes(of: length.littleEndian, toByteOffset: index, as: UInt32.self) }
    }
}

/// The records Sinew writes, as bytes appended to a buffer.
enum MCAPRecordEncoder {
    static func header(_ header: MCAPHeader, into out: inout [UInt8]) {
        let at = out.beginRecord(.header)
        out.appendMCAPString(header.profile)
        out.appendMCAPString(header.library)
        out.endRecord(lengthAt: at)
    }

    static func schema(_ schema: MCAPSchema, into out: inout [UInt8]) {
        let at = out.beginRecord(.schema)
        out.appendLE(schema.id)
        out.appendMCAPString(schema.name)
        out.appendMCAPString(schema.encoding)
        out.appendLE(UInt32(schema.data.count))
        out.append(contentsOf: schema.data)
        out.endRecord(lengthAt: at)
    }

    static func channel(_ channel: MCAPChannel, into out: inout [UInt8]) {
        let at = out.beginRecord(.channel)
        out.appendLE(channel.id)
        out.appendLE(channel.schemaID)
        out.appendMCAPString(channel.topic)
        out.appendMCAPString(channel.messageEncoding)
        out.appendStringMap(channel.metadata)
        out.endRecord(lengthAt: at)
    }

    /// One MessageIndex record: (log time, offset in the chunk's uncompressed records) pairs, sorted by time.
    static func messageIndex(channelID: UInt16, entries: [UInt64], into out: inout [UInt8]) {
        let at = out.beginRecord(.messageIndex)
        out.appendLE(channelID)
        out.appendLE(UInt32(entries.count * 8))
        entries.withUnsafeBytes { raw in
            // Entries are kept as native UInt64 pairs; the file wants little-endian, which this machine is.
            #if _endian(little)
                out.append(contentsOf: raw)
            #else
                for value in entries { out.appendLE(value) }
            #endif
        }
        out.endRecord(lengthAt: at)
    }

    static func chunkIndex(_ index: MCAPChunkIndex, into out: inout [UInt8]) {
        let at = out.beginRecord(.chunkIndex)
        out.appendLE(index.messageStartTimeNs)
        out.appendLE(index.messageEndTimeNs)
        out.appendLE(index.chunkStartOffset)
        out.appendLE(index.chunkLength)
        out.appendUInt16UInt64Map(index.messageIndexOffsets)
        out.appendLE(index.messageIndexLength)
        out.appendMCAPString(index.compression)
        out.appendLE(index.compressedSize)
        out.appendLE(index.uncompressedSize)
        out.endRecord(lengthAt: at)
    }

    /// An Attachment record with its CRC (over every field before it, spec "Attachment").
    static func attachment(_ attachment: MCAPAttachment, into out: inout [UInt8]) {
        let at = out.beginRecord(.attachment)
        let contentStart = out.count
        out.appendLE(attachment.logTimeNs)
        out.appendLE(attachment.createTimeNs)
        out.appendMCAPString(attachment.name)
        out.appendMCAPString(attachment.mediaType)
        out.appendLE(UInt64(attachment.data.count))
        out.append(contentsOf: attachment.data)
        let crc = MCAPCRC32.checksum(out[contentStart...])
        out.appendLE(crc)
        out.endRecord(lengthAt: at)
    }

    static func attachmentIndex(_ index: MCAPAttachmentIndex, into out: inout [UInt8]) {
        let at = out.beginRecord(.attachmentIndex)
        out.appendLE(index.offset)
        out.appendLE(index.length)
        out.appendLE(index.logTimeNs)
        out.appendLE(index.createTimeNs)
        out.appendLE(index.dataSize)
        out.appendMCAPString(index.name)
        out.appendMCAPString(index.mediaType)
        out.endRecord(lengthAt: at)
    }

    static func metadata(_ metadata: MCAPMetadata, into out: inout [UInt8]) {
        let at = out.beginRecord(.metadata)
        out.appendMCAPString(metadata.name)
        out.appendStringMap(metadata.values)
        out.endRecord(lengthAt: at)
    }

    static func metadataIndex(_ index: MCAPMetadataIndex, into out: inout [UInt8]) {
        let at = out.beginRecord(.metadataIndex)
        out.appendLE(index.offset)
        out.appendLE(index.length)
        out.appendMCAPString(index.name)
        out.endRecord(lengthAt: at)
    }

    static func statistics(_ statistics: MCAPStatistics, into out: inout [UInt8]) {
        let at = out.beginRecord(.statistics)
        out.appendLE(statistics.messageCount)
        out.appendLE(statistics.schemaCount)
        out.appendLE(statistics.channelCount)
        out.appendLE(statistics.attachmentCount)
        out.appendLE(statistics.metadataCount)
        out.appendLE(statistics.chunkCount)
        out.appendLE(statistics.messageStartTimeNs)
        out.appendLE(statistics.messageEndTimeNs)
        out.appendUInt16UInt64Map(statistics.channelMessageCounts)
        out.endRecord(lengthAt: at)
    }

    static func dataEnd(crc: UInt32, into out: inout [UInt8]) {
        let at = out.beginRecord(.dataEnd)
        out.appendLE(crc)
        out.endRecord(lengthAt: at)
    }
}

/// What the summary section lists; the writer and the repair build it the same way.
struct MCAPSummaryContent {
    var schemas: [MCAPSchema] = []
    var channels: [MCAPChannel] = []
    var statistics = MCAPStatistics()
    var chunkIndexes: [MCAPChunkIndex] = []
    var attachmentIndexes: [MCAPAttachmentIndex] = []
    var metadataIndexes: [MCAPMetadataIndex] = []

    /// The file's tail from the DataEnd record on: DataEnd, the summary (groups by opcode: schemas, channels,
    /// statistics — after the channels, as the spec asks when it counts messages per channel —, chunk indexes,
    /// attachment indexes, metadata indexes), one Summary Offset per group, the footer with the summary's CRC and
    /// the closing magic. `dataEndOffset` is where DataEnd goes in the file.
    func tail(dataEndOffset: UInt64, dataSectionCRC: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(
            4096 + 96 * chunkIndexes.count + 64 * channels.count + schemas.reduce(0) { $0 + $1.data.count + 64 })
        MCAPRecordEncoder.dataEnd(crc: dataSectionCRC, into: &out)
        let summaryStartIndex = out.count
        var groups: [(opcode: MCAPOpcode, start: Int, end: Int)] = []
        func group(_ opcode: MCAPOpcode, _ body: (inout [UInt8]) -> Void) {
            let start = out.count
            body(&out)
            if out.count > start { groups.append((opcode, start, out.count)) }
        }
        group(.schema) { out in
            for schema in schemas.sorted(by: { $0.id < $1.id }) { MCAPRecordEncoder.schema(schema, into: &out) }
        }
        group(.channel) { out in
            for channel in channels.sorted(by: { $0.id < $1.id }) { MCAPRecordEncoder.channel(channel, into: &out) }
        }
        group(.statistics) { out in MCAPRecordEncoder.statistics(statistics, into: &out) }
        group(.chunkIndex) { out in for index in chunkIndexes { MCAPRecordEncoder.chunkIndex(index, into: &out) } }
        group(.attachmentIndex) { out in
            for index in attachmentIndexes { MCAPRecordEncoder.attachmentIndex(index, into: &out) }
        }
        group(.metadataIndex) { out in
            for index in metadataIndexes { MCAPRecordEncoder.metadataIndex(index, into: &out) }
        }
        let summaryOffsetStartIndex = out.count
        for (opcode, start, end) in groups {
            let at = out.beginRecord(.summaryOffset)
            out.appendLE(opcode.rawValue)
            out.appendLE(dataEndOffset + UInt64(start))
            out.appendLE(UInt64(end - start))
            out.endRecord(lengthAt: at)
        }
        let hasSummary = !groups.isEmpty
        out.append(MCAPOpcode.footer.rawValue)
        out.appendLE(UInt64(20))
        out.appendLE(hasSummary ? dataEndOffset + UInt64(summaryStartIndex) : 0)
        out.appendLE(hasSummary ? dataEndOffset + UInt64(summaryOffsetStartIndex) : 0)
        // The summary CRC runs from the summary's first byte through the footer's summary_offset_start.
        let summaryCRC = hasSummary ? MCAPCRC32.checksum(out[summaryStartIndex...]) : 0
        out.appendLE(summaryCRC)
        out.append(contentsOf: mcapMagic)
        return out
    }
}
