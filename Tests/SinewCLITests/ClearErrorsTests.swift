import Foundation
import SinewTestSupport
import Testing

/// Failures say what is wrong and are failures: writes that fail are reported, a port of the wrong kind is
/// named as such, a run's duration is time, and runtime errors are not usage errors.
@Suite(.serialized) struct ClearErrorsTests {
    static let robot = repositoryRoot + "/Hardware/robots/so101/robot.yaml"

    /// A copy of the shipped SO-101 robot.yaml in a scratch folder, with `replace` applied.
    static func robotCopy(_ name: String, replacing replace: [(String, String)]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-errors-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var yaml = try String(contentsOfFile: robot, encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        for (old, new) in replace {
            #expect(yaml.contains(old), "\(old) not in robot.yaml")
            yaml = yaml.replacingOccurrences(of: old, with: new)
        }
        let path = dir + "/\(name).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A recording that cannot even start (its header cannot be written) stops the run before any servo is
    /// touched, saying why.
    @Test func aRecordingThatCannotStartStopsTheRunBeforeTorque() throws {
        let run = try runSinew(["run", Self.robot, "--duration", "0.5", "--fast", "--record", "/dev/full"])
        #expect(run.status == 1, "\(run.stderr)")
        #expect(
            run.stderr.contains("cannot record to /dev/full") && run.stderr.contains("No space left"), "\(run.stderr)")
        let json = try runSinew(["run", Self.robot, "--duration", "0.5", "--fast", "--record", "/dev/full", "--json"])
        let report = try #require(jsonObject(json.stdout), "\(json.stdout)")
        #expect((report["error"] as? String)?.contains("No space left") == true, "\(report)")
    }

    /// A recording that fails in the middle of a run (here the file-size limit, as a full disk would) is reported;
    /// the run goes on, its summary prints, and the exit status says it failed.
    @Test func aRecordingThatFailsMidRunIsReportedAndTheSummaryStillPrints() throws {
        let folder = temporaryFolder("recording-full")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // 400 blocks of 512 bytes: the header and attachments fit, the ticks of 2 s do not. SIGXFSZ ignored: a
        // write past the limit fails with EFBIG instead.
        func limited(_ extra: String) -> [String] {
            [
                "-c",
                "trap '' XFSZ; ulimit -f 400; exec \"$0\" run \"$1\" --duration 2 --fast --record \"$2\" \(extra)",
                sinewExecutable, Self.robot, folder + "/run\(extra.isEmpty ? "" : "-json").mcap",
            ]
        }
        let run = runProcess("/bin/sh", limited(""))
        #expect(run.status == 1, "\(run.output)")
        #expect(run.output.contains("recording FAILED") && run.output.contains("too large"), "\(run.output)")
        #expect(run.output.contains("final state:"), "the summary is printed: \(run.output)")
        let json = runProcess("/bin/sh", limited("--json"))
        let line = json.output.split(separator: "\n").last(where: { $0.hasPrefix("{") }).map(String.init) ?? ""
        let report = try #require(jsonObject(line), "\(json.output)")
        #expect((report["recording_error"] as? String)?.contains("too large") == true, "\(report)")
        #expect(report["exit_status"] as? Int == 1)
    }

    @Test func aCalibrationThatCannotBeWrittenIsAFailure() throws {
        let result = try runSinew(["calibrate", Self.robot, "--backend", "sim", "--from-pose", "--output", "/dev/full"])
        #expect(result.status != 0)
        #expect(!result.stdout.contains("wrote"), "\(result.stdout)")
        #expect(result.stderr.contains("No space left"), "\(result.stderr)")
    }

    /// `sinew calibrate` failing at run time (a port that is not there or not a terminal, a servo that does not
    /// answer) is an error (exit 1), not a usage error: no usage text, not 64.
    @Test func calibrateRuntimeFailuresAreNotUsageErrors() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-cal-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let calibrate = ["calibrate", Self.robot, "--from-pose", "--output", output]
        for (port, says) in [("/nonexistent/ttyUSB9", "no such file"), ("/dev/null", "not a terminal")] {
            let result = try runSinew(calibrate + ["--backend", "pty", "--port", port])
            #expect(result.status == 1, "\(port): \(result.stderr)")
            #expect(result.stderr.contains(says), "\(port): \(result.stderr)")
            #expect(!result.stderr.contains("Usage:"), "a runtime failure is not a usage error: \(result.stderr)")
        }
        // Servo 6 is missing from the bus.
        let link = NSTemporaryDirectory() + "sinew-cal-bus-\(getpid())"
        defer { unlink(link) }
        let server = try SinewChild(["virtual-bus", "--model", "sts3215", "--ids", "1-5", "--link", link])
        defer { server.kill() }
        try #require(server.firstLine(within: 60)?.hasPrefix("/dev/pts/") == true, "virtual bus: \(server.stderr)")
        let silent = try runSinew(calibrate + ["--backend", "pty", "--port", link], within: 60)
        #expect(silent.status == 1, "\(silent.stderr)")
        #expect(silent.stderr.contains("servo 6 (joint \"gripper\") does not answer"), "\(silent.stderr)")
        #expect(!silent.stderr.contains("Usage:"), "\(silent.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func aPortOfTheWrongKindIsNamedAsSuch() throws {
        let regular = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-notaport-\(getpid())").path
        #expect(FileManager.default.createFile(atPath: regular, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: regular) }
        for (backend, port, says) in [
            ("serial", "/dev/null", "not a terminal"), ("pty", "/dev/null", "not a terminal"),
            ("serial", "/tmp", "directory"), ("pty", regular, "regular file"),
            ("serial", "/nonexistent/ttyUSB9", "no such file"),
        ] {
            let result = try runSinew(["run", Self.robot, "--backend", backend, "--port", port, "--duration", "1"])
            #expect(result.status == 1, "\(backend) \(port): \(result.stderr)")
            #expect(result.stderr.contains(says), "\(backend) \(port): \(result.stderr)")
            #expect(!result.stderr.contains("Usage:"), "a runtime failure is not a usage error: \(result.stderr)")
        }
    }

