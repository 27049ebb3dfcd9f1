import Glibc

/// Limits and checks of the reader (and of the repair's scan) for files from outside.
public struct MCAPReaderOptions: Sendable {
    /// Check chunk, attachment, summary and (while scanning) data section CRCs where the file stores them.
    public var validateCRCs: Bool
    /// Read a file that was not finished (no footer, a record cut off): the reader keeps what is complete and says
    /// why it stopped in `MCAPReader.damage`. Off, such a file is an error.
    public var allowsIncompleteFile: Bool
    /// The largest record read into memory (a chunk's compressed records, an attachment, the summary).
    public var maxRecordBytes: UInt64
    /// The largest uncompressed chunk, whatever the file declares (a small file must not claim gigabytes).
    public var maxChunkUncompressedBytes: UInt64

    public init(
        validateCRCs: Bool = true, allowsIncompleteFile: Bool = false, maxRecordBytes: UInt64 = 1 << 30,
        maxChunkUncompressedBytes: UInt64 = 1 << 28
    ) {
        self.validateCRCs = validateCRCs
        self.allowsIncompleteFile = allowsIncompleteFile
        self.maxRecordBytes = maxRecordBytes
        self.maxChunkUncompressedBytes = maxChunkUncompressedBytes
    }
}

/// Random access to a file's bytes.
class MCAPByteSource {
    let name: String
    let size: UInt64

    init(name: String, size: UInt64) {
        self.name = name
        self.size = size
    }

    /// Exactly `count` bytes from `offset` (the caller has checked they are inside the file).
    func read(at offset: UInt64, count: Int) throws(MCAPError) -> [UInt8] { [] }
}

/// A file read with `pread`, small reads served from a read-ahead window (a scan reads many small records).
final class MCAPFileSource: MCAPByteSource {
    private let descriptor: Int32
    private var window: [UInt8] = []
    private var windowStart: UInt64 = 0
    private static let windowBytes = 1 << 20

    init(path: String) throws(MCAPError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MCAPError(file: path, offset: nil, problem: .cannotOpen(errno: errno)) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw MCAPError(file: path, offset: nil, problem: .readFailed(errno: code))
        }
        descriptor = fd
        super.init(name: path, size: UInt64(max(status.st_size, 0)))
    }

    deinit { close(descriptor) }

    override func read(at offset: UInt64, count: Int) throws(MCAPError) -> [UInt8] {
        if offset >= windowStart && offset + UInt64(count) <= windowStart + UInt64(window.count) {
            let start = Int(offset - windowStart)
            return Array(window[start..<(start + count)])
        }
        if count < Self.windowBytes / 16 {
            let windowCount = Int(min(UInt64(Self.windowBytes), size - offset))
            window = try pread(at: offset, count: max(windowCount, count))
            windowStart = offset
            return Array(window[0..<count])
        }
        return try pread(at: offset, count: count)
    }

    private func pread(at offset: UInt64, count: Int) throws(MCAPError) -> [UInt8] {
        var failure: Int32 = 0
        var short = false
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let n = Glibc.pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if n == 0 {
                    short = true
                    break
                }
                done += n
            }
            // Bytes past `done` are never read: on failure the array is dropped.
            if done < count { buffer.baseAddress!.advanced(by: done).initialize(repeating: 0, count: count - done) }
            initialized = count
        }
        if failure != 0 { throw MCAPError(file: name, offset: offset, problem: .readFailed(errno: failure)) }
        if short {
            throw MCAPError(file: name, offset: offset, problem: .truncated("the file shrank while it was read"))
        }
        return bytes
    }
}

/// A file already in memory (tests, the fuzzer).
final class MCAPMemorySource: MCAPByteSource {
    private let bytes: [UInt8]

    init(bytes: [UInt8], name: String) {
        self.bytes = bytes
        super.init(name: name, size: UInt64(bytes.count))
    }

    override func read(at offset: UInt64, count: Int) throws(MCAPError) -> [UInt8] {
        Array(bytes[Int(offset)..<(Int(offset) + count)])
    }
}

/// A record's place in the file.
struct MCAPRecordLocation {
    var opcode: UInt8
    var offset: UInt64
    /// Content length (without opcode and length).
    var length: UInt64
    var contentOffset: UInt64 { offset + UInt64(mcapRecordPrefixBytes) }
    var end: UInt64 { contentOffset + length }
}

/// Record-level access shared by the reader, the scan and the repair.
struct MCAPRecordAccess {
    let source: MCAPByteSource
    let options: MCAPReaderOptions
    let decompressor: ZstdDecompressor?

    var file: String { source.name }

    func error(_ offset: UInt64?, _ problem: MCAPError.Problem) -> MCAPError {
        MCAPError(file: file, offset: offset, problem: problem)
    }

