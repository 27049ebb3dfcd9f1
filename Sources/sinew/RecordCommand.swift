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
        abstract:
            "Record demonstrations of a task, simulated or teleoperated on a real arm, into a LeRobotDataset v3.0 "
            + "directory.",
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

            On a real arm (--backend pty or serial, with --leader): the follower runs in real time as `sinew teleop` \
            runs it — configure, torque on, the loop at its rate under the safety supervisor, the leader's joints as \
            its targets — and the episodes are recorded as lerobot-record records them. Episode i (of --episodes) \
            lasts up to --episode-time-s (default 60); between episodes, --reset-time-s (default 10) of \
            teleoperation with nothing recorded, to set the scene up again (none after the last episode). Keys, in \
            the terminal the command runs in: → (Right arrow) ends the episode early and keeps it, or skips the \
            reset; ← (Left arrow) discards the episode and records it again after a reset (during a reset: discards \
            the episode just kept and records it again at once); Esc ends the session (the episode in progress is \
            kept as far as it got, as lerobot-record does; Ctrl-C and SIGTERM discard it); e or space: e-stop; r: recover (an episode the robot leaves the \
            active state in is discarded and recorded again). The status line shows the phase, episode i/N and the \
            seconds left; a line is printed at each change, with the episode's goal drawn from its seed (seed + i: \
            a reach target, the task's observation.environment_state). Frames as in simulation: the measured \
            joints, the leader's joint targets (action), the task's observation, at the dataset's fps. After the last \
            episode, Esc, Ctrl-C or SIGTERM the run ends through the safe exit (torque per joint as robot.yaml's \
            safe_state says), then the kept episodes are written and checked. A bus that fails mid-episode ends the \
            run the same way: the episodes completed before are written, the one in progress is not. No episode kept \
            is an error (exit 1) and writes nothing. The exit status is otherwise `sinew run`'s (130 after Ctrl-C, \
            the dataset still written). --fps, --units, --gripper-joints, --seed, --python and --json apply; --policy, \
            --keep, --mcap, --randomize and --range are for simulation.
            Example: sinew record Hardware/robots/so101/robot.yaml --leader Hardware/robots/so101/leader.yaml \
            --backend serial --port /dev/sinew/so101 --leader-port /dev/sinew/so101-leader \
            --task Hardware/robots/so101/tasks/reach.yaml --episodes 20 --episode-time-s 30 --dataset ~/reach-demos
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

    @Option(
        help:
            "Which episodes to keep (simulation): success (default; more seeds are tried until enough succeed) or all.")
    var keep: KeptEpisodes?

    @Option(
        help: ArgumentHelp(
            "Gripper joints (0–100 in LeRobot's units), comma-separated (default: joints whose name has 'gripper')."))
    var gripperJoints: String?

    @Option(
        help: ArgumentHelp(
            "Record teleoperation: a leader arm's robot.yaml drives the robot (joints paired by name). In simulation "
                + "the leader is simulated, its joints following the motion file of its `simulation:` section."))
    var leader: String?

    @Option(help: "Also record every episode to DIR/episode-<seed>.mcap (simulation).")
    var mcap: String?

    @Option(
        help: ArgumentHelp(
            "Where the buses lead: sim (default: lockstep simulated episodes), or pty or serial for the real-arm "
                + "flow (real time, teleoperated with --leader, keys as lerobot-record's)."))
    var backend: Backend = .sim

    @Option(help: "Port for the follower (pty or serial backend), overriding its robot.yaml.")
    var port: String?

    @Option(help: "Port for the leader (pty or serial backend), overriding its robot.yaml.")
    var leaderPort: String?

    @Option(help: "Longest episode on a real arm, s (→ ends one early).")
    var episodeTimeS: Double?

    @Option(help: "Reset period between episodes on a real arm, s (→ skips it).")
    var resetTimeS: Double?

    @Option(help: "The follower's calibration file (real arm), overriding its robot.yaml's.")
    var calibration: String?

    @Option(help: "The Python with pyarrow and numpy that writes the parquet files.")
    var python: String?

    @Flag(help: "End with one JSON object (dataset, episodes, frames, seeds, skipped) instead of a summary.")
    var json = false

    /// Default episode and reset times on a real arm, s (lerobot-record's defaults are 60 and 60; a shorter reset
    /// keeps a session moving, and → skips it anyway).
    static let defaultEpisodeTimeS = 60.0
    static let defaultResetTimeS = 10.0

    func validate() throws {
        guard (1...100_000).contains(episodes) else { throw ValidationError("--episodes must be 1 to 100000") }
        if let fps, !(1...1000).contains(fps) { throw ValidationError("--fps must be 1 to 1000") }
        if let episodeTimeS, !(episodeTimeS > 0 && episodeTimeS <= 86_400) {
            throw ValidationError("--episode-time-s must be a number of seconds above 0, at most a day")
        }
        if let resetTimeS, !(resetTimeS >= 0 && resetTimeS <= 86_400) {
            throw ValidationError("--reset-time-s must be a number of seconds from 0 to a day")
        }
        if backend == .sim {
            for (given, name) in [
                (port, "--port"), (leaderPort, "--leader-port"), (episodeTimeS.map { "\($0)" }, "--episode-time-s"),
                (resetTimeS.map { "\($0)" }, "--reset-time-s"), (calibration, "--calibration"),
            ] where given != nil {
                throw ValidationError(
                    "\(name) is for a real arm (--backend pty or serial); simulated episodes last the task's time_limit_s"
                )
            }
        } else {
            guard leader != nil else {
                throw ValidationError(
                    "--backend \(backend.rawValue) records teleoperation: give the leader arm (--leader LEADER.yaml)")
            }
            if keep != nil { throw ValidationError("--keep is for simulation: on a real arm the keys decide") }
            if mcap != nil {
                throw ValidationError("--mcap is for simulation; on a real arm `sinew teleop --record` records MCAP")
            }
            if episodeOptions.policy != "cartesian" {
                throw ValidationError(
                    "--policy is for simulation: on a real arm the leader (--leader) is the demonstrator")
            }
            if episodeOptions.randomize || !episodeOptions.ranges.isEmpty {
                throw ValidationError("--randomize and --range change simulated physics: not on a real arm")
            }
        }
    }

    func run() throws {
        if backend != .sim { return try runOnArm() }
        let keep = self.keep ?? .success
        var loaded = try episodeOptions.load()
        if let leader {
            do {
                loaded.policy = .settings(try teleopSettings(leaderPath: leader, follower: loaded.setup.configuration))
            } catch let error as ValidationError {
                throw error
            } catch {
                throw CommandFailure("\(error)")
            }
        }
        let setup = loaded.setup
        let frameRate = fps ?? setup.task.fps
        let conversion = try jointConversion(setup)
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
            ("policy", leader.map { "teleop (leader \(($0 as NSString).lastPathComponent))" } ?? episodeOptions.policy),
            ("seeds", seeds.map(String.init).joined(separator: ",")),
            ("randomized", loaded.randomization == nil ? "false" : "true"),
            ("source", "sinew record (simulated, lockstep)"),
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
        try writeDataset(kept, setup: setup, frameRate: frameRate, conversion: conversion, notes: notes)
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

extension Record {
    /// `--backend pty|serial`: the follower runs in real time through `sinew run`'s path (configure, activate, the
    /// loop at its rate, the safe exit) with the teleop policy, and an ``ArmEpisodeRecorder`` on the recorder's
    /// thread turns the ticks into episodes as the operator's keys say. The dataset is written after the run has
    /// ended and the arm is shut down.
    func runOnArm() throws {
        let loaded = try episodeOptions.load()
        let setup = loaded.setup
        guard let leaderPath = leader else { throw ValidationError("--leader is needed on a real arm") }
        // Before the arm moves: a dataset that cannot be written must not cost a session.
        if FileManager.default.fileExists(atPath: dataset),
            !((try? FileManager.default.contentsOfDirectory(atPath: dataset))?.isEmpty ?? false)
        {
            throw ValidationError("--dataset \(dataset) exists and is not empty: give a new directory")
        }
        let frameRate = fps ?? setup.task.fps
        let conversion = try jointConversion(setup)
        let episodeTime = episodeTimeS ?? Self.defaultEpisodeTimeS
        let resetTime = resetTimeS ?? Self.defaultResetTimeS
        let recorder = ArmEpisodeRecorder(
            configuration: setup.configuration, model: setup.model, task: setup.task, conversion: conversion,
            episodes: episodes, episodeTimeS: episodeTime,
            resetTimeS: resetTime, fps: frameRate, seed: episodeOptions.seed)
        var options = RunOptions(calibrationPath: calibration)
        options.leaderPort = leaderPort
        options.companion = recorder
        options.policyOverride = { checked in try teleopPolicy(leaderPath: leaderPath, follower: checked) }
        printError(
            "recording \(episodes) episode(s) of \"\(setup.task.instruction)\" into \(dataset) at \(frameRate) fps: "
                + String(format: "up to %.1f s each, %.1f s resets between them. ", episodeTime, resetTime)
                + "Keys: → ends the episode (kept) or skips the reset; ← records the episode again; Esc ends the "
                + "session; e or space: e-stop; r: recover. Ctrl-C ends too. The episodes kept are written at the end.")
        /// The episodes kept, written and checked (after the run: the arm is shut down by then).
        func writeKept(_ kept: [LeRobotEpisode], endedBy: String) throws {
            let notes: [(String, String)] = [
                ("policy", "teleop (leader \((leaderPath as NSString).lastPathComponent))"),
                ("seeds", kept.indices.map { String(recorder.seed(ofEpisode: $0)) }.joined(separator: ",")),
                ("source", "sinew record (\(backend.rawValue), real time, teleoperated)"),
                ("episode_time_s", "\(episodeTime)"), ("reset_time_s", "\(resetTime)"),
                ("discarded_episodes", "\(recorder.discardedEpisodes)"), ("ended_by", endedBy),
            ]
            try writeDataset(kept, setup: setup, frameRate: frameRate, conversion: conversion, notes: notes)
        }
        let outcome: RunOutcome
        do {
            outcome = try RobotRun.run(
                configurationPath: episodeOptions.robot, backend: backend, port: port, duration: nil,
                statusLine: !json, options: options)
        } catch let failure as RunFailure {
            // A failure after ticks ran (a loop thread that cannot restart after a recovery): what was kept is
            // written all the same. Before the ticks nothing was recorded.
            if !recorder.keptEpisodes.isEmpty {
                try writeKept(recorder.keptEpisodes, endedBy: "failure: \(failure.message)")
                printError(
                    "\(dataset): the \(recorder.keptEpisodes.count) episode(s) kept before the failure are written")
            }
            if json {
                print(failure.json(robot: episodeOptions.robot, backend: backend).text)
                throw ExitCode(RunExit.error)
            }
            throw failure
        }
        // What happened after the monitor's last look (the recorder's thread has ended by now).
        for line in recorder.newLines() { printError(line) }
        if !json { print(outcome.summary) }
        let kept = recorder.keptEpisodes
        var endedBy = outcome.stoppedBy
        if recorder.recordedAll {
            endedBy = "all episodes recorded"
        } else if recorder.endedByEscape {
            endedBy = "Esc"
        }
        let cutShort =
            recorder.episodeCutShort ? "; the episode in progress when the run ended (\(endedBy)) is not kept" : ""
        guard !kept.isEmpty else {
            throw CommandFailure(
                "no episode was kept (ended by \(endedBy); \(recorder.discardedEpisodes) discarded\(cutShort)): "
                    + "nothing was written to \(dataset)")
        }
        try writeKept(kept, endedBy: endedBy)
        let frames = kept.reduce(0) { $0 + $1.state.count }
        if json {
            print(
                JSONValue.object([
                    ("dataset", .string(dataset)), ("episodes", .integer(kept.count)), ("frames", .integer(frames)),
                    ("episode_frames", .array(kept.map { .integer($0.state.count) })),
                    ("fps", .integer(frameRate)), ("units", .string(units.rawValue)),
                    ("seeds", .array(kept.indices.map { .integer(Int(recorder.seed(ofEpisode: $0))) })),
                    ("discarded", .integer(recorder.discardedEpisodes)), ("ended_by", .string(endedBy)),
                    ("run", outcome.json),
                ]).text)
        } else {
            print(
                "\(dataset): \(kept.count) of \(episodes) episodes (\(kept.map { "\($0.state.count)" }.joined(separator: ", ")) "
                    + "frames at \(frameRate) fps), task \"\(setup.task.instruction)\", joints in \(units.rawValue); "
                    + "LeRobotDataset v3.0, checked")
            print("  the session ended: \(endedBy); \(recorder.discardedEpisodes) episode(s) discarded\(cutShort)")
        }
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }

    /// The joints' conversion into the dataset's units (`--units`, `--gripper-joints`).
    /// Writes and checks the dataset of `episodes`: the notes every recording carries (robot, task, loop rate,
    /// version) around the run's own `notes`.
    func writeDataset(
        _ episodes: [LeRobotEpisode], setup: TwinSetup, frameRate: Int, conversion: LeRobotJointConversion,
        notes: [(String, String)]
    ) throws {
        let spec = LeRobotDatasetSpec(
            fps: frameRate, robotType: setup.configuration.name, conversion: conversion,
            environmentNames: setup.task.settings.observationNames(configuration: setup.configuration),
            episodes: episodes,
            notes: [
                ("robot", setup.configuration.name), ("task", setup.task.name),
                ("task_type", setup.task.settings.typeName),
            ] + notes + [
                ("loop_rate_hz", "\(setup.configuration.loop.rateHz)"), ("sinew_version", SinewVersion.number),
            ])
        _ = try DatasetHelper.write(spec, to: dataset, python: python)
    }

    func jointConversion(_ setup: TwinSetup) throws -> LeRobotJointConversion {
        let gripperNames = gripperJoints.map { $0.split(separator: ",").map(String.init) }
        for name in gripperNames ?? [] where setup.configuration.jointIndex(named: name) == nil {
            throw ValidationError("--gripper-joints: \(setup.configuration.file) has no joint \"\(name)\"")
        }
        return LeRobotJointConversion(
            units: units, configuration: setup.configuration, model: setup.model, gripperJoints: gripperNames)
    }
}
