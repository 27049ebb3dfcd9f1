import Foundation
import SinewCore
import SinewTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// LeRobot itself (PyPI `lerobot`, unmodified, its own robot and teleoperator classes) against `sinew virtual-bus`:
/// the SO-101 and the Koch arm, follower and leader, each served as a whole simulated robot with a hand taking it
/// through the calibration sweep (`--hand motions/calibration-sweep.csv`). LeRobot connects (handshake on: model
/// numbers, firmware), runs its interactive calibration with its prompts answered as a person would, timed to the
/// hand (Tests/python/lerobot_session.py), configures the arm and tracks goals through get_observation and
/// send_action; then a leader→follower teleoperation loop runs on the two buses. Separately, LeRobot's scan and
/// motor set-up find a lone factory servo at its own rate only.
///
/// The Python is `make lerobot-env`'s (.build/lerobot-venv: Python ≥ 3.12, LeRobot without its dependencies, the
/// few packages its motor and robot modules import, Tests/python/lerobot-requirements.txt), or
/// `SINEW_LEROBOT_PYTHON`. LeRobot's modules import `torch` for type hints only: a stand-in
/// (Tests/python/torch_stub) goes first on the path, unless `SINEW_LEROBOT_REAL_TORCH=1` (`make
/// lerobot-torch-check`, which installs the real PyTorch). Every process a test starts ends with it: the servers
/// with `SINEW_EXIT_WITH_PARENT`, the sessions with their own deadline and parent watch.
@Suite struct LeRobotTests {
    static let session = repositoryRoot + "/Tests/python/lerobot_session.py"

