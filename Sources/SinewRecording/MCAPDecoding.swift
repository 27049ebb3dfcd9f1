// Parsing records from bytes that come from outside: every length is checked against what is left of its record
// before it is used, so a lying length is an error naming the record and where it is, never a crash. Fields a newer
// writer appended to a record are ignored (spec: "Readers should ignore any unknown fields").

/// Reads one record's fields from `bytes[start..<end]`.
struct MCAPFieldCursor {
    let bytes: [UInt8]
    private(set) var index: Int
    let end: Int
    /// For errors: the file, the record's name and its offset in the file (or in its chunk).
    let file: String
    let record: String
    let recordOffset: UInt64

    init(_ bytes: [UInt8], start: Int, end: Int, file: String, record: String, recordOffset: UInt64) {
        self.bytes = bytes
        index = start
        self.end = end
        self.file = file
        self.record = record
        self.recordOffset = recordOffset
    }

    var remaining: Int { end - index }

    func error(_ detail: String) -> MCAPError {
        MCAPError(file: file, offset: recordOffset, problem: .malformed("\(record) record: \(detail)"))
    }

    private mutating func need(_ count: Int, _ field: String) throws(MCAPError) {
        guard count <= remaining else {
            throw error("\(field) needs \(count) bytes, the record has \(remaining) left")
        }
    }

    private func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    mutating func u8(_ field: String) throws(MCAPError) -> UInt8 {
        try need(1, field)
        defer { index += 1 }
        return bytes[index]
    }

    mutating func u16(_ field: String) throws(MCAPError) -> UInt16 {
        try need(2, field)
        defer { index += 2 }
        return load(UInt16.self, at: index)
    }

    mutating func u32(_ field: String) throws(MCAPError) -> UInt32 {
        try need(4, field)
        defer { index += 4 }
        return load(UInt32.self, at: index)
    }

    mutating func u64(_ field: String) throws(MCAPError) -> UInt64 {
        try need(8, field)
        defer { index += 8 }
        return load(UInt64.self, at: index)
    }

    /// A length-prefixed field's byte range.
    private mutating func span(length: UInt64, _ field: String) throws(MCAPError) -> Range<Int> {
        guard length <= UInt64(remaining) else {
            throw error("\(field) declares \(length) bytes, the record has \(remaining) left")
        }
        let range = index..<(index + Int(length))
        index = range.upperBound
        return range
    }

    /// Invalid UTF-8 is decoded with replacement characters rather than refused: a name is shown, not trusted.
    mutating func string(_ field: String) throws(MCAPError) -> String {
        let range = try span(length: UInt64(try u32(field)), field)
        return String(decoding: bytes[range], as: UTF8.self)
    }

    /// uint32-length-prefixed bytes.
    mutating func bytes32(_ field: String) throws(MCAPError) -> Range<Int> {
        try span(length: UInt64(try u32(field)), field)
    }

    /// uint64-length-prefixed bytes.
    mutating func bytes64(_ field: String) throws(MCAPError) -> Range<Int> {
        try span(length: try u64(field), field)
    }

    /// The rest of the record (a message's data).
    mutating func rest() -> Range<Int> {
        defer { index = end }
        return index..<end
    }

    /// Map<string, string>; a repeated key keeps its last value.
    mutating func stringMap(_ field: String) throws(MCAPError) -> [String: String] {
        let range = try bytes32(field)
        var inner = MCAPFieldCursor(
            bytes, start: range.lowerBound, end: range.upperBound, file: file, record: record,
            recordOffset: recordOffset)
        var map: [String: String] = [:]
        while inner.remaining > 0 {
            let key = try inner.string("\(field) key")
            map[key] = try inner.string("\(field) value")
        }
        return map
    }

    /// Map<uint16, uint64>.
    mutating func uint16UInt64Map(_ field: String) throws(MCAPError) -> [UInt16: UInt64] {
        let range = try bytes32(field)
        guard range.count % 10 == 0 else { throw error("\(field) is \(range.count) bytes, not a multiple of 10") }
        var map: [UInt16: UInt64] = [:]
        map.reserveCapacity(range.count / 10)
        var at = range.lowerBound
        while at < range.upperBound {
            map[load(UInt16.self, at: at)] = load(UInt64.self, at: at + 2)
            at += 10
        }
        return map
    }

