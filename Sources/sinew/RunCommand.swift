import ArgumentParser
import Foundation
import SinewBus
import SinewDrivers
import SinewKinematics
import SinewRuntime
import SinewSim

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a robot from its robot.yaml: configure the servos, activate, and follow the configured policy.",
        discussion: """
            The loop runs at the configured rate (loop.rate_hz) on its own real-time thread: sense (one sync read \
            per bus) → estimate → decide (the policy) → guard (the safety supervisor) → act (one sync write per \
            bus). Backends: `sim` (default) runs the simulated robot in this process behind virtual servos that \
            answer the same bytes as real ones, with wire timing; `pty` talks to a pseudo-terminal (for example \
            one served by `sinew virtual-bus`); `serial` to real servos on a serial port. Ctrl-C (SIGINT) or \
            SIGTERM brings the robot to its safe state (torque off, or holding for joints with safe_state: hold) \
            and stops. E-stops (the robot goes to its safe state and the run goes on until its end): the key `e` \
            or the space bar in the terminal the run was started from, SIGUSR1, and robot.yaml's \
            safety.estop.file (the file appears) and safety.estop.socket (a line `estop`). With --json the run \
            ends with one JSON object: ticks, achieved_hz, overruns, final_state (active or safe), stopped_by \
            (duration, SIGINT, SIGTERM), safety_events [{t, joint, cause, detail}], tracking_rms_rad, bus, … — \
            every key is described in docs/run-json.md.
            --calibration (or robot.yaml's `calibration:`) uses the zeros recorded by `sinew calibrate` and refuses \
            a servo that does not match its entry. --record (or robot.yaml's `recording:`) writes every tick's \
            snapshot to a CSV file from a non-real-time thread; it is flushed and closed at the end of the run \
            and on Ctrl-C.
            Example: sinew run Hardware/robots/so101/robot.yaml --duration 5
            """)

    @Argument(help: "The robot's robot.yaml.")
    var robot: String

    @Option(help: "Where the buses lead: sim, pty or serial.")
    var backend: Backend = .sim

    @Option(help: "Port for a single-bus robot (pty or serial backend), overriding robot.yaml.")
    var port: String?

    @Option(help: "Stop after this many seconds (default: the trajectory's length, or until Ctrl-C for hold).")
    var duration: Double?

    @Flag(help: "End with one JSON object instead of the human summary.")
    var json = false

    @Flag(
        help: ArgumentHelp(
            "Simulate as fast as possible (sim backend): the loop drives simulated time tick by tick instead of "
                + "waiting for the wall clock; the summary reports the real-time factor."))
    var fast = false

    @Option(help: "Calibration file written by `sinew calibrate`, overriding robot.yaml's `calibration:`.")
    var calibration: String?

    @Option(help: "Record every tick to this CSV file, overriding robot.yaml's `recording:` (which may be off).")
    var record: String?

    func validate() throws {
        if fast && backend != .sim { throw ValidationError("--fast runs the simulator only (--backend sim)") }
    }

    func run() throws {
        let outcome = try RobotSession.run(
            configurationPath: robot, backend: backend, port: port, duration: duration, statusLine: !json, fast: fast,
            options: RunOptions(calibrationPath: calibration, recordPath: record))
        if json { print(outcome.json.text) } else { print(outcome.summary) }
    }
}

/// What a run of the loop reports.
struct RunOutcome {
    var json: JSONValue
    var summary: String
}

