import CAllocCounter
import SinewBus
import Testing

/// Makes a random valid packet of either protocol (random ID, instruction/error and parameters, with
/// plenty of FF/FD bytes so stuffing paths run).
private func randomPacket(_ rng: inout XorShift, dynamixel: Bool, into out: UnsafeMutableRawBufferPointer) -> Int {
    let count = Int(rng.next() % 24)
    let id = UInt8(rng.next() % 253)
    if dynamixel {
        var w = DynamixelPacketWriter(
            into: out, id: id,
            instruction: rng.next() & 1 == 0 ? .status : Instruction(rawValue: UInt8(rng.next() % 0xA0)))
        for _ in 0..<count {
            let r = rng.next() % 4
            w.append(r == 0 ? 0xFF : r == 1 ? 0xFD : UInt8(truncatingIfNeeded: rng.next()))
        }
        return (try? w.finish()) ?? 0
    } else {
        var w = FeetechPacketWriter(into: out, id: id, code: UInt8(truncatingIfNeeded: rng.next()))
        for _ in 0..<count {
            w.append(rng.next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: rng.next()))
        }
        return (try? w.finish()) ?? 0
    }
}

/// ≥ 10^6 random and mutated inputs through both stream decoders and the request parsers: nothing may
/// crash, hang, or hand out a view longer than the decoder's capacity; every byte of every view is read.
@Test func streamDecodersSurviveRandomAndMutatedInput() {
    var rng = XorShift(seed: 0x5EED_1234)
    let capacity = 256
    let dxl = DynamixelStreamDecoder(capacity: capacity)
    let ftc = FeetechStreamDecoder(capacity: capacity)
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 1)
    defer { scratch.deallocate() }
    var checksum = 0
    var frames = 0
    var violations = 0
    let inputs = 1_000_000
    for input in 0..<inputs {
        let dynamixel = input & 1 == 0
        var n: Int
        switch rng.next() % 4 {
        case 0:  // pure noise, biased towards header bytes
            n = Int(rng.next() % 48)
            for i in 0..<n {
                let r = rng.next() % 5
                scratch[i] = r == 0 ? 0xFF : r == 1 ? 0xFD : r == 2 ? 0x00 : UInt8(truncatingIfNeeded: rng.next())
            }
        case 1:  // a valid packet, untouched
            n = randomPacket(&rng, dynamixel: dynamixel, into: scratch)
        default:  // a valid packet, mutated: flips, truncation, inserted garbage
            n = randomPacket(&rng, dynamixel: dynamixel, into: scratch)
            let mutations = 1 + Int(rng.next() % 3)
            for _ in 0..<mutations where n > 0 {
                let at = Int(rng.next() % UInt64(n))
                switch rng.next() % 3 {
                case 0: scratch[at] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                case 1: n = at
                default:
                    if n < 500 {
                        scratch.baseAddress!.advanced(by: at + 1).copyMemory(
                            from: scratch.baseAddress!.advanced(by: at), byteCount: n - at)
                        scratch[at] = UInt8(truncatingIfNeeded: rng.next())
                        n += 1
                    }
                }
            }
        }
        // Feed in random chunk sizes, draining after each.
        var offset = 0
        while offset < n {
            let chunk = min(n - offset, 1 + Int(rng.next() % 16))
            let bytes = UnsafeRawBufferPointer(rebasing: scratch[offset..<offset + chunk])
            offset += chunk
            if dynamixel {
                dxl.append(bytes)
                while true {
                    guard case .frame(let f) = dxl.next() else {
                        if dxl.bufferedCount > dxl.capacity { violations += 1 }
                        break
                    }
                    frames += 1
                    if f.payload.count > dxl.capacity { violations += 1 }
                    for b in f.payload { checksum &+= Int(b) }
                    if case .syncWrite = DynamixelRequest(f), let d = DynamixelRequest(f).syncWriteData(for: 1) {
                        checksum &+= d.count
                    }
                    if let b = DynamixelRequest(f).bulkWriteEntry(for: 1) { checksum &+= b.data.count }
                    _ = f.forEachFastSyncEntry(length: 2) { checksum &+= $0.data.count }
                }
            } else {
                ftc.append(bytes)
                while true {
                    guard case .frame(let f) = ftc.next() else {
                        if ftc.bufferedCount > ftc.capacity { violations += 1 }
                        break
                    }
                    frames += 1
                    if f.parameters.count > ftc.capacity { violations += 1 }
                    for b in f.parameters { checksum &+= Int(b) }
                    if let d = FeetechRequest(f).syncWriteData(for: 1) { checksum &+= d.count }
                }
            }
        }
    }
    #expect(violations == 0)
    #expect(frames > inputs / 8)
    #expect(checksum != 0)
}