    /// Array<Tuple<uint64, uint64>> as a flat array.
    mutating func uint64PairArray(_ field: String) throws(MCAPError) -> [UInt64] {
        let range = try bytes32(field)
        guard range.count % 16 == 0 else { throw error("\(field) is \(range.count) bytes, not a multiple of 16") }
        var values: [UInt64] = []
        values.reserveCapacity(range.count / 8)
        var at = range.lowerBound
        while at < range.upperBound {
            values.append(load(UInt64.self, at: at))
            at += 8
        }
        return values
    }
}

/// The fixed part of a Chunk record and where its records are in the record's bytes.
struct MCAPChunkHeader {
    var messageStartTimeNs: UInt64
    var messageEndTimeNs: UInt64
    var uncompressedSize: UInt64
    var uncompressedCRC: UInt32
    var compression: String
    var records: Range<Int>
}

/// Parsers of each record's content (the cursor spans the content, after opcode and length).
enum MCAPRecordDecoder {
    static func header(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPHeader {
        MCAPHeader(profile: try c.string("profile"), library: try c.string("library"))
    }

    static func footer(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPFooter {
        MCAPFooter(
            summaryStart: try c.u64("summary_start"), summaryOffsetStart: try c.u64("summary_offset_start"),
            summaryCRC: try c.u32("summary_crc"))
    }

    static func schema(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPSchema {
        let id = try c.u16("id")
        let name = try c.string("name")
        let encoding = try c.string("encoding")
        let data = try c.bytes32("data")
        return MCAPSchema(id: id, name: name, encoding: encoding, data: Array(c.bytes[data]))
    }

    static func channel(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPChannel {
        MCAPChannel(
            id: try c.u16("id"), schemaID: try c.u16("schema_id"), topic: try c.string("topic"),
            messageEncoding: try c.string("message_encoding"), metadata: try c.stringMap("metadata"))
    }

    static func message(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPMessage {
        let channelID = try c.u16("channel_id")
        let sequence = try c.u32("sequence")
        let logTime = try c.u64("log_time")
        let publishTime = try c.u64("publish_time")
        return MCAPMessage(
            channelID: channelID, sequence: sequence, logTimeNs: logTime, publishTimeNs: publishTime,
            data: c.bytes[c.rest()])
    }

    static func chunk(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPChunkHeader {
        MCAPChunkHeader(
            messageStartTimeNs: try c.u64("message_start_time"), messageEndTimeNs: try c.u64("message_end_time"),
            uncompressedSize: try c.u64("uncompressed_size"), uncompressedCRC: try c.u32("uncompressed_crc"),
            compression: try c.string("compression"), records: try c.bytes64("records"))
    }

    /// A MessageIndex record: its channel and its (log time, offset) pairs, flat.
    static func messageIndex(_ c: inout MCAPFieldCursor) throws(MCAPError) -> (channelID: UInt16, entries: [UInt64]) {
        (try c.u16("channel_id"), try c.uint64PairArray("records"))
    }

    static func chunkIndex(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPChunkIndex {
        MCAPChunkIndex(
            messageStartTimeNs: try c.u64("message_start_time"), messageEndTimeNs: try c.u64("message_end_time"),
            chunkStartOffset: try c.u64("chunk_start_offset"), chunkLength: try c.u64("chunk_length"),
            messageIndexOffsets: try c.uint16UInt64Map("message_index_offsets"),
            messageIndexLength: try c.u64("message_index_length"), compression: try c.string("compression"),
            compressedSize: try c.u64("compressed_size"), uncompressedSize: try c.u64("uncompressed_size"))
    }

    /// An Attachment and its stored CRC, checked against the fields before it when `validateCRC` and it is not 0.
    static func attachment(_ c: inout MCAPFieldCursor, validateCRC: Bool) throws(MCAPError) -> MCAPAttachment {
        let start = c.index
        let logTime = try c.u64("log_time")
        let createTime = try c.u64("create_time")
        let name = try c.string("name")
        let mediaType = try c.string("media_type")
        let data = try c.bytes64("data")
        let crcEnd = c.index
        let stored = try c.u32("crc")
        if validateCRC && stored != 0 {
            let computed = MCAPCRC32.checksum(c.bytes[start..<crcEnd])
            guard computed == stored else {
                throw MCAPError(
                    file: c.file, offset: c.recordOffset,
                    problem: .crcMismatch(what: "attachment \"\(name)\"", stored: stored, computed: computed))
            }
        }
        return MCAPAttachment(
            logTimeNs: logTime, createTimeNs: createTime, name: name, mediaType: mediaType, data: Array(c.bytes[data]))
    }

    static func attachmentIndex(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPAttachmentIndex {
        MCAPAttachmentIndex(
            offset: try c.u64("offset"), length: try c.u64("length"), logTimeNs: try c.u64("log_time"),
            createTimeNs: try c.u64("create_time"), dataSize: try c.u64("data_size"), name: try c.string("name"),
            mediaType: try c.string("media_type"))
    }

    static func metadata(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPMetadata {
        MCAPMetadata(name: try c.string("name"), values: try c.stringMap("metadata"))
    }

    static func metadataIndex(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPMetadataIndex {
        MCAPMetadataIndex(offset: try c.u64("offset"), length: try c.u64("length"), name: try c.string("name"))
    }

    static func statistics(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPStatistics {
        var s = MCAPStatistics()
        s.messageCount = try c.u64("message_count")
        s.schemaCount = try c.u16("schema_count")
        s.channelCount = try c.u32("channel_count")
        s.attachmentCount = try c.u32("attachment_count")
        s.metadataCount = try c.u32("metadata_count")
        s.chunkCount = try c.u32("chunk_count")
        s.messageStartTimeNs = try c.u64("message_start_time")
        s.messageEndTimeNs = try c.u64("message_end_time")
        s.channelMessageCounts = try c.uint16UInt64Map("channel_message_counts")
        return s
    }

    static func summaryOffset(_ c: inout MCAPFieldCursor) throws(MCAPError) -> MCAPSummaryOffset {
        MCAPSummaryOffset(
            groupOpcode: try c.u8("group_opcode"), groupStart: try c.u64("group_start"),
            groupLength: try c.u64("group_length"))
    }

    static func dataEnd(_ c: inout MCAPFieldCursor) throws(MCAPError) -> UInt32 {
        try c.u32("data_section_crc")
    }
}

/// One record inside a chunk's uncompressed records (or any buffer of records): where its content is.
struct MCAPInnerRecord {
    var opcode: UInt8
    /// Offset of the record (its opcode) in the buffer.
    var offset: Int
    var content: Range<Int>
}

/// Walks a buffer of records (a chunk's), checking each record's length against the buffer.
struct MCAPInnerRecordWalker {
    let bytes: [UInt8]
    private(set) var index: Int
    let end: Int

    init(_ bytes: [UInt8], start: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        index = start
        self.end = end ?? bytes.count
    }

    /// The next record, nil at the end; an error description when a record runs past the buffer.
    mutating func next() -> Result<MCAPInnerRecord, MCAPWalkFailure>? {
        guard index < end else { return nil }
        guard end - index >= mcapRecordPrefixBytes else {
            return .failure(
                MCAPWalkFailure(
                    detail: "\(end - index) bytes at offset \(index) are too few for a record's opcode and length"))
        }
        let opcode = bytes[index]
        let length = bytes.withUnsafeBytes {
            UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: index + 1, as: UInt64.self))
        }
        let contentStart = index + mcapRecordPrefixBytes
        guard length <= UInt64(end - contentStart) else {
            return .failure(
                MCAPWalkFailure(
                    detail:
                        "the record at offset \(index) (opcode 0x\(String(opcode, radix: 16))) declares \(length) bytes, "
                        + "\(end - contentStart) are left"))
        }
        let record = MCAPInnerRecord(
            opcode: opcode, offset: index, content: contentStart..<(contentStart + Int(length)))
        index = record.content.upperBound
        return .success(record)
    }
}

/// A record that runs past its buffer.
struct MCAPWalkFailure: Error {
    var detail: String
}
