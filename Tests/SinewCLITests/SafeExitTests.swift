import Foundation
import SinewBus
import SinewTestSupport
import Testing

/// Every way a `sinew run` ends leaves the arm as robot.yaml says: the SO-101 on `sinew virtual-bus --robot`
/// (a pseudo-terminal, as an integrator's bench would have it), and after the run each servo's Torque Enable
/// register (STS3215 address 40) read back over the same bus.
@Suite(.serialized) struct SafeExitTests {
    static let robot = repositoryRoot + "/Hardware/robots/so101/robot.yaml"
    /// IDs 1–6 after a shutdown: shoulder_pan and wrist_roll go limp (torque_off), the others hold.
    static let torqueAfterShutdown: [UInt8] = [0, 1, 1, 1, 0, 1]
    static let torqueNeverOn: [UInt8] = [0, 0, 0, 0, 0, 0]

    /// The simulated arm on a pty, for one test.
    final class Bench {
        let dir: String
        let server: SinewChild
        var port: String { dir + "/arm" }

        init(_ name: String, robot: String = SafeExitTests.robot) throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-exit-\(name)-\(getpid())").path
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            server = try SinewChild(["virtual-bus", "--robot", robot, "--link-dir", dir])
            let first = server.firstLine(within: 20)
            try #require(first?.hasPrefix("arm /dev/pts/") == true, "virtual bus: \(server.stderr)")
        }

        deinit {
            server.kill()
            try? FileManager.default.removeItem(atPath: dir)
        }

        /// Torque Enable of servos 1–6, read over the bus after the run.
        func torque() throws -> [UInt8] {
            let transport = try PseudoTerminalTransport(path: port, baudRate: 1_000_000)
            let bus = BusMaster(transport: transport, protocol: .feetechSTS, timing: BusTiming(retries: 3))
            return try (1...6).map { id in try bus.read(id: ServoID(id), address: 40, length: 1)[0] }
        }

        /// Switches every servo's torque off (a served robot starts holding its pose), so that a run that
        /// wrongly torques the arm shows in `torque()`.
        func switchTorqueOff() throws {
            let transport = try PseudoTerminalTransport(path: port, baudRate: 1_000_000)
            let bus = BusMaster(transport: transport, protocol: .feetechSTS, timing: BusTiming(retries: 3))
            for id in 1...6 {
                var failure: BusError?
                [UInt8(0)].withUnsafeBytes { raw in
                    do throws(BusError) { try bus.write(id: ServoID(id), address: 40, data: raw) } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
            }
        }

        func run(_ extra: [String]) -> SinewChild? {
            try? SinewChild(["run", SafeExitTests.robot, "--backend", "pty", "--port", port] + extra)
        }
    }

    @Test func optionsThatCannotWorkAreRefusedBeforeTorque() throws {
        let bench = try Bench("options")
        try bench.switchTorqueOff()
        #expect(try bench.torque() == Self.torqueNeverOn)
        for (arguments, status) in [
            (["--duration", "inf"], Int32(64)), (["--duration", "nan"], 64), (["--duration", "1e20"], 64),
            (["--duration", "0"], 64), (["--duration", "1", "--record", "/proc/x.csv"], 1),
        ] {
            let child = try #require(bench.run(arguments))
            #expect(child.wait(within: 30))
            #expect(child.process.terminationStatus == status, "\(arguments): \(child.stderr)")
            #expect(try bench.torque() == Self.torqueNeverOn, "\(arguments) must not torque the arm")
        }
    }

