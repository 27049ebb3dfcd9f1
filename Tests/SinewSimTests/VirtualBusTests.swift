import CAllocCounter
import SinewBus
import SinewDrivers
import SinewSim
import Testing

@Suite struct VirtualBusTests {
    @Test func faultSpecParses() throws {
        let faults = try FaultInjection.parse("corrupt=0.1,drop=0.05,silent=3,overload=2@1.5,silent=4")
        #expect(faults.corruptProbability == 0.1)
        #expect(faults.dropProbability == 0.05)
        #expect(faults.silentIDs == [3, 4])
        #expect(faults.overloads == [.init(id: 2, afterSeconds: 1.5)])
        #expect(throws: FaultSpecError.self) { try FaultInjection.parse("drop=2") }
        #expect(throws: FaultSpecError.self) { try FaultInjection.parse("overload=2") }
        #expect(throws: FaultSpecError.self) { try FaultInjection.parse("explode=1") }
        #expect(try FaultInjection.parse("") == .none)
        #expect(try FaultInjection.parse("drop=0.5,seed=7").seed == 7)
        #expect(throws: FaultSpecError.self) { try FaultInjection.parse("seed=-1") }
        // Another seed loses other replies; the same seed the same ones.
        func lost(_ spec: String) throws -> [Bool] {
            let host = try TestHost(model: "sts3215", ids: [1]) { $0.faults = try! FaultInjection.parse(spec) }
            return (0..<64).map { _ in host.ping(1).isEmpty }
        }
        #expect(try lost("drop=0.5,seed=7") == lost("drop=0.5,seed=7"))
        #expect(try lost("drop=0.5,seed=7") != lost("drop=0.5,seed=8"))
    }

    @Test func silentDropAndCorrupt() throws {
        let silent = try TestHost(model: "xl330-m288", ids: [1, 2, 3]) { $0.faults.silentIDs = [2] }
        #expect(silent.syncRead([1, 2, 3], 132, 4).map(\.id) == [1, 3])
        let dropping = try TestHost(model: "xl330-m288", ids: [1]) { $0.faults.dropProbability = 1 }
        #expect(dropping.ping(1).isEmpty)
        let corrupting = try TestHost(model: "xl330-m288", ids: [1]) { $0.faults.corruptProbability = 1 }
        #expect(corrupting.ping(1).isEmpty && corrupting.rawReplies.count == 14)
        #expect(corrupting.bus.statistics.corruptedReplies == 1)
        let some = try TestHost(model: "xl330-m288", ids: [1]) { $0.faults.dropProbability = 0.5 }
        var answered = 0
        for _ in 0..<200 { answered += some.ping(1).count }
        #expect(answered > 60 && answered < 140)
    }

    @Test func configurationErrors() throws {
        let model = try loadModel("xl330-m288")
        #expect(throws: VirtualBusError.duplicateID(1)) { try VirtualBus(model: model, ids: [1, 1]) }
        #expect(throws: VirtualBusError.noServos) { try VirtualBus(model: model, ids: []) }
        var options = VirtualBusOptions()
        options.baudRate = 4_500_000
        #expect(throws: VirtualBusError.self) { try VirtualBus(model: model, ids: [1], options: options) }
    }

    /// One control cycle as a bus master would run it: sync read of position, velocity and current,
    /// sync write of goal positions, physics stepped in between. Nothing allocates after warm-up.
    @Test(arguments: ["xm430-w350", "sts3215"])
    func exchangesAreAllocationFree(model name: String) throws {
        let ids: [UInt8] = [1, 2, 3, 4, 5, 6]
        let model = try loadModel(name)
        var options = VirtualBusOptions()
        options.wireTiming = false
        let bus = try VirtualBus(model: model, ids: ids, options: options)
        let dynamixel = model.wireProtocol == .dynamixel2
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        let readRequest = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 1)
        let writeRequest = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 1)
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer {
            out.deallocate()
            readRequest.deallocate()
            writeRequest.deallocate()
            data.deallocate()
        }
        for index in 0..<data.count { data[index] = 0 }
        let (readCount, writeCount) = try ids.withUnsafeBufferPointer { list throws(CodecError) in
            if dynamixel {
                return (
                    try Dynamixel.encodeSyncRead(address: 126, length: 10, ids: list, into: readRequest),
                    try Dynamixel.encodeSyncWrite(
                        address: 116, length: 4, ids: list, data: UnsafeRawBufferPointer(rebasing: data[0..<24]),
                        into: writeRequest)
                )
            }
            return (
                try Feetech.encodeSyncRead(address: 56, length: 6, ids: list, into: readRequest),
                try Feetech.encodeSyncWrite(
                    address: 42, length: 2, ids: list, data: UnsafeRawBufferPointer(rebasing: data[0..<12]),
                    into: writeRequest)
            )
        }
        var now: UInt64 = 0
        var received = 0
        func cycle() {
            now += 1_000_000
            bus.advance(toNs: now)
            bus.receive(UnsafeRawBufferPointer(rebasing: readRequest[0..<readCount]), atNs: now)
            received += bus.readReplies(upToNs: now, into: out)
            bus.receive(UnsafeRawBufferPointer(rebasing: writeRequest[0..<writeCount]), atNs: now)
        }
        for _ in 0..<10 { cycle() }
        received = 0
        let before = sinew_thread_allocations()
        for _ in 0..<2000 { cycle() }
        let delta = sinew_thread_allocations() - before
        #expect(delta == 0)
        #expect(received == 2000 * 6 * (dynamixel ? 21 : 12))
    }
}

