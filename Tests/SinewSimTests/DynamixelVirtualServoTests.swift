import SinewBus
import SinewDrivers
import SinewSim
import Testing

@Suite struct DynamixelVirtualServoTests {
    @Test func pingAnswersWithModelAndFirmware() throws {
        let host = try TestHost(model: "xm430-w350", ids: [1, 2, 3])
        let replies = host.ping(2)
        #expect(replies == [Reply(id: 2, error: 0, parameters: [0xFC, 0x03, 48])])  // 1020
        // docs/protocols.md: PING to ID 1 is FF FF FD 00 01 03 00 01 19 4E.
        #expect(host.exchange([0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01, 0x19, 0x4E]).map(\.id) == [1])
        #expect(host.ping(9).isEmpty)
        #expect(host.ping(0xFE).map(\.id) == [1, 2, 3])
    }

    @Test func factoryDefaultsIncludingReturnDelay() throws {
        let host = try TestHost(model: "xl330-m288", ids: [1])
        #expect(host.read(1, 9, 1).first?.parameters == [250])
        #expect(host.read(1, 0, 2).first?.uint16 == 1200)
        #expect(host.read(1, 11, 1).first?.parameters == [3])
        #expect(host.read(1, 68, 1).first?.parameters == [2])
        #expect(host.read(1, 8, 1).first?.parameters == [3])  // configured for the bus: 1 Mbit/s
        #expect(host.read(1, 132, 4).first?.int32 == 2048)
        #expect(host.read(1, 144, 2).first?.uint16 == 50)
    }

    @Test func goalPositionMovesTheServoWithTorqueOn() throws {
        let host = try TestHost(model: "xm430-w350", ids: [1])
        #expect(host.write(1, 116, le32(3000)) == [Reply(id: 1, error: 0, parameters: [])])
        host.wait(seconds: 0.5)
        let resting = try #require(host.read(1, 132, 4).first?.int32)
        #expect(abs(resting - 2048) < 5, "torque off: no motion")
        #expect(host.write(1, 64, [1]).first?.error == 0)
        #expect(host.read(1, 116, 4).first?.int32 == 2048, "torque on holds the present position")
        _ = host.write(1, 116, le32(3000))
        host.wait(seconds: 0.05)
        #expect(host.read(1, 122, 1).first?.parameters == [1], "moving")
        let speed = try #require(host.read(1, 128, 4).first?.int32)
        #expect(speed > 50)
        host.wait(seconds: 1.5)
        let position = try #require(host.read(1, 132, 4).first?.int32)
        #expect(abs(position - 3000) < 15, "settles at the goal, got \(position)")
        #expect(host.read(1, 122, 1).first?.parameters == [0])
        let temperature = try #require(host.read(1, 146, 1).first?.parameters.first)
        #expect(temperature >= 25)
    }

    @Test func velocityAndCurrentModes() throws {
        let host = try TestHost(model: "xm430-w350", ids: [1])
        _ = host.write(1, 11, [1])
        _ = host.write(1, 64, [1])
        _ = host.write(1, 104, le32(100))  // 22.9 rpm
        host.wait(seconds: 1.0)
        let velocity = try #require(host.read(1, 128, 4).first?.int32)
        #expect(abs(velocity - 100) <= 5, "velocity mode tracks the goal, got \(velocity)")
        // Current mode against a held horn (free, the motor would reach no-load speed and lose the current).
        host.bus.dynamics = HeldJoints()
        _ = host.write(1, 64, [0])
        _ = host.write(1, 11, [0])
        _ = host.write(1, 64, [1])
        _ = host.write(1, 102, le16(100))  // 269 mA
        host.wait(seconds: 0.05)
        let rawCurrent = try #require(host.read(1, 126, 2).first?.uint16)
        let current = Int16(bitPattern: UInt16(rawCurrent))
        #expect(abs(Int(current) - 100) <= 3, "current mode holds the goal current, got \(current)")
    }

    @Test func eepromIsLockedWithTorqueOnAndLimitsAreChecked() throws {
        let host = try TestHost(model: "xm430-w350", ids: [1])
        _ = host.write(1, 64, [1])
        #expect(host.write(1, 11, [1]).first?.error == 7, "access error")
        #expect(host.read(1, 11, 1).first?.parameters == [3])
        #expect(host.write(1, 0, [1, 2]).first?.error == 7, "read-only")
        #expect(host.write(1, 102, le16(2000)).first?.error == 6, "goal current above Current Limit")
        #expect(host.write(1, 116, [0, 0]).first?.error == 5, "half a register")
        #expect(host.write(1, 68, [3]).first?.error == 4, "status return level out of range")
        _ = host.write(1, 64, [0])
        #expect(host.write(1, 11, [1]).first?.error == 0)
        #expect(host.exchange([0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01, 0x19, 0x4F]).first?.error == 3)
    }

