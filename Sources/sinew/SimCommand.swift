import ArgumentParser
import Foundation
import SinewBus
import SinewCore
import SinewKinematics
import SinewPolicy
import SinewRuntime
import SinewTwin
import Synchronization

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tasks on the simulated robot: evaluate a policy over many seeded episodes.",
        subcommands: [SimEval.self, SimWorker.self])
}

/// The robot, the task, the policy and the randomisation of a series of simulated episodes (`sinew sim eval`,
/// `sinew record`).
struct TaskRunOptions: ParsableArguments {
    @Argument(help: "The robot's robot.yaml.")
    var robot: String

    @Option(help: "The task file (task.yaml: goal, success, time limit, randomisation ranges).")
    var task: String

    @Option(
        help: ArgumentHelp(
            "The policy: a built-in type that takes its goal from the task (cartesian for reach, trajectory for "
                + "trajectory_tracking), a policy file (YAML with a `policy:` mapping as in robot.yaml: mlp, remote, "
                + "any type), or `robot` for robot.yaml's own."))
    var policy: String = "cartesian"

    @Option(help: "The first episode's seed; episode i uses seed + i. One seed gives one episode, bit for bit.")
    var seed: UInt64 = 0

    @Flag(help: "Randomise each episode's physics with the ranges of the task's `randomization:` section.")
    var randomize = false

    @Option(
        name: .customLong("range"),
        help: ArgumentHelp(
            "A randomisation range KEY=LOW:HIGH (repeatable, or comma-separated), over the task's; switches "
                + "randomisation on. Keys: \(DomainRandomization.keys.joined(separator: ", ")).",
            valueName: "KEY=LOW:HIGH"))
    var ranges: [String] = []

    /// The ranges given on the command line.
    func commandLineRanges() throws -> DomainRandomization {
        var merged = DomainRandomization()
        for text in ranges {
            do {
                merged = merged.merging(try DomainRandomization.parse(text))
            } catch {
                throw ValidationError("--range: \(error)")
            }
        }
        return merged
    }

    /// Robot, task and policy loaded and checked: every error names its file and line, before anything runs.
    func load() throws -> LoadedTwin {
        let checked: CheckedRobotConfiguration
        do {
            checked = try RobotConfiguration.loadChecked(contentsOf: robot)
        } catch {
            throw CommandFailure("\(error)")
        }
        let catalog = try ServoTables.load()
        let task: TaskConfiguration
        do {
            let loaded = try TaskConfiguration.load(
                contentsOf: self.task, robot: checked.configuration, model: checked.model)
            task = loaded.task
            for warning in loaded.warnings { printError("warning: \(warning)") }
        } catch {
            throw CommandFailure("\(error)")
        }
        let episodePolicy: EpisodePolicy
        if policy == "robot" {
            episodePolicy = .settings(checked.configuration.policy.settings)
        } else if policy.hasSuffix(".yaml") || policy.hasSuffix(".yml") || policy.contains("/") {
            do {
                let loaded = try checked.configuration.loadPolicy(contentsOf: policy, model: checked.model)
                for warning in loaded.warnings { printError("warning: \(warning)") }
                episodePolicy = .settings(loaded.policy.settings)
            } catch {
                throw CommandFailure("\(error)")
            }
        } else {
            let names = PolicyTypes.builtin.map(\.name)
            guard names.contains(policy) else {
                throw ValidationError(
                    "--policy \(policy): not a policy type (\(names.joined(separator: ", "))), a policy file (.yaml) "
                        + "or `robot`")
            }
            episodePolicy = .fromTask(policy)
        }
        let extra = try commandLineRanges()
        let randomization: DomainRandomization? =
            randomize || !extra.isEmpty ? task.randomization.merging(extra) : nil
        if randomize && task.randomization.isEmpty && extra.isEmpty {
            printError("warning: --randomize: \(self.task) has no `randomization:` ranges; the physics stays nominal")
        }
        let setup: TwinSetup
        do {
            setup = try TwinSetup(
                configuration: checked.configuration, model: checked.model, catalog: catalog, task: task)
        } catch {
            throw CommandFailure("\(error)")
        }
        return LoadedTwin(setup: setup, policy: episodePolicy, randomization: randomization)
    }

