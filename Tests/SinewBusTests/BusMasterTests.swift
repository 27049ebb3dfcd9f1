import CAllocCounter
import Foundation
import SinewBus
import Testing

/// Generous margins: the test machine is shared and loaded; what matters is that errors come within
/// the computed deadline, not how tight it is.
private let testTiming = BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 30_000_000, retries: 0)
/// For tests where nothing should fail: a late reply on a loaded machine must not read as a fault.
private let relaxedTiming = BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 300_000_000, retries: 0)

private func makeBus(
    _ busProtocol: BusProtocol = .dynamixel, ids: [ServoID] = [1, 2, 3, 4, 5, 6], timing: BusTiming = testTiming
) -> (BusMaster, ScriptedBus) {
    let (near, far) = BytePipe.makePair(baudRate: 1_000_000)
    let servos = ScriptedBus(end: far, protocol: busProtocol, ids: ids)
    return (BusMaster(transport: near, protocol: busProtocol, timing: timing), servos)
}

private func syncRead(_ bus: BusMaster, _ ids: [ServoID], address: UInt16, length: Int) throws(BusError) -> [UInt8] {
    var data = [UInt8](repeating: 0, count: ids.count * length)
    var failure: BusError?
    ids.withUnsafeBufferPointer { ids in
        data.withUnsafeMutableBytes { out in
            do throws(BusError) { try bus.syncRead(ids: ids, address: address, length: length, into: out) } catch {
                failure = error
            }
        }
    }
    if let failure { throw failure }
    return data
}

private func syncWrite(_ bus: BusMaster, _ ids: [ServoID], address: UInt16, length: Int, _ data: [UInt8]) throws {
    try ids.withUnsafeBufferPointer { i in
        try data.withUnsafeBytes { d in try bus.syncWrite(ids: i, address: address, length: length, data: d) }
    }
}

private func fastSyncRead(_ bus: BusMaster, _ ids: [ServoID], address: UInt16, length: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: ids.count * length)
    try ids.withUnsafeBufferPointer { i in
        try out.withUnsafeMutableBytes { o in try bus.fastSyncRead(ids: i, address: address, length: length, into: o) }
    }
    return out
}

private func bulkRead(_ bus: BusMaster, _ entries: [BulkEntry]) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: entries.reduce(0) { $0 + Int($1.length) })
    try entries.withUnsafeBufferPointer { e in
        try out.withUnsafeMutableBytes { o in try bus.bulkRead(entries: e, into: o) }
    }
    return out
}

private func write(_ bus: BusMaster, id: ServoID, address: UInt16, _ data: [UInt8]) throws {
    try data.withUnsafeBytes { try bus.write(id: id, address: address, data: $0) }
}

@Test func dynamixelPingReadWrite() throws {
    let (bus, servos) = makeBus(timing: relaxedTiming)
    defer { servos.stop() }
    let ping = try bus.ping(3)
    #expect(ping == PingReply(id: 3, modelNumber: 1200, firmwareVersion: 52))
    #expect(try bus.read(id: 2, address: 132, length: 4) == [2, 0, 0, 0])
    let goal: [UInt8] = [0x00, 0x08, 0x00, 0x00]
    try write(bus, id: 4, address: 116, goal)
    #expect(servos.register(4, 116, 4) == goal)
}

@Test func dynamixelSyncFastAndBulk() throws {
    let (bus, servos) = makeBus(timing: relaxedTiming)
    defer { servos.stop() }
    let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
    #expect(try syncRead(bus, ids, address: 132, length: 4) == ids.flatMap { [$0, 0, 0, 0] })
    let goals: [UInt8] = (0..<24).map { UInt8($0) }
    try syncWrite(bus, ids, address: 116, length: 4, goals)
    #expect(try syncRead(bus, ids, address: 116, length: 4) == goals)
    #expect(try fastSyncRead(bus, ids, address: 116, length: 4) == goals)
    let entries = [BulkEntry(id: 1, address: 132, length: 1), BulkEntry(id: 6, address: 116, length: 4)]
    #expect(try bulkRead(bus, entries) == [1, 20, 21, 22, 23])
    let stats = bus.statistics(for: 1)
    #expect(stats.transactions == 5)
    #expect(stats.replies == 4)  // the sync write has no reply
    #expect(stats.latency.count == stats.replies)
    #expect(stats.timeouts == 0)
}