    @Test func aDurationIsTimeEvenWhenTheBusesCannotCarryTheRate() throws {
        // 6 STS3215 at 1 Mbit/s carry about 1,600 cycles/s: 5,000 Hz is refused by the wire, not by the clock.
        let fast = try Self.robotCopy("fast", replacing: [("rate_hz: 500", "rate_hz: 5000")])
        let started = Date()
        let result = try runSinew(["run", fast, "--duration", "1", "--json"])
        let wallS = Date().timeIntervalSince(started)
        #expect(result.stderr.contains("is above what bus \"arm\" can carry"), "\(result.stderr)")
        let report = try #require(jsonObject(result.stdout), "\(result.stdout)\n\(result.stderr)")
        #expect(report["stopped_by"] as? String == "duration")
        // Start-up (configure, activate) takes a little; the loop itself stops by the clock.
        #expect(wallS < 4, "a 1 s run took \(wallS) s")
        let ticks = try #require(report["ticks"] as? Int)
        #expect(ticks < 5000, "the loop could not run 5,000 ticks in a second on this bus: \(ticks)")
    }

    /// At 1 Hz a run's 3 ticks span 3 s of loop time: the real-time factor is 1 (it once said 2.00), and the
    /// wall time printed beside it is the one it is computed from (it said "3.00 s in 2.00 s … factor 1.00").
    @Test func aSlowLoopReportsTheWallTimeItsRealTimeFactorUses() throws {
        let slow = try Self.robotCopy(
            "slow", replacing: [("rate_hz: 500", "rate_hz: 1"), ("max_step_rad: 0.05 ", "max_step_rad: 1 ")])
        let result = try runSinew(["run", slow, "--duration", "3"])
        let line = try #require(
            result.stdout.split(separator: "\n").first { $0.contains("of wall time: real-time factor") },
            "\(result.stdout)\n\(result.stderr)")
        // "  simulated 3.00 s in 3.00 s of wall time: real-time factor 1.00"
        let numbers = line.split(separator: " ").compactMap { Double($0) }
        try #require(numbers.count == 3, "\(line)")
        #expect(abs(numbers[0] - 3) < 0.01, "\(line)")
        #expect(abs(numbers[2] - 1) < 0.05, "\(line)")
        #expect(abs(numbers[0] / numbers[1] - numbers[2]) < 0.01, "the factor is simulated / wall: \(line)")
    }

    /// An e-stop source that cannot start refuses activation, unless robot.yaml says `estop.required: false`
    /// (then a warning, and the run goes on); an e-stop file already present refuses it either way.
    @Test func anEStopSourceThatCannotStartRefusesActivationUnlessNotRequired() throws {
        let missing = "/nonexistent-sinew-folder/STOP"
        let required = try Self.robotCopy(
            "estop-required", replacing: [("file: /tmp/sinew-so101.estop", "file: \(missing)")])
        let refused = try runSinew(["run", required, "--fast", "--duration", "0.2", "--json"])
        #expect(refused.status == 1, "\(refused.stderr)")
        let report = try #require(jsonObject(refused.stdout), "\(refused.stdout)")
        #expect(report["final_state"] as? String == "unconfigured")
        #expect(
            (report["error"] as? String)?.contains("cannot watch its folder") == true
                && (report["error"] as? String)?.contains("not activated without its e-stop") == true, "\(report)")

        let optional = try Self.robotCopy(
            "estop-optional", replacing: [("file: /tmp/sinew-so101.estop", "file: \(missing)\n    required: false")])
        let ran = try runSinew(["run", optional, "--fast", "--duration", "0.2", "--json"])
        #expect(ran.status == 0, "\(ran.stderr)")
        #expect(ran.stderr.contains("running without it (safety.estop.required: false)"), "\(ran.stderr)")

        let stopFile = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-stop-\(getpid())").path
        #expect(FileManager.default.createFile(atPath: stopFile, contents: nil))
        defer { try? FileManager.default.removeItem(atPath: stopFile) }
        let present = try Self.robotCopy(
            "estop-present", replacing: [("file: /tmp/sinew-so101.estop", "file: \(stopFile)\n    required: false")])
        let armed = try runSinew(["run", present, "--fast", "--duration", "0.2"])
        #expect(armed.status == 1, "\(armed.stderr)")
        #expect(armed.stderr.contains("exists: remove it to arm the robot"), "\(armed.stderr)")
    }

    @Test func nonFiniteJointValuesAreNamedAsSuch() throws {
        let urdf = repositoryRoot + "/Hardware/robots/so101/so101.urdf"
        let result = try runSinew(["kinematics", "eval", urdf], input: "{\"joints\": {\"shoulder_lift\": NaN}}\n")
        #expect(result.status == 1)
        #expect(result.stdout.contains("NaN and infinity are not JSON numbers"), "\(result.stdout)")
    }

    @Test func aTrialWithoutReferenceRowsIsNotAPerfectScore() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-noref-\(getpid()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var text = "t_s,gyr_x,gyr_y,gyr_z,acc_x,acc_y,acc_z,mag_x,mag_y,mag_z,ref_qw,ref_qx,ref_qy,ref_qz,movement\n"
        for k in 0..<100 { text += "\(Double(k) * 0.0035),0,0,0,0,0,9.81,0,16,-41,nan,nan,nan,nan,1\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runSinew(["fusion", "eval", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no sample to score"), "\(result.stderr)")
        #expect(!result.stdout.contains("0.00"), "\(result.stdout)")
    }
}
