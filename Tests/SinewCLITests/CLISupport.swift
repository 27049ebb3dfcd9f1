import Foundation
import SinewTestSupport

/// Runs the `sinew` executable built beside the test bundle and captures what it prints.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The path of a file in Tests/Fixtures/kinematics (reference robots), or an error naming it when missing.
func kinematicsFixture(_ name: String) throws -> String { try fixture("kinematics/" + name) }

/// The `sinew` binary of the same build as this test bundle.
let sinewExecutable: String = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("sinew").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return repositoryRoot + "/.build/release/sinew"
}()

/// The environment of every `sinew` a test starts: the child ends when the test process does, even when the
/// test process crashes (`SINEW_EXIT_WITH_PARENT`, see Sources/sinew/ParentWatch.swift).
let sinewChildEnvironment = ProcessInfo.processInfo.environment.merging(["SINEW_EXIT_WITH_PARENT": "1"]) { $1 }

/// A `Process` for the `sinew` of this build, started with `sinewChildEnvironment`.
func sinewProcess(_ arguments: [String]) -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: sinewExecutable)
    process.arguments = arguments
    process.environment = sinewChildEnvironment
    return process
}

func runSinew(_ arguments: [String], input: String? = nil) throws -> CommandResult {
    let process = sinewProcess(arguments)
    let out = Pipe()
    let inPipe = Pipe()
    // Standard error goes to a file, so a chatty child can never block on a full pipe while we read stdout.
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-test-\(UUID().uuidString).err")
        .path
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inPipe.fileHandleForWriting.close()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try err.close()
    let errData = FileManager.default.contents(atPath: errPath) ?? Data()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

func jsonObject(_ text: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}

/// A loop thread off the CPU this long (s) was stalled by the machine: 2.5 periods at 500 Hz, beyond any bus
/// reply deadline of the shipped robots, never reached by a tick that ran.
let machineStallS = 0.005

/// The longest stall of the loop thread a `sinew run --json` or `sinew bench loop --json` report measured (s):
/// the latest wake-up or the longest tick, whichever is longer.
func measuredStallS(in report: [String: Any]) -> Double {
    max(report["wake_max_us"] as? Double ?? 0, report["tick_max_us"] as? Double ?? 0) / 1e6
}

/// The exit status `sinew run --json` owes the report it printed: 0 for a run that ended active, 2 for one
/// that ended in the safe state (whatever the cause: a loaded machine can make a real-time run overrun).
func expectedRunStatus(_ report: [String: Any]) -> Int32 { report["final_state"] as? String == "safe" ? 2 : 0 }

/// The causes of the safety events a `sinew run --json` report lists, in order.
func safetyCauses(in report: [String: Any]) -> [String] {
    (report["safety_events"] as? [[String: Any]] ?? []).compactMap { $0["cause"] as? String }
}

/// `sinew ARGUMENTS` (a real-time `run … --json` or `bench loop … --json`), repeated up to three times while
/// it ends in the safe state after a measured stall of its loop thread (``machineStallS``): on a machine busy
/// with the other tests that is the machine, not the behaviour under test. Each retry is printed with its
/// cause. A safe state without such a stall is returned at once, whatever its cause. Returns the last run and
/// its JSON report.
func runSinewRetryingMachineStalls(_ arguments: [String]) throws -> (
    result: CommandResult, report: [String: Any]?
) {
    var last: (result: CommandResult, report: [String: Any]?)!
    for attempt in 1...3 {
        let result = try runSinew(arguments)
        let report = jsonObject(result.stdout)
        last = (result, report)
        guard let report, report["final_state"] as? String == "safe", attempt < 3 else { break }
        let stallS = measuredStallS(in: report)
        guard stallS > machineStallS else { break }
        let causes =
            report["safety_events"] is [Any] ? "\(safetyCauses(in: report))" : "\(report["safety_events"] ?? 0) events"
        print(
            "sinew \(arguments.joined(separator: " ")): safe (\(causes)) after the loop thread stalled "
                + "\(Int(stallS * 1000)) ms; run again")
    }
    return last
}
