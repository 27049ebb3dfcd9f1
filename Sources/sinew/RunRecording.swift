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
    /// `--ros` and its companions (override robot.yaml's `ros:`).
    var ros = ROSOverrides()
    /// What rides along the run (`sinew record` on a real arm: the episodes, their keys and status).
    var companion: (any RunCompanion)?

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

    /// Attaches a recorder to the loop and starts the writer thread when recording or telemetry is on, or when
    /// `liveSinks` (the ROS 2 publisher) need the ticks; call before the scheduler starts. MCAP unless the path ends
    /// in `.csv`. Telemetry (metrics, dashboard) and the live sinks are more sinks of the same thread (without a
    /// file, the thread feeds them alone); with any of them every tick goes into the ring and the file sink keeps
    /// every `decimation`-th.
    func startRecording(
        loop: RobotLoop, configuration: RobotConfiguration, calibrationPath: String? = nil,
        liveSinks: [any RecordingSink] = []
    ) throws -> RunRecording? {
        let settings = configuration.recording
        let telemetrySettings = try telemetry.settings(over: configuration.telemetry)
        let recordingOn = recordPath != nil || settings.enabled
        let telemetryOn = telemetrySettings.metrics != nil || telemetrySettings.dashboard != nil
        guard recordingOn || telemetryOn || !liveSinks.isEmpty else { return nil }
        let everyTick = telemetryOn || !liveSinks.isEmpty
        let recorder = loop.attachRecorder(decimation: everyTick ? 1 : settings.decimation)
        var live = liveSinks
        var runTelemetry: RunTelemetry?
        if telemetryOn {
            // The loop's one health tap (the ROS 2 publisher, made before, may have attached it already).
            let tap = loop.attachHealthTap(decimation: Self.healthTapDecimation(configuration))
            let started = try RunTelemetry.start(settings: telemetrySettings, loop: loop, recorder: recorder, tap: tap)
            runTelemetry = started
            live.append(started.hub.sink)
        }
        var sinks: [any RecordingSink] = []
        var path: String?
        if recordingOn {
            let file = recordingFilePath(configuration: configuration)
            path = file
            let directory = (file as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            do {
                let sink: any RecordingSink
                if file.hasSuffix(".csv") {
                    sink = try CSVRecordingSink(path: file, recorder: recorder)
                } else {
                    sink = try MCAPRecordingSink(
                        path: file, recorder: recorder,
                        context: mcapContext(loop: loop, configuration: configuration, calibrationPath: calibrationPath)
                    )
                }
                sinks.append(
                    !everyTick || settings.decimation == 1
                        ? sink : DecimatedSink(sink, every: Int64(settings.decimation)))
            } catch {
                throw ValidationError("cannot record to \(file): \(error)")
            }
        }
        // Live sinks want each tick soon after it happened: a shorter poll than a file needs.
        let writer = RecordingWriter(
            recorder: recorder, path: path, sinks: sinks + live,
            pollIntervalSeconds: liveSinks.isEmpty ? 0.005 : 0.001, events: loop.supervisor.events,
            describe: { [supervisor = loop.supervisor] in supervisor.describe($0) })
        if let path { printError("recording to \(path)") }
        return RunRecording(path: path, recorder: recorder, writer: writer, telemetry: runTelemetry)
    }

    /// Ticks between two servo-health frames: five a second, counters and readings the tick has anyway.
    static func healthTapDecimation(_ configuration: RobotConfiguration) -> Int {
        max(1, Int(configuration.loop.rateHz / 5))
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

/// Passes on every `every`-th tick (and every start snapshot) to a file sink fed from a ring that holds them all.
final class DecimatedSink: RecordingSink {
    let base: any RecordingSink
    let every: Int64
    init(_ base: any RecordingSink, every: Int64) {
        self.base = base
        self.every = every
    }
    func write(_ snapshot: TickSnapshotSlot) throws(RecordingError) {
        let header = snapshot.header.pointee
        guard header.kind != .tick || header.tick % every == 0 else { return }
        try base.write(snapshot)
    }
    func record(event: SafetyEvent, description: String) throws(RecordingError) {
        try base.record(event: event, description: description)
    }
    func log(_ line: String, timeSeconds: Double) throws(RecordingError) {
        try base.log(line, timeSeconds: timeSeconds)
    }
    func attach(name: String, mediaType: String, data: [UInt8]) throws(RecordingError) {
        try base.attach(name: name, mediaType: mediaType, data: data)
    }
    func idle() throws(RecordingError) { try base.idle() }
    func finish() throws(RecordingError) { try base.finish() }
}

/// A recording in progress: the loop's snapshot ring and the thread writing it to the file, to telemetry and to
/// live sinks.
final class RunRecording {
    /// The file, or nil when the thread feeds telemetry or live sinks only.
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
            throw CommandFailure(writer.failure ?? "recording \(path ?? "(telemetry and live sinks)"): \(error)")
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
