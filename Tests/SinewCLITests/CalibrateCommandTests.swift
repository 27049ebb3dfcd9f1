import Foundation
import SinewTestSupport
import Testing

@Suite(.serialized) struct CalibrateCommandTests {
    let robot = repositoryRoot + "/Hardware/robots/so101/robot.yaml"

    func scratchDirectory(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-calib-\(getpid())-\(name)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Calibrate the simulated SO-101 from its pose, run with that calibration, then refuse a calibration whose
    /// model number says the servo was swapped.
    @Test func calibrateFromPoseThenRunThenRefuseASwappedServo() throws {
        let dir = try scratchDirectory("pose")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/calibration.json"
        let calibrate = try runSinew(["calibrate", robot, "--backend", "sim", "--from-pose", "--output", file])
        #expect(calibrate.status == 0, "\(calibrate.stderr)")
        let data = try #require(FileManager.default.contents(atPath: file))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["format"] as? String == "sinew-calibration")
        #expect(object["version"] as? Int == 1)
        let joints = try #require(object["joints"] as? [[String: Any]])
        #expect(
            joints.map { $0["joint"] as? String ?? "" } == [
                "shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper",
            ])
        for joint in joints {
            let zero = try #require(joint["zero_counts"] as? Int)
            let low = try #require(joint["min_counts"] as? Int)
            let high = try #require(joint["max_counts"] as? Int)
            // The simulated arm was put in its zero pose: the STS3215 reads mid-turn there.
            #expect(abs(zero - 2048) <= 2, "\(joint)")
            #expect(low < zero && zero < high, "\(joint)")
            #expect(joint["model_number"] as? Int == 777)
        }

        let run = try runSinew(["run", robot, "--calibration", file, "--fast", "--duration", "1", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(jsonObject(run.stdout), "\(run.stdout)")
        #expect(report["final_state"] as? String == "active", "\(report["safety_events"] ?? "")")
        #expect((report["ticks"] as? Int ?? 0) > 100)
        #expect(report["calibration"] as? String == file)

        // The same file with another model number for one joint: configure refuses it.
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.contains("\"elbow_flex\"")
                ? line.replacingOccurrences(of: "\"model_number\": 777", with: "\"model_number\": 1025") : String(line)
        }
        let swapped = dir + "/swapped.json"
        try lines.joined(separator: "\n").write(toFile: swapped, atomically: true, encoding: .utf8)
        let refused = try runSinew(["run", robot, "--calibration", swapped, "--duration", "1", "--json"])
        #expect(refused.status == 1)
        // With --json the failure is the one JSON object on standard output, before any torque.
        let failure = try #require(jsonObject(refused.stdout), "\(refused.stdout)\n\(refused.stderr)")
        #expect(failure["final_state"] as? String == "unconfigured")
        let message = try #require(failure["error"] as? String)
        #expect(message.contains("elbow_flex"), "\(message)")
        #expect(message.contains("swapped"), "\(message)")
        // The bus, servo and joint also come apart, for programs.
        #expect(failure["bus"] as? String == "arm")
        #expect(failure["servo_id"] as? Int == 3)
        #expect(failure["joint"] as? String == "elbow_flex")
    }

    /// The interactive flow on the simulator (which moves the arm itself): zero, then the range swept.
    @Test func interactiveCalibrationOnTheSimulatorRecordsTheRange() throws {
        let dir = try scratchDirectory("interactive")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/calibration.json"
        let result = try runSinew(
            ["calibrate", robot, "--backend", "sim", "--output", file, "--range-seconds", "1"], input: "\n\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("zero pose"))
        #expect(result.stderr.contains("full range"))
        let data = try #require(FileManager.default.contents(atPath: file))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let joints = try #require(object["joints"] as? [[String: Any]])
        #expect(joints.count == 6)
        for joint in joints {
            let low = joint["min_counts"] as? Int ?? 0
            let high = joint["max_counts"] as? Int ?? 0
            // The SO-101's narrowest joint, the gripper, turns 1.9 rad: ~1250 counts of an STS3215.
            #expect(high - low > 1000, "\(joint)")
        }
    }

    /// Ctrl-C (SIGINT) during a recorded run: the robot goes to its safe state, the loop ends, and the CSV is
    /// flushed and closed with every recorded tick on a complete line.
    @Test func interruptedRunFlushesTheRecording() throws {
        let dir = try scratchDirectory("sigint")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/interrupted.csv"
        let process = sinewProcess(["run", robot, "--duration", "20", "--record", path, "--json"])
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the loop runs (the file has its header and some ticks), then interrupt it.
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
            if size > 150_000 { break }
            usleep(50_000)
        }
        kill(process.processIdentifier, SIGINT)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + SIGINT, "ended by SIGINT, as shells report it")
        let report = try #require(jsonObject(String(decoding: output, as: UTF8.self)))
        let ticks = try #require(report["ticks"] as? Int)
        #expect(ticks < 20 * 500)
        #expect(report["stopped_by"] as? String == "SIGINT")
        #expect(report["final_state"] as? String == "safe", "the signal brings the robot to its safe state")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1 + ticks)
        let columns = try #require(lines.first).split(separator: ",").count
        #expect(lines.last?.split(separator: ",", omittingEmptySubsequences: false).count == columns)
    }

    /// `sinew run --record` writes a CSV with one line per tick after the header.
    @Test func runRecordsToCSV() throws {
        let dir = try scratchDirectory("record")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/run.csv"
        let run = try runSinew(["run", robot, "--fast", "--duration", "0.5", "--record", path, "--json"])
        let report = try #require(jsonObject(run.stdout), "\(run.stderr)")
        #expect(run.status == expectedRunStatus(report), "\(run.stderr)")
        #expect(report["recording"] as? String == path)
        // The keys `sinew run --json` promises.
        for key in [
            "ticks", "achieved_hz", "overruns", "final_state", "stopped_by", "safety_events", "tracking_rms_rad", "bus",
        ] {
            #expect(report[key] != nil, "missing \(key)")
        }
        #expect(report["safety_events"] is [Any])
        #expect(report["stopped_by"] as? String == "duration")
        #expect(["active", "safe"].contains(report["final_state"] as? String ?? ""))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.first?.hasPrefix("tick,t_s,state,") == true)
        #expect(lines.count == 1 + (report["ticks"] as? Int ?? -1))
    }
}