    /// The arguments that reproduce these options in a worker process.
    var workerArguments: [String] {
        var arguments = [robot, "--task", task, "--policy", policy, "--seed", "\(seed)"]
        if randomize { arguments.append("--randomize") }
        for range in ranges { arguments += ["--range", range] }
        return arguments
    }
}

/// A loaded robot, task and policy.
struct LoadedTwin {
    var setup: TwinSetup
    var policy: EpisodePolicy
    var randomization: DomainRandomization?

    func options(mcapDirectory: String?, seed: UInt64) -> EpisodeOptions {
        var options = EpisodeOptions(randomization: randomization)
        options.mcapPath = mcapDirectory.map { ($0 as NSString).appendingPathComponent("episode-\(seed).mcap") }
        options.library = "sinew \(SinewVersion.number)"
        return options
    }
}

struct SimEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run a policy on a task over N seeded episodes in lockstep and report its success rate.",
        discussion: """
            Each episode builds the robot anew from its seed — the task's random goal, the start pose, and with \
            --randomize the physics (masses, friction, backlash, servo gains, bus latency and loss, sensor noise, \
            loop jitter) — and runs the runtime's loop against the simulated servos tick by tick on the simulation \
            clock, as fast as the machine allows, until the task succeeds, fails, the robot goes to its safe state \
            or the time limit passes. --jobs J runs J worker processes; the result does not depend on J. The report: \
            the success rate with a 95 % Wilson interval, time to success, the task's error, the loop's tracking \
            error, safety events, episodes per second and the real-time factor (simulated over wall-clock seconds). \
            --json prints one object (success_rate, ci95, episodes, episodes_per_s, real_time_factor, …); \
            --per-episode adds every episode's result.
            Example: sinew sim eval Hardware/robots/so101/robot.yaml --task Hardware/robots/so101/tasks/reach.yaml \
            --policy cartesian --episodes 100 --seed 1000 --jobs 2
            """)

    @OptionGroup var episodeOptions: TaskRunOptions

    @Option(help: "Episodes to run (seeds seed … seed + N − 1).")
    var episodes = 10

    @Option(help: "Worker processes (1: in this process).")
    var jobs = 1

    @Option(help: "Record every episode to DIR/episode-<seed>.mcap (robot.yaml, the URDF and the task attached).")
    var mcap: String?

    @Flag(help: "End with one JSON object instead of the human summary.")
    var json = false

    @Flag(help: "With --json: every episode's result under `results`.")
    var perEpisode = false

    func validate() throws {
        guard (1...1_000_000).contains(episodes) else { throw ValidationError("--episodes must be 1 to 1000000") }
        guard (1...256).contains(jobs) else { throw ValidationError("--jobs must be 1 to 256") }
    }

    func run() throws {
        let loaded = try episodeOptions.load()
        if let mcap {
            do {
                try FileManager.default.createDirectory(atPath: mcap, withIntermediateDirectories: true)
            } catch {
                throw CommandFailure("--mcap \(mcap): \(error)")
            }
        }
        let status = StatusLine(logIntervalS: 2)
        let start = MonotonicInstant.now().nanoseconds
        let seeds = (0..<UInt64(episodes)).map { episodeOptions.seed &+ $0 }
        let results: [EpisodeResult]
        if jobs == 1 {
            var done: [EpisodeResult] = []
            for seed in seeds {
                done.append(
                    TwinEpisode.run(
                        loaded.setup, seed: seed, policy: loaded.policy,
                        options: loaded.options(mcapDirectory: mcap, seed: seed)
                    ).result)
                status.show(Self.progress(done, of: episodes, startNs: start))
            }
            results = done
        } else {
            results = try EvalWorkers.run(
                arguments: episodeOptions.workerArguments + (mcap.map { ["--mcap", $0] } ?? []), episodes: episodes,
                jobs: jobs
            ) { done in status.show(Self.progress(done, of: episodes, startNs: start)) }
        }
        status.finish()
        let summary = EvaluationSummary(
            results: results, wallS: Double(MonotonicInstant.now().nanoseconds - start) * 1e-9)
        if json {
            print(Self.json(summary, loaded: loaded, options: self).text)
        } else {
            print(Self.text(summary, loaded: loaded, options: self))
        }
        if let failed = results.first(where: { $0.outcome == "error" }) {
            printError("episode \(failed.seed) could not run: \(failed.reason ?? "?")")
            throw ExitCode(1)
        }
    }

    /// `[#####-----] 37/100 episodes, 35 succeeded  12.3 episodes/s  ETA 5 s`.
    static func progress(_ done: [EpisodeResult], of total: Int, startNs: UInt64) -> String {
        let width = 24
        let filled = total > 0 ? done.count * width / total : width
        let elapsedS = Double(MonotonicInstant.now().nanoseconds - startNs) * 1e-9
        let rate = elapsedS > 0 ? Double(done.count) / elapsedS : 0
        let eta = rate > 0 ? Double(total - done.count) / rate : 0
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
            + "\(done.count)/\(total) episodes, \(done.filter(\.succeeded).count) succeeded  "
            + String(format: "%.1f episodes/s  ETA %.0f s", rate, eta)
    }

    static func json(_ summary: EvaluationSummary, loaded: LoadedTwin, options: SimEval) -> JSONValue {
        let ci = summary.confidenceInterval95
        let times = summary.timesToSuccessS
        let results = summary.results
        func stats(_ values: [Double]) -> JSONValue {
            let sorted = values.sorted()
            return .object([
                ("mean", EvaluationSummary.mean(sorted).map { .number($0) } ?? .null),
                ("p50", EvaluationSummary.quantile(sorted, 0.5).map { .number($0) } ?? .null),
                ("p90", EvaluationSummary.quantile(sorted, 0.9).map { .number($0) } ?? .null),
                ("max", sorted.last.map { .number($0) } ?? .null),
            ])
        }
        var members: [(String, JSONValue)] = [
            ("robot", .string(loaded.setup.configuration.name)), ("task", .string(loaded.setup.task.name)),
            ("task_type", .string(loaded.setup.task.settings.typeName)),
            ("policy", .string(options.episodeOptions.policy)),
            ("seed", .integer(Int(options.episodeOptions.seed))), ("randomized", .bool(loaded.randomization != nil)),
            ("episodes", .integer(summary.episodes)), ("successes", .integer(summary.successes)),
            ("success_rate", .number(summary.successRate)), ("ci95", .numbers([ci.low, ci.high])),
            ("outcomes", .object(summary.outcomes.map { ($0.0, .integer($0.1)) })),
            ("time_to_success_s", stats(times)),
            ("task_error_unit", .string(results.first { $0.outcome != "error" }?.taskErrorUnit ?? "")),
            ("task_final_error", stats(results.filter { $0.outcome != "error" }.map(\.taskFinalError))),
            ("task_rms_error", stats(results.filter { $0.outcome != "error" }.map(\.taskRMSError))),
            ("tracking_rms_rad", stats(results.filter { $0.outcome != "error" }.map(\.trackingRMSRad))),
            (
                "safety",
                .object([
                    ("episodes_ended_safe", .integer(results.filter { $0.outcome == "safety" }.count)),
                    ("events", .integer(results.reduce(0) { $0 + $1.safetyEvents.count })),
                    ("causes", .object(summary.safetyCauses.map { ($0.0, .integer($0.1)) })),
                    ("bus_errors", .integer(results.reduce(0) { $0 + $1.busErrors })),
                ])
            ),
            ("simulated_s", .number(summary.simulatedS)), ("wall_s", .number(summary.wallS)),
            ("episodes_per_s", .number(summary.episodesPerS)), ("real_time_factor", .number(summary.realTimeFactor)),
            ("jobs", .integer(options.jobs)),
        ]
        if options.perEpisode {
            members.append(
                (
                    "results",
                    .array(
                        results.map { r in
                            .object([
                                ("seed", .integer(Int(r.seed))), ("outcome", .string(r.outcome)),
                                ("reason", r.reason.map { .string($0) } ?? .null),
                                ("time_to_success_s", r.timeToSuccessS.map { .number($0) } ?? .null),
                                ("duration_s", .number(r.durationS)), ("ticks", .integer(r.ticks)),
                                ("task_final_error", .number(r.taskFinalError)),
                                ("task_rms_error", .number(r.taskRMSError)),
                                ("tracking_rms_rad", .number(r.trackingRMSRad)),
                                ("goal", r.goalName.isEmpty ? .null : .object([(r.goalName, .numbers(r.goal))])),
                                ("safety_events", .array(r.safetyEvents.map { .string($0) })),
                                ("bus_errors", .integer(r.busErrors)), ("trace_hash", .string(r.traceHash)),
                            ])
                        })
                ))
        }
        return .object(members)
    }

    static func text(_ summary: EvaluationSummary, loaded: LoadedTwin, options: SimEval) -> String {
        let setup = loaded.setup
        let ci = summary.confidenceInterval95
        let first = options.episodeOptions.seed
        let last = first &+ UInt64(max(summary.episodes - 1, 0))
        var text = "\(setup.task.name) (\(setup.task.settings.typeName)) on \(setup.configuration.name), policy "
        text += "\(options.episodeOptions.policy): \(summary.episodes) episodes, seeds \(first)–\(last), randomisation "
        text += loaded.randomization.map { $0.isEmpty ? "on (no ranges)" : "on (\($0.ranges.count) knobs)" } ?? "off"
        text += "\n"
        text += String(
            format: "  success %d/%d = %.1f %% (95 %% CI %.1f–%.1f %%)\n", summary.successes, summary.episodes,
            100 * summary.successRate, 100 * ci.low, 100 * ci.high)
        let outcomes = summary.outcomes.filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
        text += "  outcomes: \(outcomes)\n"
        let times = summary.timesToSuccessS
        if let mean = EvaluationSummary.mean(times), let p50 = EvaluationSummary.quantile(times, 0.5),
            let p90 = EvaluationSummary.quantile(times, 0.9)
        {
            text += String(format: "  time to success: mean %.2f s, median %.2f s, p90 %.2f s\n", mean, p50, p90)
        }
        let ran = summary.results.filter { $0.outcome != "error" }
        let unit = ran.first?.taskErrorUnit ?? ""
        let scale = unit == "m" ? 1000.0 : 1000.0
        let shown = unit == "m" ? "mm" : "mrad"
        if let final = EvaluationSummary.quantile(ran.map(\.taskFinalError).sorted(), 0.5),
            let rms = EvaluationSummary.mean(ran.map(\.taskRMSError)),
            let tracking = EvaluationSummary.mean(ran.map(\.trackingRMSRad))
        {
            text += String(
                format:
                    "  task error: final median %.1f %@, RMS over the episodes %.1f %@; loop tracking RMS %.1f mrad\n",
                final * scale, shown, rms * scale, shown, 1000 * tracking)
        }
        let safe = ran.filter { $0.outcome == "safety" }.count
        let causes = summary.safetyCauses.map { "\($0.0) ×\($0.1)" }.joined(separator: ", ")
        text += "  safety: \(safe) episode(s) ended in the safe state"
        text += causes.isEmpty ? "" : " (\(causes))"
        text += "; bus errors \(ran.reduce(0) { $0 + $1.busErrors })\n"
        text += String(
            format:
                "  speed: %.1f s of wall time for %.1f s simulated: %.1f episodes/s, real-time factor %.0f (%d job%@)",
            summary.wallS, summary.simulatedS, summary.episodesPerS, summary.realTimeFactor, options.jobs,
            options.jobs == 1 ? "" : "s")
        return text
    }
}

