import ArgumentParser
import Foundation
import SinewKinematics
import SinewPolicy
import SinewRecording
import SinewRuntime

/// `sinew recording info|export|repair`: look into, convert and mend flight recordings.
struct RecordingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recording",
        abstract: "Look into a flight recording (MCAP), export it as CSV, or repair one a killed run left.",
        discussion: """
            `sinew run --record DIR` (or robot.yaml's `recording:`) writes every tick to DIR/<robot>-<date>.mcap; \
            docs/recording.md lists its channels. Open it in Foxglove, or with any MCAP reader.
            Examples:
              sinew recording info runs/so101-2026-12-07T10-00-00Z.mcap
              sinew recording export runs/so101-….mcap --csv out/
              sinew recording repair runs/so101-….mcap
            """,
        subcommands: [RecordingInfo.self, RecordingExport.self, RecordingRepair.self])
}

/// Loads a recording for a command, as a usage-level error when it cannot be read.
private func loadRecording(_ path: String) throws -> RecordedRun {
    do {
        return try RecordedRun.load(path: path)
    } catch {
        throw CommandFailure("\(error)")
    }
}

struct RecordingInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Channels and message counts, duration, attachments and safety events of a recording.")

    @Argument(help: "The recording (.mcap).")
    var file: String

    @Flag(help: "One JSON object instead of text.")
    var json = false

    func run() throws {
        let reader: MCAPReader
        do {
            reader = try MCAPReader(path: file, options: MCAPReaderOptions(allowsIncompleteFile: true))
        } catch {
            throw CommandFailure("\(file): \(error)")
        }
        let run = try loadRecording(file)
        let statistics = reader.statistics
        var startNs = statistics.messageStartTimeNs
        var endNs = statistics.messageEndTimeNs
        if !reader.readFromSummary {
            // No summary (a killed run): the times come from the messages read.
            startNs = run.segments.first?.ticks.first?.logTimeNs ?? 0
            endNs = run.segments.last?.ticks.last?.logTimeNs ?? 0
        }
        let durationS = endNs > startNs ? Double(endNs - startNs) * 1e-9 : 0
        let channels = reader.channels.values.sorted { $0.id < $1.id }.map { channel in
            (channel.topic, channel.messageEncoding, run.messageCounts[channel.topic] ?? 0)
        }
        let attachments = reader.attachmentIndexes.map { ($0.name, $0.mediaType, Int($0.dataSize)) }
        if json {
            let value = JSONValue.object([
                ("file", .string(file)), ("library", .string(reader.header.library)),
                ("profile", .string(reader.header.profile)), ("complete", .bool(reader.damage == nil)),
                ("damage", run.damage.map { .string($0) } ?? .null),
                ("robot", run.metadata["robot"].map { .string($0) } ?? .null),
                ("policy", run.metadata["policy"].map { .string($0) } ?? .null),
                ("duration_s", .number(durationS)), ("ticks", .integer(run.tickCount)),
                (
                    "first_tick_time_ns",
                    run.segments.first?.ticks.first.map { .integer(Int($0.logTimeNs)) } ?? .null
                ),
                ("last_tick_time_ns", run.segments.last?.ticks.last.map { .integer(Int($0.logTimeNs)) } ?? .null),
                ("segments", .integer(run.segments.count)),
                ("joints", .array(run.jointNames.map { .string($0) })),
                (
                    "channels",
                    .array(
                        channels.map {
                            .object([
                                ("topic", .string($0.0)), ("encoding", .string($0.1)), ("messages", .integer($0.2)),
                            ])
                        })
                ),
                (
                    "attachments",
                    .array(
                        attachments.map {
                            .object([("name", .string($0.0)), ("media_type", .string($0.1)), ("bytes", .integer($0.2))])
                        })
                ),
                (
                    "safety_events",
                    .array(
                        run.safetyEvents.map {
                            .object([
                                ("t", .number($0.timeS)), ("cause", .string($0.cause)),
                                ("joint", $0.joint.map { .string($0) } ?? .null),
                                ("description", .string($0.description)),
                            ])
                        })
                ),
            ])
            print(value.text)
            return
        }
        var out = "\(file)\n"
        out += "  written by \(reader.header.library)"
        if !reader.header.profile.isEmpty { out += ", profile \(reader.header.profile)" }
        out +=
            reader.damage == nil
            ? "\n" : "\n  UNFINISHED (a killed run?): \(run.damage ?? "") — `sinew recording repair`\n"
        if let robot = run.metadata["robot"] {
            out += "  robot \(robot), policy \(run.metadata["policy"] ?? "?"), \(run.metadata["rate_hz"] ?? "?") Hz\n"
        }
        out +=
            "  \(String(format: "%.3f", durationS)) s, \(run.tickCount) ticks"
            + (run.segments.count > 1 ? " in \(run.segments.count) segments (recoveries)" : "") + "\n"
        out += "  joints: \(run.jointNames.joined(separator: ", "))\n"
        out += "  channels:\n"
        for (topic, encoding, count) in channels {
            out +=
                "    \(topic.padding(toLength: 20, withPad: " ", startingAt: 0)) \(encoding.padding(toLength: 5, withPad: " ", startingAt: 0)) \(count) messages\n"
        }
        out += "  attachments:\n"
        for (name, mediaType, bytes) in attachments { out += "    \(name) (\(mediaType), \(bytes) bytes)\n" }
        out += "  safety events: \(run.safetyEvents.isEmpty ? "none" : "")\n"
        for event in run.safetyEvents { out += "    \(String(format: "%.3f", event.timeS)) s  \(event.description)\n" }
        print(out, terminator: "")
    }
}

