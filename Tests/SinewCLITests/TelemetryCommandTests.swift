import Foundation
import SinewTestSupport
import Testing

/// `sinew run --metrics/--dashboard` end to end: a scrape of the running simulated robot checked by Prometheus'
/// own `promtool check metrics`, and the dashboard driven in headless Chromium (Tests/python/dashboard_browser.py).
@Suite(.serialized) struct TelemetryCommandTests {
    /// A `sinew` started in the background with standard error in a file, so its lines can be read as it runs.
    final class RunningSinew {
        let process: Process
        let errPath: String
        let out = Pipe()
        var stdoutData = Data()

        init(_ arguments: [String]) throws {
            process = sinewProcess(arguments)
            errPath = temporaryFolder("telemetry-run") + "/stderr.txt"
            _ = FileManager.default.createFile(atPath: errPath, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
            process.standardOutput = out
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

        /// The port in the first line of standard error that starts with `prefix` + "http://127.0.0.1:".
        func port(after prefix: String, timeoutS: Double = 60) -> Int? {
            let deadline = Date().addingTimeInterval(timeoutS)
            while Date() < deadline, process.isRunning {
                for line in stderr.split(separator: "\n") where line.hasPrefix(prefix + "http://127.0.0.1:") {
                    let rest = line.dropFirst((prefix + "http://127.0.0.1:").count)
                    return Int(rest.prefix { $0.isNumber })
                }
                usleep(50_000)
            }
            return nil
        }

        /// Waits for the end; returns the exit status and the JSON report.
        func finish() -> (status: Int32, report: [String: Any]?) {
            stdoutData = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, jsonObject(String(decoding: stdoutData, as: UTF8.self)))
        }

        deinit { if process.isRunning { process.terminate() } }
    }

    static func tokenFile(_ token: String) throws -> String {
        let path = temporaryFolder("telemetry-token") + "/token"
        try (token + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func promtoolChecksAScrapeOfARunningRobot() throws {
        let promtool = "/usr/bin/promtool"
        guard FileManager.default.isExecutableFile(atPath: promtool) else {
            Issue.record("promtool is missing: `make deps` installs Debian's prometheus package")
            return
        }
        let token = "metrics-test-token-0123456789"
        let run = try RunningSinew([
            "run", repositoryRoot + "/Hardware/robots/so101/robot.yaml", "--duration", "4", "--json",
            "--metrics", "127.0.0.1:0", "--token-file", try Self.tokenFile(token),
        ])
        let port = try #require(run.port(after: "metrics: "), "no metrics line:\n\(run.stderr)")
        usleep(1_500_000)
        #expect(try httpRequest(port: port, target: "/metrics").status == 401)
        let scrape = try httpRequest(port: port, target: "/metrics", headers: ["Authorization": "Bearer \(token)"])
        #expect(scrape.status == 200)
        let file = temporaryFolder("scrape") + "/metrics.txt"
        try Data(scrape.body).write(to: URL(fileURLWithPath: file))
        let check = runProcess("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"])
        #expect(check.status == 0, "promtool check metrics:\n\(check.output)")
        #expect(check.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(check.output)")
        let text = scrape.text
        for name in [
            "sinew_ticks_total", "sinew_loop_rate_hertz", "sinew_wake_lateness_seconds_bucket",
            "sinew_stage_duration_seconds_bucket{stage=\"sense\"", "sinew_overruns_total",
            "sinew_bus_transactions_total{bus=\"arm\"}", "sinew_bus_timeouts_total{bus=\"arm\"}",
            "sinew_bus_retries_total{bus=\"arm\"}", "sinew_servo_temperature_celsius{bus=\"arm\",servo_id=\"1\"",
            "sinew_servo_voltage_volts{bus=\"arm\"", "sinew_servo_current_amperes{bus=\"arm\"",
            "sinew_servo_hardware_error_flags{bus=\"arm\"", "sinew_lifecycle_state{state=\"active\"} 1",
            "sinew_safety_events_total{cause=\"emergencyStop\"} 0", "sinew_recording_dropped_snapshots_total 0",
        ] {
            #expect(text.contains(name), "\(name) missing from the scrape")
        }
        let (status, report) = run.finish()
        #expect(status == 0 || report?["final_state"] as? String == "safe", "\(run.stderr)")
        #expect(report?["recording"] is NSNull)
    }

    @Test func dashboardInHeadlessChromium() throws {
        let chromium = "/usr/bin/chromium"
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            Issue.record("chromium is missing: `make deps` installs Debian's chromium package")
            return
        }
        let python = try testPython(importing: ["websockets"])
        let token = "dashboard-test-token-0123456789"
        let run = try RunningSinew([
            "run", repositoryRoot + "/Hardware/robots/so101/robot.yaml", "--duration", "16", "--json",
            "--dashboard", "127.0.0.1:0", "--token-file", try Self.tokenFile(token),
        ])
        let port = try #require(run.port(after: "dashboard: "), "no dashboard line:\n\(run.stderr)")
        let artefacts = repositoryRoot + "/.build/test-artefacts"
        try FileManager.default.createDirectory(atPath: artefacts, withIntermediateDirectories: true)
        let screenshot = artefacts + "/dashboard.png"
        let browser = runProcess(
            python,
            [
                repositoryRoot + "/Tests/python/dashboard_browser.py", "--port", "\(port)", "--token", token,
                "--chromium", chromium, "--screenshot", screenshot,
            ])
        print("dashboard_browser.py: \(browser.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        print("screenshot: \(screenshot)")
        let seen = jsonObject(browser.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(browser.status == 0, "\(browser.output)")
        #expect((seen?["failures"] as? [Any])?.isEmpty == true)
        #expect(FileManager.default.fileExists(atPath: screenshot))
        let (status, report) = run.finish()
        // The run's own account: the dashboard's e-stop was an event, the robot was recovered and ended active.
        let events = report?["safety_events"] as? [[String: Any]] ?? []
        #expect(
            events.contains { $0["cause"] as? String == "emergencyStop" && $0["detail"] as? String == "dashboard" },
            "\(report ?? [:])\n\(run.stderr)")
        #expect(report?["recoveries"] as? Int == 1)
        #expect(report?["final_state"] as? String == "active")
        #expect(status == 0)
    }
}