@Test func feetechTransactionsAgainstScriptedServos() throws {
    let (bus, servos) = makeBus(.feetechSTS, timing: relaxedTiming)
    defer { servos.stop() }
    #expect(try bus.ping(5) == PingReply(id: 5, modelNumber: 777, firmwareVersion: 3))
    #expect(try syncRead(bus, [1, 2, 3, 4, 5, 6], address: 56, length: 2) == [1, 2, 3, 4, 5, 6].flatMap { [$0, 0] })
    try syncWrite(bus, [1, 2], address: 42, length: 2, [0x00, 0x08, 0x10, 0x88])
    // No reply to a sync write: give the servo thread a moment to apply it.
    for _ in 0..<1000 where servos.register(2, 42, 2) != [0x10, 0x88] { usleep(1000) }
    #expect(servos.register(2, 42, 2) == [0x10, 0x88])
    #expect(SignMagnitude.decode(UInt16(0x10) | UInt16(0x88) << 8, signBit: 15) == -0x0810)
}

/// Runs `body`, expecting a BusError; checks it arrived before the transaction's budget (+ slack).
private func expectError(
    _ bus: BusMaster, budget: UInt64, _ body: () throws(BusError) -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
) -> BusError? {
    let start = MonotonicInstant.now()
    do {
        try body()
    } catch {
        let elapsed = MonotonicInstant.now().nanoseconds(since: start)
        #expect(elapsed < budget + 50_000_000, "took \(elapsed) ns", sourceLocation: sourceLocation)
        return error
    }
    Issue.record("no error", sourceLocation: sourceLocation)
    return nil
}

@Test func eachFaultGivesItsTypedError() throws {
    let (bus, servos) = makeBus()
    defer { servos.stop() }
    let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
    let budget = bus.budgetNanoseconds(requestBytes: 20, replyBytes: 6 * 15, replies: 6)
    func run() throws(BusError) { _ = try syncRead(bus, ids, address: 132, length: 4) }

    servos.inject(.silent, id: 3)
    var e = expectError(bus, budget: budget, run)
    #expect(e == BusError(servoID: 3, instruction: .syncRead, cause: .timeout))

    servos.inject(.corrupt, id: 4)
    e = expectError(bus, budget: budget, run)
    #expect(e == BusError(servoID: 4, instruction: .syncRead, cause: .corruptChecksum))

    servos.inject(.truncate, id: 6)
    e = expectError(bus, budget: budget, run)
    #expect(e?.servoID == 6)
    if case .truncatedPacket = e?.cause {} else { Issue.record("expected truncated, got \(String(describing: e))") }

    servos.inject(.foreign(9), id: 2)
    e = expectError(bus, budget: budget, run)
    #expect(e == BusError(servoID: 2, instruction: .syncRead, cause: .foreignPacket(from: 9)))

    servos.inject(.garbageOnly, id: 1)
    e = expectError(bus, budget: budget, run)
    #expect(e?.servoID == 1)
    if case .garbage(let n) = e?.cause {
        #expect(n > 0)
    } else {
        Issue.record("expected garbage, got \(String(describing: e))")
    }

    // A hardware error: the data still arrives, then the error is thrown.
    servos.inject(.errorByte(Dynamixel.alertBit), id: 5)
    e = expectError(bus, budget: budget, run)
    #expect(e == BusError(servoID: 5, instruction: .syncRead, cause: .hardwareError(0x80)))
    servos.inject(.errorByte(0x07), id: 5)
    e = expectError(bus, budget: budget) { () throws(BusError) in _ = try bus.read(id: 5, address: 132, length: 4) }
    #expect(e == BusError(servoID: 5, instruction: .read, cause: .statusError(0x07)))

    // Garbage interleaved before a good reply is tolerated and counted.
    servos.inject(.garbageBefore, id: 2)
    #expect(try syncRead(bus, ids, address: 132, length: 4) == ids.flatMap { [$0, 0, 0, 0] })
    #expect(bus.statistics(for: 2).discardedBytes > 0)

    servos.inject(.none, id: 0)
    let s = bus.statistics(for: 3)
    #expect(s.timeouts == 1)
    #expect(bus.statistics(for: 4).checksumErrors == 1)
    #expect(bus.statistics(for: 6).truncatedPackets == 1)
    #expect(bus.statistics(for: 2).foreignPackets == 1)
    #expect(bus.statistics(for: 1).garbageErrors == 1)
    #expect(bus.statistics(for: 5).hardwareErrors == 1)
    #expect(bus.statistics(for: 5).statusErrors == 1)
}

