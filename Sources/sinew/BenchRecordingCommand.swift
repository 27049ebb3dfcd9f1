import ArgumentParser
import Foundation
import SinewRuntime

/// `sinew bench recording`: what the flight recorder costs the loop, and whether its writer keeps up.
struct RecordingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recording",
        abstract: "The flight recorder under load: the tick's record stage and the writer thread at a fast loop.",
        discussion: """
            Runs a synthetic robot of --servos joints (a chain of XM430-W350 on one Dynamixel bus, the simulated \
            backend without wire timing: the wire is not what is measured) at --rate Hz in real time, twice in one \
            run: first without a recorder, then with the MCAP recorder writing every tick (all channels: joint \
            states, commands, estimates, timings, transforms at 50 Hz, zstd chunks closed every 0.5 s) to a file. \
            Reports the record stage's p50/p99/max in both runs (the recorder's cost to the tick is the difference), \
            the ticks, the snapshots written and dropped (a full ring drops and counts; it never waits), the file's \
            size and the writer's rate.
            Goals: zero dropped snapshots at 1 kHz with 12 joints over 60 s; record stage p99 ≤ 2 µs.
            Example: sinew bench recording --duration 60   (make bench-recording builds release and runs this)
            """)

    @Option(parsing: .unconditional, help: "Seconds the recording loop runs (the loop without recorder: a sixth).")
    var duration = 60.0

    @Option(parsing: .unconditional, help: "Loop rate, Hz.")
    var rate = 1000.0

    @Option(parsing: .unconditional, help: "Joints of the synthetic robot.")
    var servos = 12

    @Option(help: "Keep the recording at this path (default: a temporary file, removed).")
    var keep: String?

    @Flag(help: "One JSON object: ticks, snapshots_written, dropped, record_p50_us, record_p99_us, record_max_us, …")
    var json = false

    func validate() throws {
        if !(duration > 0 && duration <= 3600) { throw ValidationError("--duration must be in (0, 3600] s") }
        if !(rate >= 1 && rate <= 10_000) { throw ValidationError("--rate must be in [1, 10000] Hz") }
        if !(1...252).contains(servos) { throw ValidationError("--servos must be between 1 and 252") }
    }

    func run() throws {
        let catalog = try ServoTables.load()
        let base = try LoopBench.parse([
            "--servos", "\(servos)", "--protocol", "dynamixel", "--rate", "\(rate)", "--no-wire-timing",
            "--duration", "\(max(1, duration / 6))",
        ])
        let robot = try base.loadRobot(catalog: catalog)
        let configuration = robot.configuration
        let scheduler = SchedulerConfiguration(
            rate: .fixed(hertz: configuration.loop.rateHz), overrunPolicy: .skip,
            fifoPriority: configuration.loop.priority, cpu: configuration.loop.cpu, lockMemory: true)
        if !json {
            printError(
                "\(configuration.name): \(servos) joints at \(Int(rate)) Hz; \(String(format: "%.0f", base.duration)) s "
                    + "without a recorder, then \(String(format: "%.0f", duration)) s recording every tick to MCAP")
        }
        let plain = try base.runLoop(
            configuration: configuration, model: robot.model, catalog: catalog, scheduler: scheduler,
            deliberateOverruns: false)

        let path =
            keep
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("sinew-bench-recording-\(getpid()).mcap")
            .path
        defer { if keep == nil { unlink(path) } }
        var recording = try LoopBench.parse([
            "--servos", "\(servos)", "--protocol", "dynamixel", "--rate", "\(rate)", "--no-wire-timing",
        ])
        recording.duration = duration
        var recorder: TickRecorder?
        var writer: RecordingWriter?
        var closeError: (any Error)?
        let recorded = try recording.runLoop(
            configuration: configuration, model: robot.model, catalog: catalog, scheduler: scheduler,
            deliberateOverruns: false,
            around: { loop in
                let ring = loop.attachRecorder(decimation: 1, capacity: 4096)
                recorder = ring
                let context = MCAPRecordingContext(
                    configuration: configuration, model: robot.model, library: "sinew \(SinewVersion.number) bench")
                writer = try RecordingWriter(recorder: ring, path: path, format: .mcap(context))
                return {
                    do { try writer?.close() } catch { closeError = error }
                }
            })
        if let closeError { throw CommandFailure("recording \(path): \(closeError)") }
        let ticks = Int(recorded.report.ticks)
        let written = writer?.ticksWritten ?? 0
        let dropped = recorder?.dropped ?? 0
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int ?? 0
        let record = recorded.report.stages[TickStage.record.rawValue]
        let bare = plain.report.stages[TickStage.record.rawValue]
        let seconds = recorded.report.elapsedSeconds
        let goalMet = dropped == 0 && record.p99Us <= 2
        if json {
            print(
                JSONValue.object([
                    ("joints", .integer(servos)), ("rate_hz", .number(rate)), ("duration_s", .number(seconds)),
                    ("ticks", .integer(ticks)), ("achieved_hz", .number(recorded.report.achievedHz)),
                    ("snapshots_written", .integer(written)), ("dropped", .integer(dropped)),
                    ("record_p50_us", .number(record.p50Us)), ("record_p99_us", .number(record.p99Us)),
                    ("record_max_us", .number(record.maxUs)),
                    ("no_recorder_record_p50_us", .number(bare.p50Us)),
                    ("no_recorder_record_p99_us", .number(bare.p99Us)), ("file_bytes", .integer(bytes)),
                    ("file_mb_per_s", .number(seconds > 0 ? Double(bytes) / seconds / 1e6 : 0)),
                    ("final_state", .string(recorded.finalState)), ("goals_met", .bool(goalMet)),
                ]).text)
            return
        }
        var out = "\(configuration.name), \(servos) joints, \(Int(rate)) Hz: \(ticks) ticks in "
        out += String(
            format: "%.1f s (%.1f Hz), final state %@\n", seconds, recorded.report.achievedHz, recorded.finalState)
        out += "µs                         p50      p99      max\n"
        out += String(format: "record stage, MCAP      %7.2f  %7.2f  %7.2f\n", record.p50Us, record.p99Us, record.maxUs)
        out += String(format: "record stage, none      %7.2f  %7.2f  %7.2f\n", bare.p50Us, bare.p99Us, bare.maxUs)
        out += "snapshots written \(written), dropped \(dropped)\n"
        out += String(
            format: "file %.1f MB (%.2f MB/s)%@\n", Double(bytes) / 1e6, Double(bytes) / max(seconds, 1e-9) / 1e6,
            keep.map { ": \($0)" } ?? "")
        out += "goals: zero dropped: \(dropped == 0 ? "met" : "NOT met"); "
        out += String(format: "record p99 %.2f µs ≤ 2 µs: %@\n", record.p99Us, record.p99Us <= 2 ? "met" : "NOT met")
        print(out, terminator: "")
    }
}