struct RecordingExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a recording's ticks as CSV (one line per tick, the columns of `sinew run --record x.csv`).",
        discussion: """
            Writes DIR/<recording name>.csv: tick, t_s, state, the stage timings, then per joint position_rad, \
            velocity_rad_s, effort_nm, command_rad and target_rad; after a recovery the ticks count from 0 again. \
            With --attachments, also writes the files attached to the recording (robot.yaml, the URDF, the \
            calibration, the command line, the version, the real-time set-up) into DIR.
            """)

    @Argument(help: "The recording (.mcap).")
    var file: String

    @Option(help: "Directory to write the CSV file into (made if missing).")
    var csv: String

    @Flag(help: "Also write the recording's attachments into the directory.")
    var attachments = false

    func run() throws {
        let run = try loadRecording(file)
        do {
            try FileManager.default.createDirectory(atPath: csv, withIntermediateDirectories: true)
        } catch {
            throw CommandFailure("cannot make \(csv): \(error.localizedDescription)")
        }
        let name = ((file as NSString).lastPathComponent as NSString).deletingPathExtension + ".csv"
        let path = (csv as NSString).appendingPathComponent(name)
        let names = run.jointNames
        var text = "tick,t_s,state,wake_lateness_ns,loop_time_ns,command_time_ns"
        for joint in names {
            text += ",\(joint).position_rad,\(joint).velocity_rad_s,\(joint).effort_nm,\(joint).command_rad"
            text += ",\(joint).target_rad"
        }
        text += "\n"
        func field(_ values: [Double], _ j: Int) -> String { j < values.count ? "\(values[j])" : "" }
        for segment in run.segments {
            for tick in segment.ticks {
                text += "\(tick.tick),\(tick.timeS),\(tick.state),,\(tick.loopTimeNs),\(tick.commandTimeNs)"
                for j in 0..<names.count {
                    text +=
                        ",\(field(tick.positionRad, j)),\(field(tick.velocityRadPerS, j)),\(field(tick.effortNm, j))"
                    text += ",\(field(tick.commandRad, j)),\(field(tick.targetRad, j))"
                }
                text += "\n"
            }
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw CommandFailure("cannot write \(path)")
        }
        print("\(path): \(run.tickCount) ticks, \(names.count) joints")
        guard attachments else { return }
        for attachment in run.attachments {
            let target = (csv as NSString).appendingPathComponent((attachment.name as NSString).lastPathComponent)
            guard FileManager.default.createFile(atPath: target, contents: Data(attachment.data)) else {
                throw CommandFailure("cannot write \(target)")
            }
            print("\(target): \(attachment.mediaType), \(attachment.data.count) bytes")
        }
    }
}