    @Test func statusReturnLevelAndRegWrite() throws {
        let host = try TestHost(model: "xl330-m288", ids: [1])
        _ = host.write(1, 68, [1])
        #expect(host.write(1, 65, [1]).isEmpty, "level 1: no reply to WRITE")
        #expect(host.read(1, 65, 1).first?.parameters == [1])
        _ = host.write(1, 68, [0])
        #expect(host.read(1, 65, 1).isEmpty, "level 0: no reply to READ")
        #expect(host.ping(1).count == 1, "PING is always answered")
        _ = host.write(1, 68, [2])
        #expect(host.write(1, 9, [0], instruction: .regWrite).first?.error == 0)
        #expect(host.read(1, 9, 1).first?.parameters == [250], "not applied before ACTION")
        #expect(host.read(1, 69, 1).first?.parameters == [1])
        host.exchange(host.packet { out throws(CodecError) in try Dynamixel.encodeAction(id: 0xFE, into: out) })
        #expect(host.read(1, 9, 1).first?.parameters == [0])
    }

    @Test func idAndBaudChangesTakeEffectAfterTheReply() throws {
        let host = try TestHost(model: "xl330-m288", ids: [1, 2])
        #expect(host.write(1, 7, [7]) == [Reply(id: 1, error: 0, parameters: [])], "reply under the old ID")
        #expect(host.ping(1).isEmpty)
        #expect(host.ping(7).map(\.id) == [7])
        #expect(host.write(2, 8, [4]).map(\.id) == [2], "reply at the old rate")
        #expect(host.ping(2).isEmpty, "servo 2 now listens at 2 Mbit/s")
        host.bus.hostBaudRate = 2_000_000
        #expect(host.ping(0xFE).map(\.id) == [2])
    }

    @Test func syncBulkAndFastSyncRead() throws {
        let ids: [UInt8] = [1, 2, 3, 4, 5, 6]
        let host = try TestHost(model: "xl330-m288", ids: ids)
        var data: [UInt8] = []
        for (n, _) in ids.enumerated() { data += le32(Int32(1000 + n)) }
        #expect(host.syncWrite(ids, 116, 4, data).isEmpty)
        let replies = host.syncRead(ids, 116, 4)
        #expect(replies.map(\.id) == ids)
        #expect(replies.map(\.int32) == [1000, 1001, 1002, 1003, 1004, 1005] as [Int32?])
        let fast = host.syncRead([3, 1], 116, 4, fast: true)
        #expect(fast.map(\.id) == [0xFE])
        var parsed: [(UInt8, Int32)] = []
        host.rawReplies.withUnsafeBytes { bytes in
            let decoder = DynamixelStreamDecoder()
            decoder.append(bytes)
            if case .frame(let frame) = decoder.next() {
                _ = frame.forEachFastSyncEntry(length: 4) { entry in
                    parsed.append((entry.id, Int32(bitPattern: entry.data.loadUInt32(at: 0))))
                }
            }
        }
        #expect(parsed.map(\.0) == [3, 1] && parsed.map(\.1) == [1002, 1000])
        let entries = [BulkEntry(id: 2, address: 7, length: 1), BulkEntry(id: 5, address: 116, length: 4)]
        let bulk = host.exchange(
            entries.withUnsafeBufferPointer { list in
                host.packet { out throws(CodecError) in try Dynamixel.encodeBulkRead(entries: list, into: out) }
            })
        try #require(bulk.count == 2)
        #expect(bulk.map(\.id) == [2, 5] && bulk[0].parameters == [2] && bulk[1].int32 == 1004)
    }

