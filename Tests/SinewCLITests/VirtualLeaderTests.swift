import Foundation
import SinewBus
import SinewTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `sinew virtual-bus --robot leader.yaml`: a simulated leader arm in a person's hand, for teleoperation
/// without hardware.
@Suite struct VirtualLeaderTests {
    /// The SO-101 leader is served with torque off, and the positions its servos report change as the hand
    /// moves it along its motion file (read over the pseudo-terminal like a real adapter; the server runs in
    /// real time, so the test waits, up to a generous limit, for the arm to move).
    @Test func virtualBusServesALeaderThatMovesWithTorqueOff() throws {
        let leader = repositoryRoot + "/Hardware/robots/so101/leader.yaml"
        let server = try SinewChild(["virtual-bus", "--robot", leader])
        defer { server.kill() }
        let first = try #require(server.firstLine(within: 120), "no pty path printed; stderr: \(server.stderr)")
        #expect(first.hasPrefix("leader /dev/pts/"), "\(first)")
        let path = String(first.dropFirst("leader ".count))
        let transport = try PseudoTerminalTransport(path: path, baudRate: 1_000_000)
        let bus = BusMaster(transport: transport, protocol: .feetechSTS, timing: BusTiming(retries: 3))
        // STS3215: Present Position at 56 (2 bytes, sign-magnitude), Torque Enable at 40.
        func positions() throws -> [Int] {
            try (1...6).map { id in
                let bytes = try bus.read(id: ServoID(id), address: 56, length: 2)
                let raw = Int(bytes[0]) | Int(bytes[1]) << 8
                return raw & 0x8000 != 0 ? -(raw & 0x7FFF) : raw
            }
        }
        func torque() throws -> [UInt8] { try (1...6).map { try bus.read(id: ServoID($0), address: 40, length: 1)[0] } }

        #expect(try torque() == [0, 0, 0, 0, 0, 0], "a leader is served with torque off")
        let start = try positions()
        var moved = 0
        let end = Date().addingTimeInterval(60)
        while Date() < end {
            usleep(200_000)
            // 40 counts: 61 mrad, far beyond tremor; the demonstration's first reach moves several joints by
            // hundreds of mrad within 3 s of the start.
            moved = zip(try positions(), start).filter { abs($0 - $1) > 40 }.count
            if moved >= 3 { break }
        }
        #expect(moved >= 3, "joints that moved: \(moved); stdout: \(server.stdout)")
        #expect(try torque() == [0, 0, 0, 0, 0, 0])
        #expect(server.stdout.contains("torque off") && server.stdout.contains("pick-and-place.csv"))

        server.signal(SIGTERM)
        #expect(server.wait(within: 60), "virtual-bus did not stop on SIGTERM")
        #expect(server.process.terminationStatus == 0)
    }

    /// The Koch leader's servo: `virtual-bus --model xl330-m077` serves it and `scan` names it (model 1190).
    @Test func xl330M077IsServedAndNamedByScan() throws {
        let server = try SinewChild(["virtual-bus", "--model", "xl330-m077", "--ids", "1-3", "--wire-timing", "off"])
        defer { server.kill() }
        let path = try #require(server.firstLine(within: 120), "no pty path printed; stderr: \(server.stderr)")
        let scan = try runSinew(
            [
                "scan", "--port", path, "--protocol", "dynamixel", "--baud", "1000000", "--ids", "1-4", "--json",
                "--margin-ms", "200",
            ], within: 120)
        #expect(scan.status == 0, "\(scan.stderr)")
        let servos = try #require(
            try? JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [[String: Any]], "\(scan.stdout)")
        #expect(servos.compactMap { $0["id"] as? Int } == [1, 2, 3])
        #expect(servos.allSatisfy { $0["model"] as? String == "xl330-m077" && $0["model_number"] as? Int == 1190 })
        server.signal(SIGTERM)
        #expect(server.wait(within: 60))
    }

    /// The shipped leader motions are what Hardware/robots/synthesise_motion.py writes (it re-checks the joint
    /// limits, the speeds and the follower's workspace as it goes): the files and the script cannot drift apart.
    @Test(arguments: ["so101", "dxl6", "koch"], [false, true])
    func shippedMotionsAreWhatTheScriptWrites(robot: String, sweep: Bool) throws {
        let python = try testPython(importing: ["xml.etree.ElementTree"])
        let result = runProcess(
            python,
            ["-B", repositoryRoot + "/Hardware/robots/synthesise_motion.py", robot, "--check"]
                + (sweep ? ["--sweep"] : []))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("up to date"), "\(result.output)")
        #expect(result.output.contains(sweep ? "calibration-sweep.csv" : "pick-and-place.csv"), "\(result.output)")
    }
}
