import Glibc

// The records of the MCAP container format, major version 0 (specification: https://mcap.dev/spec, the
// foxglove/mcap repository's docs/specification/README.md). Every record is `<opcode: uint8><length: uint64>
// <content>`, integers little-endian; strings, byte arrays, arrays and maps carry a uint32 byte length
// (the chunk's records and an attachment's data a uint64 one). Times are uint64 nanoseconds since an epoch the
// writer chooses (Sinew: the Unix epoch).

/// Record opcodes (spec, "Records"). 0x01–0x7F are the format's; 0x80–0xFF are left to applications.
public enum MCAPOpcode: UInt8, Sendable, CaseIterable {
    case header = 0x01
    case footer = 0x02
    case schema = 0x03
    case channel = 0x04
    case message = 0x05
    case chunk = 0x06
    case messageIndex = 0x07
    case chunkIndex = 0x08
    case attachment = 0x09
    case attachmentIndex = 0x0A
    case statistics = 0x0B
    case metadata = 0x0C
    case metadataIndex = 0x0D
    case summaryOffset = 0x0E
    case dataEnd = 0x0F

    var recordName: String {
        switch self {
        case .header: "Header"
        case .footer: "Footer"
        case .schema: "Schema"
        case .channel: "Channel"
        case .message: "Message"
        case .chunk: "Chunk"
        case .messageIndex: "MessageIndex"
        case .chunkIndex: "ChunkIndex"
        case .attachment: "Attachment"
        case .attachmentIndex: "AttachmentIndex"
        case .statistics: "Statistics"
        case .metadata: "Metadata"
        case .metadataIndex: "MetadataIndex"
        case .summaryOffset: "SummaryOffset"
        case .dataEnd: "DataEnd"
        }
    }
}

/// The eight bytes at both ends of a file: 0x89 "MCAP" "0" "\r\n" (the "0" is the major version).
public let mcapMagic: [UInt8] = [0x89, 0x4D, 0x43, 0x41, 0x50, 0x30, 0x0D, 0x0A]

/// Opcode and length in front of every record.
let mcapRecordPrefixBytes = 9
/// A footer record: prefix and summary_start, summary_offset_start (uint64) and summary_crc (uint32).
let mcapFooterRecordBytes = 9 + 20

/// The first record of a file.
public struct MCAPHeader: Sendable, Equatable {
    /// "" or a well-known profile ("ros1", "ros2"); custom ones start with "x-".
    public var profile: String
    /// The writer's name and version, e.g. "sinew 0.5.0".
    public var library: String

    public init(profile: String, library: String) {
        self.profile = profile
        self.library = library
    }
}

/// How the messages of channels that use it are laid out.
public struct MCAPSchema: Sendable, Equatable {
    /// Unique in the file, never 0.
    public var id: UInt16
    /// E.g. "sensor_msgs/msg/JointState", or a JSON type's name.
    public var name: String
    /// "jsonschema", "ros2msg", "protobuf", … (spec: well-known schema encodings).
    public var encoding: String
    public var data: [UInt8]

    public init(id: UInt16, name: String, encoding: String, data: [UInt8]) {
        self.id = id
        self.name = name
        self.encoding = encoding
        self.data = data
    }
}

/// A stream of messages on one topic.
public struct MCAPChannel: Sendable, Equatable {
    public var id: UInt16
    /// 0: the channel has no schema.
    public var schemaID: UInt16
    public var topic: String
    /// "json", "cdr", "protobuf", … (spec: well-known message encodings).
    public var messageEncoding: String
    public var metadata: [String: String]

    public init(id: UInt16, schemaID: UInt16, topic: String, messageEncoding: String, metadata: [String: String] = [:])
    {
        self.id = id
        self.schemaID = schemaID
        self.topic = topic
        self.messageEncoding = messageEncoding
        self.metadata = metadata
    }
}

