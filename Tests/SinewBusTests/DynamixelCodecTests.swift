import SinewBus
import Testing

@Test func crc16CheckValues() {
    let ascii = Array("123456789".utf8)
    #expect(ascii.withUnsafeBytes { Dynamixel.crc16($0) } == 0xFEE8)
    let ping: [UInt8] = [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01]
    #expect(ping.withUnsafeBytes { Dynamixel.crc16($0) } == 0x4E19)
    let syncRead: [UInt8] = [0xFF, 0xFF, 0xFD, 0x00, 0xFE, 0x09, 0x00, 0x82, 0x84, 0x00, 0x04, 0x00, 0x01, 0x02]
    #expect(syncRead.withUnsafeBytes { Dynamixel.crc16($0) } == 0xFACE)
}

@Test func pingAndSyncReadMatchTheManual() throws {
    #expect(
        try encoded { try Dynamixel.encodePing(id: 1, into: $0) } == [
            0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01, 0x19, 0x4E,
        ])
    let ids: [ServoID] = [1, 2]
    let packet = try ids.withUnsafeBufferPointer { ids in
        try encoded { (out) throws(CodecError) in
            try Dynamixel.encodeSyncRead(address: 132, length: 4, ids: ids, into: out)
        }
    }
    #expect(packet == [0xFF, 0xFF, 0xFD, 0x00, 0xFE, 0x09, 0x00, 0x82, 0x84, 0x00, 0x04, 0x00, 0x01, 0x02, 0xCE, 0xFA])
}

@Test func readWriteAndSyncWriteLayout() throws {
    let read = try encoded { try Dynamixel.encodeRead(id: 1, address: 132, length: 4, into: $0) }
    #expect(read == [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x07, 0x00, 0x02, 0x84, 0x00, 0x04, 0x00] + crcBytes(read))
    let goal: [UInt8] = [0x00, 0x02, 0x00, 0x00]
    let write = try goal.withUnsafeBytes { data in
        try encoded { (out) throws(CodecError) in try Dynamixel.encodeWrite(id: 1, address: 116, data: data, into: out)
        }
    }
    #expect(
        Array(write.prefix(14)) == [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x09, 0x00, 0x03, 0x74, 0x00, 0x00, 0x02, 0x00, 0x00])
    let ids: [ServoID] = [1, 2]
    let data: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
    let sync = try ids.withUnsafeBufferPointer { ids in
        try data.withUnsafeBytes { data in
            try encoded { (out) throws(CodecError) in
                try Dynamixel.encodeSyncWrite(address: 116, length: 4, ids: ids, data: data, into: out)
            }
        }
    }
    // SYNC_WRITE of N servos × 4 bytes is 14 + 5·N bytes (docs/protocols.md).
    try #require(sync.count == 14 + 5 * 2)
    #expect(Array(sync[7..<22]) == [0x83, 0x74, 0x00, 0x04, 0x00, 1, 1, 2, 3, 4, 2, 5, 6, 7, 8])
}

private func crcBytes(_ packet: [UInt8]) -> [UInt8] {
    let crc = packet.dropLast(2).withUnsafeBytes { Dynamixel.crc16($0) }
    return [UInt8(crc & 0xFF), UInt8(crc >> 8)]
}

@Test func stuffingIsAddedCountedAndRemoved() throws {
    let data: [UInt8] = [0xFF, 0xFF, 0xFD, 0x01, 0xFF, 0xFF, 0xFD, 0xFD]
    let packet = try data.withUnsafeBytes { data in
        try encoded { (out) throws(CodecError) in
            try Dynamixel.encodeWrite(id: 3, address: 0x1234, data: data, into: out)
        }
    }
    try #require(packet.count >= 10)
    let body = Array(packet[8..<(packet.count - 2)])
    #expect(body == [0x34, 0x12, 0xFF, 0xFF, 0xFD, 0xFD, 0x01, 0xFF, 0xFF, 0xFD, 0xFD, 0xFD])
    #expect(Int(packet[5]) | Int(packet[6]) << 8 == packet.count - 7)
    let decoder = DynamixelStreamDecoder()
    packet.withUnsafeBytes { _ = decoder.append($0) }
    let (frames, corrupt) = drain(decoder)
    #expect(corrupt == 0)
    #expect(frames.count == 1)
    #expect(frames.first?.0 == 3)
    #expect(frames.first?.2 == [0x34, 0x12] + data)
}

