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

    /// The Koch follower's mixed bus: `--servos 1-2:xl430-w250,3-6:xl330-m288` serves both models on one bus, and
    /// `scan` names each (model numbers 1060 and 1200).
    @Test func aMixedBusServesEachServoAsItsModel() throws {
        let server = try SinewChild([
            "virtual-bus", "--servos", "1-2:xl430-w250,3-6:xl330-m288", "--wire-timing", "off",
        ])
        defer { server.kill() }
        let path = try #require(server.firstLine(within: 120), "no pty path printed; stderr: \(server.stderr)")
        #expect(server.stdout.contains("1: xl430-w250") && server.stdout.contains("6: xl330-m288"), "\(server.stdout)")
        let scan = try runSinew(
            [
                "scan", "--port", path, "--protocol", "dynamixel", "--baud", "1000000", "--ids", "1-7", "--json",
                "--margin-ms", "200",
            ], within: 120)
        #expect(scan.status == 0, "\(scan.stderr)")
        let servos = try #require(
            try? JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [[String: Any]], "\(scan.stdout)")
        #expect(servos.compactMap { $0["model_number"] as? Int } == [1060, 1060, 1200, 1200, 1200, 1200])
        #expect(servos.compactMap { $0["model"] as? String }.first == "xl430-w250")
        let both = try runSinew(["virtual-bus", "--servos", "1:xl430-w250", "--model", "xl330-m288"], within: 60)
        #expect(both.status != 0 && both.stderr.contains("drop --model and --ids"), "\(both.stderr)")
        server.signal(SIGTERM)
        #expect(server.wait(within: 60))
    }

    /// `--hand keys`: the virtual bus's own terminal moves the robot's joints. Its terminal here is a
    /// pseudo-terminal of the test's: `2` picks shoulder_lift, ten → presses move its target 0.5 rad up, and the
    /// servo reads the joint there; the status line names the joint.
    @Test func handKeysMoveAJointFromTheTerminal() throws {
        let terminal = try PseudoTerminalTransport.createPair()
        let secondary = try #require(FileHandle(forUpdatingAtPath: terminal.path))
        let process = sinewProcess([
            "virtual-bus", "--robot", repositoryRoot + "/Hardware/robots/koch/robot.yaml", "--hand", "keys",
            "--wire-timing", "off",
        ])
        process.standardInput = secondary
        process.standardOutput = secondary
        process.standardError = secondary
        try process.run()
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        var text = ""
        func readTerminal(until marker: String, seconds: Double) -> Bool {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let end = Date().addingTimeInterval(seconds)
            while !text.contains(marker) && Date() < end {
                let n = buffer.withUnsafeMutableBytes {
                    (try? terminal.read(into: $0, deadline: .now().advanced(byNanoseconds: 100_000_000))) ?? 0
                }
                text += String(decoding: buffer[0..<n], as: UTF8.self)
            }
            return text.contains(marker)
        }
        #expect(readTerminal(until: "pick a joint", seconds: 120), "\(text)")
        let line = try #require(text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("arm /dev/pts/") })
        let bus = BusMaster(
            transport: try PseudoTerminalTransport(path: String(line.dropFirst(4))), protocol: .dynamixel,
            timing: BusTiming(marginNanoseconds: 100_000_000, retries: 3))
        func shoulderLiftCounts() throws -> Int32 {
            let bytes = try bus.read(id: 2, address: 132, length: 4)
            return Int32(
                bitPattern: UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        }
        let before = try shoulderLiftCounts()
        let keys: [UInt8] = [UInt8(ascii: "2")] + Array(repeating: [0x1B, 0x5B, 0x43], count: 10).flatMap { $0 }
        try keys.withUnsafeBytes { try terminal.write($0, deadline: .now().advanced(byNanoseconds: 1_000_000_000)) }
        #expect(readTerminal(until: "shoulder_lift held at 0.500 rad", seconds: 30), "\(text)")
        // The hand moves at most 1 rad/s: it covers the 0.5 rad within about a second of real time.
        var moved = 0.0
        let end = Date().addingTimeInterval(30)
        while Date() < end {
            usleep(200_000)
            moved = Double(try shoulderLiftCounts() - before) * 2 * Double.pi / 4096
            if abs(moved - 0.5) < 0.01 { break }
        }
        #expect(abs(moved - 0.5) < 0.01, "shoulder_lift moved \(moved) rad")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
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
