import Foundation
import SinewRuntime
import Testing

@Suite struct RecordingTargetTests {
    @Test func recordersWithTargetsWriteATargetColumnAndBinaryVersion2() throws {
        let recorder = TickRecorder(jointNames: ["a"], capacity: 8, recordsTarget: true)
        var position = 1.0
        var command = 2.0
        var target = 3.0
        recorder.push(
            TickSnapshotHeader(tick: 0, state: .active), positionRad: &position, velocityRadPerS: &position,
            effortNm: &position, commandRad: &command, targetRad: &target)
        let csv = temporaryPath("target.csv")
        defer { unlink(csv) }
        try RecordingWriter(recorder: recorder, path: csv).close()
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == 2)
        #expect(lines[0].hasSuffix(",a.command_rad,a.target_rad"))
        #expect(lines[1].hasSuffix(",2.0,3.0"))

        recorder.push(
            TickSnapshotHeader(tick: 1, state: .active), positionRad: &position, velocityRadPerS: &position,
            effortNm: &position, commandRad: &command, targetRad: &target)
        let binary = temporaryPath("target.bin")
        defer { unlink(binary) }
        try RecordingWriter(recorder: recorder, path: binary, format: .binary).close()
        let data = try Data(contentsOf: URL(fileURLWithPath: binary))
        let headerSize = 8 + 4 + 4 + 2 + 1
        try #require(data.count == headerSize + 80 + 5 * 8)
        #expect(data[8] == 2)
        let last = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: data.count - 8, as: Double.self) }
        #expect(last == 3.0)
    }
}