    static func python() throws -> String {
        let path =
            ProcessInfo.processInfo.environment["SINEW_LEROBOT_PYTHON"]
            ?? repositoryRoot + "/.build/lerobot-venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw MissingTestPython(
                description: "no LeRobot environment at \(path): run `make lerobot-env` (LeRobot needs Python >= "
                    + "3.12; the target finds one or says how to get it), or set SINEW_LEROBOT_PYTHON")
        }
        return path
    }

    /// The sessions' environment: the PyTorch stand-in first on the path (unless the real one is asked for),
    /// LeRobot's Hugging Face home in a scratch directory.
    static func environment(scratch: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if environment["SINEW_LEROBOT_REAL_TORCH"] != "1" {
            environment["PYTHONPATH"] = repositoryRoot + "/Tests/python/torch_stub"
        }
        environment["HF_HOME"] = scratch + "/hf"
        environment["HF_LEROBOT_HOME"] = scratch + "/hf/lerobot"
        environment["PYTHONUNBUFFERED"] = "1"
        return environment
    }

    static func scratchDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-lerobot-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    struct Arm {
        let name: String
        /// LeRobot's full-turn joints: their range is set to the whole turn, not recorded.
        let fullTurn: Set<String>
        /// Joints a leader's calibration reverses in the servo (Drive Mode 1).
        let reversedOnLeader: Set<String>
    }

    static let arms = [
        Arm(name: "so101", fullTurn: ["wrist_roll"], reversedOnLeader: []),
        Arm(name: "koch", fullTurn: ["shoulder_pan", "wrist_roll"], reversedOnLeader: ["elbow_flex"]),
    ]

    /// Calibration, tracking and teleoperation for both arms at once (their buses are independent; the hand's
    /// sweep sets the pace, about 30 s).
    @Test func calibrateTrackAndTeleoperateTheSO101AndKochArms() throws {
        let python = try Self.python()
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let environment = Self.environment(scratch: scratch)
        var sessions: [(arm: Arm, role: String, child: PythonChild)] = []
        for arm in Self.arms {
            for role in ["follower", "leader"] {
                let bus = role == "leader" ? "leader" : "arm"
                let child = try PythonChild(
                    python,
                    [
                        Self.session, "calibrate", "--arm", arm.name, "--role", role, "--link",
                        "\(scratch)/\(arm.name)-\(role)/\(bus)", "--hand", sweepFile(arm.name), "--calibration-dir",
                        "\(scratch)/calibration-\(arm.name)", "--id", role, "--track", role == "follower" ? "1" : "0",
                        "--timeout", "200",
                    ], environment: environment)
                sessions.append((arm, role, child))
            }
        }
        // The hand's time starts with its server: start the servers once LeRobot is imported, so that LeRobot's
        // first prompt comes while the hand holds the arm at the middle.
        for session in sessions {
            #expect(session.child.line(startingWith: "ready", within: 120) != nil, "\(session.child.output)")
        }
        var servers: [SinewChild] = []
        defer { for server in servers { server.kill() } }
        for arm in Self.arms {
            for role in ["follower", "leader"] {
                let robot =
                    repositoryRoot + "/Hardware/robots/\(arm.name)/\(role == "leader" ? "leader" : "robot").yaml"
                let server = try SinewChild([
                    "virtual-bus", "--robot", robot, "--hand", sweepFile(arm.name), "--link-dir",
                    "\(scratch)/\(arm.name)-\(role)",
                ])
                servers.append(server)
                #expect(server.firstLine(within: 60) != nil, "no pty path printed; stderr: \(server.stderr)")
            }
        }
        for session in sessions {
            let result = try #require(session.child.result(within: 220), "\(session.arm.name) \(session.role)")
            try checkCalibration(result, arm: session.arm, role: session.role)
            if session.role == "follower" { try checkTracking(result, arm: session.arm.name) }
        }

        // Teleoperation: LeRobot's leader → follower loop on the two calibrated buses, the leader in the hand.
        var teleops: [(Arm, PythonChild)] = []
        for arm in Self.arms {
            let child = try PythonChild(
                python,
                [
                    Self.session, "teleop", "--arm", arm.name, "--leader-link", "\(scratch)/\(arm.name)-leader/leader",
                    "--follower-link", "\(scratch)/\(arm.name)-follower/arm", "--calibration-dir",
                    "\(scratch)/calibration-\(arm.name)", "--leader-id", "leader", "--follower-id", "follower",
                    "--seconds", "6", "--timeout", "120",
                ], environment: environment)
            teleops.append((arm, child))
        }
        for (arm, child) in teleops {
            let result = try #require(child.result(within: 130), "\(arm.name) teleop")
            let joints = try #require(result["joints"] as? [String: [String: Double]], "\(result)")
            print(
                "LeRobot \(arm.name) teleop: \(result["loops"] ?? 0) loops at \(result["loop_hz"] ?? 0) Hz; \(joints)")
            #expect(!joints.isEmpty, "the leader moved during the loop")
            for (joint, figures) in joints {
                let rms = figures["rms_error"] ?? 99
                let worst = figures["max_error"] ?? 99
                #expect(rms < 4, "\(arm.name) \(joint): follower within \(rms)° RMS of the leader: \(figures)")
                #expect(worst < 12, "\(arm.name) \(joint): worst \(worst)°: \(figures)")
            }
        }
        for server in servers {
            server.signal(SIGTERM)
            #expect(server.wait(within: 30), "virtual-bus did not stop on SIGTERM")
        }
    }

    func sweepFile(_ arm: String) -> String { repositoryRoot + "/Hardware/robots/\(arm)/motions/calibration-sweep.csv" }

    /// LeRobot answered at the hand's middle, stopped recording after its sweep, and recorded each joint's range:
    /// centred on the middle (homing puts it at 2047) and as wide as the hand took it.
    func checkCalibration(_ result: [String: Any], arm: Arm, role: String) throws {
        let label = "\(arm.name) \(role)"
        let torch = result["torch"] as? String ?? ""
        let realTorch = ProcessInfo.processInfo.environment["SINEW_LEROBOT_REAL_TORCH"] == "1"
        #expect(realTorch ? torch.hasPrefix("PyTorch") : torch == "stand-in", "\(label): torch was \(torch)")
        #expect(result["is_calibrated"] as? Bool == true, "\(label)")
        let answers = try #require(result["answers"] as? [[String: Any]], "\(label)")
        #expect(answers.count == 2, "\(label): \(answers)")
        let hand = try JointMotion.load(contentsOf: sweepFile(arm.name))
        let calibration = try #require(result["calibration"] as? [String: [String: Int]], "\(label)")
        #expect(calibration.count == 6, "\(label)")
        for (joint, values) in calibration {
            let driveMode = role == "leader" && arm.reversedOnLeader.contains(joint) ? 1 : 0
            #expect(values["drive_mode"] == driveMode, "\(label) \(joint): \(values)")
            let low = try #require(values["range_min"])
            let high = try #require(values["range_max"])
            if arm.fullTurn.contains(joint) {
                #expect(low == 0 && high == 4095, "\(label) \(joint): \(values)")
                continue
            }
            let column = try #require(hand.jointIndex(named: joint), "\(joint)")
            let positions = (0..<hand.rowCount).map { hand.positionRad(row: $0, joint: column) }
            let span = (positions.max()! - positions.min()!) * 4096 / (2 * Double.pi)
            #expect(abs(Double(high - low) - span) < 12, "\(label) \(joint): recorded \(low)…\(high), hand \(span)")
            #expect(abs(Double(low + high) / 2 - 2047) < 12, "\(label) \(joint): \(low)…\(high) about 2047")
        }
        print(
            "LeRobot \(label) (torch: \(torch)): connected and calibrated in \(result["connect_and_calibrate_s"] ?? 0) s"
        )
    }

    /// After LeRobot's configure (Return Delay Time 0, torque on: the hand let go), every goal is reached.
    func checkTracking(_ result: [String: Any], arm: String) throws {
        let tracking = try #require(result["tracking"] as? [[String: Any]], "\(arm)")
        #expect(tracking.count == 12)
        for entry in tracking {
            let goal = try #require(entry["goal"] as? Double)
            let reached = try #require(entry["reached"] as? Double)
            #expect(abs(reached - goal) < 5, "\(arm): \(entry)")
            #expect((entry["others"] as? Double ?? 99) < 6, "\(arm): \(entry)")
        }
        let delays = try #require(result["return_delay_time"] as? [String: Int])
        #expect(delays.values.allSatisfy { $0 == 0 }, "\(arm): \(delays)")
        print("LeRobot \(arm): \(result["observations_per_s"] ?? 0) get_observation/s back to back, wire timing on")
    }

    /// LeRobot's scan (Feetech: every rate it knows, 4800 bit/s first) and motor set-up find a lone factory servo
    /// at its own rate only — the STS3215 at 250 kbit/s, a rate pyserial sets as a custom one (termios2), and the
    /// XL430-W250 at its factory 57600 — give it LeRobot's ID and 1 Mbit/s, and a broadcast ping finds it there.
    @Test(arguments: [
        ("so101", ["--model", "sts3215", "--ids", "1", "--baud", "250000"], 250_000, 6, 777),
        ("koch", ["--servos", "1:xl430-w250", "--baud", "57600"], 57_600, 2, 1060),
    ])
    func setupMotorFindsALoneServoAtItsRate(arm: String, served: [String], rate: Int, id: Int, model: Int) throws {
        let python = try Self.python()
        let scratch = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let server = try SinewChild(["virtual-bus"] + served + ["--link", scratch + "/bus"])
        defer { server.kill() }
        #expect(server.firstLine(within: 60) != nil, "no pty path printed; stderr: \(server.stderr)")
        let child = try PythonChild(
            python, [Self.session, "setup", "--arm", arm, "--port", scratch + "/bus", "--timeout", "120"],
            environment: Self.environment(scratch: scratch))
        let result = try #require(child.result(within: 130), "\(arm) setup")
        if arm == "so101" {
            let before = try #require(result["before"] as? [String: [Int]])
            #expect(before == ["\(rate)": [1]], "found at its own rate only (never at 4800): \(before)")
        }
        let after = try #require(result["after"] as? [String: Int])
        #expect(after == ["\(id)": model], "\(after)")
        #expect(result["model_number"] as? Int == model && result["baud"] as? Int == 1_000_000)
    }
}

