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
    /// The policy's environment state for the whole run (`--environment-state`: a reach target).
    var environmentState: [Double]?
    /// `--metrics`, `--dashboard`, `--token-file` (override robot.yaml's `telemetry:`).
    var telemetry = TelemetryOverrides()

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

    /// Attaches a recorder to the loop and starts the writer thread when recording or telemetry is on; call before
    /// the scheduler starts. MCAP unless the path ends in `.csv`. Telemetry (metrics, dashboard) is one more sink of
    /// the same thread: with telemetry alone the thread runs without a file.
    func startRecording(loop: RobotLoop, configuration: RobotConfiguration, calibrationPath: String? = nil) throws
        -> RunRecording?
    {
        let settings = configuration.recording
        let telemetrySettings = try telemetry.settings(over: configuration.telemetry)
        let recording = recordPath != nil || settings.enabled
        let telemetryOn = telemetrySettings.metrics != nil || telemetrySettings.dashboard != nil
        guard recording || telemetryOn else { return nil }
        let recorder = loop.attachRecorder(decimation: recording ? settings.decimation : 1)
        var sinks: [any RecordingSink] = []
        var runTelemetry: RunTelemetry?
        if telemetryOn {
            // Servo health five times a second: counters and readings the tick has anyway.
            let tap = loop.attachHealthTap(decimation: max(1, Int(configuration.loop.rateHz / 5)))
            runTelemetry = try RunTelemetry.start(settings: telemetrySettings, loop: loop, recorder: recorder, tap: tap)
            sinks.append(runTelemetry!.hub.sink)
        }
        var path: String?
        if recording {
            let file = recordingFilePath(configuration: configuration)
            path = file
            let directory = (file as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            do {
                if file.hasSuffix(".csv") {
                    sinks.append(try CSVRecordingSink(path: file, recorder: recorder))
                } else {
                    sinks.append(
                        try MCAPRecordingSink(
                            path: file, recorder: recorder,
                            context: mcapContext(
                                loop: loop, configuration: configuration, calibrationPath: calibrationPath)))
                }
            } catch {
                throw ValidationError("cannot record to \(file): \(error)")
            }
        }
        let writer = RecordingWriter(
            recorder: recorder, path: path, sinks: sinks, events: loop.supervisor.events,
            describe: { [supervisor = loop.supervisor] in supervisor.describe($0) })
        if let path { printError("recording to \(path)") }
        return RunRecording(path: path, recorder: recorder, writer: writer, telemetry: runTelemetry)
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

/// A recording in progress: the loop's snapshot ring and the thread writing it to the file and to telemetry.
final class RunRecording {
    /// The file, or nil when the thread feeds telemetry only.
    let path: String?
    let recorder: TickRecorder
    let writer: RecordingWriter
    let telemetry: RunTelemetry?
    private var result: (path: String, summary: String)?
    private var finished = false

    init(path: String?, recorder: TickRecorder, writer: RecordingWriter, telemetry: RunTelemetry? = nil) {
        self.path = path
        self.recorder = recorder
        self.writer = writer
        self.telemetry = telemetry
    }

    /// Drains the ring, flushes and closes the file (once; later calls return the same result), then stops the
    /// telemetry servers. Call after the loop stopped. Nil without a file.
    func finish() throws -> (path: String, summary: String)? {
        if finished { return result }
        finished = true
        defer { telemetry?.stop() }
        do {
            try writer.close()
        } catch {
            throw CommandFailure(writer.failure ?? "recording \(path ?? "telemetry"): \(error)")
        }
        guard let path else { return nil }
        var summary = "\(path) (\(writer.ticksWritten) ticks"
        if recorder.dropped > 0 { summary += ", \(recorder.dropped) dropped: the writer fell behind" }
        summary += ")"
        result = (path, summary)
        return (path, summary)
    }

    deinit { _ = try? finish() }
}
