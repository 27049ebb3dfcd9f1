import SinewBus
import Testing

@Test func feetechSyncReadMatchesProtocolsDoc() throws {
    let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
    let packet = try ids.withUnsafeBufferPointer { ids in
        try encoded { (o) throws(CodecError) in try Feetech.encodeSyncRead(address: 56, length: 2, ids: ids, into: o) }
    }
    #expect(packet == [0xFF, 0xFF, 0xFE, 0x0A, 0x82, 0x38, 0x02, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x26])
}

@Test func feetechPingReadWriteAndStatus() throws {
    // Well-known STS ping of ID 1: FF FF 01 02 01 FB.
    #expect(try encoded { try Feetech.encodePing(id: 1, into: $0) } == [0xFF, 0xFF, 0x01, 0x02, 0x01, 0xFB])
    let read = try encoded { try Feetech.encodeRead(id: 1, address: 56, length: 2, into: $0) }
    #expect(read == [0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE])
    let position: [UInt8] = [0x00, 0x08]
    let status = try position.withUnsafeBytes { p in
        try encoded { (o) throws(CodecError) in
            try Feetech.encodeStatus(id: 1, error: Feetech.errorOverload, parameters: p, into: o)
        }
    }
    #expect(status.count == Feetech.statusPacketLength(parameterCount: 2))
    let decoder = FeetechStreamDecoder()
    status.withUnsafeBytes { _ = decoder.append($0) }
    guard case .frame(let f) = decoder.next() else {
        Issue.record("no frame")
        return
    }
    #expect(f.id == 1)
    #expect(f.statusError == Feetech.errorOverload)
    try #require(f.parameters.count >= 2)
    #expect(f.parameters.loadUInt16(at: 0) == 2048)
    #expect(f.parameters.loadUInt16(at: 0, .bigEndian) == 0x0008)
}

@Test func feetechScsIsBigEndian() throws {
    var out = [UInt8](repeating: 0, count: 16)
    let n = try out.withUnsafeMutableBytes { (o) throws(CodecError) -> Int in
        var w = FeetechPacketWriter(into: o, id: 1, code: Instruction.write.rawValue, byteOrder: .bigEndian)
        w.append(42)
        w.append(uint16: 0x1234)
        return try w.finish()
    }
    #expect(Array(out[5..<8]) == [42, 0x12, 0x34])
    #expect(n == 9)
}

@Test func feetechSyncWriteParsesBack() throws {
    let ids: [ServoID] = [1, 2]
    let data: [UInt8] = [0x00, 0x08, 0xFF, 0x0F]
    let packet = try ids.withUnsafeBufferPointer { i in
        try data.withUnsafeBytes { d in
            try encoded { (o) throws(CodecError) in
                try Feetech.encodeSyncWrite(address: 42, length: 2, ids: i, data: d, into: o)
            }
        }
    }
    #expect(Array(packet.prefix(5)) == [0xFF, 0xFF, 0xFE, 4 + 3 * 2, 0x83])
    let decoder = FeetechStreamDecoder()
    // Without a bound, `FF FF 00 FF` would announce a 259-byte packet and hold the real one back.
    decoder.maximumPacketLength = 64
    ([0xFF, 0xFF, 0xFF, 0x00] + packet).withUnsafeBytes { _ = decoder.append($0) }
    guard case .frame(let f) = decoder.next() else {
        Issue.record("no frame")
        return
    }
    let request = FeetechRequest(f)
    guard case .syncWrite(42, 2, _) = request else {
        Issue.record("not a sync write: \(request)")
        return
    }
    #expect(request.syncWriteData(for: 2).map(Array.init) == [0xFF, 0x0F])
}

@Test func signMagnitudeFields() {
    #expect(SignMagnitude.decode(0x8010, signBit: 15) == -16)
    #expect(SignMagnitude.decode(0x0010, signBit: 15) == 16)
    #expect(SignMagnitude.encode(-16, signBit: 15) == 0x8010)
    #expect(SignMagnitude.encode(-5, signBit: 11) == 0x0805)
    #expect(SignMagnitude.decode(0x0805, signBit: 11) == -5)
    #expect(SignMagnitude.decode(0x0400 | 100, signBit: 10) == -100)
    #expect(SignMagnitude.encode(100_000, signBit: 15) == 0x7FFF)
    for v in -2047...2047 { #expect(SignMagnitude.decode(SignMagnitude.encode(v, signBit: 11), signBit: 11) == v) }
}

@Test func feetechStreamSplitsAndCorruption() throws {
    let a = try encoded { try Feetech.encodePing(id: 1, into: $0) }
    let b = try encoded { try Feetech.encodeRead(id: 2, address: 56, length: 2, into: $0) }
    var bad = b
    try #require(bad.count > 6)
    bad[6] ^= 0x40
    let stream: [UInt8] = [0x13, 0xFF] + a + [0xFF, 0xFF, 0xFF] + bad + b + a
    for chunk in 1...5 {
        let decoder = FeetechStreamDecoder()
        var ids: [ServoID] = []
        var corrupt = 0
        var offset = 0
        while offset < stream.count {
            let end = min(offset + chunk, stream.count)
            stream[offset..<end].withUnsafeBytes { _ = decoder.append($0) }
            offset = end
            let (f, c) = drain(decoder)
            ids += f.map(\.0)
            corrupt += c
        }
        #expect(ids == [1, 2, 1], "chunk \(chunk)")
        #expect(corrupt == 1, "chunk \(chunk)")
    }
}
