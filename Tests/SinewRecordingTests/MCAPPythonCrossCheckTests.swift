import Foundation
import SinewRecording
import SinewTestSupport
import Testing

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