/// One worker of `sinew sim eval --jobs J`: runs episodes shard, shard + J, … of N and prints each result as one
/// JSON line on standard output. Not for people: the parent reads it.
struct SimWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "A worker process of `sinew sim eval --jobs` (internal).",
        shouldDisplay: false)

    @OptionGroup var episodeOptions: TaskRunOptions

    @Option var episodes: Int
    @Option var shard: Int
    @Option var shards: Int
    @Option var mcap: String?

    func run() throws {
        let loaded = try episodeOptions.load()
        let encoder = JSONEncoder()
        for i in stride(from: shard, to: episodes, by: max(shards, 1)) {
            let seed = episodeOptions.seed &+ UInt64(i)
            let result = TwinEpisode.run(
                loaded.setup, seed: seed, policy: loaded.policy,
                options: loaded.options(mcapDirectory: mcap, seed: seed)
            ).result
            var line = try encoder.encode(result)
            line.append(0x0A)
            FileHandle.standardOutput.write(line)
        }
    }
}

/// Starts J workers of this executable, collects their results line by line, and reports progress.
enum EvalWorkers {
    static func run(
        arguments: [String], episodes: Int, jobs: Int, progress: ([EpisodeResult]) -> Void
    ) throws -> [EpisodeResult] {
        let collected = Mutex<[EpisodeResult]>([])
        let problems = Mutex<[String]>([])
        var processes: [(Process, String)] = []
        var readers: [Thread] = []
        let executable = HardwareDirectory.executablePath()
        var environment = ProcessInfo.processInfo.environment
        environment[ParentWatch.environmentKey] = "1"
        let remaining = Atomic<Int>(0)
        for shard in 0..<min(jobs, episodes) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments =
                ["sim", "worker"] + arguments + [
                    "--episodes", "\(episodes)", "--shard", "\(shard)", "--shards", "\(min(jobs, episodes))",
                ]
            process.environment = environment
            let output = Pipe()
            process.standardOutput = output
            let errPath = FileManager.default.temporaryDirectory.appendingPathComponent(
                "sinew-worker-\(getpid())-\(shard).err"
            ).path
            _ = FileManager.default.createFile(atPath: errPath, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
            try process.run()
            processes.append((process, errPath))
            remaining.add(1, ordering: .relaxed)
            let handle = output.fileHandleForReading
            let reader = Thread {
                let decoder = JSONDecoder()
                var buffer = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    buffer.append(chunk)
                    while let newline = buffer.firstIndex(of: 0x0A) {
                        let line = buffer[buffer.startIndex..<newline]
                        buffer.removeSubrange(buffer.startIndex...newline)
                        do {
                            let result = try decoder.decode(EpisodeResult.self, from: line)
                            collected.withLock { $0.append(result) }
                        } catch {
                            problems.withLock { $0.append("worker \(shard): unreadable result: \(error)") }
                        }
                    }
                }
                remaining.subtract(1, ordering: .releasing)
            }
            reader.start()
            readers.append(reader)
        }
        while remaining.load(ordering: .acquiring) > 0 {
            usleep(100_000)
            progress(collected.withLock { $0 })
        }
        for (process, errPath) in processes {
            process.waitUntilExit()
            let text = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: errPath)
            if process.terminationStatus != 0 {
                problems.withLock {
                    $0.append("a worker exited with status \(process.terminationStatus): \(text)")
                }
            }
        }
        let results = collected.withLock { $0 }
        progress(results)
        if let problem = problems.withLock({ $0.first }) { throw CommandFailure(problem) }
        guard results.count == episodes else {
            throw CommandFailure("the workers returned \(results.count) of \(episodes) episodes")
        }
        return results
    }
}
