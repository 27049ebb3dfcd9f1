import Foundation
import SinewBus
import Testing

@Test func pipeCarriesBytesBothWaysAndHonoursDeadlines() throws {
    let (a, b) = BytePipe.makePair(capacity: 64)
    let message: [UInt8] = Array(0..<50)
    try message.withUnsafeBytes { try a.write($0, deadline: .now().advanced(byNanoseconds: 1_000_000)) }
    var buffer = [UInt8](repeating: 0, count: 100)
    let n = try buffer.withUnsafeMutableBytes {
        try b.read(into: $0, deadline: .now().advanced(byNanoseconds: 1_000_000))
    }
    #expect(Array(buffer[0..<n]) == message)
    // Nothing to read: returns 0 at the deadline, not before, not long after.
    let start = MonotonicInstant.now()
    let m = try buffer.withUnsafeMutableBytes {
        try a.read(into: $0, deadline: start.advanced(byNanoseconds: 5_000_000))
    }
    let waited = MonotonicInstant.now().nanoseconds(since: start)
    #expect(m == 0)
    #expect(waited >= 5_000_000)
    #expect(waited < 100_000_000)
    // A full pipe times out the writer.
    let big = [UInt8](repeating: 7, count: 200)
    #expect(throws: TransportError.self) {
        try big.withUnsafeBytes { try a.write($0, deadline: .now().advanced(byNanoseconds: 2_000_000)) }
    }
    try b.flushInput()
    a.close()
    #expect(throws: TransportError.closed) {
        _ = try buffer.withUnsafeMutableBytes {
            try b.read(into: $0, deadline: .now().advanced(byNanoseconds: 1_000_000))
        }
    }
}

@Test func pipeWakesAWaitingReaderFromAnotherThread() throws {
    let (a, b) = BytePipe.makePair()
    let writer = Thread {
        usleep(2000)
        let bytes: [UInt8] = [1, 2, 3]
        try? bytes.withUnsafeBytes { try a.write($0, deadline: .now().advanced(byNanoseconds: 10_000_000)) }
    }
    writer.start()
    var buffer = [UInt8](repeating: 0, count: 8)
    var total = 0
    let deadline = MonotonicInstant.now().advanced(byNanoseconds: 1_000_000_000)
    while total < 3 {
        let n = try buffer.withUnsafeMutableBytes {
            try b.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[total...]), deadline: deadline)
        }
        if n == 0 { break }
        total += n
    }
    #expect(Array(buffer[0..<total]) == [1, 2, 3])
}

@Test func busMasterOverAPseudoTerminal() throws {
    let primary = try PseudoTerminalTransport.createPair()
    #expect(primary.path.hasPrefix("/dev/pts/"))
    let servos = ScriptedBus(end: primary, protocol: .dynamixel, ids: [1, 2, 3])
    defer { servos.stop() }
    let client = try PseudoTerminalTransport(path: primary.path)
    let bus = BusMaster(
        transport: client, protocol: .dynamixel,
        timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 100_000_000, retries: 0))
    #expect(try bus.ping(2).modelNumber == 1200)
    var data = [UInt8](repeating: 0, count: 12)
    let ids: [ServoID] = [1, 2, 3]
    try ids.withUnsafeBufferPointer { i in
        try data.withUnsafeMutableBytes { d in try bus.syncRead(ids: i, address: 132, length: 4, into: d) }
    }
    #expect(data == [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
    // The serving side sees the rate the client sets.
    try client.setBaudRate(57_600)
    #expect(primary.terminalBaudRate == 57_600)
    try client.setBaudRate(1_000_000)
    #expect(primary.terminalBaudRate == 1_000_000)
    // A silent ID times out within its budget.
    let start = MonotonicInstant.now()
    #expect(throws: BusError(servoID: 9, instruction: .ping, cause: .timeout)) { _ = try bus.ping(9) }
    #expect(MonotonicInstant.now().nanoseconds(since: start) < 200_000_000)
}

@Test func scanFindsScriptedServos() throws {
    let (near, far) = BytePipe.makePair(baudRate: 1_000_000)
    let servos = ScriptedBus(end: far, protocol: .dynamixel, ids: [1, 7, 30])
    defer { servos.stop() }
    // A generous margin: the machine running the tests is shared, and a late reply would read as "absent".
    let bus = BusMaster(
        transport: near, protocol: .dynamixel,
        timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 30_000_000))
    // Wait until the responder thread serves (on a loaded machine it may start late): the scan itself
    // keeps its tight per-ID budget.
    var ready = false
    for _ in 0..<100 where !ready {
        ready = (try? bus.ping(7)) != nil
    }
    #expect(ready)
    bus.resetStatistics()
    var progressCalls = 0
    let found = try bus.scan(ids: 0...40, baudRates: [1_000_000], portName: "pipe") { p in
        progressCalls += 1
        #expect(p.probesTotal == 41)
        return true
    }
    #expect(found.map(\.id) == [1, 7, 30])
    #expect(
        found.first
            == ScanResult(
                port: "pipe", busProtocol: .dynamixel, baudRate: 1_000_000, id: 1, modelNumber: 1200,
                firmwareVersion: 52))
    #expect(progressCalls == 41)
    // Stopping early.
    let some = try bus.scan(ids: 0...5, baudRates: [1_000_000]) { $0.id < 3 }
    #expect(some.map(\.id) == [1])
}