enum RobotSession {
    static func run(
        configurationPath: String, backend: Backend, port: String?, duration: Double?, statusLine: Bool,
        title: String? = nil, fast: Bool = false, options: RunOptions = RunOptions()
    ) throws -> RunOutcome {
        let checked = try RobotConfiguration.loadChecked(contentsOf: configurationPath)
        let configuration = checked.configuration
        let model = checked.model
        for warning in checked.warnings { printError("warning: \(warning)") }
        let catalog = try ServoTables.load()

        var simulated: SimulatedRobot?
        let transports: [String: any ByteTransport]
        var imuTransport: (any ByteTransport)?
        switch backend {
        case .sim:
            let robot = try SimulatedRobot(
                configuration: configuration, model: model, catalog: catalog, lockstep: fast)
            simulated = robot
            transports = robot.transports
            imuTransport = robot.imuTransport
        case .pty, .serial:
            transports = try openTransports(configuration: configuration, backend: backend, port: port)
            imuTransport = try openIMUTransport(configuration: configuration, backend: backend)
        }
        defer { simulated?.stop() }

        let calibration = try options.loadCalibration(configuration: configuration)
        let loop = try RobotLoop(
            configuration: configuration, model: model, catalog: catalog, transports: transports,
            calibration: calibration?.file, calibrationSource: calibration?.path ?? "calibration",
            simulationClock: simulated?.clock,
            runMarginNs: fast ? RobotLoop.lockstepRunMarginNs : RobotLoop.defaultRunMarginNs, imuTransport: imuTransport
        )
        do {
            try loop.startEmergencyStopSources()
        } catch {
            printError("warning: \(error)")
        }
        for warning in loop.limitsBeyondCalibratedRange() { printError("warning: \(warning)") }
        do {
            try loop.lifecycle.configure()
            try loop.lifecycle.activate()
        } catch {
            throw ValidationError("\(configurationPath): \(error)")
        }

        let rate = configuration.loop.rateHz
        var seconds = duration
        if seconds == nil, case .trajectory(let trajectory) = configuration.policy, !trajectory.loop {
            seconds = trajectory.durationS + 0.5
        }
        let overrun: OverrunPolicy =
            configuration.loop.overrun == .skip ? .skip : .catchUp(max: configuration.loop.catchUpMax)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                rate: fast ? .asFastAsPossible : .fixed(hertz: rate), overrunPolicy: overrun,
                fifoPriority: fast ? nil : configuration.loop.priority,
                cpu: configuration.loop.cpu, lockMemory: true, maxTicks: seconds.map { Int64($0 * rate) }),
            body: loop)
        if let title { printError(title) }
        let recording = try options.startRecording(loop: loop, configuration: configuration)
        ShutdownSignals.install()
        defer { ShutdownSignals.restoreDefaults() }
        let estop = loop.supervisor.emergencyStop
        let keys = TerminalKeys { estop.pressKeyboardStop() }
        defer { keys.finish() }
        let realtime = try scheduler.start()
        printError("real time: \(realtime)")
        let started = Date()
        let status = StatusLine()
        var imuComparison = IMUComparison()
        while scheduler.isRunning {
            Thread.sleep(forTimeInterval: 0.25)
            if let imu = loop.imu,
                let truth = simulated?.imu?.trueLinkOrientation(atSampleTimeS: imu.publishedSampleTimeS)
            {
                imuComparison.observe(estimate: imu.publishedLinkOrientation, truth: truth)
            }
            guard statusLine else { continue }
            let elapsed = Date().timeIntervalSince(started)
            let ticks = scheduler.ticksCompleted
            let wake = loop.recentLateness.percentiles()
            // Most important first: a narrow terminal cuts the end of the line.
            let state = "\(loop.observedState)"
            let line =
                state + String(repeating: " ", count: max(1, 7 - state.count))
                + String(
                    format: "%5.1f s %6.1f Hz  tracking %5.1f mrad  overruns %lld  bus errors %d  "
                        + "wake p50/p99 %3.0f/%3.0f µs", elapsed, Double(ticks) / max(elapsed, 1e-3),
                    1000 * loop.trackingRMSRad, scheduler.overrunsSoFarCount, loop.busErrorCount, wake.p50Us,
                    wake.p99Us)
                + (imuComparison.samples > 0 ? String(format: "  IMU tilt error %.1f°", imuComparison.lastDeg) : "")
                + (keys.isActive ? "  (\(TerminalKeys.hint))" : "")
            status.show(line)
        }
        status.finish()
        keys.finish()
        let report = try scheduler.join()
        // Simulated seconds per wall-clock second: 1 when paced, more when --fast.
        let simulatedSeconds = simulated?.clock.map { Double($0.nanoseconds) * 1e-9 } ?? Double(report.ticks) / rate
        let realTimeFactor = simulatedSeconds / max(report.elapsedSeconds, 1e-9)
        let finalState = loop.lifecycle.state
        let stoppedBy = Self.stoppedBy(report.stopReason)
        try? loop.lifecycle.shutdown()
        let recorded = try recording?.finish()

        let events = loop.supervisor.events.events
        let eventsJSON = JSONValue.array(
            events.map { event in
                .object([
                    ("t", .number(event.timeSeconds)),
                    ("joint", loop.supervisor.jointName(event.jointIndex).map { .string($0) } ?? .null),
                    ("cause", .string("\(event.cause)")),
                    // Which bound, or for an e-stop its source (signal, file, socket, keyboard).
                    ("detail", event.detail.utf8CodeUnitCount > 0 ? .string("\(event.detail)") : .null),
                ])
            })
        let busJSON = JSONValue.object(
            loop.busStatistics().map { bus in
                (
                    bus.bus,
                    .object([
                        ("transactions", .integer(Int(bus.servos.reduce(0) { $0 + $1.statistics.transactions }))),
                        ("replies", .integer(Int(bus.servos.reduce(0) { $0 + $1.statistics.replies }))),
                        ("checksum_errors", .integer(Int(bus.servos.reduce(0) { $0 + $1.statistics.checksumErrors }))),
                        ("timeouts", .integer(Int(bus.servos.reduce(0) { $0 + $1.statistics.timeouts }))),
                        ("retries", .integer(Int(bus.servos.reduce(0) { $0 + $1.statistics.retries }))),
                    ])
                )
            })
        let json = JSONValue.object([
            ("robot", .string(configuration.name)), ("backend", .string(backend.rawValue)),
            ("ticks", .integer(Int(report.ticks))), ("achieved_hz", .number(report.achievedHz)),
            ("target_hz", .number(rate)), ("overruns", .integer(Int(report.overruns))),
            ("final_state", .string("\(finalState)")), ("stopped_by", .string(stoppedBy)),
            ("safety_events", eventsJSON),
            ("tracking_rms_rad", .number(loop.trackingRMSRad)),
            ("approach_s", .number(loop.approachS)),
            ("wake_p50_us", .number(report.wakeLateness.p50Us)), ("wake_p99_us", .number(report.wakeLateness.p99Us)),
            ("compute_p99_us", .number(report.compute.p99Us)), ("real_time_factor", .number(realTimeFactor)),
            ("bus", busJSON), ("recording", recorded.map { .string($0.path) } ?? .null),
            ("calibration", calibration.map { .string($0.path) } ?? .null),
            ("imu", imuComparison.samples > 0 ? imuComparison.json : .null),
        ])
        var summary = "\(configuration.name) (\(backend.rawValue)): \(report.ticks) ticks in "
        summary += String(
            format: "%.1f s, %.1f Hz (target %.0f), %lld overruns\n", report.elapsedSeconds, report.achievedHz, rate,
            report.overruns)
        summary += String(
            format: "  wake-up lateness p50 %.1f µs, p99 %.1f µs, max %.1f µs; tick compute p99 %.1f µs\n",
            report.wakeLateness.p50Us, report.wakeLateness.p99Us, report.wakeLateness.maxUs, report.compute.p99Us)
        summary += String(
            format: "  tracking error (RMS over joints and ticks) %.2f mrad\n", 1000 * loop.trackingRMSRad)
        if backend == .sim {
            summary += String(
                format: "  simulated %.2f s in %.2f s of wall time: real-time factor %.2f\n", simulatedSeconds,
                report.elapsedSeconds, realTimeFactor)
        }
        if let recorded { summary += "  recording: \(recorded.summary)\n" }
        if let imu = loop.imu, imuComparison.samples > 0 {
            summary += imuComparison.summary(link: imu.linkName, samplesReceived: imu.samplesReceived) + "\n"
        }
        if report.stopReason == .shutdownSignal {
            // What the signal did to the robot: the safe state, then torque per joint as configured.
            let holding = configuration.joints.filter { $0.safeState == .hold }.map(\.name)
            let limp = configuration.joints.filter { $0.safeState != .hold }.map(\.name)
            summary += "  stopped by \(stoppedBy): safe state, then shutdown"
            if !limp.isEmpty { summary += "; torque off: " + limp.joined(separator: ", ") }
            if !holding.isEmpty { summary += "; holding with torque on: " + holding.joined(separator: ", ") }
            summary += (recorded == nil ? "" : "; recording flushed") + "; ports closed\n"
        }
        summary += "  final state: \(finalState)"
        if events.isEmpty {
            summary += ", no safety events"
        } else {
            summary +=
                "\n  safety events:\n" + events.map { "    " + loop.supervisor.describe($0) }.joined(separator: "\n")
        }
        return RunOutcome(json: json, summary: summary)
    }

    /// What ended the run, as `--json` reports it in `stopped_by`.
    static func stoppedBy(_ reason: LoopStopReason) -> String {
        switch reason {
        case .maxTicks: return "duration"
        case .shutdownSignal: return ShutdownSignals.signal == SIGTERM ? "SIGTERM" : "SIGINT"
        case .stopRequested, .bodyRequested: return "request"
        case .sleepFailed(let errno): return "clock_nanosleep failed (errno \(errno))"
        }
    }
}