@Suite struct VirtualBusSetupTests {
    @Test func idLists() throws {
        #expect(try ServoIDList.parse("1-6") == [1, 2, 3, 4, 5, 6])
        #expect(try ServoIDList.parse("1,3,7-8") == [1, 3, 7, 8])
        #expect(throws: VirtualBusSetupError.self) { try ServoIDList.parse("6-1") }
        #expect(throws: VirtualBusSetupError.self) { try ServoIDList.parse("1,1") }
        #expect(throws: VirtualBusSetupError.self) { try ServoIDList.parse("253") }
        #expect(throws: VirtualBusSetupError.self) { try ServoIDList.parse("") }
    }

    @Test func makeChecksModelAndProtocol() throws {
        let catalog = try ServoCatalog.load(directory: servoTableDirectory)
        let bus = try VirtualBus.make(
            catalog: catalog, protocolName: "feetech", modelName: "sts3215", ids: "1-6", faults: "drop=0.1")
        #expect(bus.servos.count == 6 && bus.options.faults.dropProbability == 0.1)
        #expect(throws: VirtualBusSetupError.self) {
            try VirtualBus.make(catalog: catalog, protocolName: "dynamixel", modelName: "sts3215", ids: "1")
        }
        do {
            _ = try VirtualBus.make(catalog: catalog, protocolName: "dynamixel", modelName: "xl999", ids: "1")
            Issue.record("unknown model accepted")
        } catch {
            #expect(
                error.description.contains("known: sts3215, sts3250, xl330-m077, xl330-m288, xl430-w250, xm430-w350"))
        }
        #expect(throws: VirtualBusSetupError.self) {
            try VirtualBus.make(
                catalog: catalog, protocolName: "dynamixel", modelName: "xl330-m288", ids: "1", baudRate: 4_500_000)
        }
    }
}

/// Mixed-model buses as `sinew virtual-bus --servos` writes them, and rates as the servos hear them.
@Suite struct MixedBusAndRateTests {
    @Test func servoGroupsParseAndBuildAMixedBus() throws {
        let groups = try ServoGroupList.parse("3-6:xl330-m288,1-2:XL430-W250")
        #expect(groups.map(\.model) == ["xl330-m288", "xl430-w250"])
        #expect(groups.map(\.ids) == [[3, 4, 5, 6], [1, 2]])
        for bad in ["1-2", "1-2:", ":xl330-m288", "1-2:a:b", "2-1:xl330-m288", "1:x,1:y", ""] {
            #expect(throws: VirtualBusSetupError.self, "\(bad)") { try ServoGroupList.parse(bad) }
        }
        let catalog = try ServoCatalog.load(directory: servoTableDirectory)
        let bus = try VirtualBus.make(catalog: catalog, servos: "3-6:xl330-m288,1-2:xl430-w250")
        #expect(bus.servos.map(\.busID) == [1, 2, 3, 4, 5, 6], "servos in ID order")
        #expect(bus.servos.map(\.model.modelNumber) == [1060, 1060, 1200, 1200, 1200, 1200])
        do {
            _ = try VirtualBus.make(catalog: catalog, servos: "1:sts3215,2:xl330-m288")
            Issue.record("a Feetech and a Dynamixel servo shared a bus")
        } catch {
            #expect(error.description.contains("different protocols"), "\(error)")
        }
        #expect(throws: VirtualBusSetupError.self) { try VirtualBus.make(catalog: catalog, servos: "1:xl999") }
        #expect(throws: VirtualBusSetupError.self) { try VirtualBus.make(catalog: catalog, servos: "253:xl330-m288") }
        // The STS3215 has no 4.5 Mbit/s: refused with the rates it has.
        do {
            _ = try VirtualBus.make(catalog: catalog, servos: "1:sts3215", baudRate: 4_800)
            Issue.record("4800 bit/s accepted for an STS3215")
        } catch {
            #expect(error.description.contains("does not support 4800"), "\(error)")
        }
    }