/// Every valid packet, however it is split or surrounded by noise, decodes back to what was encoded.
@Test func randomValidPacketsRoundTrip() {
    var rng = XorShift(seed: 42)
    let dxl = DynamixelStreamDecoder(capacity: 512)
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 1)
    defer { scratch.deallocate() }
    var mismatches = 0
    for _ in 0..<20_000 {
        let id = UInt8(rng.next() % 253)
        let params = (0..<Int(rng.next() % 40)).map { _ in
            rng.next() % 3 == 0 ? UInt8(0xFF) : rng.next() % 3 == 0 ? 0xFD : UInt8(truncatingIfNeeded: rng.next())
        }
        var w = DynamixelPacketWriter(into: scratch, id: id, instruction: .write)
        for p in params { w.append(p) }
        let n = try! w.finish()
        let noise: [UInt8] = [0xFF, 0xFF, 0xFD]
        noise.withUnsafeBytes { _ = dxl.append($0) }
        dxl.append(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
        var got: [UInt8]?
        while true {
            switch dxl.next() {
            case .frame(let f):
                if f.id == id && f.instruction == .write { got = Array(f.payload) }
                continue
            case .corrupt: continue
            case .needMoreData: break
            }
            break
        }
        if got != params { mismatches += 1 }
        dxl.reset()
    }
    #expect(mismatches == 0)
}

/// Encoding a 6-servo sync read, decoding 6 status replies and encoding a 6-servo sync write allocates
/// nothing once warmed up.
@Test func codecCycleAllocatesNothing() throws {
    let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
    let request = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 1)
    let replies = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 1)
    let goals = UnsafeMutableRawBufferPointer.allocate(byteCount: 24, alignment: 1)
    let values = UnsafeMutableRawBufferPointer.allocate(byteCount: 10, alignment: 1)
    defer {
        request.deallocate()
        replies.deallocate()
        goals.deallocate()
        values.deallocate()
    }
    goals.initializeMemory(as: UInt8.self, repeating: 7)
    values.initializeMemory(as: UInt8.self, repeating: 0xFF)
    let dxl = DynamixelStreamDecoder()
    let ftc = FeetechStreamDecoder()
    var sum = 0
    func cycle() throws(CodecError) {
        try ids.withUnsafeBufferPointer { (ids) throws(CodecError) in
            // Dynamixel
            _ = try Dynamixel.encodeSyncRead(address: 126, length: 10, ids: ids, into: request)
            var offset = 0
            for id in ids {
                offset += try Dynamixel.encodeStatus(
                    id: id, error: 0, parameters: UnsafeRawBufferPointer(values),
                    into: UnsafeMutableRawBufferPointer(rebasing: replies[offset...]))
            }
            dxl.append(UnsafeRawBufferPointer(rebasing: replies[0..<offset]))
            while case .frame(let f) = dxl.next() { sum &+= Int(f.parameters.first ?? 0) }
            sum &+= try Dynamixel.encodeSyncWrite(
                address: 116, length: 4, ids: ids, data: UnsafeRawBufferPointer(goals), into: request)
            // Feetech
            _ = try Feetech.encodeSyncRead(address: 56, length: 6, ids: ids, into: request)
            offset = 0
            for id in ids {
                offset += try Feetech.encodeStatus(
                    id: id, error: 0, parameters: UnsafeRawBufferPointer(rebasing: values[0..<6]),
                    into: UnsafeMutableRawBufferPointer(rebasing: replies[offset...]))
            }
            ftc.append(UnsafeRawBufferPointer(rebasing: replies[0..<offset]))
            while case .frame(let f) = ftc.next() { sum &+= Int(f.parameters.first ?? 0) }
            sum &+= try Feetech.encodeSyncWrite(
                address: 42, length: 2, ids: ids, data: UnsafeRawBufferPointer(goals), into: request)
        }
    }
    try cycle()
    let before = sinew_thread_allocations()
    for _ in 0..<10_000 { try cycle() }
    let delta = sinew_thread_allocations() - before
    #expect(delta == 0)
    #expect(sum > 0)
}
