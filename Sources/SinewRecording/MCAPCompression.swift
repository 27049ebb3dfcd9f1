import CZstd

/// How the writer compresses chunks (spec: well-known compressions "", "zstd", "lz4").
public enum MCAPCompression: Sendable, Equatable {
    case none
    /// zstd at `level` (1 fastest … 19; 3 is zstd's default: about 300 MB/s here on small JSON messages).
    case zstd(level: Int32)

    /// The name a Chunk record carries.
    var recordName: String {
        switch self {
        case .none: ""
        case .zstd: "zstd"
        }
    }
}

/// A zstd compression context kept for the writer's life (creating one per chunk would allocate its tables each
/// time).
final class ZstdCompressor {
    private let context: OpaquePointer
    let level: Int32

    init?(level: Int32) {
        guard let context = ZSTD_createCCtx() else { return nil }
        self.context = context
        self.level = level
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `source` into `destination` (grown when needed, its count is the capacity used); returns the
    /// compressed size, or zstd's error text.
    func compress(_ source: UnsafeRawBufferPointer, into destination: inout [UInt8]) -> Result<Int, ZstdFailure> {
        let bound = ZSTD_compressBound(source.count)
        if destination.count < bound { destination = [UInt8](repeating: 0, count: bound) }
        let size = destination.withUnsafeMutableBytes { out in
            ZSTD_compressCCtx(context, out.baseAddress, out.count, source.baseAddress, source.count, level)
        }
        if ZSTD_isError(size) != 0 { return .failure(ZstdFailure(code: size)) }
        return .success(size)
    }
}

/// A zstd decompression context kept for the reader's life.
final class ZstdDecompressor {
    private let context: OpaquePointer

    init?() {
        guard let context = ZSTD_createDCtx() else { return nil }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `source`, which must expand to exactly `size` bytes (the chunk's declared uncompressed size):
    /// zstd never writes past the buffer, so a lying frame fails instead of growing memory.
    func decompress(_ source: UnsafeRawBufferPointer, size: Int) -> Result<[UInt8], ZstdFailure> {
        var failure: ZstdFailure?
        let output = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, count in
            let produced = ZSTD_decompressDCtx(context, buffer.baseAddress, size, source.baseAddress, source.count)
            if ZSTD_isError(produced) != 0 {
                failure = ZstdFailure(code: produced)
                count = 0
            } else if produced != size {
                failure = ZstdFailure(text: "the frame holds \(produced) bytes, the chunk declares \(size)")
                count = 0
            } else {
                count = size
            }
        }
        if let failure { return .failure(failure) }
        return .success(output)
    }
}

struct ZstdFailure: Error {
    var text: String

    init(text: String) { self.text = text }

    init(code: Int) { text = String(cString: ZSTD_getErrorName(code)) }
}