    @Test func wireTimingDelaysRepliesAsTheWireWould() throws {
        let ids: [UInt8] = [1, 2, 3, 4, 5, 6]
        let host = try TestHost(model: "xl330-m288", ids: ids)
        let request = ids.withUnsafeBufferPointer { list in
            host.packet { out throws(CodecError) in
                try Dynamixel.encodeSyncRead(address: 132, length: 4, ids: list, into: out)
            }
        }
        let start = host.nowNs
        host.bus.receive(request, atNs: start)
        // Request 20 bytes + 6 × (5 µs firmware + 500 µs return delay + 15 bytes) at 1 Mbit/s.
        let expected = UInt64(request.count) * 10_000 + 6 * (5_000 + 500_000 + 15 * 10_000)
        #expect(host.bus.nextReplyReadyNs == start + UInt64(request.count) * 10_000 + 5_000 + 500_000 + 150_000)
        #expect(host.collect(upToNs: start + expected - 1).count == 5)
        #expect(host.collect(upToNs: start + expected).count == 1)

        let fastHost = try TestHost(model: "xl330-m288", ids: [1]) { $0.wireTiming = false }
        fastHost.bus.receive(
            fastHost.packet { out throws(CodecError) in try Dynamixel.encodePing(id: 1, into: out) },
            atNs: fastHost.nowNs)
        #expect(fastHost.collect(upToNs: fastHost.nowNs).count == 1, "wire timing off: at once")
    }

