import Foundation
import SinewTestSupport
import Testing

/// The keyboard e-stop, pressed as a person would: `sinew run` in a terminal (tmux, on a server of the
/// test's own), a key sent to that terminal, the run's JSON read afterwards.
@Suite(.serialized) struct TerminalKeysTests {
    static let tmux = "/usr/bin/tmux"

    @Test func theEKeyStopsAndTheRKeyRecoversInTheRunsTerminal() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.tmux),
            "tmux is needed for this test (`make deps` installs it: apt-get install tmux)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-keys-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = "sinew-test-\(getpid())"
        let robot = repositoryRoot + "/Hardware/robots/so101/robot.yaml"
        // Standard input stays the terminal (the keys); the JSON and the log go to files. `stty -a` afterwards
        // shows whether the run gave the terminal its line mode and echo back.
        let script =
            "'\(sinewExecutable)' run '\(robot)' --duration 4 --json "
            + "> '\(dir)/run.json' 2> '\(dir)/run.err'; echo $? > '\(dir)/status'; stty -a > '\(dir)/stty'"
        // The tmux server lives on after its client returns and keeps every descriptor it inherited, among them
        // the one through which Foundation learns that a child ended (and the other tests' pipes): Python starts
        // the client with every descriptor above standard error closed.
        let launcher =
            "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:], close_fds=True, "
            + "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL).returncode)"
        let start = runProcess(
            "/usr/bin/env",
            [
                "python3", "-c", launcher, Self.tmux, "-L", socket, "new-session", "-d", "-s", "keys", "-x", "160",
                "-y",
                "40", script,
            ])
        try #require(start.status == 0, "tmux did not start: \(start.output)")
        defer { _ = runProcess(Self.tmux, ["-L", socket, "kill-server"]) }

        func waitFor(_ file: String, containing text: String, seconds: Double) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if let content = try? String(contentsOfFile: dir + "/" + file, encoding: .utf8), content.contains(text)
                {
                    return true
                }
                usleep(50_000)
            }
            return false
        }
        let running = waitFor("run.err", containing: "real time:", seconds: 30)
        try #require(
            running, "the run did not start: \((try? String(contentsOfFile: dir + "/run.err", encoding: .utf8)) ?? "")")
        let keys = runProcess(Self.tmux, ["-L", socket, "send-keys", "-t", "keys", "e"])
        #expect(keys.status == 0, "\(keys.output)")
        // Then `r`: recovery without a restart (the keyboard e-stop asserts nothing once pressed).
        usleep(600_000)
        let recover = runProcess(Self.tmux, ["-L", socket, "send-keys", "-t", "keys", "r"])
        #expect(recover.status == 0, "\(recover.output)")
        try #require(waitFor("stty", containing: "speed", seconds: 30), "the run did not end")

        let status = try String(contentsOfFile: dir + "/status", encoding: .utf8)

        let report = try #require(jsonObject(try String(contentsOfFile: dir + "/run.json", encoding: .utf8)))
        #expect(report["recoveries"] as? Int == 1, "\(report)")
        // Active again to its end (2 only if the busy machine made it overrun into the safe state afterwards).
        #expect(Int32(status.trimmingCharacters(in: .whitespacesAndNewlines)) == expectedRunStatus(report))
        let events = report["safety_events"] as? [[String: Any]] ?? []
        let estop = events.first { $0["cause"] as? String == "emergencyStop" }
        #expect(estop?["detail"] as? String == "keyboard", "\(events)")
        // The terminal has its line editing and echo again.
        let stty = try String(contentsOfFile: dir + "/stty", encoding: .utf8)
        #expect(stty.contains(" icanon") && stty.contains(" echo ") && !stty.contains("-icanon"), "\(stty)")
    }
}
