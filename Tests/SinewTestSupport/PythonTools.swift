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

/// The Python of the virtual environment `venv` (`<repo>/.build/pyenv`, made by `make pyenv`) with
/// pymavlink, creating the environment and installing pymavlink from PyPI when missing (bounded to two
/// minutes). Returns nil and records an issue saying why when that is impossible: a cross-check against
/// pymavlink must fail loudly rather than pass without running.
public func pythonWithPymavlink(venv: String) -> String? {
    let python = venv + "/bin/python"
    if FileManager.default.isExecutableFile(atPath: python), runProcess(python, ["-c", "import pymavlink"]).status == 0
    {
        return python
    }
    let create = runProcess("/usr/bin/env", ["python3", "-m", "venv", venv])
    guard create.status == 0 else {
        Issue.record("cannot create \(venv) (python3 -m venv failed, status \(create.status)):\n\(create.output)")
        return nil
    }
    let install = runProcess(
        "/usr/bin/env",
        [
            "timeout", "120", venv + "/bin/pip", "install", "--quiet", "--disable-pip-version-check", "--timeout", "20",
            "pymavlink",
        ])
    guard install.status == 0, runProcess(python, ["-c", "import pymavlink"]).status == 0 else {
        let reason =
            "cannot install pymavlink from PyPI into \(venv) (status \(install.status)); the MAVLink cross-check "
            + "needs it. Output:\n\(install.output)"
        Issue.record(Comment(rawValue: reason))
        return nil
    }
    return python
}
