import ArgumentParser
import Foundation
import SinewKinematics
import SinewRecording
import SinewRuntime
import SinewTwin

struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "LeRobotDataset v3.0 directories: build one from flight recordings, or check one.",
        subcommands: [DatasetExport.self, DatasetCheck.self])
}

struct DatasetExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Build a LeRobotDataset v3.0 directory from MCAP flight recordings, one episode per file.",
        discussion: """
            Reads each recording's /joint_states (the measured joints: observation.state) and /commands (the \
            policy's targets: action), keeps the ticks at the dataset's fps, and converts the joints to LeRobot's \
            units as `sinew record` does. The robot is the robot.yaml and URDF attached to the recording (or \
            --robot). A recording of a simulated episode (`sinew sim eval --mcap`, `sinew record --mcap`) carries \
            its task file and seed: the task's observation (observation.environment_state) is rebuilt from them, \
            and its instruction becomes the task string; for other recordings give --task (and --seed) or \
            --instruction. Recordings must use robot.yaml's default `recording.profile: json`.
            Example: sinew dataset export runs/*.mcap --dataset /tmp/from-flights --instruction "pick up the cube"
            """)

    @Argument(help: "MCAP recordings, one episode each, in the dataset's order.")
    var recordings: [String]

    @Option(help: "The dataset directory to create (new, or empty).")
    var dataset: String

    @Option(help: "Dataset frames per second.")
    var fps = 30

    @Option(help: "Joint units: degrees (LeRobot's use_degrees), range (−100…100) or rad.")
    var units: LeRobotJointUnits = .degrees

    @Option(help: "The robot's robot.yaml (default: the one attached to each recording).")
    var robot: String?

    @Option(help: "A task file whose observation to rebuild (default: the one attached to each recording).")
    var task: String?

    @Option(help: "The episode's seed for --task (default: the recording's).")
    var seed: UInt64?

    @Option(help: "The task string (default: the task's instruction, else \"\").")
    var instruction: String?

    @Option(help: "Gripper joints (0–100 in LeRobot's units), comma-separated (default: names with 'gripper').")
    var gripperJoints: String?

    @Option(help: "The Python with pyarrow and numpy that writes the parquet files.")
    var python: String?

    func validate() throws {
        guard !recordings.isEmpty else { throw ValidationError("give at least one recording") }
        guard (1...1000).contains(fps) else { throw ValidationError("--fps must be 1 to 1000") }
    }

    func run() throws {
        var episodes: [LeRobotEpisode] = []
        var conversion: LeRobotJointConversion?
        var environmentNames: [String]?
        var robotName = ""
        for path in recordings {
            let episode = try ExportedRecording(
                path: path, robotPath: robot, taskPath: task, seed: seed, gripperJoints: gripperJoints, units: units)
            let frames = try episode.frames(fps: fps)
            if let conversion, conversion.jointNames != episode.conversion.jointNames {
                throw CommandFailure("\(path): its joints differ from the first recording's")
            }
            if let environmentNames, environmentNames != episode.environmentNames {
                throw CommandFailure("\(path): its task observation differs from the first recording's")
            }
            conversion = episode.conversion
            environmentNames = episode.environmentNames
            robotName = episode.configuration.name
            episodes.append(
                LeRobotEpisode(
                    task: instruction ?? episode.instruction ?? "", frames: frames, conversion: episode.conversion))
        }
        guard let conversion else { return }
        let spec = LeRobotDatasetSpec(
            fps: fps, robotType: robotName, conversion: conversion, environmentNames: environmentNames ?? [],
            episodes: episodes,
            notes: [
                ("source", "sinew dataset export"),
                ("recordings", recordings.map { ($0 as NSString).lastPathComponent }.joined(separator: ",")),
                ("sinew_version", SinewVersion.number),
            ])
        _ = try DatasetHelper.write(spec, to: dataset, python: python)
        let frames = episodes.reduce(0) { $0 + $1.state.count }
        print(
            "\(dataset): \(episodes.count) episode(s), \(frames) frames at \(fps) fps from \(recordings.count) "
                + "recording(s), joints in \(units.rawValue)"
                + ((environmentNames ?? []).isEmpty ? "" : ", with the task's observation")
                + "; LeRobotDataset v3.0, checked")
    }
}

