import ArgumentParser
import Foundation
import SinewBus
import SinewRuntime
import SinewTwin

extension LeRobotJointUnits: ExpressibleByArgument {}

/// Which recorded episodes go into a dataset.
enum KeptEpisodes: String, ExpressibleByArgument, CaseIterable {
    /// Only those that succeeded (more seeds are tried until enough have).
    case success
    /// Every episode, whatever its end.
    case all
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record demonstrations of a task on the simulated robot into a LeRobotDataset v3.0 directory.",
        discussion: """
            Runs episodes of the task in lockstep as `sinew sim eval` does (seeds seed, seed + 1, …), with the \
            policy as the demonstrator (by default the scripted expert: cartesian for reach, trajectory for \
            trajectory_tracking; or a policy file, or robot.yaml's own), and keeps the loop's 500 Hz ticks at the \
            dataset's fps (the task's `fps`, 30 by default): at each frame the measured joints \
            (observation.state), the policy's joint targets (action) and the task's observation \
            (observation.environment_state, e.g. the reach target). Joint units follow LeRobot's convention: \
            --units degrees (LeRobot ≥ 0.5's use_degrees for SO-100/SO-101: degrees, grippers 0–100), range \
            (−100…100, grippers 0–100) or rad. The parquet files are written by Sinew's Python helper \
            (python/sinew_dataset, pyarrow): the interpreter is --python, $SINEW_PYTHON, the checkout's \
            .build/pyenv (`make pyenv`), or python3. The directory is checked against the v3.0 layout before the \
            command returns. docs/datasets.md has the layout and how to train on it with LeRobot.
            Example: sinew record Hardware/robots/so101/robot.yaml --task Hardware/robots/so101/tasks/reach.yaml \
            --episodes 50 --dataset /tmp/reach-demos
            """)

    @OptionGroup var episodeOptions: TaskRunOptions

    @Option(help: "Episodes to keep in the dataset.")
    var episodes = 10

    @Option(help: "The dataset directory to create (new, or empty).")
    var dataset: String

    @Option(help: "Joint units: degrees (LeRobot's use_degrees), range (−100…100) or rad.")
    var units: LeRobotJointUnits = .degrees

    @Option(help: "Dataset frames per second (default: the task's fps).")
    var fps: Int?

    @Option(help: "Which episodes to keep: success (default; more seeds are tried until enough succeed) or all.")
    var keep: KeptEpisodes = .success

    @Option(
        help: ArgumentHelp(
            "Gripper joints (0–100 in LeRobot's units), comma-separated (default: joints whose name has 'gripper')."))
    var gripperJoints: String?

    @Option(
        help: ArgumentHelp(
            "Record teleoperation: a leader arm's robot.yaml drives the robot (joints paired by name). In simulation "
                + "the leader is simulated, its joints following the motion file of its `simulation:` section."))
    var leader: String?

    @Option(help: "Also record every episode to DIR/episode-<seed>.mcap.")
    var mcap: String?

    @Option(help: "The Python with pyarrow and numpy that writes the parquet files.")
    var python: String?

    @Flag(help: "End with one JSON object (dataset, episodes, frames, seeds, skipped) instead of a summary.")
    var json = false

    func validate() throws {
        guard (1...100_000).contains(episodes) else { throw ValidationError("--episodes must be 1 to 100000") }
        if let fps, !(1...1000).contains(fps) { throw ValidationError("--fps must be 1 to 1000") }
    }

    func run() throws {
        var loaded = try episodeOptions.load()
        if let leader {
            let leaderConfiguration: RobotConfiguration
            do {
                leaderConfiguration = try RobotConfiguration.load(contentsOf: leader)
            } catch {
                throw CommandFailure("\(error)")
            }
            let names = Set(leaderConfiguration.joints.map(\.name))
            let pairs = loaded.setup.configuration.joints.map(\.name).filter(names.contains)
            guard !pairs.isEmpty else {
                throw ValidationError("\(leader) shares no joint name with \(loaded.setup.configuration.file)")
            }
            loaded.policy = .settings(
                TeleopPolicySettings(
                    leaderPath: leader, leader: leaderConfiguration,
                    joints: pairs.map { TeleopPolicySettings.Pair(follower: $0, leader: $0) }))
        }
        let setup = loaded.setup
        let frameRate = fps ?? setup.task.fps
        let gripperNames = gripperJoints.map { $0.split(separator: ",").map(String.init) }
        for name in gripperNames ?? [] where setup.configuration.jointIndex(named: name) == nil {
            throw ValidationError("--gripper-joints: \(setup.configuration.file) has no joint \"\(name)\"")
        }
        let conversion = LeRobotJointConversion(
            units: units, configuration: setup.configuration, model: setup.model, gripperJoints: gripperNames)
        if let mcap { try? FileManager.default.createDirectory(atPath: mcap, withIntermediateDirectories: true) }
        let status = StatusLine(logIntervalS: 2)
        let start = MonotonicInstant.now().nanoseconds
        var kept: [LeRobotEpisode] = []
        var seeds: [UInt64] = []
        var skipped: [(UInt64, String)] = []
        let attempts = keep == .all ? episodes : 2 * episodes + 10
        var seed = episodeOptions.seed
        for _ in 0..<attempts where kept.count < episodes {
            var options = loaded.options(mcapDirectory: mcap, seed: seed)
            options.frameRateHz = frameRate
            let (result, frames) = TwinEpisode.run(setup, seed: seed, policy: loaded.policy, options: options)
            if result.outcome == "error" {
                throw CommandFailure("episode \(seed) could not run: \(result.reason ?? "?")")
            }
            if keep == .all || result.succeeded {
                kept.append(LeRobotEpisode(task: setup.task.instruction, frames: frames, conversion: conversion))
                seeds.append(seed)
            } else {
                skipped.append((seed, result.reason ?? result.outcome))
            }
            status.show("recording: \(kept.count)/\(episodes) episodes kept, \(skipped.count) skipped")
            seed &+= 1
        }
        status.finish()
        guard kept.count == episodes else {
            throw CommandFailure(
                "only \(kept.count) of \(episodes) episodes succeeded in \(attempts) tries (first failure: seed "
                    + "\(skipped.first?.0 ?? 0), \(skipped.first?.1 ?? "?")); is the policy able to do the task?")
        }
        let simulatedS = Double(kept.reduce(0) { $0 + $1.state.count }) / Double(frameRate)
        var notes: [(String, String)] = [
            ("robot", setup.configuration.name), ("task", setup.task.name),
            ("task_type", setup.task.settings.typeName),
            ("policy", leader.map { "teleop (leader \(($0 as NSString).lastPathComponent))" } ?? episodeOptions.policy),
            ("seeds", seeds.map(String.init).joined(separator: ",")),
            ("randomized", loaded.randomization == nil ? "false" : "true"),
            ("source", "sinew record (simulated, lockstep)"), ("loop_rate_hz", "\(setup.configuration.loop.rateHz)"),
            ("sinew_version", SinewVersion.number),
        ]
        if let randomization = loaded.randomization {
            notes.append(
                (
                    "randomization",
                    randomization.ranges.sorted { $0.key < $1.key }.map {
                        "\($0.key)=\($0.value.lowerBound):\($0.value.upperBound)"
                    }
                    .joined(separator: ",")
                ))
        }
        let spec = LeRobotDatasetSpec(
            fps: frameRate, robotType: setup.configuration.name, conversion: conversion,
            environmentNames: setup.task.settings.observationNames(configuration: setup.configuration),
            episodes: kept, notes: notes)
        _ = try DatasetHelper.write(spec, to: dataset, python: python)
        let wallS = Double(MonotonicInstant.now().nanoseconds - start) * 1e-9
        let frames = kept.reduce(0) { $0 + $1.state.count }
        if json {
            print(
                JSONValue.object([
                    ("dataset", .string(dataset)), ("episodes", .integer(kept.count)), ("frames", .integer(frames)),
                    ("fps", .integer(frameRate)), ("units", .string(units.rawValue)),
                    ("seeds", .array(seeds.map { .integer(Int($0)) })),
                    (
                        "skipped",
                        .array(skipped.map { .object([("seed", .integer(Int($0.0))), ("reason", .string($0.1))]) })
                    ),
                    ("wall_s", .number(wallS)),
                ]).text)
        } else {
            print(
                "\(dataset): \(kept.count) episodes, \(frames) frames at \(frameRate) fps (\(String(format: "%.1f", simulatedS)) s), "
                    + "task \"\(setup.task.instruction)\", joints in \(units.rawValue); LeRobotDataset v3.0, checked")
            if !skipped.isEmpty {
                print(
                    "  skipped \(skipped.count) episode(s) that did not succeed: seeds "
                        + skipped.map { "\($0.0)" }.joined(separator: ", "))
            }
            print(String(format: "  %.1f s of wall time", wallS))
        }
    }
}