    @Test func overloadInjectionDropsTorqueUntilReboot() throws {
        var faults = FaultInjection()
        faults.overloads = [.init(id: 2, afterSeconds: 0.5)]
        let host = try TestHost(model: "xm430-w350", ids: [1, 2]) { $0.faults = faults }
        _ = host.write(2, 64, [1])
        host.wait(seconds: 0.4)
        #expect(host.ping(2).first?.error == 0)
        host.wait(seconds: 0.2)
        #expect(host.ping(2).first?.error == 0x80, "alert bit")
        #expect(host.read(2, 70, 1).first?.parameters == [0x20], "overload")
        #expect(host.read(2, 64, 1).first?.parameters == [0], "torque dropped")
        #expect(host.write(2, 64, [1]).first?.error == 0x81, "cannot re-enable before REBOOT")
        #expect(host.ping(1).first?.error == 0)
        #expect(
            host.exchange(host.packet { out throws(CodecError) in try Dynamixel.encodeReboot(id: 2, into: out) }).first?
                .error == 0x80)
        #expect(host.read(2, 70, 1).first?.parameters == [0])
        #expect(host.write(2, 64, [1]).first?.error == 0)
    }

    @Test func stalledServoOverloadsAndOverheats() throws {
        let host = try TestHost(model: "xm430-w350", ids: [1])
        host.bus.dynamics = HeldJoints()
        _ = host.write(1, 64, [1])
        _ = host.write(1, 116, le32(3500))
        host.wait(seconds: 0.5)
        #expect(host.read(1, 70, 1).first?.parameters == [0])
        let rawCurrent = try #require(host.read(1, 126, 2).first?.uint16)
        let current = Int16(bitPattern: UInt16(rawCurrent))
        #expect(Double(current) * 2.69 > 1500, "stall current, got \(current)")
        host.wait(seconds: 1.0)
        #expect(host.read(1, 70, 1).first?.parameters == [0x20], "overload after ~1 s at stall")

        // Overheating: disable overload shutdown and keep it stalled.
        _ = host.exchange(host.packet { out throws(CodecError) in try Dynamixel.encodeReboot(id: 1, into: out) })
        _ = host.write(1, 63, [0x04])
        host.bus.servos[0].injectFault([])
        _ = host.write(1, 64, [1])
        _ = host.write(1, 116, le32(3500))
        var seconds = 0.0
        while seconds < 600, host.read(1, 70, 1).first?.parameters.first.map({ $0 & 0x04 }) == 0 {
            host.wait(seconds: 5)
            seconds += 5
        }
        #expect(seconds < 600, "overheats under stall")
        let temperature = try #require(host.read(1, 146, 1).first?.parameters.first)
        #expect(temperature >= 80)
        #expect(host.read(1, 64, 1).first?.parameters == [0])
    }

    @Test func inputVoltageErrorIsReportedAndShutsDownWhenMasked() throws {
        let host = try TestHost(model: "xl330-m288", ids: [1]) { $0.supplyVoltageV = 7.5 }
        host.wait(seconds: 0.01)
        #expect(host.read(1, 70, 1).first?.parameters == [0x01])
        #expect(host.read(1, 144, 2).first?.uint16 == 75)
        // The XL330's factory Shutdown (53) includes the input-voltage bit: torque cannot come on.
        #expect(host.read(1, 63, 1).first?.parameters == [0x35])
        #expect(host.write(1, 64, [1]).first?.error == 0x81)
        _ = host.write(1, 63, [0x34])
        #expect(host.write(1, 64, [1]).first?.error == 0x80, "Shutdown 52 does not include voltage")
        _ = host.write(1, 64, [0])
        _ = host.write(1, 63, [0x35])
        #expect(host.write(1, 64, [1]).first?.error == 0x81)
    }

    @Test func reverseDriveModeKeepsRegisterDirections() throws {
        let host = try TestHost(model: "xl330-m288", ids: [1])
        _ = host.write(1, 10, [1])
        _ = host.write(1, 11, [4])  // extended position: reversed counts are negative
        _ = host.write(1, 64, [1])
        let start = try #require(host.read(1, 132, 4).first?.int32)
        _ = host.write(1, 116, le32(start + 500))
        host.wait(seconds: 1.0)
        let position = try #require(host.read(1, 132, 4).first?.int32)
        #expect(abs(position - (start + 500)) < 15)
        #expect(host.bus.servos[0].positionRad < Double.pi, "the shaft turned the other way")
        _ = host.write(1, 64, [0])
        _ = host.write(1, 11, [1])
        _ = host.write(1, 64, [1])
        _ = host.write(1, 104, le32(-100))
        host.wait(seconds: 1.0)
        let velocity = try #require(host.read(1, 128, 4).first?.int32)
        #expect(abs(velocity + 100) <= 5)
        #expect(host.bus.servos[0].velocityRadPerS > 0)
    }

    @Test func busWatchdogStopsASilentController() throws {
        let host = try TestHost(model: "xm430-w350", ids: [1])
        _ = host.write(1, 11, [1])
        _ = host.write(1, 64, [1])
        _ = host.write(1, 98, [5])  // 100 ms
        _ = host.write(1, 104, le32(100))
        host.wait(seconds: 0.05)
        let moving = try #require(host.read(1, 128, 4).first?.int32)
        #expect(moving > 10, "moving while the host talks")
        host.wait(seconds: 0.5)
        #expect(host.read(1, 98, 1).first?.parameters == [0xFF], "watchdog expired")
        let stopped = try #require(host.read(1, 128, 4).first?.int32)
        #expect(abs(stopped) < 3, "stopped")
        #expect(host.write(1, 104, le32(100)).first?.error == 4, "goals refused")
        #expect(host.write(1, 98, [0]).first?.error == 0)
        #expect(host.write(1, 104, le32(100)).first?.error == 0)
    }

    @Test func factoryResetRestoresDefaultsAfterTheReply() throws {
        let host = try TestHost(model: "xl330-m288", ids: [5])
        _ = host.write(5, 9, [0])
        let reply = host.exchange(
            host.packet { out throws(CodecError) in try Dynamixel.encodeFactoryReset(id: 5, option: 0x02, into: out) })
        #expect(reply.map(\.id) == [5])
        #expect(host.read(5, 9, 1).first?.parameters == [250])
        _ = host.exchange(
            host.packet { out throws(CodecError) in try Dynamixel.encodeFactoryReset(id: 5, option: 0xFF, into: out) })
        #expect(host.ping(5).isEmpty, "factory ID 1 at 57600")
        host.bus.hostBaudRate = 57600
        #expect(host.ping(1).map(\.id) == [1])
    }

    /// Indirect addressing follows each table's layout: the XL330s one bank of 20 (addresses at 168, data at
    /// 208), the XM430 and XL430 a bank of 28 (168, 224) and a second one (578, 634).
    @Test(arguments: [
        ("xl330-m077", 168, 208), ("xl330-m288", 168, 208), ("xm430-w350", 168, 224), ("xm430-w350", 578, 634),
        ("xl430-w250", 168, 224), ("xl430-w250", 578, 634),
    ])
    func indirectDataReadsThroughItsAddress(model: String, addressRegister: Int, data: Int) throws {
        let host = try TestHost(model: model, ids: [1])
        #expect(host.write(1, addressRegister, le16(146) + le16(144)).first?.error == 0)  // temperature, voltage
        let direct = try #require(host.read(1, 144, 3).first?.parameters)
        #expect(host.read(1, data, 2).first?.parameters == [direct[2], direct[0]], "\(model) at \(data)")
        #expect(host.read(1, 0, 2).first?.uint16 == Int(try loadModel(model).modelNumber))
    }
}

/// A joint that cannot move (a blocked horn).
final class HeldJoints: JointDynamics {
    func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        for index in 0..<velocitiesRadPerS.count { velocitiesRadPerS[index] = 0 }
    }
}
