import SinewBus
import SinewDrivers
import SinewSim
import Testing

@Suite struct FeetechVirtualServoTests {
    @Test func pingReadAndModel() throws {
        let host = try TestHost(model: "sts3215", ids: [1, 2, 3, 4, 5, 6])
        #expect(host.ping(3) == [Reply(id: 3, error: 0, parameters: [])])
        #expect(host.read(3, 3, 2).first?.uint16 == 777)
        #expect(host.read(3, 7, 1).first?.parameters == [250])
        #expect(host.read(3, 6, 1).first?.parameters == [0])  // 1 Mbit/s
        #expect(host.read(3, 56, 2).first?.uint16 == 2048)
    }

    /// docs/protocols.md: SYNC_READ of 6 servos at address 56, 2 bytes.
    @Test func syncReadFromTheProtocolExample() throws {
        let host = try TestHost(model: "sts3215", ids: [1, 2, 3, 4, 5, 6])
        let replies = host.exchange([0xFF, 0xFF, 0xFE, 0x0A, 0x82, 0x38, 0x02, 1, 2, 3, 4, 5, 6, 0x26])
        #expect(replies.map(\.id) == [1, 2, 3, 4, 5, 6])
        #expect(replies.allSatisfy { $0.uint16 == 2048 })
        #expect(host.rawReplies.count == 6 * 8)
    }

    @Test func goalPositionWithSignMagnitudeAndSyncWrite() throws {
        let ids: [UInt8] = [1, 2]
        let host = try TestHost(model: "sts3215", ids: ids)
        _ = host.syncWrite(ids, 40, 1, [1, 1])
        #expect(host.syncWrite(ids, 42, 2, [0x00, 0x0C, 0x00, 0x04]).isEmpty)  // 3072, 1024
        host.wait(seconds: 2.0)
        let replies = host.syncRead(ids, 56, 2)
        try #require(replies.count == 2)
        let first = try #require(replies[0].uint16)
        let second = try #require(replies[1].uint16)
        #expect(abs(first - 3072) < 20, "got \(first)")
        #expect(abs(second - 1024) < 20, "got \(second)")
        // Moving backwards: present velocity is sign-magnitude, bit 15.
        _ = host.write(2, 42, le16(3000))
        host.wait(seconds: 0.1)
        _ = host.write(1, 42, le16(100))
        host.wait(seconds: 0.1)
        let velocity = try #require(host.read(1, 58, 2).first?.uint16)
        #expect(velocity & 0x8000 != 0 && velocity & 0x7FFF > 100, "negative speed, got \(velocity)")
    }

    @Test func lockKeepsEEPROMWritesFromPersisting() throws {
        let host = try TestHost(model: "sts3215", ids: [1])
        #expect(host.read(1, 55, 1).first?.parameters == [0])
        _ = host.write(1, 55, [1])
        #expect(host.write(1, 7, [0]).map(\.id) == [1])
        #expect(host.read(1, 7, 1).first?.parameters == [0], "takes effect at once")
        host.bus.servos[0].powerCycle()
        #expect(host.read(1, 7, 1).first?.parameters == [250], "lost at power-off while locked")
        _ = host.write(1, 55, [0])
        _ = host.write(1, 7, [0])
        host.bus.servos[0].powerCycle()
        #expect(host.read(1, 7, 1).first?.parameters == [0], "kept when unlocked")
        #expect(host.write(1, 5, [9]).map(\.id) == [1], "reply under the old ID")
        #expect(host.ping(9).map(\.id) == [9])
    }

    @Test func torqueEnable128CentresThePosition() throws {
        let host = try TestHost(model: "sts3215", ids: [1])
        host.bus.setJointState(index: 0, positionRad: 2.0 * Double.pi * 3000 / 4096)
        #expect(host.read(1, 56, 2).first?.uint16 == 3000)
        _ = host.write(1, 40, [128])
        #expect(host.read(1, 56, 2).first?.uint16 == 2048)
        #expect(host.read(1, 31, 2).first?.uint16 == 952)
        #expect(host.read(1, 40, 1).first?.parameters == [0])
    }

    @Test func statusLevelZeroStillAnswersReadAndPing() throws {
        let host = try TestHost(model: "sts3215", ids: [1])
        _ = host.write(1, 8, [0])
        #expect(host.write(1, 41, [10]).isEmpty)
        #expect(host.read(1, 41, 1).first?.parameters == [10])
        #expect(host.ping(1).count == 1)
    }

    @Test func overloadReportedInTheErrorByteAndClearedByTorqueWrite() throws {
        let host = try TestHost(model: "sts3215", ids: [1])
        host.bus.dynamics = HeldJoints()
        _ = host.write(1, 40, [1])
        _ = host.write(1, 42, le16(3500))
        host.wait(seconds: 3)
        let reply = host.ping(1)
        #expect(reply.first?.error == 32, "overload bit")
        #expect(host.read(1, 40, 1).first?.parameters == [0], "unloaded")
        _ = host.write(1, 42, le16(2048))
        _ = host.write(1, 40, [1])
        #expect(host.ping(1).first?.error == 0)
    }

    @Test func badChecksumGetsNoReply() throws {
        let host = try TestHost(model: "sts3215", ids: [1])
        #expect(host.exchange([0xFF, 0xFF, 0x01, 0x02, 0x01, 0x00]).isEmpty)
        #expect(host.bus.statistics.badChecksums == 1)
        #expect(host.exchange([0x00, 0x13, 0xFF, 0xFF, 0x01, 0x02, 0x01, 0xFB]).count == 1, "resync after garbage")
    }
}