@Test func statusPacketsCarryErrorAndAlert() throws {
    let params: [UInt8] = [0xB0, 0x04, 0x26]  // model 1200 (XL330), firmware 38
    let status = try params.withUnsafeBytes { p in
        try encoded { (out) throws(CodecError) in
            try Dynamixel.encodeStatus(id: 7, error: 0x80 | 0x07, parameters: p, into: out)
        }
    }
    #expect(status.count == Dynamixel.statusPacketLength(parameterCount: 3))
    let decoder = DynamixelStreamDecoder()
    status.withUnsafeBytes { _ = decoder.append($0) }
    guard case .frame(let frame) = decoder.next() else {
        Issue.record("no frame")
        return
    }
    #expect(frame.isStatus)
    #expect(frame.id == 7)
    #expect(frame.statusError & Dynamixel.alertBit != 0)
    #expect(frame.statusError & 0x7F == 7)
    try #require(Array(frame.parameters) == params)
    #expect(frame.parameters.loadUInt16(at: 0) == 1200)
}

@Test func requestsParseBackForAVirtualServo() throws {
    let ids: [ServoID] = [1, 2, 3]
    let data: [UInt8] = [10, 11, 20, 21, 30, 31]
    let entries = [BulkEntry(id: 1, address: 132, length: 4), BulkEntry(id: 5, address: 126, length: 2)]
    var packets: [[UInt8]] = []
    try ids.withUnsafeBufferPointer { ids in
        try data.withUnsafeBytes { data in
            packets.append(
                try encoded { (o) throws(CodecError) in
                    try Dynamixel.encodeSyncWrite(address: 116, length: 2, ids: ids, data: data, into: o)
                })
            packets.append(
                try encoded { (o) throws(CodecError) in
                    try Dynamixel.encodeSyncRead(address: 132, length: 4, ids: ids, instruction: .fastSyncRead, into: o)
                })
        }
    }
    try entries.withUnsafeBufferPointer { e in
        packets.append(try encoded { (o) throws(CodecError) in try Dynamixel.encodeBulkRead(entries: e, into: o) })
    }
    packets.append(try encoded { try Dynamixel.encodeFactoryReset(id: 4, option: 0x02, into: $0) })
    packets.append(try encoded { try Dynamixel.encodeReboot(id: 4, into: $0) })
    packets.append(try encoded { try Dynamixel.encodeAction(id: 0xFE, into: $0) })
    let decoder = DynamixelStreamDecoder()
    for p in packets { p.withUnsafeBytes { _ = decoder.append($0) } }
    var seen = 0
    loop: while true {
        switch decoder.next() {
        case .frame(let f):
            let request = DynamixelRequest(f)
            switch (seen, request) {
            case (0, .syncWrite(116, 2, _)):
                #expect(request.syncWriteData(for: 2).map(Array.init) == [20, 21])
                #expect(request.syncWriteData(for: 9) == nil)
            case (1, .fastSyncRead(132, 4, let ids)):
                #expect(Array(ids) == [1, 2, 3])
                #expect(request.syncReadIndex(of: 3) == 2)
            case (2, .bulkRead):
                #expect(request.bulkReadEntry(for: 5)?.address == 126)
                #expect(request.bulkReadEntry(for: 5)?.length == 2)
            case (3, .factoryReset(0x02)), (4, .reboot), (5, .action): break
            default: Issue.record("unexpected request \(seen): \(request)")
            }
            seen += 1
        case .corrupt: Issue.record("corrupt")
        case .needMoreData: break loop
        }
    }
    #expect(seen == 6)
}