/// One message as read back. `data` shares the storage of the chunk it came from (no copy per message): index it
/// from `data.startIndex`, or copy it with `Array(data)` to keep it beyond the next message.
public struct MCAPMessage: Sendable {
    public var channelID: UInt16
    public var sequence: UInt32
    /// When the recorder logged the message, ns since the file's epoch.
    public var logTimeNs: UInt64
    /// When it was published (≤ `logTimeNs`), ns since the file's epoch.
    public var publishTimeNs: UInt64
    public var data: ArraySlice<UInt8>

    public init(channelID: UInt16, sequence: UInt32, logTimeNs: UInt64, publishTimeNs: UInt64, data: ArraySlice<UInt8>)
    {
        self.channelID = channelID
        self.sequence = sequence
        self.logTimeNs = logTimeNs
        self.publishTimeNs = publishTimeNs
        self.data = data
    }
}

/// Where a chunk and its message indexes are (summary section).
public struct MCAPChunkIndex: Sendable, Equatable {
    public var messageStartTimeNs: UInt64
    public var messageEndTimeNs: UInt64
    /// File offset of the Chunk record.
    public var chunkStartOffset: UInt64
    /// The Chunk record's length with its opcode and length prefix.
    public var chunkLength: UInt64
    /// Channel → file offset of that channel's MessageIndex record after the chunk (empty: not indexed).
    public var messageIndexOffsets: [UInt16: UInt64]
    /// Bytes of all MessageIndex records after the chunk.
    public var messageIndexLength: UInt64
    /// "" (none) or "zstd" (or "lz4", which Sinew does not read).
    public var compression: String
    public var compressedSize: UInt64
    public var uncompressedSize: UInt64
}

/// A file stored beside the messages (a robot description, a calibration, the command line).
public struct MCAPAttachment: Sendable, Equatable {
    public var logTimeNs: UInt64
    /// 0 when unknown.
    public var createTimeNs: UInt64
    public var name: String
    /// MIME type, e.g. "text/plain", "application/yaml".
    public var mediaType: String
    public var data: [UInt8]

    public init(logTimeNs: UInt64, createTimeNs: UInt64, name: String, mediaType: String, data: [UInt8]) {
        self.logTimeNs = logTimeNs
        self.createTimeNs = createTimeNs
        self.name = name
        self.mediaType = mediaType
        self.data = data
    }
}

/// Where an attachment is (summary section).
public struct MCAPAttachmentIndex: Sendable, Equatable {
    /// File offset of the Attachment record.
    public var offset: UInt64
    /// The record's length with its opcode and length prefix.
    public var length: UInt64
    public var logTimeNs: UInt64
    public var createTimeNs: UInt64
    public var dataSize: UInt64
    public var name: String
    public var mediaType: String
}

/// Named key–value pairs (the software version, the machine's set-up).
public struct MCAPMetadata: Sendable, Equatable {
    public var name: String
    public var values: [String: String]

    public init(name: String, values: [String: String]) {
        self.name = name
        self.values = values
    }
}

/// Where a metadata record is (summary section).
public struct MCAPMetadataIndex: Sendable, Equatable {
    public var offset: UInt64
    public var length: UInt64
    public var name: String
}

/// Counts over the whole file (summary section).
public struct MCAPStatistics: Sendable, Equatable {
    public var messageCount: UInt64 = 0
    public var schemaCount: UInt16 = 0
    public var channelCount: UInt32 = 0
    public var attachmentCount: UInt32 = 0
    public var metadataCount: UInt32 = 0
    public var chunkCount: UInt32 = 0
    /// Earliest message log time, ns (0 without messages).
    public var messageStartTimeNs: UInt64 = 0
    /// Latest message log time, ns (0 without messages).
    public var messageEndTimeNs: UInt64 = 0
    public var channelMessageCounts: [UInt16: UInt64] = [:]

    public init() {}

