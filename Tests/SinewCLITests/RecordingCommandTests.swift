import Foundation
import SinewTestSupport
import Testing

/// Flight recordings end to end through the `sinew` executable: `run --record` in MCAP, read back by the official
/// Python readers and pymcap-cli's doctor, replayed bit for bit and against a changed robot.yaml, driven through the
/// simulator, and repaired after a SIGKILL.
@Suite(.serialized) struct RecordingCommandTests {
    /// A copy of the shipped SO-101 robot.yaml in `folder` (its URDF named by absolute path), with `edit` applied
    /// line by line (nil drops the line).
    func robotYAML(in folder: String, name: String = "robot.yaml", edit: (String) -> [String]? = { [$0] }) throws
        -> String
    {
        let shipped = repositoryRoot + "/Hardware/robots/so101"
        var lines: [String] = []
        for line in try String(contentsOfFile: shipped + "/robot.yaml", encoding: .utf8).components(separatedBy: "\n") {
            let line = line == "model: so101.urdf" ? "model: \(shipped)/so101.urdf" : line
            lines += edit(line) ?? []
        }
        let path = folder + "/" + name
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func json(_ text: String) throws -> [String: Any] {
        let line = try #require(text.split(separator: "\n").last(where: { $0.hasPrefix("{") }), "no JSON in: \(text)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func mcapFiles(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".mcap") }
            .sorted().map { folder + "/" + $0 }
    }

    @Test func aRecordedRunReadsBackWithTheOfficialToolsAndReplaysBitForBit() throws {
        let python = try testPython(importing: ["mcap", "mcap_ros2", "pymcap_cli"])
        let folder = temporaryFolder("recording-cli")
        let robot = try robotYAML(in: folder)
        // A directory that does not exist yet: the recording goes inside it, named after the robot and the date.
        let run = try runSinew(["run", robot, "--fast", "--duration", "2", "--record", folder + "/runs", "--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(2000))")
        let ticks = try #require(try json(run.stdout)["ticks"] as? Int)
        let files = mcapFiles(in: folder + "/runs")
        try #require(files.count == 1, "\(files)")
        let file = files[0]
        #expect((file as NSString).lastPathComponent.hasPrefix("so101-"))

        let info = try json(try runSinew(["recording", "info", file, "--json"]).stdout)
        #expect(info["ticks"] as? Int == ticks)
        #expect(info["complete"] as? Bool == true)
        let topics = (info["channels"] as? [[String: Any]] ?? []).compactMap { $0["topic"] as? String }
        for topic in [
            "/joint_states", "/commands", "/estimates", "/timing", "/tf", "/safety", "/lifecycle", "/bus", "/log",
            "/robot_description", "/activation",
        ] {
            #expect(topics.contains(topic), "\(topic) in \(topics)")
        }
        let attachments = (info["attachments"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        for name in ["robot.yaml", "so101.urdf", "command_line.txt", "version.txt", "realtime.txt"] {
            #expect(attachments.contains(name), "\(name) in \(attachments)")
        }

        let export = try runSinew(["recording", "export", file, "--csv", folder + "/csv"])
        #expect(export.status == 0, "\(export.stderr)")
        let csv = folder + "/csv/" + ((file as NSString).lastPathComponent as NSString).deletingPathExtension + ".csv"
        let check = runProcess(python, [repositoryRoot + "/Tests/python/recording_check.py", file, robot, csv])
        #expect(check.status == 0 && check.output.contains("\(ticks) ticks checked: 0 problems"), "\(check.output)")
        let doctor = try doctorFindings(file, python: python)
        #expect(doctor.errors == 0 && doctor.warnings == 0, "\(doctor.output.suffix(3000))")

        // The same policy and guard: every guarded command again, bit for bit.
        let replay = try runSinew(["replay", file, "--json"])
        #expect(replay.status == 0, "\(replay.stderr)")
        let same = try json(replay.stdout)
        #expect(same["ticks"] as? Int == ticks)
        #expect(same["first_divergent_tick"] is NSNull, "\(replay.stdout)")
        #expect(same["policy_recomputed"] as? Bool == true)
        for (_, value) in same["max_command_difference_rad"] as? [String: Double] ?? ["none": 1] { #expect(value == 0) }

        // A tighter rate limit: the commands part, and the replay says where and by how much.
        let tighter = try robotYAML(in: folder, name: "tighter.yaml") { line in
            [line.hasPrefix("  max_step_rad:") ? "  max_step_rad: 0.002" : line]
        }
        let changed = try json(try runSinew(["replay", file, "--robot", tighter, "--json"]).stdout)
        let divergent = try #require(changed["first_divergent_tick"] as? Int, "\(changed)")
        #expect(divergent >= 0 && divergent < ticks)
        let worst = (changed["max_command_difference_rad"] as? [String: Double] ?? [:]).values.max() ?? 0
        #expect(worst > 0.01, "\(changed)")

        // The simulator driven by the recorded commands follows the recorded motion.
        let twin = try json(try runSinew(["replay", file, "--backend", "sim", "--json"]).stdout)
        #expect((twin["ticks"] as? Int ?? 0) > ticks - 5)
        for (joint, rms) in twin["position_rms_difference_rad"] as? [String: Double] ?? ["none": 1] {
            #expect(rms < 0.01, "\(joint): \(rms) rad RMS")
        }
        if check.status == 0 { try? FileManager.default.removeItem(atPath: folder) }
    }

    /// `recording.profile: ros2`: the joint states are sensor_msgs/msg/JointState in CDR, which mcap-ros2-support
    /// decodes; the rest reads as before, and the replay reads the CDR back.
    @Test func theROS2ProfileWritesJointStatesThatROSToolsDecode() throws {
        let python = try testPython(importing: ["mcap", "mcap_ros2", "pymcap_cli"])
        let folder = temporaryFolder("recording-ros2")
        let file = folder + "/run.mcap"
        let robot = try robotYAML(in: folder) { line in
            if line.hasPrefix("  enabled: false") { return ["  enabled: true"] }
            if line.hasPrefix("  path: recordings/") { return ["  path: \(file)"] }
            if line.hasPrefix("  profile: json") { return ["  profile: ros2"] }
            return [line]
        }
        let run = try runSinew(["run", robot, "--fast", "--duration", "1", "--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(2000))")
        let ticks = try #require(try json(run.stdout)["ticks"] as? Int)
        let info = try json(try runSinew(["recording", "info", file, "--json"]).stdout)
        #expect(info["profile"] as? String == "ros2")
        let encodings = (info["channels"] as? [[String: Any]] ?? []).filter {
            $0["topic"] as? String == "/joint_states"
        }
        .compactMap { $0["encoding"] as? String }
        #expect(encodings == ["cdr"])
        _ = try runSinew(["recording", "export", file, "--csv", folder + "/csv"])
        let check = runProcess(
            python, [repositoryRoot + "/Tests/python/recording_check.py", file, robot, folder + "/csv/run.csv"])
        #expect(check.status == 0 && check.output.contains("\(ticks) ticks checked: 0 problems"), "\(check.output)")
        let doctor = try doctorFindings(file, python: python)
        #expect(doctor.errors == 0, "\(doctor.output.suffix(3000))")
        let replay = try json(try runSinew(["replay", file, "--json"]).stdout)
        #expect(replay["first_divergent_tick"] is NSNull, "\(replay)")
        if check.status == 0 { try? FileManager.default.removeItem(atPath: folder) }
    }

    /// SIGINT and SIGTERM end the run through its safe state and close the file properly: summary, footer, whole.
    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalledRunClosesItsRecording(signal: Int32) throws {
        let folder = temporaryFolder("recording-signal")
        let file = folder + "/signalled.mcap"
        let process = sinewProcess(["run", try robotYAML(in: folder), "--duration", "60", "--record", file])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int ?? 0 < 50_000
        {
            usleep(50_000)
        }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + signal)
        let info = try json(try runSinew(["recording", "info", file, "--json"]).stdout)
        #expect(info["complete"] as? Bool == true, "\(info)")
        #expect((info["ticks"] as? Int ?? 0) > 0)
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// SIGKILL in the middle of a real-time run: the file has no end; `recording repair` gives back every closed
    /// chunk, and the ticks lost are at most the last second's.
    @Test func aKilledRunLosesAtMostOneSecondAfterRepair() throws {
        let python = try testPython(importing: ["mcap", "pymcap_cli"])
        let folder = temporaryFolder("recording-kill")
        let file = folder + "/killed.mcap"
        let robot = try robotYAML(in: folder)
        let process = sinewProcess(["run", robot, "--duration", "60", "--record", file])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Until the run has recorded for a while (a few chunks closed), then kill it outright.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int ?? 0
            if size > 200_000 { break }
            usleep(50_000)
        }
        usleep(700_000)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let killedAtNs = Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)

        let before = try json(try runSinew(["recording", "info", file, "--json"]).stdout)
        #expect(before["complete"] as? Bool == false, "\(before)")
        let repair = try runSinew(["recording", "repair", file])
        #expect(repair.status == 0 && repair.stdout.contains("repaired"), "\(repair.stdout) \(repair.stderr)")
        let after = try json(try runSinew(["recording", "info", file, "--json"]).stdout)
        #expect(after["complete"] as? Bool == true, "\(after)")
        let lastTickNs = try #require(after["last_tick_time_ns"] as? Int)
        let lostS = Double(killedAtNs - lastTickNs) * 1e-9
        #expect(lostS >= 0 && lostS <= 1.0, "lost \(lostS) s of ticks")
        #expect((after["ticks"] as? Int ?? 0) > 500, "\(after)")
        let doctor = try doctorFindings(file, python: python)
        #expect(doctor.errors == 0, "\(doctor.output.suffix(3000))")
        // The repaired file replays as far as it goes.
        let replay = try json(try runSinew(["replay", file, "--json"]).stdout)
        #expect(replay["first_divergent_tick"] is NSNull, "\(replay)")
        print("killed run: \(after["ticks"] ?? 0) ticks kept, \(String(format: "%.3f", lostS)) s lost")
        try? FileManager.default.removeItem(atPath: folder)
    }
}
