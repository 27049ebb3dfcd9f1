import Foundation
import SinewRuntime
import Testing

@Suite struct RecordingTargetTests {
    @Test func recordersWithTargetsWriteATargetColumn() throws {
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

    }
}
