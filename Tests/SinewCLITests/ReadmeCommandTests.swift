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
