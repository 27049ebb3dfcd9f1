import ArgumentParser
import Foundation
import SinewDrivers
import SinewRuntime

/// Per-run choices of `sinew run` that override robot.yaml: the calibration file and the recording.
struct RunOptions {
    /// Calibration file (overrides `calibration:`).
    var calibrationPath: String?
    /// Where to record (overrides `recording:`, and turns recording on): an MCAP or CSV file, or a directory.
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
    /// scheduler starts. MCAP unless the path ends in `.csv`.
    func startRecording(loop: RobotLoop, configuration: RobotConfiguration, calibrationPath: String? = nil) throws
        -> RunRecording?
    {
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
            let format: RecordingFormat
            if path.hasSuffix(".csv") {
                format = .csv
            } else {
                format = .mcap(mcapContext(loop: loop, configuration: configuration, calibrationPath: calibrationPath))
            }
            writer = try RecordingWriter(
                recorder: recorder, path: path, format: format, events: loop.supervisor.events,
                describe: { [supervisor = loop.supervisor] in supervisor.describe($0) })
        } catch {
            throw ValidationError("cannot record to \(path): \(error)")
        }
        printError("recording to \(path)")
        return RunRecording(path: path, recorder: recorder, writer: writer)
    }

    /// What an MCAP recording keeps besides the ticks: robot.yaml, the URDF, the calibration, the command line
    /// and the version (the real-time set-up is attached once the loop runs).
    func mcapContext(loop: RobotLoop, configuration: RobotConfiguration, calibrationPath: String?)
        -> MCAPRecordingContext
    {
        var attachments: [(name: String, mediaType: String, data: [UInt8])] = []
        func attach(_ path: String?, _ mediaType: String) {
            guard let path, let data = FileManager.default.contents(atPath: path) else { return }
            attachments.append(((path as NSString).lastPathComponent, mediaType, Array(data)))
        }
        attach(configuration.file, "application/yaml")
        attach(configuration.modelPath, "application/xml")
        attach(calibrationPath ?? configuration.calibrationPath, "application/json")
        let commandLine = CommandLine.arguments.joined(separator: " ")
        attachments.append(("command_line.txt", "text/plain", Array(commandLine.utf8)))
        attachments.append(("version.txt", "text/plain", Array(HardwareDirectory.versionText.utf8)))
        let settings = configuration.recording
        return MCAPRecordingContext(
            configuration: configuration, model: loop.model,
            profile: settings.profile == .ros2 ? .ros2 : .json,
            compression: settings.compression == .zstd ? .zstd(level: 3) : .none, attachments: attachments,
            metadata: [
                (
                    "sinew",
                    [
                        "robot": configuration.name, "robot_yaml": (configuration.file as NSString).lastPathComponent,
                        "urdf": (configuration.modelPath as NSString).lastPathComponent,
                        "policy": loop.policy.typeName, "rate_hz": "\(configuration.loop.rateHz)",
                        "version": SinewVersion.number, "decimation": "\(settings.decimation)",
                        "lockstep": loop.simulationClock == nil ? "false" : "true",
                        "robot_yaml_path": (configuration.file as NSString).standardizingPath,
                    ]
                )
            ],
            library: "sinew \(SinewVersion.number)")
    }

    /// `--record`, else `recording.path`: a `.mcap` or `.csv` file, or a directory (made if missing) that gets
    /// `<robot name>-<date>.mcap` inside it; with neither, that name in the current directory.
    func recordingFilePath(configuration: RobotConfiguration) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH-mm-ss'Z'"
        let defaultName = "\(configuration.name)-\(formatter.string(from: Date())).mcap"
        guard let path = recordPath ?? configuration.recording.path else { return defaultName }
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let fileName = path.hasSuffix(".mcap") || path.hasSuffix(".csv")
        if path.hasSuffix("/") || (exists && isDirectory.boolValue) || (!exists && !fileName) {
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
        var summary = "\(path) (\(writer.ticksWritten) ticks"
        if recorder.dropped > 0 { summary += ", \(recorder.dropped) dropped: the writer fell behind" }
        summary += ")"
        result = (path, summary)
        return (path, summary)
    }

    deinit { _ = try? finish() }
}