/// Busy polling changes how the master waits, not what it sees or when it gives up.
@Test func busyPollingReadsTheSameRepliesAndKeepsTheDeadline() throws {
    var timing = testTiming
    timing.busyPollNanoseconds = 200_000
    let (bus, servos) = makeBus(timing: timing)
    defer { servos.stop() }
    let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
    let expected: [UInt8] = ids.flatMap { [$0, 0, 0, 0] }
    #expect(try syncRead(bus, ids, address: 132, length: 4) == expected)
    servos.inject(.silent, id: 3)
    let budget = bus.budgetNanoseconds(requestBytes: 20, replyBytes: 6 * 15, replies: 6)
    let e = expectError(bus, budget: budget) { () throws(BusError) in
        _ = try syncRead(bus, ids, address: 132, length: 4)
    }
    #expect(e == BusError(servoID: 3, instruction: .syncRead, cause: .timeout))
    servos.inject(.none, id: 0)
    #expect(try syncRead(bus, ids, address: 132, length: 4) == expected)
}

/// After a clean exchange the master leaves the line alone (no flush, which costs system calls every
/// cycle): noise that comes in after the replies is skipped by the next exchange's decoder, never taken
/// for a reply, and counted.
@Test func noiseAfterACleanExchangeIsSkippedByTheNext() throws {
    for busProtocol in [BusProtocol.dynamixel, .feetechSTS] {
        let (bus, servos) = makeBus(busProtocol, timing: relaxedTiming)
        defer { servos.stop() }
        let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
        let address: UInt16 = busProtocol == .dynamixel ? 132 : 56
        let expected: [UInt8] = ids.flatMap { busProtocol == .dynamixel ? [$0, 0, 0, 0] : [$0, 0] }
        let length = busProtocol == .dynamixel ? 4 : 2
        servos.inject(.noiseAfter, id: 6, count: 3)
        for _ in 0..<4 {
            #expect(try syncRead(bus, ids, address: address, length: length) == expected)
            usleep(3_000)  // the noise arrives 1 ms after the replies
        }
        #expect(bus.statistics(for: 1).discardedBytes > 0, "\(busProtocol)")
    }
}

@Test func feetechFaultsToo() throws {
    let (bus, servos) = makeBus(.feetechSTS)
    defer { servos.stop() }
    let ids: [ServoID] = [1, 2, 3]
    let budget = bus.budgetNanoseconds(requestBytes: 20, replyBytes: 3 * 8, replies: 3)
    func run() throws(BusError) { _ = try syncRead(bus, ids, address: 56, length: 2) }
    servos.inject(.silent, id: 2)
    #expect(expectError(bus, budget: budget, run) == BusError(servoID: 2, instruction: .syncRead, cause: .timeout))
    servos.inject(.corrupt, id: 3)
    #expect(
        expectError(bus, budget: budget, run) == BusError(servoID: 3, instruction: .syncRead, cause: .corruptChecksum))
    servos.inject(.errorByte(Feetech.errorOverload), id: 1)
    #expect(
        expectError(bus, budget: budget, run) == BusError(servoID: 1, instruction: .syncRead, cause: .hardwareError(32))
    )
}

