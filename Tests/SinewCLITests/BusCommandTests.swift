import Foundation
import SinewTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A `sinew` child whose output goes to files (never a pipe that could fill up), so a test can read what it
/// printed while it runs, stop it with a signal, and be sure it is gone afterwards.
final class SinewChild {
    let process: Process
    let outPath: String
    let errPath: String

    init(_ arguments: [String]) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-child-\(UUID().uuidString)")
            .path
        outPath = base + ".out"
        errPath = base + ".err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process = sinewProcess(arguments)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }

    var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// The first complete line of standard output, waiting up to `seconds` for it.
    func firstLine(within seconds: Double) -> String? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            let text = stdout
            if let newline = text.firstIndex(of: "\n") { return String(text[..<newline]) }
            if !process.isRunning { return nil }
            usleep(20_000)
        }
        return nil
    }

    /// Waits up to `seconds` for the process to end; true if it did.
    @discardableResult
    func wait(within seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { return false }
        process.waitUntilExit()
        return true
    }

    func signal(_ number: Int32) { Glibc.kill(process.processIdentifier, number) }

    /// SIGKILL if still running, then reap.
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Runs `sinew` to completion, killing it (and failing) after `seconds`.
func runSinew(_ arguments: [String], within seconds: Double) throws -> CommandResult {
    let child = try SinewChild(arguments)
    let finished = child.wait(within: seconds)
    #expect(finished, "sinew \(arguments.joined(separator: " ")) did not finish within \(seconds) s")
    child.kill()
    return CommandResult(status: child.process.terminationStatus, stdout: child.stdout, stderr: child.stderr)
}

private func jsonArray(_ text: String) -> [[String: Any]]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]
}

@Suite("sinew virtual-bus and sinew scan")
struct VirtualBusCommandTests {
    @Test func feetechVirtualBusIsFoundByScanAndStopsOnSIGTERM() throws {
        let link = NSTemporaryDirectory() + "sinew-cli-test-bus-\(getpid())-\(UUID().uuidString.prefix(8))"
        let bus = try SinewChild([
            "virtual-bus", "--protocol", "feetech", "--model", "sts3215", "--ids", "1-6", "--link", link,
        ])
        defer { bus.kill() }
        let path = try #require(bus.firstLine(within: 120), "no pty path printed; stderr: \(bus.stderr)")
        #expect(path.hasPrefix("/dev/pts/"))
        #expect(bus.stdout.contains("sts3215"))
        #expect(FileManager.default.fileExists(atPath: link))

        let scan = try runSinew(
            [
                "scan", "--port", path, "--protocol", "feetech", "--baud", "1000000", "--ids", "1-6", "--json",
                "--margin-ms", "200",
            ],
            within: 120)
        #expect(scan.status == 0, "\(scan.stderr)")
        let servos = try #require(jsonArray(scan.stdout), "not a JSON array: \(scan.stdout)")
        #expect(servos.compactMap { $0["id"] as? Int } == [1, 2, 3, 4, 5, 6])
        for servo in servos {
            #expect(servo["model"] as? String == "sts3215")
            #expect(servo["model_number"] as? Int == 777)
            #expect(servo["protocol"] as? String == "feetech")
            #expect(servo["baud"] as? Int == 1_000_000)
            #expect(servo["firmware"] is Int)
        }
        #expect(scan.stderr.contains("scanning"), "progress goes to standard error")

        // The link works like the pty itself.
        let viaLink = try runSinew(
            [
                "scan", "--port", link, "--protocol", "feetech", "--baud", "1000000", "--ids", "1-6", "--json",
                "--margin-ms", "200",
            ],
            within: 120)
        #expect(jsonArray(viaLink.stdout)?.count == 6)

        bus.signal(SIGTERM)
        #expect(bus.wait(within: 60), "virtual-bus did not stop on SIGTERM")
        #expect(bus.process.terminationReason == .exit)
        #expect(bus.process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: link), "the link is removed on exit")
    }

    @Test func dynamixelVirtualBusWithAnIDListAndSIGINT() throws {
        let bus = try SinewChild([
            "virtual-bus", "--protocol", "dynamixel", "--model", "xl330-m288", "--ids", "1,3,5", "--wire-timing", "off",
        ])
        defer { bus.kill() }
        let path = try #require(bus.firstLine(within: 120), "no pty path printed; stderr: \(bus.stderr)")
        let scan = try runSinew(
            [
                "scan", "--port", path, "--protocol", "dynamixel", "--baud", "1000000", "--ids", "0-6", "--margin-ms",
                "200",
            ],
            within: 120)
        #expect(scan.status == 0, "\(scan.stderr)")
        let rows = scan.stdout.split(separator: "\n").filter { $0.contains("xl330-m288") }
        #expect(rows.count == 3, "\(scan.stdout)")
        #expect(scan.stdout.contains("3 servos found"))
        let json = try runSinew(
            [
                "scan", "--port", path, "--protocol", "all", "--baud", "1000000", "--ids", "1-5", "--json",
                "--margin-ms",
                "200",
            ], within: 120)
        let servos = try #require(jsonArray(json.stdout), "not a JSON array: \(json.stdout)")
        #expect(servos.compactMap { $0["id"] as? Int } == [1, 3, 5])
        #expect(servos.allSatisfy { $0["model_number"] as? Int == 1200 && $0["protocol"] as? String == "dynamixel" })

        bus.signal(SIGINT)
        #expect(bus.wait(within: 60), "virtual-bus did not stop on SIGINT")
        #expect(bus.process.terminationReason == .exit)
        #expect(bus.process.terminationStatus == 0)
    }