struct DatasetCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a directory against the LeRobotDataset v3.0 layout (files, columns, indexes, statistics).")

    @Argument(help: "The dataset directory.")
    var dataset: String

    @Option(help: "The Python with pyarrow and numpy.")
    var python: String?

    func run() throws {
        do {
            print(try DatasetHelper.run(["check", dataset], python: python), terminator: "")
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }
}

/// One recording read for export: its robot, its messages, and its task when it has one.
struct ExportedRecording {
    struct JointStates: Decodable {
        let t: Double
        let tick: Int64
        let position: [String: Double]
    }
    struct Commands: Decodable {
        let t: Double
        let tick: Int64
        let target: [String: Double]?
        let command: [String: Double]
    }

    let path: String
    let configuration: RobotConfiguration
    let conversion: LeRobotJointConversion
    let episode: (any TaskEpisode)?
    let environmentNames: [String]
    let instruction: String?
    /// The ticks, in order: time (s since activation), measured positions and targets (rad, robot.yaml order).
    let ticks: [(t: Double, state: [Double], action: [Double])]

    init(
        path: String, robotPath: String?, taskPath: String?, seed: UInt64?, gripperJoints: String?,
        units: LeRobotJointUnits
    ) throws {
        self.path = path
        let reader: MCAPReader
        do {
            reader = try MCAPReader(path: path)
        } catch {
            throw CommandFailure(
                "\(error)\n(a recording a killed run left behind can be completed with `MCAPRepair`; see docs/mcap.md)")
        }
        let attachments: [MCAPAttachment]
        var metadata: [String: [String: String]] = [:]
        do {
            attachments = try reader.attachments()
            for record in try reader.metadata() { metadata[record.name] = record.values }
        } catch {
            throw CommandFailure("\(path): \(error)")
        }
        // The robot: given, or the robot.yaml and URDF attached, written side by side where robot.yaml finds it.
        let checked: CheckedRobotConfiguration
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-export-\(getpid())-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do {
            if let robotPath {
                checked = try RobotConfiguration.loadChecked(contentsOf: robotPath)
            } else {
                guard
                    let yaml = attachments.first(where: { $0.mediaType == "application/yaml" && $0.name != "task.yaml" }
                    )
                else {
                    throw CommandFailure("\(path) has no robot.yaml attached: give --robot")
                }
                try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
                for attachment in attachments where attachment.mediaType != "text/plain" {
                    let name = (attachment.name as NSString).lastPathComponent
                    guard !name.isEmpty, name != ".", name != ".." else { continue }
                    try Data(attachment.data).write(to: URL(fileURLWithPath: scratch + "/" + name))
                }
                checked = try RobotConfiguration.loadChecked(contentsOf: scratch + "/" + yaml.name)
            }
        } catch let error as CommandFailure {
            throw error
        } catch {
            throw CommandFailure("\(path): the robot: \(error)")
        }
        configuration = checked.configuration
        let grippers = gripperJoints.map { $0.split(separator: ",").map(String.init) }
        conversion = LeRobotJointConversion(
            units: units, configuration: configuration, model: checked.model, gripperJoints: grippers)

        // The task: given, or attached with the episode's seed.
        var taskConfiguration: TaskConfiguration?
        let recordedSeed = metadata["sinew.episode"]?["seed"].flatMap { UInt64($0) }
        do {
            if let taskPath {
                taskConfiguration = try TaskConfiguration.load(
                    contentsOf: taskPath, robot: configuration, model: checked.model
                ).task
            } else if let attached = attachments.first(where: { $0.name == "task.yaml" }) {
                taskConfiguration = try TaskConfiguration.parse(
                    String(decoding: attached.data, as: UTF8.self), file: "\(path) (task.yaml attached)",
                    baseDirectory: scratch, robot: configuration)
            }
        } catch {
            throw CommandFailure("\(path): the task: \(error)")
        }
        if let taskConfiguration {
            guard let episodeSeed = seed ?? recordedSeed else {
                throw CommandFailure("\(path): the recording has no episode seed: give --seed for the task")
            }
            let start = taskConfiguration.startPose(
                configuration: configuration, model: checked.model, seed: episodeSeed)
            var random = TaskConfiguration.random(seed: episodeSeed, stream: .task)
            episode = try taskConfiguration.settings.makeEpisode(
                TaskEpisodeContext(configuration: configuration, model: checked.model, startRad: start), random: &random
            )
            environmentNames = taskConfiguration.settings.observationNames(configuration: configuration)
            instruction = taskConfiguration.instruction
        } else {
            episode = nil
            environmentNames = []
            instruction = metadata["sinew.episode"]?["instruction"]
        }

        // The ticks: /joint_states and /commands paired by tick.
        guard let states = reader.channel(topic: "/joint_states"), states.messageEncoding == "json" else {
            throw CommandFailure(
                "\(path): no JSON /joint_states channel (recording.profile ros2 writes CDR; record with the json profile)"
            )
        }
        guard let commands = reader.channel(topic: "/commands") else {
            throw CommandFailure("\(path): no /commands channel")
        }
        let decoder = JSONDecoder()
        var stateByTick: [Int64: (Double, [String: Double])] = [:]
        var order: [Int64] = []
        var targetByTick: [Int64: [String: Double]] = [:]
        do {
            var messages = reader.messages(onChannels: [states.id, commands.id])
            while let message = try messages.next() {
                if message.channelID == states.id {
                    let decoded = try decoder.decode(JointStates.self, from: Data(message.data))
                    if stateByTick[decoded.tick] == nil { order.append(decoded.tick) }
                    stateByTick[decoded.tick] = (decoded.t, decoded.position)
                } else {
                    let decoded = try decoder.decode(Commands.self, from: Data(message.data))
                    targetByTick[decoded.tick] = decoded.target ?? decoded.command
                }
            }
        } catch {
            throw CommandFailure("\(path): reading the messages: \(error)")
        }
        let names = configuration.joints.map(\.name)
        var ticks: [(t: Double, state: [Double], action: [Double])] = []
        for tick in order {
            guard let (t, position) = stateByTick[tick], let target = targetByTick[tick] else { continue }
            let state = names.map { position[$0] ?? .nan }
            let action = names.map { target[$0] ?? .nan }
            guard state.allSatisfy(\.isFinite), action.allSatisfy(\.isFinite) else {
                throw CommandFailure("\(path): tick \(tick) lacks a joint of \(configuration.file)")
            }
            ticks.append((t, state, action))
        }
        guard !ticks.isEmpty else { throw CommandFailure("\(path): no ticks recorded") }
        self.ticks = ticks
    }

    /// The ticks kept at `fps` (the tick at or just past each frame's time, as `sinew record` keeps them), with
    /// the task's observation the policy saw at each.
    func frames(fps: Int) throws -> [EpisodeFrame] {
        let frameRate = Double(fps)
        let periodS = ticks.count > 1 ? (ticks[ticks.count - 1].t - ticks[0].t) / Double(ticks.count - 1) : 0.002
        var frames: [EpisodeFrame] = []
        var next = 0
        var seen = episode.map { Array(UnsafeBufferPointer($0.observation)) } ?? []
        let truth = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(1, configuration.joints.count))
        defer { truth.deallocate() }
        for tick in ticks {
            if tick.t + periodS / 2 >= Double(next) / frameRate {
                frames.append(
                    EpisodeFrame(timeS: tick.t, stateRad: tick.state, actionRad: tick.action, environment: seen))
                next += 1
            }
            if let episode {
                for j in tick.state.indices { truth[j] = tick.state[j] }
                _ = episode.update(timeS: tick.t, positionsRad: UnsafeBufferPointer(truth))
                seen = Array(UnsafeBufferPointer(episode.observation))
            }
        }
        return frames
    }
}