@Test func retriesRecoverFromOneLostReply() throws {
    var timing = testTiming
    timing.retries = 2
    let (bus, servos) = makeBus(timing: timing)
    defer { servos.stop() }
    servos.inject(.corrupt, id: 2, count: 1)
    #expect(try syncRead(bus, [1, 2, 3], address: 132, length: 4) == [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
    #expect(bus.statistics(for: 2).retries == 1)
    #expect(bus.statistics(for: 2).checksumErrors == 1)
    servos.inject(.silent, id: 3, count: 5)
    #expect(throws: BusError(servoID: 3, instruction: .read, cause: .timeout)) {
        _ = try bus.read(id: 3, address: 132, length: 4)
    }
    #expect(bus.statistics(for: 3).retries == 2)
    #expect(bus.statistics(for: 3).timeouts == 3)
}

@Test func deadlineFollowsTheWire() {
    let (near, _) = BytePipe.makePair(baudRate: 1_000_000)
    let bus = BusMaster(
        transport: near, protocol: .dynamixel,
        timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 0, perReplyNanoseconds: 0))
    // docs/protocols.md: 6-servo sync read of 4 bytes = (14 + 6) + 15·6 bytes = 1.10 ms at 1 Mbit/s.
    #expect(bus.budgetNanoseconds(requestBytes: 20, replyBytes: 90, replies: 6) == 1_100_000)
    bus.timing.returnDelayMicroseconds = 500
    #expect(bus.budgetNanoseconds(requestBytes: 20, replyBytes: 90, replies: 6) == 4_100_000)
}

/// The sync read + sync write cycle of 6 servos allocates nothing on the calling thread once warm.
@Test func syncCycleAllocatesNothing() throws {
    let (bus, servos) = makeBus(timing: relaxedTiming)
    defer { servos.stop() }
    let ids = UnsafeMutableBufferPointer<ServoID>.allocate(capacity: 6)
    let present = UnsafeMutableRawBufferPointer.allocate(byteCount: 6 * 10, alignment: 8)
    let goals = UnsafeMutableRawBufferPointer.allocate(byteCount: 6 * 4, alignment: 8)
    defer {
        ids.deallocate()
        present.deallocate()
        goals.deallocate()
    }
    for i in 0..<6 { ids[i] = ServoID(i + 1) }
    goals.initializeMemory(as: UInt8.self, repeating: 0)
    func cycle() throws(BusError) {
        try bus.syncRead(ids: UnsafeBufferPointer(ids), address: 126, length: 10, into: present)
        try bus.syncWrite(ids: UnsafeBufferPointer(ids), address: 116, length: 4, data: UnsafeRawBufferPointer(goals))
    }
    for _ in 0..<10 { try cycle() }
    let before = sinew_thread_allocations()
    for _ in 0..<300 { try cycle() }
    let delta = sinew_thread_allocations() - before
    #expect(delta == 0)
    #expect(bus.statistics(for: 6).replies == 310)
}

/// FAST_SYNC_READ and BULK_READ are allocation-free too once warm.
@Test func fastSyncAndBulkReadAllocateNothing() throws {
    let (bus, servos) = makeBus(timing: relaxedTiming)
    defer { servos.stop() }
    let ids = UnsafeMutableBufferPointer<ServoID>.allocate(capacity: 6)
    let entries = UnsafeMutableBufferPointer<BulkEntry>.allocate(capacity: 6)
    let present = UnsafeMutableRawBufferPointer.allocate(byteCount: 6 * 10, alignment: 8)
    defer {
        ids.deallocate()
        entries.deallocate()
        present.deallocate()
    }
    for i in 0..<6 {
        ids[i] = ServoID(i + 1)
        entries[i] = BulkEntry(id: ServoID(i + 1), address: i % 2 == 0 ? 126 : 132, length: i % 2 == 0 ? 10 : 4)
    }
    func cycle() throws(BusError) {
        try bus.fastSyncRead(ids: UnsafeBufferPointer(ids), address: 126, length: 10, into: present)
        try bus.bulkRead(entries: UnsafeBufferPointer(entries), into: present)
    }
    for _ in 0..<10 { try cycle() }
    let before = sinew_thread_allocations()
    for _ in 0..<200 { try cycle() }
    let delta = sinew_thread_allocations() - before
    #expect(delta == 0)
}

