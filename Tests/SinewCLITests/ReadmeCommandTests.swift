import Foundation
import SinewTestSupport
import Testing

/// The commands of the README's "Where to go next", run as written (durations shortened), so the README
/// cannot drift from what the tool does.
@Suite(.serialized) struct ReadmeCommandTests {
    /// The command lines of the fenced code blocks in the README section headed `heading`, comments dropped
    /// and `\`-continued lines joined.
    static func commands(inSection heading: String, of readme: String) -> [String] {
        var inSection = false
        var inBlock = false
        var commands: [String] = []
        var pending = ""
        for rawLine in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(rawLine)
            if line.hasPrefix("## ") {
                inSection = line == heading
                continue
            }
            guard inSection else { continue }
            if line.hasPrefix("```") {
                inBlock.toggle()
                continue
            }
            guard inBlock else { continue }
            // A comment starts at two spaces and a `#` (the commands themselves hold no `#`).
            var command = line.range(of: "  #").map { String(line[..<$0.lowerBound]) } ?? line
            command = command.trimmingCharacters(in: .whitespaces)
            if command.hasSuffix("\\") {
                pending += command.dropLast().trimmingCharacters(in: .whitespaces) + " "
                continue
            }
            command = pending + command
            pending = ""
            if !command.isEmpty { commands.append(command) }
        }
        return commands
    }

    /// `command` as the test runs it: this build's `sinew`, runs of at most a second, short bus and policy
    /// benchmarks, and the README's files in /tmp (the virtual bus's link, the calibration) in `scratch` instead,
    /// so that nothing else on the machine using those paths disturbs the test, nor the test it.
    static func shortened(_ command: String, scratch: String = "/tmp") -> String {
        var words = command.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        for (i, word) in words.enumerated() where word.hasPrefix("/tmp/") {
            words[i] = scratch + "/" + word.dropFirst("/tmp/".count)
        }
        for (i, word) in words.enumerated() where word == ".build/release/sinew" { words[i] = sinewExecutable }
        for i in words.indices.dropLast() where words[i] == "--duration" {
            if let seconds = Double(words[i + 1]), seconds > 1 { words[i + 1] = "1" }
        }
        if words.contains("bench") && words.contains("bus") { words += ["--seconds", "0.5"] }
        if words.contains("bench") && words.contains("policy") { words += ["--ticks", "10000"] }
        return words.joined(separator: " ")
    }

    /// Runs `command` through `sh` in the checkout, killed after `seconds`.
    static func runShell(_ command: String, seconds: Int) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=5", String(seconds), "/bin/sh", "-c", command]
        process.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot)
        process.environment = sinewChildEnvironment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return (-1, "could not start /bin/sh: \(error)")
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func everyWhereToGoNextCommandWorksAsWritten() throws {
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        let commands = Self.commands(inSection: "## Where to go next", of: readme)
        try #require(commands.count >= 10, "README's \"Where to go next\" block not found: \(commands)")
        // Servers (the virtual bus) run in the background for the commands after them, and end with the test.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-readme-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        var servers: [SinewChild] = []
        defer {
            // SIGTERM first: a server that exits normally removes its link.
            for server in servers {
                server.signal(SIGTERM)
                server.wait(within: 5)
                server.kill()
            }
            try? FileManager.default.removeItem(atPath: scratch)
        }
        for command in commands {
            #expect(command.contains(".build/release/sinew "), "not a sinew command: \(command)")
            let run = Self.shortened(command, scratch: scratch)
            if command.contains(" virtual-bus ") {
                let arguments = Array(run.split(separator: " ").map(String.init).dropFirst())
                let server = try SinewChild(arguments)
                servers.append(server)
                let first = server.firstLine(within: 20)
                #expect(first?.hasPrefix("/dev/pts/") == true, "\(command): \(server.stderr)")
                continue
            }
            let started = Date()
            let result = Self.runShell(run, seconds: 180)
            let seconds = Date().timeIntervalSince(started)
            print(String(format: "README: %@ (%.1f s, exit %d)", command, seconds, result.status))
            // A real-time run on a machine busy with the other tests may end in the safe state (exit 2) after the
            // machine stalled its loop thread; its summary measures the stall (the latest wake-up, the longest
            // tick). That is the machine, not the README; a safe state without such a stall fails.
            let stallS = Self.measuredStallS(summary: result.output)
            let timingSafe = result.status == 2 && command.contains(" run ") && stallS > machineStallS
            if timingSafe {
                print(
                    "README: \(command) ended in the safe state after its loop thread stalled \(Int(stallS * 1000)) ms")
            }
            #expect(
                result.status == 0 || timingSafe, "README command failed: \(command)\nran: \(run)\n\(result.output)")
        }
    }

    /// The longest stall of the loop thread a `sinew run` summary reports (s): its wake-up lateness maximum or
    /// its longest tick, 0 when it reports neither.
    /// The README promises that docs/run-json.md explains every key `sinew run --json` prints: a run with a
    /// safety event and the IMU (lockstep), and a run that fails before activation, each key checked against
    /// the document (`policy` and `final_positions_rad` once appeared without a line there).
    @Test func everyKeyOfRunJSONIsDocumented() throws {
        let document = try String(contentsOfFile: repositoryRoot + "/docs/run-json.md", encoding: .utf8)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-json-keys-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stopFile = dir + "/STOP"
        var yaml = try String(contentsOfFile: repositoryRoot + "/Hardware/robots/so101/robot.yaml", encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        yaml = yaml.replacingOccurrences(of: "file: /tmp/sinew-so101.estop", with: "file: \(stopFile)")
        // A workspace box the arm starts outside of: a safety event in the first ticks.
        yaml = yaml.replacingOccurrences(of: "min: [-0.2, -0.45, 0.0]", with: "min: [-0.2, -0.45, 0.5]")
        try #require(yaml.contains("file: \(stopFile)") && yaml.contains("min: [-0.2, -0.45, 0.5]"))
        let robot = dir + "/robot.yaml"
        try yaml.write(toFile: robot, atomically: true, encoding: .utf8)

        let ran = try runSinew(["run", robot, "--fast", "--duration", "0.5", "--json"])
        let report = try #require(jsonObject(ran.stdout), "\(ran.stdout)\n\(ran.stderr)")
        let events = try #require(report["safety_events"] as? [[String: Any]])
        try #require(!events.isEmpty, "the workspace box should have fired: \(ran.stderr)")
        let buses = try #require(report["bus"] as? [String: [String: Any]])
        let imu = try #require(report["imu"] as? [String: Any], "\(report)")
        var keys = Array(report.keys) + events.flatMap(\.keys) + buses.values.flatMap(\.keys) + imu.keys

        // The e-stop file exists: refused before activation, one object all the same.
        #expect(FileManager.default.createFile(atPath: stopFile, contents: nil))
        let failed = try runSinew(["run", robot, "--fast", "--duration", "0.5", "--json"])
        #expect(failed.status == 1, "\(failed.stderr)")
        let failure = try #require(jsonObject(failed.stdout), "\(failed.stdout)\n\(failed.stderr)")
        keys += failure.keys
        for key in Set(keys).sorted() {
            #expect(document.contains("`\(key)`"), "docs/run-json.md does not explain the key \(key)")
        }
    }

    static func measuredStallS(summary: String) -> Double {
        func figure(after label: String) -> Double {
            guard let range = summary.range(of: label) else { return 0 }
            return Double(summary[range.upperBound...].prefix { $0.isNumber || $0 == "." }) ?? 0
        }
        return max(figure(after: "µs, max "), figure(after: "longest tick ")) / 1e6
    }

    @Test func theStallIsReadFromARunSummary() {
        let summary = """
            so101 (sim): 2500 ticks in 5.0 s, 500.0 Hz (target 500), 3 overruns
              wake-up lateness p50 12.0 µs, p99 80.5 µs, max 7250.0 µs; tick compute p99 30.1 µs; longest tick 9100.5 µs
            """
        #expect(abs(Self.measuredStallS(summary: summary) - 0.0091005) < 1e-9)
        #expect(Self.measuredStallS(summary: "no figures") == 0)
    }

    @Test func theSectionParserJoinsContinuationsAndDropsComments() {
        let text = """
            ## Where to go next

            ```
            .build/release/sinew demo   # a comment
            .build/release/sinew virtual-bus --ids 1-6 \\
                --fault drop=0.01
            ```
            ## Next
            ```
            .build/release/sinew other
            ```
            """
        #expect(
            Self.commands(inSection: "## Where to go next", of: text) == [
                ".build/release/sinew demo", ".build/release/sinew virtual-bus --ids 1-6 --fault drop=0.01",
            ])
        #expect(Self.shortened(".build/release/sinew run x --duration 60").hasSuffix("run x --duration 1"))
        #expect(Self.shortened("sinew scan --port /tmp/so101", scratch: "/s") == "sinew scan --port /s/so101")
        #expect(Self.shortened("sinew bench policy") == "sinew bench policy --ticks 10000")
    }
}