/// A Python session of the suite: output to a file, read as it comes; killed when dropped.
final class PythonChild {
    let process = Process()
    let outPath: String

    init(_ python: String, _ arguments: [String], environment: [String: String]) throws {
        outPath =
            FileManager.default.temporaryDirectory.appendingPathComponent("sinew-python-\(UUID().uuidString)")
            .path
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        process.environment = environment
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: outPath)
    }

    var output: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }

    /// The first line starting with `prefix`, waiting up to `seconds` (nil if the session ended without it).
    func line(startingWith prefix: String, within seconds: Double) -> String? {
        let end = Date().addingTimeInterval(seconds)
        while true {
            let running = process.isRunning
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            if !running || Date() >= end { return nil }
            usleep(50_000)
        }
    }

    /// The session's `RESULT {json}`, once it has ended with status 0; nil (the output is in the issue) otherwise.
    func result(within seconds: Double) -> [String: Any]? {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < end { usleep(50_000) }
        guard !process.isRunning else {
            Issue.record("session still running after \(seconds) s:\n\(output)")
            return nil
        }
        guard process.terminationStatus == 0, let line = line(startingWith: "RESULT ", within: 0),
            let object = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: Any]
        else {
            Issue.record("session failed (status \(process.terminationStatus)):\n\(output)")
            return nil
        }
        return object
    }
}