@Test func bulkWriteRoundTrip() throws {
    let entries = [BulkEntry(id: 1, address: 116, length: 4), BulkEntry(id: 2, address: 64, length: 1)]
    let data: [UInt8] = [1, 2, 3, 4, 1]
    let packet = try entries.withUnsafeBufferPointer { e in
        try data.withUnsafeBytes { d in
            try encoded { (o) throws(CodecError) in try Dynamixel.encodeBulkWrite(entries: e, data: d, into: o) }
        }
    }
    let decoder = DynamixelStreamDecoder()
    packet.withUnsafeBytes { _ = decoder.append($0) }
    guard case .frame(let f) = decoder.next() else {
        Issue.record("no frame")
        return
    }
    let request = DynamixelRequest(f)
    #expect(request.bulkWriteEntry(for: 2)?.address == 64)
    #expect(request.bulkWriteEntry(for: 2).map { Array($0.data) } == [1])
    #expect(request.bulkWriteEntry(for: 1).map { Array($0.data) } == [1, 2, 3, 4])
}

@Test func fastSyncReadReplyRoundTrip() throws {
    let ids: [ServoID] = [1, 2, 3]
    let errors: [UInt8] = [0, 0x80, 0]
    let data: [UInt8] = [1, 0, 0, 0, 0xFF, 0xFF, 0xFD, 0x00, 9, 9, 9, 9]
    let reply = try ids.withUnsafeBufferPointer { i in
        try errors.withUnsafeBufferPointer { e in
            try data.withUnsafeBytes { d in
                try encoded { (o) throws(CodecError) in
                    try Dynamixel.encodeFastSyncReadReply(ids: i, errors: e, length: 4, data: d, into: o)
                }
            }
        }
    }
    // One stuffed FD (the FF FF FD inside servo 2's data) on top of 8 + N·(4 + len).
    #expect(reply.count == Dynamixel.fastSyncReplyLength(servoCount: 3, length: 4) + 1)
    let decoder = DynamixelStreamDecoder()
    reply.withUnsafeBytes { _ = decoder.append($0) }
    guard case .frame(let f) = decoder.next() else {
        Issue.record("no frame")
        return
    }
    #expect(f.id == 0xFE)
    var got: [(ServoID, UInt8, [UInt8])] = []
    let n = f.forEachFastSyncEntry(length: 4) { got.append(($0.id, $0.error, Array($0.data))) }
    #expect(n == 3)
    #expect(got.map(\.0) == [1, 2, 3])
    #expect(got.map(\.1) == [0, 0x80, 0])
    #expect(got.flatMap(\.2) == data)
    // Without stuffing, each intermediate CRC is the CRC of the packet up to it.
    let plain: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    let unstuffed = try ids.withUnsafeBufferPointer { i in
        try errors.withUnsafeBufferPointer { e in
            try plain.withUnsafeBytes { d in
                try encoded { (o) throws(CodecError) in
                    try Dynamixel.encodeFastSyncReadReply(ids: i, errors: e, length: 4, data: d, into: o)
                }
            }
        }
    }
    try #require(unstuffed.count == Dynamixel.fastSyncReplyLength(servoCount: 3, length: 4))
    let firstCRCAt = 8 + 6
    let crc = unstuffed[0..<firstCRCAt].withUnsafeBytes { Dynamixel.crc16($0) }
    #expect(UInt16(unstuffed[firstCRCAt]) | UInt16(unstuffed[firstCRCAt + 1]) << 8 == crc)
}

@Test func streamDecoderHandlesGarbageSplitsAndConcatenation() throws {
    let a = try encoded { try Dynamixel.encodePing(id: 1, into: $0) }
    let b = try encoded { try Dynamixel.encodeRead(id: 2, address: 132, length: 4, into: $0) }
    var corruptA = a
    try #require(corruptA.count > 8)
    corruptA[8] ^= 0x01
    let stream: [UInt8] = [0x00, 0xFF, 0xFF, 0x12, 0xFF, 0xFF, 0xFD] + a + [0xFF, 0xFF] + corruptA + b + a
    // Feed in every split size from 1 to 7 bytes.
    for chunk in 1...7 {
        let decoder = DynamixelStreamDecoder(capacity: 64)
        var frames: [ServoID] = []
        var corrupt = 0
        var offset = 0
        while offset < stream.count {
            let end = min(offset + chunk, stream.count)
            stream[offset..<end].withUnsafeBytes { _ = decoder.append($0) }
            offset = end
            let (f, c) = drain(decoder)
            frames += f.map(\.0)
            corrupt += c
        }
        #expect(frames == [1, 2, 1], "chunk \(chunk)")
        #expect(corrupt == 1, "chunk \(chunk)")
        #expect(decoder.bufferedCount == 0)
    }
}
