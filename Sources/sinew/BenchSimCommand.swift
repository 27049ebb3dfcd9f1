import ArgumentParser
import Foundation
import SinewBus
import SinewRuntime
import SinewTwin

struct SimBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulated seconds per wall-clock second: the whole stack, per core and on 2 jobs, beside MuJoCo.",
        discussion: """
            Sinew: episodes of a task (by default the SO-101's trajectory_tracking with the trajectory policy) in \
            lockstep through the whole stack — the servos' firmware and motor models, the bus bytes with wire \
            timing, the arm's rigid-body physics at 1 kHz, the IMU, the loop with its safety supervisor, the \
            policy — each episode built from its seed (its set-up counted), first in this process (per core), then \
            on --jobs worker processes at once. MuJoCo (PyPI mujoco, Benchmarks/sim/mujoco_rollout.py): the same \
            URDF with visuals and collisions stripped (same links, inertias, joint limits), a position actuator per \
            joint following the same waypoints, 1 kHz, implicit integrator, stepped in C by mujoco.rollout. The \
            three are interleaved --repeats times on the same machine and their medians reported, with the ratios. \
            The Python with mujoco is --python, else the checkout's .build/bench-sim-venv (`make bench-sim` makes \
            it); without one, mujoco_rtf is null. --json keys: sinew_rtf_per_core, sinew_rtf_jobs2, mujoco_rtf, \
            ratio_per_core_to_mujoco, jobs2_speedup, …
            """)

    @Option(help: "The robot's robot.yaml (default: the shipped SO-101).")
    var robot: String?

    @Option(help: "The task (default: the robot's tasks/trajectory_tracking.yaml).")
    var task: String?

    @Option(help: "The policy (default: trajectory).")
    var policy = "trajectory"

    /// Enough that starting the worker processes (each loads the robot and the task, ~0.05 s) is a few per cent
    /// of the parallel figure: with 4 episodes per job two jobs measured 1.2× one. An episode takes ~20 ms since
    /// the simulator got faster, so 80 keep a job near two seconds.
    @Option(help: "Episodes per job and repeat.")
    var episodes = 80

    @Option(help: "Worker processes for the parallel figure.")
    var jobs = 2

    @Option(help: "Interleaved repeats of the three measurements (medians reported).")
    var repeats = 3

    @Option(help: "The Python with mujoco and numpy.")
    var python: String?

    @Flag(help: "Skip MuJoCo.")
    var noMujoco = false

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard (1...1000).contains(episodes), (1...64).contains(jobs), (1...50).contains(repeats) else {
            throw ValidationError("--episodes 1–1000, --jobs 1–64, --repeats 1–50")
        }
    }

    func run() throws {
        let hardware = try HardwareDirectory.locate()
        let robotPath = robot ?? hardware + "/robots/so101/robot.yaml"
        let taskPath = task ?? ((robotPath as NSString).deletingLastPathComponent + "/tasks/trajectory_tracking.yaml")
        var options = try TaskRunOptions.parse([robotPath, "--task", taskPath, "--policy", policy])
        options.seed = 1
        let loaded = try options.load()
        let setup = loaded.setup
        let mujocoPython = noMujoco ? nil : try mujocoInterpreter()
        var perCore: [Double] = []
        var parallel: [Double] = []
        var mujoco: [Double] = []
        var mujocoReport: [String: Any] = [:]
        var successes = 0
        var ran = 0
        for repeatIndex in 0..<repeats {
            // One process.
            let start = MonotonicInstant.now().nanoseconds
            var simulated = 0.0
            for e in 0..<episodes {
                let result = TwinEpisode.run(setup, seed: UInt64(repeatIndex * episodes + e), policy: loaded.policy)
                    .result
                if result.outcome == "error" { throw CommandFailure("episode failed: \(result.reason ?? "?")") }
                simulated += result.durationS
                successes += result.succeeded ? 1 : 0
                ran += 1
            }
            perCore.append(simulated / (Double(MonotonicInstant.now().nanoseconds - start) * 1e-9))
            // J processes at once.
            let parallelStart = MonotonicInstant.now().nanoseconds
            let results = try EvalWorkers.run(
                arguments: options.workerArguments, episodes: episodes * jobs, jobs: jobs, progress: { _ in })
            let wall = Double(MonotonicInstant.now().nanoseconds - parallelStart) * 1e-9
            parallel.append(results.reduce(0) { $0 + $1.durationS } / wall)
            // MuJoCo.
            if let mujocoPython {
                mujocoReport = try runMuJoCo(python: mujocoPython, setup: setup, seconds: simulated)
                if let rtf = mujocoReport["rtf"] as? Double { mujoco.append(rtf) }
            }
        }
        func median(_ values: [Double]) -> Double? {
            values.isEmpty ? nil : values.sorted()[values.count / 2]
        }
        let core = median(perCore) ?? 0
        let jobsFigure = median(parallel) ?? 0
        let mujocoFigure = median(mujoco)
        if json {
            print(
                JSONValue.object([
                    ("robot", .string(setup.configuration.name)), ("task", .string(setup.task.name)),
                    ("policy", .string(policy)), ("episodes_per_job", .integer(episodes)), ("jobs", .integer(jobs)),
                    ("repeats", .integer(repeats)), ("sinew_rtf_per_core", .number(core)),
                    ("sinew_rtf_jobs2", .number(jobsFigure)), ("mujoco_rtf", mujocoFigure.map { .number($0) } ?? .null),
                    (
                        "ratio_per_core_to_mujoco",
                        mujocoFigure.map { .number(core / $0) } ?? .null
                    ),
                    ("jobs2_speedup", .number(core > 0 ? jobsFigure / core : 0)),
                    ("sinew_rtf_per_core_runs", .numbers(perCore)), ("sinew_rtf_jobs2_runs", .numbers(parallel)),
                    ("mujoco_rtf_runs", .numbers(mujoco)),
                    ("mujoco_version", (mujocoReport["mujoco_version"] as? String).map { .string($0) } ?? .null),
                    ("episodes_succeeded", .integer(successes)), ("episodes_run", .integer(ran)),
                ]).text)
            return
        }
        print("\(setup.task.name) on \(setup.configuration.name), policy \(policy): simulated s per wall-clock s")
        print(String(format: "  Sinew, whole stack, 1 process   %7.1f×  (runs: %@)", core, runs(perCore)))
        print(
            String(
                format: "  Sinew, whole stack, %d processes %7.1f×  (runs: %@; %.2f× one process)", jobs, jobsFigure,
                runs(parallel), core > 0 ? jobsFigure / core : 0))
        if let mujocoFigure {
            // Padded to the Sinew lines' column, whatever the version's length.
            let label = "  MuJoCo \((mujocoReport["mujoco_version"] as? String) ?? "?"), physics alone"
            print(
                label.padding(toLength: max(label.count, 34), withPad: " ", startingAt: 0)
                    + String(
                        format: "%7.1f×  (runs: %@; Sinew per core is %.2f× MuJoCo)", mujocoFigure, runs(mujoco),
                        core / mujocoFigure))
        } else {
            print("  MuJoCo: not run (no Python with mujoco: `make bench-sim`, or --python)")
        }
        print("  (\(successes)/\(ran) episodes succeeded; \(ProcessInfo.processInfo.activeProcessorCount) cores)")
    }

    func runs(_ values: [Double]) -> String { values.map { String(format: "%.0f", $0) }.joined(separator: ", ") }

    func mujocoInterpreter() throws -> String? {
        if let python { return python }
        let hardware = try HardwareDirectory.find()
        guard hardware.source == "checkout" else { return nil }
        let venv = ((hardware.path as NSString).deletingLastPathComponent as NSString)
            .appendingPathComponent(".build/bench-sim-venv/bin/python")
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// Benchmarks/sim/mujoco_rollout.py on the robot's URDF and the task's waypoints, as long as Sinew's run.
    func runMuJoCo(python: String, setup: TwinSetup, seconds: Double) throws -> [String: Any] {
        let hardware = try HardwareDirectory.locate()
        let script =
            ((hardware as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
                "Benchmarks/sim/mujoco_rollout.py")
        guard FileManager.default.fileExists(atPath: script) else {
            throw CommandFailure("cannot find \(script) (MuJoCo's side of the benchmark lives in a checkout)")
        }
        var waypoints = "["
        let source: [RobotConfiguration.Waypoint] =
            (setup.task.settings as? TrajectoryTrackingTaskSettings)?.waypoints
            ?? [RobotConfiguration.Waypoint(positionsRad: setup.configuration.joints.map { _ in 0 }, durationS: 2)]
        for (i, waypoint) in source.enumerated() {
            if i > 0 { waypoints += "," }
            waypoints += "{\"duration_s\":\(waypoint.durationS),\"positions_rad\":["
            waypoints += waypoint.positionsRad.map { "\($0)" }.joined(separator: ",") + "]}"
        }
        waypoints += "]"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            script, setup.configuration.modelPath, "--joints",
            setup.configuration.joints.map(\.name).joined(separator: ","),
            "--waypoints", waypoints, "--seconds", String(format: "%.3f", max(seconds, 1)), "--repeats", "1",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
            let report = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw CommandFailure("\(script) failed (status \(process.terminationStatus))")
        }
        return report
    }
}