    /// `--servos` text from outside: seeded mutations of a valid list (bytes replaced, dropped, doubled) parse or
    /// fail with an error that names the group, never crash; whatever parses names each ID once.
    @Test func servoGroupMutationsParseOrFailClearly() {
        let valid = Array("1-2:xl430-w250,3-6:xl330-m288".utf8)
        let alphabet = Array("0123456789-:,abxlm ".utf8) + [0, 0xFF]
        var state: UInt64 = 0x5EED_0013
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for _ in 0..<20_000 {
            var bytes = valid
            for _ in 0...(next() % 4) {
                let at = next() % bytes.count
                switch next() % 3 {
                case 0: bytes[at] = alphabet[next() % alphabet.count]
                case 1: if bytes.count > 1 { bytes.remove(at: at) }
                default: bytes.insert(bytes[at], at: at)
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                let groups = try ServoGroupList.parse(text)
                let ids = groups.flatMap(\.ids)
                #expect(Set(ids).count == ids.count, "\(text)")
            } catch {
                #expect(!error.description.isEmpty)
            }
        }
    }

    /// A host at a rate no servo listens at is noise to them all: nothing is decoded, nothing answered, the
    /// bytes are counted; a packet half received when the rate changes is dropped.
    @Test func aWrongRateIsNoise() throws {
        let host = try TestHost(model: "sts3215", ids: [1, 2])
        host.bus.hostBaudRate = 4_800
        #expect(host.ping(1).isEmpty)
        #expect(host.bus.statistics.requests == 0 && host.bus.statistics.noiseBytes == 6)
        host.bus.hostBaudRate = 1_000_000
        #expect(host.ping(1).map(\.id) == [1])
        let ping = host.packet { out throws(CodecError) in try Feetech.encodePing(id: 2, into: out) }
        host.bus.receive(Array(ping[0..<3]), atNs: host.nowNs)
        host.bus.hostBaudRate = 500_000
        host.bus.hostBaudRate = 1_000_000
        host.bus.receive(Array(ping[3...]), atNs: host.nowNs)
        #expect(host.bus.queuedReplyBytes == 0, "the first half was heard at another rate")
    }
}

/// The wire is half-duplex: a host that talks over a servo's reply garbles both, and a host that writes
/// faster than the wire cannot leave the bus deaf for longer than a serial driver's buffer takes to drain.
@Suite struct HalfDuplexWireTests {
    @Test func aRequestOverAReplyCollides() throws {
        let host = try TestHost(model: "sts3215", ids: [1, 2])
        let ping1 = host.packet { out throws(CodecError) in try Feetech.encodePing(id: 1, into: out) }
        let ping2 = host.packet { out throws(CodecError) in try Feetech.encodePing(id: 2, into: out) }
        // The second ping goes out while the first servo's reply is still due: neither is answered.
        host.bus.receive(ping1, atNs: host.nowNs)
        #expect(host.exchange(ping2).isEmpty)
        #expect(host.bus.statistics.collisions == 1)
        // Once the wire is quiet, the next request is answered at once.
        #expect(host.ping(2).map(\.id) == [2])
        // Requests sent after each other's replies never collide.
        for _ in 0..<100 { #expect(host.ping(1).map(\.id) == [1]) }
        #expect(host.bus.statistics.collisions == 1)
    }

    @Test(arguments: ["sts3215", "xl330-m288"])
    func aFloodLeavesTheBusDeafForAtMostOneTransmitBuffer(model: String) throws {
        let host = try TestHost(model: model, ids: [1, 2, 3, 4, 5, 6])
        let ping =
            host.dynamixel
            ? host.packet { out throws(CodecError) in try Dynamixel.encodePing(id: 3, into: out) }
            : host.packet { out throws(CodecError) in try Feetech.encodePing(id: 3, into: out) }
        // One megabyte of pings written in 100 ms: ten seconds of wire time at 1 Mbit/s.
        let flood = Array([[UInt8]](repeating: ping, count: 1_000_000 / ping.count).joined())
        let chunk = 4096
        var offset = 0
        while offset < flood.count {
            host.bus.receive(Array(flood[offset..<min(offset + chunk, flood.count)]), atNs: host.nowNs)
            host.nowNs += 100_000_000 * UInt64(chunk) / UInt64(flood.count)
            offset += chunk
        }
        _ = host.collect(upToNs: .max)
        #expect(host.bus.statistics.overruns > 0)
        // A 4 KiB transmit buffer drains in 41 ms at 1 Mbit/s; after that the bus answers again.
        host.wait(seconds: 0.05)
        #expect(host.ping(3).map(\.id) == [3])
    }
}