/// A transport that echoes every request before the canned replies (like a half-duplex adapter without
/// echo suppression).
private final class EchoingTransport: ByteTransport {
    let inner: CannedReplyTransport
    var echo: [UInt8] = []
    init(_ inner: CannedReplyTransport) { self.inner = inner }
    var baudRate: Int { 0 }
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) {}
    func flushInput() throws(TransportError) { echo = [] }
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        echo = Array(bytes)
        try inner.write(bytes, deadline: deadline)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        if !echo.isEmpty {
            let n = min(echo.count, buffer.count)
            echo.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            echo.removeFirst(n)
            return n
        }
        return try inner.read(into: buffer, deadline: deadline)
    }
}

@Test func echoedRequestsAreNotTakenForReplies() throws {
    for p in [BusProtocol.dynamixel, .feetechSTS] {
        var reply = [UInt8](repeating: 0, count: 32)
        let value: [UInt8] = [0x34, 0x12]
        let n = try reply.withUnsafeMutableBytes { out in
            try value.withUnsafeBytes { v in
                p == .dynamixel
                    ? try Dynamixel.encodeStatus(id: 1, error: 0, parameters: v, into: out)
                    : try Feetech.encodeStatus(id: 1, error: 0, parameters: v, into: out)
            }
        }
        let bus = BusMaster(
            transport: EchoingTransport(CannedReplyTransport(replies: Array(reply[0..<n]))), protocol: p)
        #expect(try bus.read(id: 1, address: 56, length: 2) == value)
    }
}

/// Answers every read at once with noise that never contains a header.
private final class NoiseTransport: ByteTransport {
    var baudRate: Int { 1_000_000 }
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) {}
    func flushInput() throws(TransportError) {}
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {}
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i * 7 + 1) & 0x7F }
        return buffer.count
    }
}

@Test func aFloodOfNoiseStillEndsAtTheDeadline() {
    let timing = BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 5_000_000, retries: 0)
    for p in [BusProtocol.dynamixel, .feetechSTS] {
        let bus = BusMaster(transport: NoiseTransport(), protocol: p, timing: timing)
        let budget = bus.budgetNanoseconds(requestBytes: 14, replyBytes: 15, replies: 1)
        let e = expectError(bus, budget: budget) { () throws(BusError) in
            _ = try bus.read(id: 1, address: 132, length: 4)
        }
        #expect(e?.servoID == 1)
        if case .garbage(let n) = e?.cause {
            #expect(n > 0)
        } else {
            Issue.record("expected garbage, got \(String(describing: e))")
        }
    }
}

@Test func oversizedRequestsAreRefusedUpFront() {
    let (near, _) = BytePipe.makePair()
    let bus = BusMaster(transport: near, protocol: .dynamixel, maximumPacketBytes: 256)
    #expect(throws: BusError(servoID: 1, instruction: .read, cause: .encoding(.packetTooLong))) {
        _ = try bus.read(id: 1, address: 0, length: 300)
    }
    let feetech = BusMaster(transport: near, protocol: .feetechSTS)
    #expect(throws: BusError(servoID: 1, instruction: .read, cause: .encoding(.invalidArgument))) {
        _ = try feetech.read(id: 1, address: 300, length: 2)
    }
    let entries = [BulkEntry](repeating: BulkEntry(id: 1, address: 0, length: 1), count: 300)
    var out = [UInt8](repeating: 0, count: 300)
    #expect(throws: BusError.self) {
        try entries.withUnsafeBufferPointer { e in
            try out.withUnsafeMutableBytes { try bus.bulkRead(entries: e, into: $0) }
        }
    }
}
