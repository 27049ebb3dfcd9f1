import CAllocCounter
import Foundation
import SinewBus
import SinewDrivers
import SinewSim
import Testing

/// Sinew's own bus master against the virtual bus, over the in-process byte pipe and over a pty.
@Suite struct VirtualBusServerTests {
    @Test func busMasterOverThePipe() throws {
        let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
        let bus = try VirtualBus(model: try loadModel("xm430-w350"), ids: ids)
        let (hostEnd, busEnd) = BytePipe.makePair(baudRate: 1_000_000)
        let server = VirtualBusServer.serve(bus: bus, transport: busEnd)
        defer { server.stop() }
        // A wide margin: this checks behaviour, and test machines are loaded.
        let master = BusMaster(
            transport: hostEnd, protocol: .dynamixel, timing: BusTiming(marginNanoseconds: 50_000_000, retries: 2))
        #expect(try master.ping(3) == PingReply(id: 3, modelNumber: 1020, firmwareVersion: 48))
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: 6 * 4, alignment: 4)
        let torqueOn = UnsafeMutableRawBufferPointer.allocate(byteCount: 6, alignment: 1)
        let list = UnsafeMutableBufferPointer<ServoID>.allocate(capacity: 6)
        defer {
            data.deallocate()
            torqueOn.deallocate()
            list.deallocate()
        }
        for n in 0..<6 {
            list[n] = ids[n]
            torqueOn[n] = 1
            data.storeBytes(of: UInt32(1000 + 100 * n).littleEndian, toByteOffset: 4 * n, as: UInt32.self)
        }
        try master.syncWrite(
            ids: UnsafeBufferPointer(list), address: 64, length: 1, data: UnsafeRawBufferPointer(torqueOn))
        try master.syncWrite(
            ids: UnsafeBufferPointer(list), address: 116, length: 4, data: UnsafeRawBufferPointer(data))
        Thread.sleep(forTimeInterval: 1.5)
        let start = MonotonicInstant.now()
        try master.syncRead(ids: UnsafeBufferPointer(list), address: 132, length: 4, into: data)
        let elapsed = MonotonicInstant.now().nanoseconds(since: start)
        // The wire cannot be beaten: request 20 bytes + 6 replies of 15 bytes, each after 500 µs.
        #expect(elapsed >= 6 * 500_000 + 110 * 10_000)
        for n in 0..<6 {
            let position = Int32(bitPattern: UInt32(littleEndian: data.load(fromByteOffset: 4 * n, as: UInt32.self)))
            #expect(abs(position - Int32(1000 + 100 * n)) < 20, "servo \(n + 1) at \(position)")
        }
        let hardware = server.withBus { $0.servos[0].registerValue(named: "Torque Enable") }
        #expect(hardware == 1)
    }

    @Test func ptyWithLinkAndTerminalBaudRate() throws {
        let bus = try VirtualBus(model: try loadModel("sts3215"), ids: [1, 2])
        let link = NSTemporaryDirectory() + "sinew-virtual-bus-\(getpid())"
        let server = try VirtualBusServer.servePseudoTerminal(bus: bus, linkPath: link)
        let client = try PseudoTerminalTransport(path: link)
        try client.setBaudRate(1_000_000)
        let master = BusMaster(
            transport: client, protocol: .feetechSTS, timing: BusTiming(marginNanoseconds: 50_000_000, retries: 2))
        #expect(try master.ping(2).modelNumber == 777)
        try client.setBaudRate(115_200)
        #expect(throws: BusError.self) { try master.ping(2) }
        try client.setBaudRate(1_000_000)
        #expect(try master.ping(1).id == 1)
        server.stop()
        #expect(!FileManager.default.fileExists(atPath: link), "link removed on stop")
    }
}

/// What `sinew scan` does against `sinew virtual-bus`: only the right protocol at the right rate answers.
@Test func scanFindsTheVirtualServos() throws {
    let bus = try VirtualBus(model: try loadModel("sts3215"), ids: [1, 2, 4])
    let server = try VirtualBusServer.servePseudoTerminal(bus: bus)
    defer { server.stop() }
    let results = try BusScan.scan(
        port: server.path, protocols: [.dynamixel, .feetechSTS], baudRates: [57_600, 1_000_000], ids: 0...5,
        timing: BusTiming(marginNanoseconds: 30_000_000, retries: 0))
    #expect(results.map(\.id) == [1, 2, 4])
    #expect(results.allSatisfy { $0.busProtocol == .feetechSTS && $0.baudRate == 1_000_000 && $0.modelNumber == 777 })
    #expect(results.first?.firmwareVersion == 3)
}

/// The serving loop over the byte pipe, driven on the test thread: request in, replies out, no allocation.
@Test func servingOverThePipeIsAllocationFree() throws {
    var options = VirtualBusOptions()
    options.wireTiming = false
    let ids: [ServoID] = [1, 2, 3, 4, 5, 6]
    let bus = try VirtualBus(model: try loadModel("xl330-m288"), ids: ids, options: options)
    let (hostEnd, busEnd) = BytePipe.makePair()
    let server = VirtualBusServer(bus: bus, transport: busEnd)
    let request = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
    let replies = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
    defer {
        request.deallocate()
        replies.deallocate()
    }
    let count = try ids.withUnsafeBufferPointer { list throws(CodecError) in
        try Dynamixel.encodeSyncRead(address: 126, length: 10, ids: list, into: request)
    }
    var received = 0
    func exchange() {
        try? hostEnd.write(
            UnsafeRawBufferPointer(rebasing: request[0..<count]), deadline: .now().advanced(byNanoseconds: 1_000_000))
        server.serviceOnce(maximumWaitNs: 0)
        server.serviceOnce(maximumWaitNs: 0)
        received += (try? hostEnd.read(into: replies, deadline: .now())) ?? 0
    }
    for _ in 0..<10 { exchange() }
    received = 0
    let before = sinew_thread_allocations()
    for _ in 0..<1000 { exchange() }
    let delta = sinew_thread_allocations() - before
    #expect(delta == 0)
    #expect(received == 1000 * 6 * 21)
}

/// Servos answer only at their own rate, whatever the rate (the pty carries any, termios2): a scan at 4800 bit/s
/// finds nothing where STS3215s listen at 1 Mbit/s — LeRobot's scan found phantom servos there when the pty's
/// rate table lacked 4800 and the old rate was kept — and a bus at 250 kbit/s (a rate pyserial sets as a custom
/// one) is found at 250 kbit/s only.
@Test(arguments: [1_000_000, 250_000])
func servosAnswerOnlyAtTheirRate(busRate: Int) throws {
    var options = VirtualBusOptions()
    options.baudRate = busRate
    let bus = try VirtualBus(model: try loadModel("sts3215"), ids: [1, 2], options: options)
    let server = try VirtualBusServer.servePseudoTerminal(bus: bus)
    defer { server.stop() }
    let rates = [4_800, 9_600, 14_400, 19_200, 38_400, 57_600, 115_200, 128_000, 250_000, 500_000, 1_000_000]
    let results = try BusScan.scan(
        port: server.path, protocols: [.feetechSTS], baudRates: rates, ids: 0...3,
        timing: BusTiming(marginNanoseconds: 30_000_000, retries: 1))
    #expect(results.map(\.id) == [1, 2])
    #expect(results.allSatisfy { $0.baudRate == busRate }, "\(results)")
    let noise = server.withBus { $0.statistics.noiseBytes }
    #expect(noise > 0, "the other rates' requests reached the bus as noise")
}