@Test func scanOverAPtyPathFallsBackToTermios() throws {
    let primary = try PseudoTerminalTransport.createPair()
    let servos = ScriptedBus(end: primary, protocol: .feetechSTS, ids: [3])
    defer { servos.stop() }
    let found = try BusScan.scan(
        port: primary.path, protocols: [.feetechSTS], baudRates: [1_000_000], ids: 0...5,
        timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 30_000_000, retries: 0))
    #expect(
        found == [
            ScanResult(
                port: primary.path, busProtocol: .feetechSTS, baudRate: 1_000_000, id: 3, modelNumber: 777,
                firmwareVersion: 3)
        ])
}

@Test func serialPortListingAndLatencyCheckDoNotFail() throws {
    // The build machine may have no serial ports; listing must still work and paths must be absolute.
    for port in try SerialPortTransport.list() { #expect(port.path.hasPrefix("/")) }
    #expect(SerialPortTransport.ftdiLatencyWarning(path: "/dev/does-not-exist") == nil)
    #expect(throws: TransportError.self) { _ = try SerialPortTransport(path: "/dev/does-not-exist") }
}

@Test func ftdiLatencyTimerAboveOneMillisecondWarnsWithTheFix() throws {
    let root = NSTemporaryDirectory() + "sinew-sysfs-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let devices = root + "/sys/bus/usb-serial/devices/ttyUSB7"
    try FileManager.default.createDirectory(atPath: devices, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: root + "/dev", withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: root + "/dev/ttyUSB7", contents: Data())
    try FileManager.default.createSymbolicLink(
        atPath: root + "/dev/by-id-adapter", withDestinationPath: root + "/dev/ttyUSB7")
    try "16\n".write(toFile: devices + "/latency_timer", atomically: true, encoding: .utf8)
    let link = root + "/dev/by-id-adapter"
    #expect(SerialPortTransport.ftdiLatencyTimerMilliseconds(path: link, sysfsRoot: root + "/sys") == 16)
    let warning = SerialPortTransport.ftdiLatencyWarning(path: link, sysfsRoot: root + "/sys")
    #expect(warning?.contains("16 ms") == true)
    #expect(warning?.contains("echo 1 | sudo tee /sys/bus/usb-serial/devices/ttyUSB7/latency_timer") == true)
    try "1\n".write(toFile: devices + "/latency_timer", atomically: true, encoding: .utf8)
    #expect(SerialPortTransport.ftdiLatencyWarning(path: link, sysfsRoot: root + "/sys") == nil)
}

/// The busy-polling read on a pty and on the in-process pipe: bytes written from
/// another thread while it spins are returned; with nothing coming it spins, then sleeps, and returns 0
/// at the deadline.
@Test func busyPollingReadReturnsBytesAndHonoursTheDeadline() throws {
    let primary = try PseudoTerminalTransport.createPair()
    let client = try PseudoTerminalTransport(path: primary.path)
    let (pipeA, pipeB) = BytePipe.makePair()
    let pairs: [(any ByteTransport, any ByteTransport)] = [(primary, client), (pipeA, pipeB)]
    for (writerEnd, readerEnd) in pairs {
        // The writer thread owns this end until it is done (joined below through the reads).
        nonisolated(unsafe) let writerEnd = writerEnd
        let writer = Thread {
            usleep(500)
            let bytes: [UInt8] = [7, 8, 9]
            try? bytes.withUnsafeBytes { try writerEnd.write($0, deadline: .now().advanced(byNanoseconds: 10_000_000)) }
        }
        writer.start()
        var buffer = [UInt8](repeating: 0, count: 8)
        var total = 0
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: 1_000_000_000)
        while total < 3 {
            let n = try buffer.withUnsafeMutableBytes {
                try readerEnd.read(
                    into: UnsafeMutableRawBufferPointer(rebasing: $0[total...]), spinUntil: deadline, deadline: deadline
                )
            }
            #expect(n > 0)
            if n == 0 { break }
            total += n
        }
        #expect(Array(buffer[0..<3]) == [7, 8, 9])
        let start = MonotonicInstant.now()
        let n = try buffer.withUnsafeMutableBytes {
            try readerEnd.read(
                into: $0, spinUntil: start.advanced(byNanoseconds: 2_000_000),
                deadline: start.advanced(byNanoseconds: 5_000_000))
        }
        let waited = MonotonicInstant.now().nanoseconds(since: start)
        #expect(n == 0)
        #expect(waited >= 5_000_000 && waited < 100_000_000, "waited \(waited) ns")
        #expect(try buffer.withUnsafeMutableBytes { try readerEnd.readAvailable(into: $0) } == 0)
    }
}

/// Any rate reaches the other side of a pty — the standard ones and those pyserial sets through termios2
/// (BOTHER): 4800, 14400, 76800, 128000, 250000 — and a rate the terminal cannot take is refused with an error
/// that names it, leaving the previous rate in place (it used to be kept silently).
@Test func everyRateReachesTheServingSideAndBadOnesAreRefused() throws {
    let primary = try PseudoTerminalTransport.createPair()
    let client = try PseudoTerminalTransport(path: primary.path, baudRate: 57_600)
    #expect(primary.terminalBaudRate == 57_600, "the rate given when opening is set")
    for rate in [4_800, 9_600, 14_400, 38_400, 76_800, 128_000, 250_000, 500_000, 1_000_000, 3_000_000, 4_500_000] {
        try client.setBaudRate(rate)
        #expect(primary.terminalBaudRate == rate)
        #expect(client.baudRate == rate)
    }
    for bad in [0, -9_600, 20_000_000] {
        #expect(throws: TransportError.unsupportedBaudRate(bad)) { try client.setBaudRate(bad) }
        #expect(primary.terminalBaudRate == 4_500_000 && client.baudRate == 4_500_000)
    }
}
