import Glibc

/// The writer's choices.
public struct MCAPWriterOptions: Sendable {
    /// The Header's profile: "" for Sinew's own JSON channels, "ros2" when the file is meant for rosbag2 tools.
    public var profile: String
    /// The Header's library: the writer's name and version, e.g. "sinew 0.5.0".
    public var library: String
    public var compression: MCAPCompression
    /// A chunk is closed once its uncompressed records reach this many bytes.
    public var chunkSizeBytes: Int
    /// A chunk is closed once this long has passed since its first message (checked on every `write` and by
    /// `closeChunkIfDue()`), so a killed process loses at most this much; nil: chunks close only by size.
    public var maxChunkDurationNs: UInt64?
    /// `fdatasync` after every chunk, so that a power cut (not only a killed process) loses at most one chunk.
    public var syncEveryChunk: Bool
    /// The clock chunk age is measured with, ns; `CLOCK_MONOTONIC` unless a test gives its own.
    public var clockNs: @Sendable () -> UInt64

    public init(
        profile: String = "", library: String = "sinew", compression: MCAPCompression = .zstd(level: 3),
        chunkSizeBytes: Int = 1 << 20, maxChunkDurationNs: UInt64? = 1_000_000_000, syncEveryChunk: Bool = false,
        clockNs: @escaping @Sendable () -> UInt64 = monotonicClockNs
    ) {
        self.profile = profile
        self.library = library
        self.compression = compression
        self.chunkSizeBytes = chunkSizeBytes
        self.maxChunkDurationNs = maxChunkDurationNs
        self.syncEveryChunk = syncEveryChunk
        self.clockNs = clockNs
    }
}

/// `CLOCK_MONOTONIC` in ns.
@Sendable public func monotonicClockNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Writes an MCAP file: magic and Header; Schema and Channel records as they are added; messages batched into
/// chunks (zstd or uncompressed), each chunk followed by one MessageIndex per channel that has messages in it;
/// attachments and metadata between chunks; and on `finish()` DataEnd with the data section's CRC, the summary
/// (schemas, channels, statistics, chunk, attachment and metadata indexes), the summary offsets, the footer with the
/// summary's CRC and the closing magic. Until `finish()` the file is a valid prefix that `MCAPRepair` completes:
/// everything in closed chunks survives a killed process.
///
/// Not real-time (it allocates while growing and makes system calls): run it on the recorder's thread, one
/// thread at a time. Schema and channel IDs count up from 1.
public final class MCAPWriter: @unchecked Sendable {
    /// The path, or the name given with a descriptor (used in errors).
    public let file: String
    public let options: MCAPWriterOptions

    private enum State {
        case open
        case finished
        case failed
    }

    private let descriptor: Int32
    private let closesDescriptor: Bool
    private var state = State.open
    /// Complete records not yet handed to `write(2)`.
    private var output: [UInt8] = []
    private var bytesWritten: UInt64 = 0
    private var dataSectionCRC = MCAPCRC32()

    private var chunkRecords: [UInt8] = []
    private var chunkMessageCount = 0
    private var chunkStartTimeNs: UInt64 = 0
    private var chunkEndTimeNs: UInt64 = 0
    private var chunkOpenedAtNs: UInt64 = 0
    /// Per channel (index id − 1): (log time, offset) pairs of its messages in the open chunk.
    private var indexEntries: [[UInt64]] = []
    private var indexUnsorted: [Bool] = []
    private var channelsInChunk: [UInt16] = []
    private var compressed: [UInt8] = []
    private let compressor: ZstdCompressor?

    private var summary = MCAPSummaryContent()
    private var messageCounts: [UInt64] = []

