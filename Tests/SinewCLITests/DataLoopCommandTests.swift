import Foundation
import SinewTestSupport
import Testing

/// `sinew sim eval`, `sinew record` and `sinew dataset export` as a user runs them on the simulated SO-101.
@Suite struct DataLoopCommandTests {
    let robot = repositoryRoot + "/Hardware/robots/so101/robot.yaml"
    let reach = repositoryRoot + "/Hardware/robots/so101/tasks/reach.yaml"
    let tracking = repositoryRoot + "/Hardware/robots/so101/tasks/trajectory_tracking.yaml"

    func scratch(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-\(name)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
        ).path
    }

    /// The JSON report's keys, and the episodes themselves (their trace hashes) the same whatever the number of
    /// worker processes.
    @Test func evalReportsAndDoesNotDependOnJobs() throws {
        var reports: [[String: Any]] = []
        for jobs in [1, 2] {
            let result = try runSinew([
                "sim", "eval", robot, "--task", reach, "--policy", "cartesian", "--episodes", "6", "--seed", "40",
                "--jobs", "\(jobs)", "--randomize", "--json", "--per-episode",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            reports.append(try #require(jsonObject(result.stdout), "\(result.stdout)"))
        }
        let report = reports[0]
        for key in [
            "success_rate", "ci95", "episodes", "episodes_per_s", "real_time_factor", "time_to_success_s",
            "safety", "outcomes", "tracking_rms_rad", "task_final_error",
        ] {
            #expect(report[key] != nil, "no \(key)")
        }
        #expect(report["episodes"] as? Int == 6)
        #expect(report["success_rate"] as? Double == 1)
        let ci = try #require(report["ci95"] as? [Double])
        #expect(ci.count == 2 && ci[0] > 0.5 && ci[1] == 1)
        #expect((report["real_time_factor"] as? Double ?? 0) > 1)
        func hashes(_ report: [String: Any]) -> [String] {
            (report["results"] as? [[String: Any]] ?? []).compactMap { $0["trace_hash"] as? String }
        }
        #expect(hashes(reports[0]).count == 6)
        #expect(hashes(reports[0]) == hashes(reports[1]))
        #expect(reports[1]["jobs"] as? Int == 2)
    }

    @Test func evalSaysWhatIsWrong() throws {
        let badTask = scratch("task") + ".yaml"
        try "type: reach\nframe: gripper_frame_link\ntarget_box: {min: [0.2, 0, 0.1], max: [0.25, 0, 0.1]}\nhold: 1\n"
            .write(toFile: badTask, atomically: true, encoding: .utf8)
        defer { unlink(badTask) }
        let task = try runSinew(["sim", "eval", robot, "--task", badTask, "--episodes", "1"])
        #expect(task.status != 0)
        #expect(task.stderr.contains("\(badTask):4:1") && task.stderr.contains("hold_s"), "\(task.stderr)")
        let range = try runSinew(["sim", "eval", robot, "--task", reach, "--range", "packet_los=0:0.1"])
        #expect(range.status != 0 && range.stderr.contains("did you mean packet_loss"), "\(range.stderr)")
        let policy = try runSinew([
            "sim", "eval", robot, "--task", tracking, "--policy", "cartesian", "--episodes", "1",
        ])
        #expect(policy.status == 1 && policy.stderr.contains("cannot take its goal"), "\(policy.stderr)")
        let unknown = try runSinew(["sim", "eval", robot, "--task", reach, "--policy", "cartesain"])
        #expect(unknown.status != 0 && unknown.stderr.contains("not a policy type"), "\(unknown.stderr)")
    }

    /// `sinew record` writes a dataset the v3.0 checker accepts; the episodes it recorded to MCAP, exported with
    /// `sinew dataset export`, give the same dataset, value for value (the task's observation rebuilt from the
    /// attached task file and seed).
    @Test func recordAndExportAgree() throws {
        let python = try testPython(importing: ["pyarrow", "numpy"])
        let root = scratch("record")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let recorded = try runSinew([
            "record", robot, "--task", tracking, "--policy", "trajectory", "--episodes", "2", "--seed", "8",
            "--dataset", root + "/recorded", "--mcap", root + "/mcap", "--python", python, "--json",
        ])
        try #require(recorded.status == 0, "\(recorded.stderr)")
        let report = try #require(jsonObject(recorded.stdout))
        #expect(report["episodes"] as? Int == 2)
        #expect(report["seeds"] as? [Int] == [8, 9])
        let exported = try runSinew([
            "dataset", "export", root + "/mcap/episode-8.mcap", root + "/mcap/episode-9.mcap", "--dataset",
            root + "/exported", "--python", python,
        ])
        try #require(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stdout.contains("with the task's observation"))
        let check = try runSinew(["dataset", "check", root + "/exported", "--python", python])
        #expect(check.status == 0 && check.stdout.contains("valid LeRobotDataset v3.0"), "\(check.stdout)")
        let dumps = try ["recorded", "exported"].map { name in
            let result = runProcess(
                "/usr/bin/env",
                ["PYTHONPATH=\(repositoryRoot)/python", python, "-m", "sinew_dataset", "dump", "\(root)/\(name)"])
            try #require(result.status == 0, "\(result.output)")
            return try #require(jsonObject(result.output))
        }
        let frames = try dumps.map { try #require($0["frames"] as? [String: Any]) }
        for key in ["observation.state", "action", "observation.environment_state", "timestamp", "index"] {
            let a = try #require(frames[0][key] as? NSArray)
            let b = try #require(frames[1][key] as? NSArray)
            #expect(a.count > 100 && a == b, "\(key)")
        }
        // Teleoperation: the simulated leader (its motion file) drives the follower; the episode runs to its limit.
        let teleop = try runSinew([
            "record", robot, "--task", reach, "--leader", repositoryRoot + "/Hardware/robots/so101/leader.yaml",
            "--keep", "all", "--episodes", "1", "--dataset", root + "/teleop", "--python", python, "--json",
        ])
        #expect(teleop.status == 0, "\(teleop.stderr)")
        #expect(jsonObject(teleop.stdout)?["frames"] as? Int == 151, "\(teleop.stdout)")
        let missing = try runSinew(["dataset", "export", root + "/nothing.mcap", "--dataset", root + "/x"])
        #expect(missing.status != 0 && missing.stderr.contains("nothing.mcap"), "\(missing.stderr)")
    }
}