    /// The record starting at `offset`, which must end by `limit` (the file's size or a section's end).
    func location(at offset: UInt64, limit: UInt64? = nil) throws(MCAPError) -> MCAPRecordLocation {
        let limit = min(limit ?? source.size, source.size)
        guard offset <= limit, limit - offset >= UInt64(mcapRecordPrefixBytes) else {
            throw error(offset, .truncated("\(limit &- offset) bytes are too few for a record's opcode and length"))
        }
        let prefix = try source.read(at: offset, count: mcapRecordPrefixBytes)
        let length = prefix.withUnsafeBytes {
            UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
        }
        let record = MCAPRecordLocation(opcode: prefix[0], offset: offset, length: length)
        let available = limit - record.contentOffset
        guard length <= available else {
            throw error(
                offset,
                .truncated("\(recordName(prefix[0])) record declares \(length) bytes, \(available) are left"))
        }
        return record
    }

    /// A record's content, within the size limit.
    func content(of record: MCAPRecordLocation) throws(MCAPError) -> [UInt8] {
        guard record.length <= options.maxRecordBytes else {
            throw error(
                record.offset,
                .tooLarge(
                    what: "\(recordName(record.opcode)) record", bytes: record.length, limit: options.maxRecordBytes))
        }
        return try source.read(at: record.contentOffset, count: Int(record.length))
    }

    func cursor(_ content: [UInt8], _ record: MCAPRecordLocation) -> MCAPFieldCursor {
        MCAPFieldCursor(
            content, start: 0, end: content.count, file: file, record: recordName(record.opcode),
            recordOffset: record.offset)
    }

    /// A chunk's uncompressed records, decompressed within the limits and checked against its CRC when asked.
    func chunkRecords(_ content: [UInt8], at offset: UInt64) throws(MCAPError) -> (MCAPChunkHeader, [UInt8]) {
        var cursor = MCAPFieldCursor(
            content, start: 0, end: content.count, file: file, record: "Chunk", recordOffset: offset)
        let header = try MCAPRecordDecoder.chunk(&cursor)
        guard header.uncompressedSize <= options.maxChunkUncompressedBytes else {
            throw error(
                offset,
                .tooLarge(
                    what: "chunk (uncompressed)", bytes: header.uncompressedSize,
                    limit: options.maxChunkUncompressedBytes))
        }
        let records: [UInt8]
        switch header.compression {
        case "":
            guard UInt64(header.records.count) == header.uncompressedSize else {
                throw error(
                    offset,
                    .malformed(
                        "uncompressed chunk holds \(header.records.count) bytes of records, declares "
                            + "\(header.uncompressedSize)"))
            }
            records = Array(content[header.records])
        case "zstd":
            guard let decompressor else {
                throw error(offset, .decompressionFailed("cannot create a zstd context"))
            }
            let result = content.withUnsafeBytes { raw in
                decompressor.decompress(
                    UnsafeRawBufferPointer(rebasing: raw[header.records]), size: Int(header.uncompressedSize))
            }
            switch result {
            case .success(let bytes): records = bytes
            case .failure(let failure): throw error(offset, .decompressionFailed(failure.text))
            }
        default:
            throw error(offset, .unsupportedCompression(header.compression))
        }
        if options.validateCRCs && header.uncompressedCRC != 0 {
            let computed = MCAPCRC32.checksum(records)
            guard computed == header.uncompressedCRC else {
                throw error(offset, .crcMismatch(what: "chunk", stored: header.uncompressedCRC, computed: computed))
            }
        }
        return (header, records)
    }

    /// The Header record after the leading magic; checks the magic.
    func header() throws(MCAPError) -> (MCAPHeader, end: UInt64) {
        guard source.size >= UInt64(mcapMagic.count) else {
            throw error(0, .notMCAP("\(source.size) bytes are too few for the magic"))
        }
        let magic = try source.read(at: 0, count: mcapMagic.count)
        guard magic == mcapMagic else {
            if magic[0..<5] == mcapMagic[0..<5] {
                throw error(0, .notMCAP("major version byte 0x\(String(magic[5], radix: 16)), Sinew reads version 0"))
            }
            throw error(0, .notMCAP("the file does not start with 0x89 MCAP0\\r\\n"))
        }
        let record = try location(at: UInt64(mcapMagic.count))
        guard record.opcode == MCAPOpcode.header.rawValue else {
            throw error(record.offset, .malformed("the first record is \(recordName(record.opcode)), not a Header"))
        }
        let content = try content(of: record)
        var c = cursor(content, record)
        return (try MCAPRecordDecoder.header(&c), record.end)
    }
}

func recordName(_ opcode: UInt8) -> String {
    MCAPOpcode(rawValue: opcode)?.recordName ?? "unknown (opcode 0x\(String(opcode, radix: 16)))"
}