    /// Creates (or truncates) the file at `path` and writes the magic and the Header.
    public convenience init(path: String, options: MCAPWriterOptions = MCAPWriterOptions()) throws(MCAPError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MCAPError(file: path, offset: nil, problem: .cannotOpen(errno: errno)) }
        try self.init(fileDescriptor: fd, name: path, closesDescriptor: true, options: options)
    }

    /// Writes to an open descriptor (a file at offset 0, a pipe, a socket): the writer never seeks. `name` appears in
    /// errors; the descriptor is closed by `finish()` (and on deinit) only when `closesDescriptor`.
    public init(
        fileDescriptor: Int32, name: String, closesDescriptor: Bool = false,
        options: MCAPWriterOptions = MCAPWriterOptions()
    ) throws(MCAPError) {
        descriptor = fileDescriptor
        file = name
        self.closesDescriptor = closesDescriptor
        self.options = options
        if case .zstd(let level) = options.compression {
            guard let compressor = ZstdCompressor(level: level) else {
                if closesDescriptor { close(fileDescriptor) }
                throw MCAPError(file: name, offset: nil, problem: .compressionFailed("cannot create a zstd context"))
            }
            self.compressor = compressor
        } else {
            compressor = nil
        }
        let chunkBytes = max(options.chunkSizeBytes, 1024)
        chunkRecords.reserveCapacity(chunkBytes + chunkBytes / 8)
        output.reserveCapacity(chunkBytes + 4096)
        output.append(contentsOf: mcapMagic)
        MCAPRecordEncoder.header(MCAPHeader(profile: options.profile, library: options.library), into: &output)
        do throws(MCAPError) {
            try flush()
        } catch {
            if closesDescriptor { close(fileDescriptor) }
            throw error
        }
    }

    deinit {
        // Not finished (an error path): keep what is complete, as a killed process would; `MCAPRepair` completes it.
        if state == .open {
            try? closeChunk()
            try? flush()
        }
        if closesDescriptor && state != .finished { close(descriptor) }
    }

    /// Bytes the file will hold once the buffered records are written.
    public var position: UInt64 { bytesWritten + UInt64(output.count) }

    /// Counts so far (the Statistics record `finish()` writes).
    public var statistics: MCAPStatistics {
        var statistics = summary.statistics
        statistics.schemaCount = UInt16(summary.schemas.count)
        statistics.channelCount = UInt32(summary.channels.count)
        for (slot, count) in messageCounts.enumerated() where count > 0 {
            statistics.channelMessageCounts[UInt16(slot + 1)] = count
        }
        return statistics
    }

    /// Messages in the chunk not yet closed (lost if the process is killed now).
    public var openChunkMessageCount: Int { chunkMessageCount }

    /// Adds a schema; returns its ID (1, 2, …). `encoding` is e.g. "jsonschema" or "ros2msg".
    public func addSchema(name: String, encoding: String, data: [UInt8]) throws(MCAPError) -> UInt16 {
        try requireOpen()
        guard summary.schemas.count < Int(UInt16.max) else { throw invalid("more than 65535 schemas") }
        let schema = MCAPSchema(id: UInt16(summary.schemas.count + 1), name: name, encoding: encoding, data: data)
        summary.schemas.append(schema)
        MCAPRecordEncoder.schema(schema, into: &output)
        return schema.id
    }

    /// Adds a channel; returns its ID (1, 2, …). `schemaID` is one `addSchema` returned, or 0 for none;
    /// `messageEncoding` is e.g. "json" or "cdr".
    public func addChannel(
        topic: String, messageEncoding: String, schemaID: UInt16, metadata: [String: String] = [:]
    ) throws(MCAPError) -> UInt16 {
        try requireOpen()
        guard schemaID == 0 || Int(schemaID) <= summary.schemas.count else {
            throw MCAPError(file: file, offset: nil, problem: .unknownSchema(schemaID))
        }
        guard summary.channels.count < Int(UInt16.max) else { throw invalid("more than 65535 channels") }
        let channel = MCAPChannel(
            id: UInt16(summary.channels.count + 1), schemaID: schemaID, topic: topic, messageEncoding: messageEncoding,
            metadata: metadata)
        summary.channels.append(channel)
        indexEntries.append([])
        indexUnsorted.append(false)
        messageCounts.append(0)
        MCAPRecordEncoder.channel(channel, into: &output)
        return channel.id
    }

    /// Adds one message to the open chunk. Times are ns since the file's epoch (Sinew: Unix time), publish time
    /// ≤ log time; `sequence` counts the channel's messages. The chunk is closed when it reaches
    /// `chunkSizeBytes` or `maxChunkDurationNs`.
    public func write(
        channel: UInt16, logTimeNs: UInt64, publishTimeNs: UInt64, sequence: UInt32, data: UnsafeRawBufferPointer
    ) throws(MCAPError) {
        try requireOpen()
        let slot = Int(channel) - 1
        guard slot >= 0 && slot < summary.channels.count else {
            throw MCAPError(file: file, offset: nil, problem: .unknownChannel(channel))
        }
        if chunkMessageCount == 0 {
            chunkOpenedAtNs = options.clockNs()
            chunkStartTimeNs = logTimeNs
            chunkEndTimeNs = logTimeNs
        } else {
            chunkStartTimeNs = min(chunkStartTimeNs, logTimeNs)
            chunkEndTimeNs = max(chunkEndTimeNs, logTimeNs)
        }
        let offset = UInt64(chunkRecords.count)
        chunkRecords.append(MCAPOpcode.message.rawValue)
        chunkRecords.appendLE(UInt64(22 + data.count))
        chunkRecords.appendLE(channel)
        chunkRecords.appendLE(sequence)
        chunkRecords.appendLE(logTimeNs)
        chunkRecords.appendLE(publishTimeNs)
        chunkRecords.append(contentsOf: data)
        if indexEntries[slot].isEmpty {
            channelsInChunk.append(channel)
        } else if indexEntries[slot][indexEntries[slot].count - 2] > logTimeNs {
            indexUnsorted[slot] = true
        }
        indexEntries[slot].append(logTimeNs)
        indexEntries[slot].append(offset)
        chunkMessageCount += 1
        messageCounts[slot] += 1
        summary.statistics.countMessage(logTimeNs: logTimeNs)
        if chunkRecords.count >= options.chunkSizeBytes {
            try closeChunk()
        } else if let limit = options.maxChunkDurationNs, options.clockNs() &- chunkOpenedAtNs >= limit {
            try closeChunk()
        }
    }

    /// `write` with the message in an array.
    public func write(
        channel: UInt16, logTimeNs: UInt64, publishTimeNs: UInt64, sequence: UInt32, data: [UInt8]
    ) throws(MCAPError) {
        var failure: MCAPError?
        data.withUnsafeBytes { raw in
            do throws(MCAPError) {
                try write(
                    channel: channel, logTimeNs: logTimeNs, publishTimeNs: publishTimeNs, sequence: sequence, data: raw)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Closes the open chunk when its first message is at least `maxAgeNs` old (default `maxChunkDurationNs`) on the
    /// writer's clock: the recorder calls this when it is idle, so that a quiet spell does not keep messages out of
    /// the file.
    public func closeChunkIfDue(maxAgeNs: UInt64? = nil) throws(MCAPError) {
        guard chunkMessageCount > 0, let limit = maxAgeNs ?? options.maxChunkDurationNs else { return }
        if options.clockNs() &- chunkOpenedAtNs >= limit { try closeChunk() }
    }

    /// Writes the open chunk (compressed unless zstd would not make it smaller) and its message indexes to the file.
    public func closeChunk() throws(MCAPError) {
        try requireOpen()
        guard chunkMessageCount > 0 else { return }
        let uncompressedCRC = MCAPCRC32.checksum(chunkRecords)
        var compressedSize = 0
        if let compressor {
            let result = chunkRecords.withUnsafeBytes { compressor.compress($0, into: &compressed) }
            switch result {
            case .success(let size): compressedSize = size
            case .failure(let failure):
                state = .failed
                throw MCAPError(file: file, offset: position, problem: .compressionFailed(failure.text))
            }
        }
        // Incompressible data (tiny chunks, noise) is stored as it is: readers need not decompress it.
        let useCompressed = compressor != nil && compressedSize < chunkRecords.count
        let chunkStart = position
        let at = output.beginRecord(.chunk)
        output.appendLE(chunkStartTimeNs)
        output.appendLE(chunkEndTimeNs)
        output.appendLE(UInt64(chunkRecords.count))
        output.appendLE(uncompressedCRC)
        output.appendMCAPString(useCompressed ? options.compression.recordName : "")
        if useCompressed {
            output.appendLE(UInt64(compressedSize))
            output.append(contentsOf: compressed[0..<compressedSize])
        } else {
            output.appendLE(UInt64(chunkRecords.count))
            output.append(contentsOf: chunkRecords)
        }
        output.endRecord(lengthAt: at)
        let chunkLength = position - chunkStart
        let indexStart = position
        var indexOffsets: [UInt16: UInt64] = [:]
        channelsInChunk.sort()
        for channel in channelsInChunk {
            let slot = Int(channel) - 1
            if indexUnsorted[slot] { sortIndexEntries(slot) }
            indexOffsets[channel] = position
            MCAPRecordEncoder.messageIndex(channelID: channel, entries: indexEntries[slot], into: &output)
            indexEntries[slot].removeAll(keepingCapacity: true)
        }
        summary.chunkIndexes.append(
            MCAPChunkIndex(
                messageStartTimeNs: chunkStartTimeNs, messageEndTimeNs: chunkEndTimeNs, chunkStartOffset: chunkStart,
                chunkLength: chunkLength, messageIndexOffsets: indexOffsets, messageIndexLength: position - indexStart,
                compression: useCompressed ? options.compression.recordName : "",
                compressedSize: UInt64(useCompressed ? compressedSize : chunkRecords.count),
                uncompressedSize: UInt64(chunkRecords.count)))
        summary.statistics.chunkCount += 1
        chunkRecords.removeAll(keepingCapacity: true)
        channelsInChunk.removeAll(keepingCapacity: true)
        chunkMessageCount = 0
        try flush()
        if options.syncEveryChunk { try syncDescriptor() }
    }

    /// Stores a file beside the messages (outside chunks, as the spec requires). Times in ns; `createTimeNs` 0 when
    /// unknown.
    public func attach(
        name: String, mediaType: String, data: [UInt8], logTimeNs: UInt64, createTimeNs: UInt64 = 0
    ) throws(MCAPError) {
        try requireOpen()
        let attachment = MCAPAttachment(
            logTimeNs: logTimeNs, createTimeNs: createTimeNs, name: name, mediaType: mediaType, data: data)
        let offset = position
        MCAPRecordEncoder.attachment(attachment, into: &output)
        summary.attachmentIndexes.append(
            MCAPAttachmentIndex(
                offset: offset, length: position - offset, logTimeNs: logTimeNs, createTimeNs: createTimeNs,
                dataSize: UInt64(data.count), name: name, mediaType: mediaType))
        summary.statistics.attachmentCount += 1
        try flush()
    }

    /// Stores a named set of key–value pairs.
    public func addMetadata(name: String, values: [String: String]) throws(MCAPError) {
        try requireOpen()
        let offset = position
        MCAPRecordEncoder.metadata(MCAPMetadata(name: name, values: values), into: &output)
        summary.metadataIndexes.append(MCAPMetadataIndex(offset: offset, length: position - offset, name: name))
        summary.statistics.metadataCount += 1
        try flush()
    }

    /// Writes every complete record (not the open chunk: `closeChunk()` first to include it) and `fdatasync`s.
    public func sync() throws(MCAPError) {
        try requireOpen()
        try flush()
        try syncDescriptor()
    }

    /// Closes the open chunk, writes DataEnd, the summary, the summary offsets, the footer and the closing magic,
    /// syncs, and closes the descriptor if the writer owns it. Returns the file's statistics.
    @discardableResult
    public func finish() throws(MCAPError) -> MCAPStatistics {
        try closeChunk()
        try flush()
        summary.statistics = statistics
        let tail = summary.tail(dataEndOffset: position, dataSectionCRC: dataSectionCRC.value)
        output.append(contentsOf: tail)
        try flush(dataSection: false)
        try syncDescriptor()
        state = .finished
        if closesDescriptor && close(descriptor) != 0 {
            throw MCAPError(file: file, offset: nil, problem: .writeFailed(errno: errno))
        }
        return summary.statistics
    }

    private func requireOpen() throws(MCAPError) {
        guard state == .open else { throw MCAPError(file: file, offset: nil, problem: .writerClosed) }
    }

    private func invalid(_ detail: String) -> MCAPError {
        MCAPError(file: file, offset: nil, problem: .invalidArgument(detail))
    }

    private func sortIndexEntries(_ slot: Int) {
        let entries = indexEntries[slot]
        var pairs = (0..<entries.count / 2).map { (entries[2 * $0], entries[2 * $0 + 1]) }
        // Offsets grow with write order, so sorting by (time, offset) keeps equal times in write order.
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        indexEntries[slot].removeAll(keepingCapacity: true)
        for (time, offset) in pairs {
            indexEntries[slot].append(time)
            indexEntries[slot].append(offset)
        }
        indexUnsorted[slot] = false
    }

    private func flush(dataSection: Bool = true) throws(MCAPError) {
        guard !output.isEmpty else { return }
        if dataSection { dataSectionCRC.update(output) }
        var written = 0
        let failure: Int32? = output.withUnsafeBytes { raw in
            while written < raw.count {
                let n = Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += n
            }
            return nil
        }
        if let failure {
            state = .failed
            throw MCAPError(file: file, offset: bytesWritten + UInt64(written), problem: .writeFailed(errno: failure))
        }
        bytesWritten += UInt64(output.count)
        // A large attachment should not pin its size in memory for the rest of the run.
        if output.capacity > 4 * max(options.chunkSizeBytes, 1 << 16) {
            output = []
            output.reserveCapacity(max(options.chunkSizeBytes, 1024) + 4096)
        } else {
            output.removeAll(keepingCapacity: true)
        }
    }

    private func syncDescriptor() throws(MCAPError) {
        // A pipe or a read-only-mounted device cannot sync; that is no write failure.
        if fdatasync(descriptor) != 0 && errno != EINVAL && errno != EROFS {
            state = .failed
            throw MCAPError(file: file, offset: nil, problem: .writeFailed(errno: errno))
        }
    }
}