    @Test(arguments: [(SIGHUP, "SIGHUP"), (SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")])
    func aSignalEndsTheRunInTheSafeState(signal: Int32, name: String) throws {
        let bench = try Bench("signal-\(signal)")
        let child = try #require(bench.run(["--duration", "30", "--json"]))
        #expect(waitForActivation(child))
        child.signal(signal)
        #expect(child.wait(within: 20), "\(name) did not end the run")
        #expect(child.process.terminationStatus == 128 + signal, "\(child.stderr)")
        let report = try #require(jsonObject(child.stdout), "no JSON after \(name): \(child.stdout)")
        #expect(report["stopped_by"] as? String == name)
        #expect(report["final_state"] as? String == "safe")
        #expect(try bench.torque() == Self.torqueAfterShutdown)
    }

    @Test func aClosedStandardOutputDoesNotStopTheRobotUnsafely() throws {
        let bench = try Bench("stdout")
        // `sinew run … | head -c 1`: the reader goes away before the summary is printed.
        let script =
            "'\(sinewExecutable)' run '\(Self.robot)' --backend pty --port '\(bench.port)' --duration 2 | head -c 1; "
            + "echo \" ${PIPESTATUS[0]}\""
        let shell = runProcess("/bin/bash", ["-c", script])
        let status = shell.output.split(separator: " ").last.map {
            String($0).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // The run went to its end (0; 2 when a busy machine made it overrun into the safe state), not killed by
        // SIGPIPE (141) nor failed (1).
        #expect(status == "0" || status == "2", "\(shell.output)")
        #expect(try bench.torque() == Self.torqueAfterShutdown)
    }

    @Test func theEStopSocketStopsTheRobotNotTheProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-exit-sock-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The shipped robot with an e-stop socket of this test's own.
        let socket = dir + "/estop.sock"
        var yaml = try String(contentsOfFile: Self.robot, encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        yaml = yaml.replacingOccurrences(of: "file: /tmp/sinew-so101.estop", with: "socket: \(socket)")
        try #require(yaml.contains("socket: \(socket)"))
        let robot = dir + "/robot.yaml"
        try yaml.write(toFile: robot, atomically: true, encoding: .utf8)

        let bench = try Bench("socket", robot: robot)
        let child = try #require(
            try? SinewChild(["run", robot, "--backend", "pty", "--port", bench.port, "--duration", "4", "--json"]))
        #expect(waitForActivation(child))
        // A client that connects and hangs up at once, then one that sends `estop` and closes without reading.
        let hangUp = runProcess("/usr/bin/env", ["python3", "-c", hangUpClient, socket])
        #expect(hangUp.status == 0, "\(hangUp.output)")
        let estop = runProcess("/usr/bin/env", ["python3", "-c", estopClient, socket])
        #expect(estop.status == 0, "\(estop.output)")
        #expect(child.wait(within: 30))
        #expect(child.process.terminationStatus == 2, "ends in the safe state: \(child.stderr)")
        let report = try #require(jsonObject(child.stdout), "\(child.stdout)\n\(child.stderr)")
        let events = report["safety_events"] as? [[String: Any]] ?? []
        #expect(events.contains { $0["cause"] as? String == "emergencyStop" && $0["detail"] as? String == "socket" })
        #expect(try bench.torque() == Self.torqueAfterShutdown)
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed at the end")
    }

    @Test func aVanishedBusEndsTheRunInTheSafeStateAndKeepsTheRecording() throws {
        let bench = try Bench("vanish")
        let recording = bench.dir + "/run.csv"
        let child = try #require(bench.run(["--duration", "30", "--json", "--record", recording]))
        #expect(waitForActivation(child))
        usleep(300_000)
        // What a USB unplug does to the port: the other side is gone.
        bench.server.kill()
        #expect(child.wait(within: 10), "the run did not end after its bus vanished: \(child.stderr)")
        // 3: shutdown could not confirm the servos' torque — the bus that would carry the command is gone.
        #expect(child.process.terminationStatus == 3, "\(child.stderr)")
        let report = try #require(jsonObject(child.stdout), "\(child.stdout)\n\(child.stderr)")
        #expect(report["final_state"] as? String == "safe")
        #expect((report["shutdown_error"] as? String)?.contains("disconnected") == true, "\(report)")
        #expect((report["stopped_by"] as? String)?.contains("disconnected") == true, "\(report["stopped_by"] ?? "")")
        let events = report["safety_events"] as? [[String: Any]] ?? []
        #expect(events.contains { $0["cause"] as? String == "busErrors" }, "\(events)")
        let lines = try String(contentsOfFile: recording, encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 100, "the recording is kept: \(lines.count) lines")
    }

    @Test func aSecondRunOnTheSamePortIsRefusedAndTheFirstIsUndisturbed() throws {
        let bench = try Bench("exclusive")
        let first = try #require(bench.run(["--duration", "3", "--json"]))
        #expect(waitForActivation(first))
        let second = try #require(bench.run(["--duration", "1", "--json"]))
        #expect(second.wait(within: 20))
        #expect(second.process.terminationStatus == 1, "\(second.stdout)\n\(second.stderr)")
        let refusal = try #require(jsonObject(second.stdout), "\(second.stdout)")
        let refusalText = refusal["error"] as? String ?? ""
        #expect(refusalText.contains("is in use: another program holds its lock"), "\(refusal)")
        #expect(first.wait(within: 30))
        let report = try #require(jsonObject(first.stdout), "\(first.stdout)\n\(first.stderr)")
        // Undisturbed: no bus error came from a second master; a loaded machine may still make it overrun.
        let causes = safetyCauses(in: report)
        #expect(causes.allSatisfy { $0 == "overrun" }, "\(causes)")
        let bus = (report["bus"] as? [String: Any])?["arm"] as? [String: Any]
        #expect(bus?["checksum_errors"] as? Int == 0, "\(String(describing: bus))")
    }

    @Test func recoveryWithoutARestartOnceTheCauseIsCleared() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-recover-robot-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/estop.sock"
        let stopFile = dir + "/STOP"
        var yaml = try String(contentsOfFile: Self.robot, encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        yaml = yaml.replacingOccurrences(
            of: "file: /tmp/sinew-so101.estop", with: "file: \(stopFile)\n    socket: \(socket)")
        let robot = dir + "/robot.yaml"
        try yaml.write(toFile: robot, atomically: true, encoding: .utf8)
        let bench = try Bench("recover", robot: robot)
        let child = try #require(
            try? SinewChild(["run", robot, "--backend", "pty", "--port", bench.port, "--duration", "6", "--json"]))
        #expect(waitForActivation(child))
        func send(_ line: String) {
            let sent = runProcess("/usr/bin/env", ["python3", "-c", lineClient, socket, line])
            #expect(sent.status == 0, "\(sent.output)")
        }
        // The file e-stop, then a recovery asked for while the file is still there: refused.
        #expect(FileManager.default.createFile(atPath: stopFile, contents: nil))
        usleep(400_000)
        send("recover")
        usleep(700_000)
        #expect(child.stderr.contains("recover: refused, the file e-stop is still asserted"), "\(child.stderr)")
        // Cleared: the next recovery brings the robot back, and the run goes on to its end.
        try FileManager.default.removeItem(atPath: stopFile)
        send("recover")
        #expect(child.wait(within: 30))
        #expect(child.stderr.contains("recover: the robot is active again"), "\(child.stderr)")
        let report = try #require(jsonObject(child.stdout), "\(child.stdout)\n\(child.stderr)")
        #expect(report["recoveries"] as? Int == 1)
        let events = report["safety_events"] as? [[String: Any]] ?? []
        #expect(events.contains { $0["cause"] as? String == "emergencyStop" && $0["detail"] as? String == "file" })
        // Ended active unless the busy machine made it overrun afterwards.
        #expect(child.process.terminationStatus == expectedRunStatus(report), "\(child.stderr)")
        #expect(try bench.torque() == Self.torqueAfterShutdown)
    }

    /// Waits until the run says it activated (its real-time report follows activation).
    private func waitForActivation(_ child: SinewChild) -> Bool {
        let end = Date().addingTimeInterval(30)
        while Date() < end {
            if child.stderr.contains("real time:") { return true }
            if !child.process.isRunning { return false }
            usleep(20_000)
        }
        return false
    }
}

private let hangUpClient = """
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.close()
    """

private let estopClient = """
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall(b"estop\\n")
    s.close()
    """

private let lineClient = """
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall(sys.argv[2].encode() + b"\\n")
    print(s.recv(64).decode().strip())
    s.close()
    """
