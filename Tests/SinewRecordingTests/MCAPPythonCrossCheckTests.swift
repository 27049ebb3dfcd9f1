import Foundation
import SinewRecording
import SinewTestSupport
import Testing

/// pymcap-cli's `doctor` (PyPI pymcap-cli: the Go `mcap doctor`'s checks of the specification, in Python) on a file:
/// its findings by severity, from its JSON-lines output.
func doctorFindings(_ path: String, python: String) throws -> (errors: Int, warnings: Int, output: String) {
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
struct DoctorFailed: Error, CustomStringConvertible {
    var output: String
    var description: String { "pymcap-cli doctor gave no summary (is `make pyenv` done?):\n\(output)" }
}

/// Sinew's files read by the official MCAP tools for Python (Tests/python/mcap_check.py), installed by `make pyenv`.
@Suite struct MCAPPythonCrossCheckTests {
    @Test(arguments: [MCAPCompression.none, .zstd(level: 3)])
    func theOfficialReadersReadEveryMessageAndTheDoctorFindsNothingWrong(compression: MCAPCompression) throws {
        let python = try testPython(importing: ["mcap", "mcap_ros2", "pymcap_cli"])
        let folder = temporaryFolder("mcap-python")
        let path = folder + "/run.mcap"
        let recording = try SampleRecording.write(
            to: path, ticks: 2000, compression: compression, chunkSizeBytes: 32 << 10)
        let expectedPath = folder + "/expected.json"
        try recording.expectedJSON().write(to: URL(fileURLWithPath: expectedPath))
        #expect(recording.jointStates.count == 1000 && recording.messages.count == 5008)

        let check = runProcess(python, [repositoryRoot + "/Tests/python/mcap_check.py", path, expectedPath])
        #expect(check.status == 0, "\(check.output.suffix(4000))")
        #expect(
            check.output.contains("5008 messages, 1000 JointState, 3 attachments, 2 metadata checked: 0 mismatches"),
            "\(check.output.suffix(2000))")

        let doctor = try doctorFindings(path, python: python)
        #expect(doctor.errors == 0 && doctor.warnings == 0, "\(doctor.output.suffix(4000))")
        if check.status == 0 && doctor.errors == 0 { try? FileManager.default.removeItem(atPath: folder) }
    }
}
