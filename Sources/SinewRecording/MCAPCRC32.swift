/// CRC-32 as MCAP uses it (spec: "CRC32", the zlib/IEEE 802.3 checksum: reflected polynomial 0xEDB88320, initial
/// value and final XOR 0xFFFFFFFF; the check value of "123456789" is 0xCBF43926). Computed eight bytes at a time
/// (slicing-by-8), so checking a chunk costs little beside decompressing it.
public struct MCAPCRC32: Sendable, Equatable {
    /// The running register (the checksum before its final inversion), so a checksum can be continued.
    private var register: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of everything given so far.
    public var value: UInt32 { ~register }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        register = Self.advance(register, bytes)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The checksum of `bytes` alone.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = MCAPCRC32()
        crc.update(bytes)
        return crc.value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Eight tables of 256: table k maps a byte to its contribution k bytes further on.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            tables[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(k - 1) * 256 + byte]
                tables[k * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    private static func advance(_ start: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return start }
        var remaining = bytes.count
        return tables.withUnsafeBufferPointer { t in
            var crc = start
            while remaining >= 8 {
                let low = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) ^ crc
                let high = UInt32(littleEndian: (p + 4).loadUnaligned(as: UInt32.self))
                crc =
                    t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                p += 8
                remaining -= 8
            }
            while remaining > 0 {
                crc = t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                p += 1
                remaining -= 1
            }
            return crc
        }
    }
}
