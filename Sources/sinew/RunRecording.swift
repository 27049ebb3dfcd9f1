import ArgumentParser
import Foundation
import SinewDrivers
import SinewRuntime

/// Per-run choices of `sinew run` that override robot.yaml: the calibration file and the recording.
struct RunOptions {
    /// Calibration file (overrides `calibration:`).
    var calibrationPath: String?
    /// CSV file to record to (overrides `recording:`, and turns recording on).
    var recordPath: String?
    /// A policy replacing robot.yaml's (`sinew teleop`, `sinew jog`), made from the checked configuration.
    var policyOverride: ((CheckedRobotConfiguration) throws -> RobotConfiguration.Policy)?
    /// The leader arm's port for a `teleop` policy on the pty or serial backend (overrides its robot.yaml's).
    var leaderPort: String?

    /// The calibration to run with, if one is given here or in robot.yaml.
    func loadCalibration(configuration: RobotConfiguration) throws -> (file: CalibrationFile, path: String)? {
        guard let path = calibrationPath ?? configuration.calibrationPath else { return nil }
        do {
            let file = try CalibrationFile.load(path: path)
            try file.checkBelongs(toRobot: configuration.name, joints: configuration.joints.map(\.name), file: path)
            return (file, path)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Attaches a recorder to the loop and starts the writer thread when recording is on; call before the
    /// scheduler starts.
    func startRecording(loop: RobotLoop, configuration: RobotConfiguration) throws -> RunRecording? {
        let settings = configuration.recording
        guard recordPath != nil || settings.enabled else { return nil }
        let path = recordingFilePath(configuration: configuration)
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let recorder = loop.attachRecorder(decimation: settings.decimation)
        let writer: RecordingWriter
        do {
            writer = try RecordingWriter(recorder: recorder, path: path, format: .csv)
        } catch {
            throw ValidationError("cannot record to \(path): \(error)")
        }
        printError("recording to \(path)")
        return RunRecording(path: path, recorder: recorder, writer: writer)
    }

    /// `--record`, else `recording.path` (a directory, existing or ending in `/`, gets the default name
    /// inside it), else `<robot name>-<date>.csv` in the current directory.
    func recordingFilePath(configuration: RobotConfiguration) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH-mm-ss'Z'"
        let defaultName = "\(configuration.name)-\(formatter.string(from: Date())).csv"
        guard let path = recordPath ?? configuration.recording.path else { return defaultName }
        var isDirectory: ObjCBool = false
        if path.hasSuffix("/")
            || (FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue)
        {
            return (path as NSString).appendingPathComponent(defaultName)
        }
        return path
    }
}

/// A recording in progress: the loop's snapshot ring and the thread writing it to the file.
final class RunRecording {
    let path: String
    let recorder: TickRecorder
    let writer: RecordingWriter
    private var result: (path: String, summary: String)?

    init(path: String, recorder: TickRecorder, writer: RecordingWriter) {
        self.path = path
        self.recorder = recorder
        self.writer = writer
    }

    /// Drains the ring, flushes and closes the file (once; later calls return the same result). Call after
    /// the loop stopped.
    func finish() throws -> (path: String, summary: String) {
        if let result { return result }
        do {
            try writer.close()
        } catch {
            throw CommandFailure(writer.failure ?? "recording \(path): \(error)")
        }
        var summary = "\(path) (\(writer.snapshotsWritten) ticks"
        if recorder.dropped > 0 { summary += ", \(recorder.dropped) dropped: the writer fell behind" }
        summary += ")"
        result = (path, summary)
        return (path, summary)
    }

    deinit { _ = try? finish() }
}
