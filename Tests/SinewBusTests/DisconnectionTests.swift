import Foundation
import SinewBus
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Forwards to another transport and counts every call: proof that nothing touches a dead port.
private final class CallCountingTransport: ByteTransport {
    let inner: any ByteTransport
    var calls = 0

    init(_ inner: any ByteTransport) { self.inner = inner }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        calls += 1
        try inner.write(bytes, deadline: deadline)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        calls += 1
        return try inner.read(into: buffer, deadline: deadline)
    }
    func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        calls += 1
        return try inner.readAvailable(into: buffer)
    }
    func flushInput() throws(TransportError) {
        calls += 1
        try inner.flushInput()
    }
    var baudRate: Int { inner.baudRate }
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { try inner.setBaudRate(bitsPerSecond) }
}

@Suite struct DisconnectionTests {
    /// The serving side of a pseudo-terminal goes away (a killed `sinew virtual-bus`; an unplugged USB
    /// adapter hangs its tty up the same way): the client's read is a typed disconnection at once — not a
    /// read that returns 0 under POLLHUP for ever — and its write fails with EIO, also typed.
    @Test func aHungUpPseudoTerminalIsATypedDisconnectionAtOnce() throws {
        var primary: PseudoTerminalTransport? = try PseudoTerminalTransport.createPair()
        let client = try PseudoTerminalTransport(path: try #require(primary).path)
        primary = nil  // closes the primary: the secondary is hung up
        var buffer = [UInt8](repeating: 0, count: 16)
        let start = MonotonicInstant.now()
        let deadline = start.advanced(byNanoseconds: 2_000_000_000)
        #expect(throws: TransportError.disconnected(errno: 0)) {
            _ = try buffer.withUnsafeMutableBytes { try client.read(into: $0, deadline: deadline) }
        }
        let waited = MonotonicInstant.now().nanoseconds(since: start)
        print("hung-up pty: read failed after \(waited / 1000) µs (deadline 2 s)")
        #expect(waited < 500_000_000, "the read gave up at once, not at its deadline")
        #expect(throws: TransportError.disconnected(errno: EIO)) {
            try buffer.withUnsafeBytes { try client.write($0, deadline: deadline) }
        }
        #expect(throws: TransportError.disconnected(errno: EIO)) { try client.flushInput() }
    }

    /// On a dead port the bus master reports a `disconnected` bus error (not retried), latches it, and
    /// fails every later transaction at once without a call on the transport; no servo's reply counts as
    /// arrived.
    @Test func theBusMasterLatchesADisconnectionAndFailsFast() throws {
        var primary: PseudoTerminalTransport? = try PseudoTerminalTransport.createPair()
        let transport = CallCountingTransport(try PseudoTerminalTransport(path: try #require(primary).path))
        let bus = BusMaster(
            transport: transport, protocol: .feetechSTS,
            timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 500_000_000, retries: 3))
        primary = nil
        let ids: [ServoID] = [1, 2, 3]
        var data = [UInt8](repeating: 0, count: 3 * 8)
        func syncRead() -> BusError? {
            var failure: BusError?
            ids.withUnsafeBufferPointer { i in
                data.withUnsafeMutableBytes { d in
                    do throws(BusError) { try bus.syncRead(ids: i, address: 56, length: 8, into: d) } catch {
                        failure = error
                    }
                }
            }
            return failure
        }
        #expect(!bus.isDisconnected)
        let start = MonotonicInstant.now()
        let first = try #require(syncRead())
        #expect(first.isDisconnection, "\(first)")
        #expect(first.servoID == 1 && first.instruction == .syncRead)
        #expect(!first.isRetryable)
        #expect(MonotonicInstant.now().nanoseconds(since: start) < 400_000_000, "no retry waited for a deadline")
        #expect(bus.isDisconnected)
        #expect(bus.disconnectedErrno != nil)
        #expect(bus.statistics(for: 1).retries == 0)
        let callsAfterFirst = transport.calls
        let again = try #require(syncRead())
        #expect(again.isDisconnection)
        #expect((0..<3).allSatisfy { !bus.replyArrived(at: $0) })
        #expect(throws: BusError.self) {
            try ids.withUnsafeBufferPointer { i in
                try data.withUnsafeBytes { d in try bus.syncWrite(ids: i, address: 42, length: 2, data: d) }
            }
        }
        #expect(throws: BusError.self) { _ = try bus.ping(1) }
        #expect(transport.calls == callsAfterFirst, "the dead descriptor was not touched again")
        print("disconnected bus master: \(first); later transactions: \(again)")
    }

    /// An in-process pipe whose other end closed is a disconnection too.
    @Test func aClosedPipeIsADisconnection() throws {
        let (near, far) = BytePipe.makePair()
        let bus = BusMaster(transport: near, protocol: .dynamixel, timing: BusTiming(retries: 2))
        far.close()
        #expect(throws: BusError(servoID: 1, instruction: .ping, cause: .disconnected(errno: 0))) {
            _ = try bus.ping(1)
        }
        #expect(bus.isDisconnected)
    }
}

@Suite struct PartialSyncReadTests {
    /// A sync read that fails on one servo still tells which replies arrived (in its last attempt), so the
    /// caller can use those servos' bytes and treat only the missing one as unread.
    @Test func aFailedSyncReadSaysWhichRepliesArrived() throws {
        let (near, far) = BytePipe.makePair(baudRate: 1_000_000)
        let servos = ScriptedBus(end: far, protocol: .dynamixel, ids: [1, 2, 3, 4, 5, 6])
        defer { servos.stop() }
        let bus = BusMaster(
            transport: near, protocol: .dynamixel,
            timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 30_000_000, retries: 1))
        let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
        var data = [UInt8](repeating: 0xEE, count: 6 * 4)
        func syncRead() -> BusError? {
            var failure: BusError?
            ids.withUnsafeBufferPointer { i in
                data.withUnsafeMutableBytes { d in
                    do throws(BusError) { try bus.syncRead(ids: i, address: 132, length: 4, into: d) } catch {
                        failure = error
                    }
                }
            }
            return failure
        }
        servos.inject(.silent, id: 3, count: 100)
        let error = try #require(syncRead())
        #expect(error == BusError(servoID: 3, instruction: .syncRead, cause: .timeout))
        let arrived = (0..<6).map { bus.replyArrived(at: $0) }
        print("sync read with servo 3 silent: replies arrived \(arrived)")
        #expect(arrived == [true, true, false, true, true, true])
        for slot in [0, 1, 3, 4, 5] {
            #expect(Array(data[(4 * slot)..<(4 * slot + 4)]) == [UInt8(slot + 1), 0, 0, 0])
        }
        servos.inject(.none, id: 0)
        #expect(syncRead() == nil)
        #expect((0..<6).allSatisfy { bus.replyArrived(at: $0) })
        #expect(!bus.replyArrived(at: 6))
    }
}