struct RecordingRepair: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Make a recording that a killed run left unfinished readable again, keeping every whole chunk.",
        discussion: """
            A run killed with SIGKILL (or a power cut) leaves its file without its summary and footer, and the \
            chunk being written cut off. Repair keeps every whole chunk (the recorder closes one at least every \
            second, so at most about a second of ticks is lost) and writes a new summary and footer — in place, \
            or into --output.
            """)

    @Argument(help: "The recording (.mcap).")
    var file: String

    @Option(help: "Write the repaired recording here instead of repairing the file in place.")
    var output: String?

    func run() throws {
        let report: MCAPRepairReport
        do {
            report = try MCAPRepair.repair(path: file, outputPath: output)
        } catch {
            throw CommandFailure("\(file): \(error)")
        }
        if report.wasComplete {
            print("\(report.file): already complete (\(report.messagesKept) messages); nothing to repair")
            return
        }
        print(
            "\(report.file): repaired — kept \(report.chunksKept) chunks, \(report.messagesKept) messages, "
                + "\(report.attachmentsKept) attachments; dropped \(report.bytesDiscarded) bytes"
                + (report.damage.map { " (\($0))" } ?? ""))
    }
}

/// `sinew replay`: a recording through the policy and the guard again, or through the simulated robot.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract:
            "Re-run a flight recording through its policy and the safety supervisor, or drive the simulator with it.",
        discussion: """
            Without --backend: the recorded observations go through the policy and the safety supervisor tick by \
            tick, without hardware, with the recorded clocks, bus errors and overruns; a deterministic policy \
            configured as in the run gives back the recorded guarded commands bit for bit. Give a changed \
            robot.yaml with --robot (another policy, other limits) to see where and by how much the commands part: \
            the first divergent tick and the largest difference per joint. A policy that reads what the recording \
            lacks (a leader arm, the keyboard, a policy server) is not computed again: its recorded targets go \
            through the guard.
            --backend sim drives the simulated robot with the recorded guarded commands (the digital twin of the \
            run) and reports how far the simulated joints are from the recorded ones.
            The robot.yaml is the one attached to the recording, read as if it were still in its directory (its URDF \
            and files are read from there), unless --robot names another.
            JSON keys: ticks, first_divergent_tick (null when none), max_command_difference_rad {joint: rad}, \
            state_differences, policy_recomputed, replayed_safety_events, recorded_safety_events; with --backend \
            sim: ticks, position_rms_difference_rad and position_max_difference_rad {joint: rad}.
            Exit status: 0 replayed (also when commands diverge); 1 an error.
            Example: sinew replay runs/so101-2026-12-07T10-00-00Z.mcap --robot stiffer.yaml --json
            """)

    enum ReplayBackend: String, ExpressibleByArgument, CaseIterable {
        case sim
    }

    @Argument(help: "The recording (.mcap).")
    var file: String

    @Option(help: "A robot.yaml to replay with instead of the recorded one (a changed policy or limits).")
    var robot: String?

    @Option(help: "sim: drive the simulated robot with the recorded commands.")
    var backend: ReplayBackend?

    @Flag(help: "One JSON object instead of text.")
    var json = false

    func run() throws {
        let run = try loadRecording(file)
        if let damage = run.damage { printError("note: \(file) is unfinished (\(damage)); replaying what is whole") }
        guard run.tickCount > 0 else { throw CommandFailure("\(file) holds no ticks") }
        let checked = try configuration(for: run)
        if backend == .sim {
            try replayOnSimulator(run, checked: checked)
            return
        }
        let report: ReplayReport
        do {
            let catalog = try ServoTables.load()
            let engine = try ReplayEngine(
                configuration: checked.configuration, model: checked.model, catalog: catalog)
            report = try engine.replay(run)
        } catch {
            throw CommandFailure("replay: \(error)")
        }
        let differences = report.maxCommandDifferenceRad
        if json {
            let first: JSONValue =
                report.firstDivergence.map { d in
                    .object([
                        ("segment", .integer(d.segment)), ("tick", .integer(Int(d.tick))), ("t", .number(d.timeS)),
                        ("joint", .string(d.joint)), ("recorded_rad", .number(d.recordedRad)),
                        ("replayed_rad", .number(d.replayedRad)),
                    ])
                } ?? .null
            print(
                JSONValue.object([
                    ("file", .string(file)), ("ticks", .integer(report.ticks)),
                    ("first_divergent_tick", report.firstDivergence.map { .integer(Int($0.tick)) } ?? .null),
                    ("first_divergence", first),
                    ("max_command_difference_rad", .object(differences.map { ($0.joint, .number($0.rad)) })),
                    ("state_differences", .integer(report.stateDifferences)),
                    ("policy_recomputed", .bool(report.recomputedPolicy)),
                    ("replayed_safety_events", .array(report.replayedSafetyEvents.map { .string($0) })),
                    ("recorded_safety_events", .integer(report.recordedSafetyEvents)),
                    (
                        "notes",
                        .array(
                            (report.policyNote.map { [$0] } ?? []).map { .string($0) }
                                + report.notes.map { .string($0) })
                    ),
                ]).text)
            return
        }
        var out =
            "replayed \(report.ticks) ticks of \(file) through policy \"\(checked.configuration.policy.typeName)\""
        out += " and the safety supervisor\n"
        if let note = report.policyNote { out += "  note: \(note)\n" }
        for note in report.notes { out += "  note: \(note)\n" }
        if let d = report.firstDivergence {
            out +=
                "  commands diverge from tick \(d.tick)" + (d.segment > 0 ? " of segment \(d.segment)" : "")
                + String(format: " (t = %.3f s): ", d.timeS)
                + "\(d.joint) recorded \(d.recordedRad) rad, replayed \(d.replayedRad) rad\n"
            out += "  largest difference per joint (rad):\n"
            for (joint, rad) in differences {
                out +=
                    "    \(joint.padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(format: "%.6g", rad))\n"
            }
        } else {
            out += "  every guarded command is the recorded one, bit for bit\n"
        }
        out += "  ticks in another lifecycle state than recorded: \(report.stateDifferences)\n"
        out +=
            "  safety events: \(report.recordedSafetyEvents) recorded, \(report.replayedSafetyEvents.count) replayed\n"
        for event in report.replayedSafetyEvents { out += "    \(event)\n" }
        print(out, terminator: "")
    }

    /// The robot.yaml to replay with: --robot, else the recorded one read in its original directory.
    private func configuration(for run: RecordedRun) throws -> (configuration: RobotConfiguration, model: RobotModel) {
        if let robot {
            do {
                let checked = try RobotConfiguration.loadChecked(contentsOf: robot)
                return (checked.configuration, checked.model)
            } catch {
                throw CommandFailure("\(error)")
            }
        }
        guard let original = run.metadata["robot_yaml_path"],
            let name = run.metadata["robot_yaml"], let attachment = run.attachment(named: name)
        else {
            throw CommandFailure("\(file) has no robot.yaml attached; give one with --robot")
        }
        let directory = (original as NSString).deletingLastPathComponent
        do {
            let configuration = try RobotConfiguration.parse(
                String(decoding: attachment.data, as: UTF8.self), file: "\(file) (attached \(name))",
                baseDirectory: directory.isEmpty ? "." : directory)
            let model = try RobotModel(urdf: configuration.modelPath)
            _ = try configuration.check(against: model)
            return (configuration, model)
        } catch {
            throw CommandFailure(
                "the recorded robot.yaml cannot be used as it was in \(directory): \(error); give one with --robot")
        }
    }

    /// Drives the simulated robot with the recorded guarded commands (the first segment) and compares its joints
    /// with the recorded ones, tick by tick.
    private func replayOnSimulator(_ run: RecordedRun, checked: (configuration: RobotConfiguration, model: RobotModel))
        throws
    {
        let segment = run.segments[0]
        let path = robot ?? run.metadata["robot_yaml_path"] ?? ""
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandFailure("the robot.yaml of the recording is not at \(path); give one with --robot")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-replay-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let simulatedPath = scratch.appendingPathComponent("simulated.mcap").path
        let settings = PlaybackPolicySettings(
            jointNames: run.jointNames, timesNs: segment.ticks.map(\.loopTimeNs),
            positionsRad: segment.ticks.map(\.commandRad))
        var options = RunOptions(recordPath: simulatedPath)
        options.policyOverride = { _ in RobotConfiguration.Policy(settings: settings) }
        let lastS = Double(segment.ticks.last?.loopTimeNs ?? 0) * 1e-9
        // The simulated run's own lines (configure, real time, its summary) would bury the comparison.
        let savedStandardError = dup(STDERR_FILENO)
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        if savedStandardError >= 0 && devNull >= 0 { dup2(devNull, STDERR_FILENO) }
        defer {
            if savedStandardError >= 0 {
                dup2(savedStandardError, STDERR_FILENO)
                close(savedStandardError)
            }
            if devNull >= 0 { close(devNull) }
        }
        let outcome: RunOutcome
        do {
            outcome = try RobotRun.run(
                configurationPath: path, backend: .sim, port: nil,
                duration: lastS + 1 / checked.configuration.loop.rateHz,
                statusLine: false, fast: true, options: options)
        } catch {
            throw CommandFailure("the simulated run failed: \(error)")
        }
        _ = outcome
        let simulated = try loadRecording(simulatedPath)
        guard let simulatedTicks = simulated.segments.first?.ticks, simulated.jointNames == run.jointNames else {
            throw CommandFailure("the simulated run recorded nothing to compare")
        }
        let count = min(simulatedTicks.count, segment.ticks.count)
        let n = run.jointNames.count
        var squares = [Double](repeating: 0, count: n)
        var worst = [Double](repeating: 0, count: n)
        var k = 0
        for recorded in segment.ticks.prefix(count) {
            // The simulated tick at the recorded tick's time (the run's clock jitters; the simulation's does not).
            while k + 1 < simulatedTicks.count && simulatedTicks[k + 1].loopTimeNs <= recorded.loopTimeNs { k += 1 }
            let twin = simulatedTicks[k]
            for j in 0..<n where j < recorded.positionRad.count && j < twin.positionRad.count {
                let e = twin.positionRad[j] - recorded.positionRad[j]
                squares[j] += e * e
                worst[j] = max(worst[j], abs(e))
            }
        }
        let rms = squares.map { (count > 0 ? $0 / Double(count) : 0).squareRoot() }
        if json {
            print(
                JSONValue.object([
                    ("file", .string(file)), ("backend", .string("sim")), ("ticks", .integer(count)),
                    ("position_rms_difference_rad", .object(zip(run.jointNames, rms).map { ($0, .number($1)) })),
                    ("position_max_difference_rad", .object(zip(run.jointNames, worst).map { ($0, .number($1)) })),
                ]).text)
            return
        }
        var out = "drove the simulated \(checked.configuration.name) with \(count) recorded commands of \(file)\n"
        if run.segments.count > 1 { out += "  note: only the first segment (before the first recovery) is replayed\n" }
        out += "  simulated − recorded joint position (rad):      RMS        max\n"
        for j in 0..<n {
            out +=
                "    \(run.jointNames[j].padding(toLength: 16, withPad: " ", startingAt: 0))"
                + String(format: "%28.6f %10.6f", rms[j], worst[j]) + "\n"
        }
        print(out, terminator: "")
    }
}

/// The recorded commands as a policy (`sinew replay --backend sim`); not a robot.yaml type.
struct PlaybackPolicySettings: PolicySettings, Equatable {
    let jointNames: [String]
    let timesNs: [Int64]
    let positionsRad: [[Double]]
    var typeName: String { "playback" }
    func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        PlaybackPolicy(jointNames: jointNames, timesNs: timesNs, positionsRad: positionsRad)
    }
}