    /// Counts a message in the totals and times (the caller keeps `channelMessageCounts`).
    mutating func countMessage(logTimeNs: UInt64) {
        if messageCount == 0 {
            messageStartTimeNs = logTimeNs
            messageEndTimeNs = logTimeNs
        } else {
            messageStartTimeNs = min(messageStartTimeNs, logTimeNs)
            messageEndTimeNs = max(messageEndTimeNs, logTimeNs)
        }
        messageCount += 1
    }
}

/// Where a group of summary records of one opcode is (summary offset section).
public struct MCAPSummaryOffset: Sendable, Equatable {
    public var groupOpcode: UInt8
    public var groupStart: UInt64
    public var groupLength: UInt64
}

/// The last record of a file.
public struct MCAPFooter: Sendable, Equatable {
    /// File offset of the summary section (0: none).
    public var summaryStart: UInt64
    /// File offset of the summary offset section (0: none).
    public var summaryOffsetStart: UInt64
    /// CRC-32 from the summary's start through `summaryOffsetStart` of this record (0: not computed).
    public var summaryCRC: UInt32
}

/// A failure reading, writing or repairing an MCAP file: which file, where in it, and what.
public struct MCAPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        case cannotOpen(errno: Int32)
        case readFailed(errno: Int32)
        case writeFailed(errno: Int32)
        /// The first (or, for the end, last) eight bytes are not the MCAP magic of major version 0.
        case notMCAP(String)
        /// The file ends inside a record or before a record the format requires.
        case truncated(String)
        case malformed(String)
        /// A declared size over the reader's limit (`MCAPReaderOptions`) or the format's.
        case tooLarge(what: String, bytes: UInt64, limit: UInt64)
        case unsupportedCompression(String)
        case decompressionFailed(String)
        case compressionFailed(String)
        case crcMismatch(what: String, stored: UInt32, computed: UInt32)
        case unknownChannel(UInt16)
        case unknownSchema(UInt16)
        case invalidArgument(String)
        /// The writer was finished, or failed before.
        case writerClosed
    }

    /// The file's path (or the name given to an in-memory file or a descriptor).
    public var file: String
    /// Byte offset in the file where the problem is, when it is at one place.
    public var offset: UInt64?
    public var problem: Problem

    public init(file: String, offset: UInt64?, problem: Problem) {
        self.file = file
        self.offset = offset
        self.problem = problem
    }

    public var description: String {
        let place = offset.map { "\(file) at byte \($0)" } ?? file
        switch problem {
        case .cannotOpen(let code): return "cannot open \(place): \(String(cString: strerror(code))) (errno \(code))"
        case .readFailed(let code): return "cannot read \(place): \(String(cString: strerror(code))) (errno \(code))"
        case .writeFailed(let code): return "cannot write \(place): \(String(cString: strerror(code))) (errno \(code))"
        case .notMCAP(let detail): return "\(place): not an MCAP file: \(detail)"
        case .truncated(let detail): return "\(place): truncated: \(detail)"
        case .malformed(let detail): return "\(place): malformed: \(detail)"
        case .tooLarge(let what, let bytes, let limit):
            return "\(place): \(what) declares \(bytes) bytes, over the limit of \(limit)"
        case .unsupportedCompression(let name):
            return "\(place): chunk compression \"\(name)\" is not supported (Sinew reads zstd and uncompressed chunks"
                + (name == "lz4" ? "; convert the file with `mcap compress --compression zstd`)" : ")")
        case .decompressionFailed(let detail): return "\(place): zstd decompression failed: \(detail)"
        case .compressionFailed(let detail): return "\(place): zstd compression failed: \(detail)"
        case .crcMismatch(let what, let stored, let computed):
            return "\(place): \(what) CRC-32 mismatch (stored 0x\(hex(stored)), computed 0x\(hex(computed)))"
        case .unknownChannel(let id): return "\(place): channel \(id) is not defined"
        case .unknownSchema(let id): return "\(place): schema \(id) is not defined"
        case .invalidArgument(let detail): return "\(place): \(detail)"
        case .writerClosed: return "\(place): the writer is finished or failed earlier"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