    @Test func faultsAreInjected() throws {
        let bus = try SinewChild([
            "virtual-bus", "--model", "xm430-w350", "--ids", "1-4", "--fault", "silent=3,corrupt=0",
        ])
        defer { bus.kill() }
        let path = try #require(bus.firstLine(within: 120), "no pty path printed; stderr: \(bus.stderr)")
        #expect(bus.stdout.contains("silent=3"), "the description names the faults")
        let scan = try runSinew(
            [
                "scan", "--port", path, "--protocol", "dynamixel", "--baud", "1000000", "--ids", "1-4", "--json",
                "--margin-ms", "200",
            ], within: 120)
        let servos = try #require(jsonArray(scan.stdout), "not a JSON array: \(scan.stdout)")
        #expect(servos.compactMap { $0["id"] as? Int } == [1, 2, 4])
        #expect(servos.allSatisfy { $0["model"] as? String == "xm430-w350" })
        bus.signal(SIGTERM)
        #expect(bus.wait(within: 60))
        #expect(bus.process.terminationStatus == 0)
    }

    @Test func scanWithoutAPortListsTheSystemsPorts() throws {
        // One probe per port and protocol: quick whatever serial ports this machine has.
        let result = try runSinew(
            ["scan", "--protocol", "feetech", "--baud", "1000000", "--ids", "1", "--json"], within: 300)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(jsonArray(result.stdout) != nil, "stdout stays one JSON array: \(result.stdout)")
        #expect(result.stderr.contains("Serial ports:") || result.stderr.contains("No serial ports found"))
    }

    @Test(arguments: [
        (["--protocol", "feetech", "--model", "xl330-m288"], "dynamixel servo"),
        (["--model", "sts9999"], "unknown servo model"),
        (["--model", "sts3215", "--ids", "1-300"], "invalid servo ID list"),
        (["--model", "sts3215", "--ids", "3,3"], "twice"),
        (["--model", "xl330-m288", "--baud", "4500000"], "does not support 4500000"),
        (["--model", "sts3215", "--fault", "corrupt=2"], "invalid fault"),
        (["--model", "sts3215", "--fault", "overload=3"], "ID@SECONDS"),
        (["--model", "sts3215", "--protocol", "canopen"], "unknown protocol"),
        (["--model", "sts3215", "--wire-timing", "maybe"], "wire-timing"),
    ])
    func virtualBusRejectsBadArguments(arguments: [String], message: String) throws {
        let result = try runSinew(["virtual-bus"] + arguments, within: 120)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test(arguments: [
        (["--protocol", "canopen"], "unknown protocol"),
        (["--baud", "fast"], "invalid baud rate"),
        (["--ids", "6-1"], "invalid servo ID list"),
        (["--margin-ms", "-1"], "--margin-ms"),
        (["--port", "/nonexistent/sinew-port", "--baud", "1000000", "--ids", "1"], "cannot open"),
    ])
    func scanRejectsBadArguments(arguments: [String], message: String) throws {
        let result = try runSinew(["scan"] + arguments, within: 120)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
    }

    @Test func helpExplainsUnitsDefaultsAndExamples() throws {
        for command in [["virtual-bus"], ["scan"], ["bench", "bus"]] {
            let result = try runSinew(command + ["--help"], within: 120)
            #expect(result.status == 0)
            #expect(result.stdout.contains("Example"), "\(command)")
            #expect(result.stdout.contains("default"), "\(command)")
        }
    }
}

@Suite("sinew bench bus")
struct BusBenchCommandTests {
    static let keys = [
        "stack_ns_per_cycle", "sinew_cycles_per_s", "python_sdk_cycles_per_s", "floor_cycles_per_s",
        "wire_emulated_cycles_per_s", "wire_limit_cycles_per_s",
    ]

    @Test(arguments: ["dynamixel", "feetech"])
    func jsonHasEveryKey(busProtocol: String) throws {
        let result = try runSinew(
            [
                "bench", "bus", "--protocol", busProtocol, "--servos", "3", "--seconds", "0.25", "--json",
                // Tests run beside others: no SCHED_FIFO busy-polling SDK taking a core from them.
                "--real-time", "off",
            ], within: 300)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(jsonObject(result.stdout), "not a JSON object: \(result.stdout)")
        for key in Self.keys where key != "python_sdk_cycles_per_s" {
            let value = (object[key] as? NSNumber)?.doubleValue
            #expect(value != nil && value! > 0, "\(key) = \(String(describing: object[key]))")
        }
        // Null (with a note saying how to install it) when the SDK is missing, a rate when it is there.
        #expect(object.keys.contains("python_sdk_cycles_per_s"))
        // `make test` installs the SDKs into .build/pyenv (and may name that Python in SINEW_PYTHON).
        let python =
            ProcessInfo.processInfo.environment["SINEW_PYTHON"] ?? (repositoryRoot + "/.build/pyenv/bin/python")
        if FileManager.default.isExecutableFile(atPath: python) {
            #expect(object["python_sdk_cycles_per_s"] is NSNumber, "\(String(describing: object["python_sdk_note"]))")
        }
        if object["python_sdk_cycles_per_s"] is NSNull {
            #expect((object["python_sdk_note"] as? String)?.isEmpty == false)
        } else {
            #expect(((object["python_sdk_cycles_per_s"] as? NSNumber)?.doubleValue ?? 0) > 0)
        }
        #expect(object["servos"] as? Int == 3)
        #expect(object["protocol"] as? String == busProtocol)
    }

    @Test func rejectsBadServoCount() throws {
        let result = try runSinew(["bench", "bus", "--servos", "0"], within: 120)
        #expect(result.status != 0)
        #expect(result.stderr.contains("--servos"))
    }
}
