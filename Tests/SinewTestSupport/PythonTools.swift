import Foundation
import Testing

/// Runs `executable` with `arguments`; returns its exit status and its combined standard output and error.
public func runProcess(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do {
        try process.run()
    } catch {
        return (-1, "could not start \(executable): \(error)")
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A Python the test environment provides: `$SINEW_PYTHON` (set by `make test`), else the checkout's
/// `.build/pyenv/bin/python`, made by `make pyenv` from `Tests/python/requirements.txt`. Nothing is installed
/// from inside a test: when that Python or one of `modules` is missing, this throws an error that says how to
/// make it, so a cross-check against a third-party client fails loudly instead of passing without running.
public func testPython(importing modules: [String]) throws -> String {
    let python = ProcessInfo.processInfo.environment["SINEW_PYTHON"] ?? (repositoryRoot + "/.build/pyenv/bin/python")
    guard FileManager.default.isExecutableFile(atPath: python) else {
        throw MissingTestPython(
            description: "no Python at \(python): run `make pyenv` (it installs Tests/python/requirements.txt "
                + "into .build/pyenv), or set SINEW_PYTHON")
    }
    let check = runProcess(python, ["-c", "import " + modules.joined(separator: ", ")])
    guard check.status == 0 else {
        throw MissingTestPython(
            description: "\(python) cannot import \(modules.joined(separator: ", ")): run `make pyenv` "
                + "(Tests/python/requirements.txt):\n\(check.output)")
    }
    return python
}

/// The test environment's Python or one of its packages is missing.
public struct MissingTestPython: Error, CustomStringConvertible {
    public var description: String
}

/// A fresh folder under the system's temporary folder.
public func temporaryFolder(_ name: String) -> String {
    var template = Array((NSTemporaryDirectory() + "/sinew-\(name)-XXXXXX").utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    return path
}

/// pymcap-cli's `doctor` (PyPI pymcap-cli: the Go `mcap doctor`'s checks of the specification, in Python) on a file:
/// its findings by severity, from its JSON-lines output.
public func doctorFindings(_ path: String, python: String) throws -> (errors: Int, warnings: Int, output: String) {
    let doctor = URL(fileURLWithPath: python).deletingLastPathComponent().appendingPathComponent("pymcap-cli").path
    let result = runProcess(doctor, ["doctor", "--format", "jsonl", path])
    var errors = -1
    var warnings = -1
    for line in result.output.split(separator: "\n") {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            object["type"] as? String == "summary"
        else { continue }
        errors = object["errors"] as? Int ?? -1
        warnings = object["warnings"] as? Int ?? -1
    }
    if errors == -1 { throw DoctorFailed(output: result.output) }
    #expect((result.status == 0) == (errors == 0), "doctor's exit status \(result.status) with \(errors) errors")
    return (errors, warnings, result.output)
}

/// The doctor did not run to its summary line.
public struct DoctorFailed: Error, CustomStringConvertible {
    public var output: String
    public var description: String { "pymcap-cli doctor gave no summary (is `make pyenv` done?):\n\(output)" }
}
