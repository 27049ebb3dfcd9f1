import ArgumentParser
import Foundation
import SinewTwin

/// The Python helper that writes LeRobotDataset parquet files (`python -m sinew_dataset`, pyarrow): where its
/// package is, which interpreter runs it, and the call.
enum DatasetHelper {
    /// Sinew's Python folder: beside `Hardware/` in a checkout, `<prefix>/share/sinew/python` in an installation,
    /// or `$SINEW_PYTHON_DIR`.
    static func packageDirectory() throws -> String {
        if let dir = ProcessInfo.processInfo.environment["SINEW_PYTHON_DIR"], !dir.isEmpty { return dir }
        let hardware = try HardwareDirectory.locate()
        let directory = ((hardware as NSString).deletingLastPathComponent as NSString).appendingPathComponent("python")
        guard FileManager.default.fileExists(atPath: directory + "/sinew_dataset/__main__.py") else {
            throw CommandFailure(
                "cannot find Sinew's Python helper (sinew_dataset) in \(directory): reinstall with `make install`, "
                    + "or set SINEW_PYTHON_DIR to the python/ folder of a Sinew checkout")
        }
        return directory
    }

    /// The interpreter: `--python`, else `$SINEW_PYTHON`, else a checkout's `.build/pyenv/bin/python` (made by
    /// `make pyenv`), else `python3`.
    static func interpreter(_ given: String?) throws -> String {
        if let given { return given }
        if let python = ProcessInfo.processInfo.environment["SINEW_PYTHON"], !python.isEmpty { return python }
        let hardware = try HardwareDirectory.find()
        if hardware.source == "checkout" {
            let pyenv = ((hardware.path as NSString).deletingLastPathComponent as NSString)
                .appendingPathComponent(".build/pyenv/bin/python")
            if FileManager.default.isExecutableFile(atPath: pyenv) { return pyenv }
        }
        return "/usr/bin/env"
    }

    /// Runs `python -m sinew_dataset ARGUMENTS`; returns its standard output, or throws with its error output.
    static func run(_ arguments: [String], python given: String?) throws -> String {
        let python = try interpreter(given)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = (python == "/usr/bin/env" ? ["python3"] : []) + ["-m", "sinew_dataset"] + arguments
        var environment = ProcessInfo.processInfo.environment
        let directory = try packageDirectory()
        environment["PYTHONPATH"] = directory + (environment["PYTHONPATH"].map { ":" + $0 } ?? "")
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-dataset-\(getpid())-\(UUID().uuidString).err"
        ).path
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        do {
            try process.run()
        } catch {
            throw CommandFailure("cannot start \(python): \(error)")
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errors = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0 else {
            if errors.contains("No module named 'pyarrow'") || errors.contains("No module named 'numpy'") {
                throw CommandFailure(
                    "\(python) has no pyarrow/numpy, which the dataset writer needs: run `make pyenv` in the "
                        + "checkout (it installs Tests/python/requirements.txt into .build/pyenv), or give "
                        + "--python (or SINEW_PYTHON) a Python with pyarrow and numpy")
            }
            throw CommandFailure("the dataset writer (\(python) -m sinew_dataset) failed:\n\(errors)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes `spec` into the new directory `dataset` through the helper (which checks the result against the
    /// v3.0 layout before it returns).
    static func write(_ spec: LeRobotDatasetSpec, to dataset: String, python: String?) throws -> String {
        if FileManager.default.fileExists(atPath: dataset),
            !((try? FileManager.default.contentsOfDirectory(atPath: dataset))?.isEmpty ?? false)
        {
            throw ValidationError("--dataset \(dataset) exists and is not empty: give a new directory")
        }
        let input = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-episodes-\(getpid())-\(UUID().uuidString).json"
        ).path
        do {
            try spec.jsonText.write(toFile: input, atomically: false, encoding: .utf8)
        } catch {
            throw CommandFailure("cannot write \(input): \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: input) }
        return try run(["write", "--input", input, "--output", dataset], python: python)
    }
}
