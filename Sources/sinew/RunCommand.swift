import ArgumentParser
import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewPolicy
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
            safety.estop.file (the file appears) and safety.estop.socket (a line `estop`). Recovery without a \
            restart, once the cause is cleared: the key `r`, or the line `recover` on the socket. With --json the run \
            ends with one JSON object: ticks, achieved_hz, overruns, final_state (active or safe), stopped_by \
            (duration, SIGINT, SIGTERM), safety_events [{t, joint, cause, detail}], tracking_rms_rad, bus, … — \
            every key is described in docs/run-json.md; a run that fails still prints one object, with `error`.
            Exit status: 0 the run ended as planned; 1 an error (configuration, hardware, I/O, or a failure after \
            torque came on — the robot is brought to its safe state first); 2 the run ended in the safe state (a \
            safety event or an e-stop); 3 shutdown could not set every servo's torque as configured (check the \
            robot); 128 + the signal for SIGINT, SIGTERM or SIGHUP (130, 143, 129); 64 a usage error. SIGHUP (the \
            terminal or SSH session closing) stops the robot as SIGTERM does; a closed standard output does not.
            --calibration (or robot.yaml's `calibration:`) uses the zeros recorded by `sinew calibrate` and refuses \
            a servo that does not match its entry. --record (or robot.yaml's `recording:`) writes every tick to an \
            MCAP file from a non-real-time thread (joint states, commands, estimates, timings, transforms, safety \
            events, notices; robot.yaml, the URDF and the calibration attached) that Foxglove and the mcap tools \
            open; it is closed properly at the end of the run, on Ctrl-C, SIGTERM and SIGHUP, and a killed run \
            loses at most its last second (`sinew recording repair`). A path ending in .csv records CSV instead. \
            `sinew replay` re-runs a recording; docs/recording.md has the channels.
            Example: sinew run Hardware/robots/so101/robot.yaml --duration 5

            Policies robot.yaml's `policy.type` can name (docs/policies.md has their keys):
            """ + PolicyTypes.builtin.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n"))

    @Argument(help: "The robot's robot.yaml.")
    var robot: String

    @Option(help: "Where the buses lead: sim, pty or serial.")
    var backend: Backend = .sim

    @Option(
        help: ArgumentHelp(
            "Port for a single-bus robot (pty or serial backend), overriding robot.yaml; for a robot with several "
                + "buses, a directory with one link per bus named after it (sinew virtual-bus --robot … --link-dir "
                + "DIR)."))
    var port: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Stop after this many seconds (default: half a second after the policy's motion ends — a trajectory, "
                + "Cartesian goals — or until Ctrl-C)."))
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

    @Option(
        help: ArgumentHelp(
            "Record every tick to this MCAP file, or into DIR/<robot>-<date>.mcap for a directory (a path ending "
                + "in / or an existing one), or to a CSV file (.csv); overrides robot.yaml's `recording:`.",
            valueName: "path"))
    var record: String?

    @OptionGroup var ros: ROSRunOptions

    @Flag(
        help: ArgumentHelp(
            "A remote policy may reach its server on another machine over plain ws:// (the token and the "
                + "observations travel unencrypted; prefer wss:// or an SSH tunnel)."))
    var insecure = false

    @Option(
        help: ArgumentHelp(
            "Run this policy instead of robot.yaml's: a policy file (YAML with a `policy:` mapping as in robot.yaml, "
                + "e.g. one `sinew sim eval` evaluated).", valueName: "FILE"))
    var policy: String?

    @Option(
        help: ArgumentHelp(
            "The policy's environment state for the whole run, comma-separated (what a task gives it in simulation: "
                + "a reach target x,y,z in m, root frame), for a policy that observes `environment_state`.",
            valueName: "X,Y,…"))
    var environmentState: String?

    /// `--environment-state`'s numbers.
    func environmentValues() throws -> [Double]? {
        guard let environmentState else { return nil }
        let values = environmentState.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count <= 64, values.allSatisfy({ $0?.isFinite == true }) else {
            throw ValidationError(
                "--environment-state must be 1 to 64 comma-separated finite numbers (got \(environmentState))")
        }
        return values.compactMap { $0 }
    }

    @OptionGroup(title: "Telemetry")
    var telemetry: TelemetryArguments

    func validate() throws {
        _ = try environmentValues()
        if fast && backend != .sim { throw ValidationError("--fast runs the simulator only (--backend sim)") }
        if let duration, !(duration > 0 && duration <= RobotSession.maximumDurationS) {
            throw ValidationError(
                "--duration must be a number of seconds above 0 and at most \(Int(RobotSession.maximumDurationS)) "
                    + "(got \(duration)); leave it out to run until Ctrl-C")
        }
    }

    func run() throws {
        var options = RunOptions(calibrationPath: calibration, recordPath: record)
        options.telemetry = telemetry.overrides
        options.ros = ros.overrides
        options.environmentState = try environmentValues()
        if ros.followROS && policy != nil {
            throw ValidationError("--follow-ros and --policy both choose the policy: give one of them")
        }
        if ros.followROS {
            options.policyOverride = { _ in RobotConfiguration.Policy(settings: ROSPolicySettings()) }
        }
        let policyFile = policy
        if let policyFile {
            options.policyOverride = { checked in
                let loaded = try checked.configuration.loadPolicy(contentsOf: policyFile, model: checked.model)
                for warning in loaded.warnings { printError("warning: \(warning)") }
                return loaded.policy
            }
        }
        if insecure {
            let fromFile = options.policyOverride
            options.policyOverride = { checked in
                let chosen = try fromFile?(checked) ?? checked.configuration.policy
                guard let remote = chosen.settings as? RemotePolicySettings else {
                    throw ValidationError("--insecure is for a robot.yaml whose policy is `remote`")
                }
                var settings = remote.settings
                settings.insecure = true
                return RobotConfiguration.Policy(
                    settings: RemotePolicySettings(settings: settings, bridge: remote.bridge, location: remote.location)
                )
            }
        }
        let outcome: RunOutcome
        do {
            outcome = try RobotRun.run(
                configurationPath: robot, backend: backend, port: port, duration: duration, statusLine: !json,
                fast: fast, options: options)
        } catch let failure as RunFailure where json {
            print(failure.json(robot: robot, backend: backend).text)
            throw ExitCode(RunExit.error)
        }
        if json { print(outcome.json.text) } else { print(outcome.summary) }
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}

/// `sinew run`'s exit statuses (also in `sinew run --help` and docs/run-json.md).
enum RunExit {
    /// The run ended as planned (its duration, or a request) without a safety event.
    static let success: Int32 = 0
    /// An error: configuration, hardware, I/O, or a failure after torque came on (then the robot was brought
    /// to its safe state first).
    static let error: Int32 = 1
    /// The run ended in the safe state because of a safety event or an e-stop.
    static let safeState: Int32 = 2
    /// Shutting down could not set every servo's torque as configured: check the robot.
    static let shutdownFailed: Int32 = 3
    /// 128 + the signal number when SIGINT, SIGTERM or SIGHUP ended the run (130, 143, 129), as shells do.
    static func signal(_ number: Int32) -> Int32 { 128 + number }
}

/// A run that failed: what failed, at which stage, and what was done about the robot.
struct RunFailure: Error, CustomStringConvertible {
    /// `load`, `configure`, `activate`, `start` (the stages before ticks run).
    var stage: String
    var message: String
    /// What happened to the robot afterwards (nil when torque was never on).
    var shutdown: String?
    /// The bus, servo and joint the error names, where it names them.
    var location = RobotErrorLocation()

    var description: String { message + (shutdown.map { "\n" + $0 } ?? "") }

    /// The one JSON object a failed `sinew run --json` still prints.
    func json(robot: String, backend: Backend) -> JSONValue {
        .object([
            ("robot", .string(robot)), ("backend", .string(backend.rawValue)),
            ("final_state", .string(shutdown == nil ? "unconfigured" : "shutdown")), ("stage", .string(stage)),
            ("error", .string(message)), ("bus", location.bus.map { .string($0) } ?? .null),
            ("servo_id", location.servoID.map { .integer($0) } ?? .null),
            ("joint", location.joint.map { .string($0) } ?? .null),
            ("shutdown", shutdown.map { .string($0) } ?? .null),
        ])
    }
}

/// What a run of the loop reports.
struct RunOutcome {
    var json: JSONValue
    var summary: String
    var exitCode: Int32
    /// What ended the loop (`duration`, `request`, `SIGINT`, `failure: …`), as the JSON's `stopped_by`.
    var stoppedBy = ""
}

/// The `sinew run` and `sinew demo` front end: opens the backend, builds the loop and hands the run to the
/// runtime's `RobotSession`, which owns the order from activation to shutdown.
enum RobotRun {
    static func run(
        configurationPath: String, backend: Backend, port: String?, duration: Double?, statusLine: Bool,
        title: String? = nil, fast: Bool = false, options: RunOptions = RunOptions()
    ) throws -> RunOutcome {
        func failure(_ stage: String, _ error: Error) -> RunFailure {
            RunFailure(
                stage: stage, message: "\(configurationPath): \(error)",
                location: (error as? any LocatedRobotError)?.location ?? RobotErrorLocation())
        }
        let checked: CheckedRobotConfiguration
        let catalog: ServoCatalog
        do {
            checked = try RobotConfiguration.loadChecked(contentsOf: configurationPath)
            catalog = try ServoTables.load()
        } catch {
            throw RunFailure(stage: "load", message: "\(error)")
        }
        var configuration = options.ros.applied(to: checked.configuration)
        let model = checked.model
        var warnings = checked.warnings
        if let override = options.policyOverride {
            do {
                configuration = configuration.replacingPolicy(try override(checked))
                warnings += try configuration.policy.settings.check(against: model, configuration: configuration)
            } catch {
                throw RunFailure(stage: "load", message: "\(error)")
            }
        }
        if configuration.policy.settings is ROSPolicySettings && !configuration.ros.enabled {
            throw RunFailure(
                stage: "load",
                message: "\(configurationPath): policy type `ros` follows ROS 2 topics: turn ROS 2 on (robot.yaml "
                    + "`ros: {enabled: true}`, or `sinew run --ros`)")
        }
        for warning in warnings { printError("warning: \(warning)") }
        // A rate the buses cannot carry: the loop would overrun every tick and run slower than configured.
        let limits = (try? LoopBench.wireLimits(configuration: configuration, catalog: catalog)) ?? []
        let sequentialLimitHz = 1 / limits.reduce(0) { $0 + 1 / max($1.cyclesPerSecond, 1e-9) }
        if limits.count > 1, configuration.loop.busIO == .sequential, configuration.loop.rateHz > sequentialLimitHz,
            limits.allSatisfy({ configuration.loop.rateHz <= $0.cyclesPerSecond })
        {
            printError(
                String(
                    format: "warning: loop.rate_hz %.0f is above what the %d buses allow one after another "
                        + "(loop.bus_io: sequential): at most %.0f cycles/s. The loop will overrun; loop.bus_io: poll "
                        + "reads them together (each bus alone allows the rate).",
                    configuration.loop.rateHz, limits.count, sequentialLimitHz))
        }
        for limit in limits where configuration.loop.rateHz > limit.cyclesPerSecond {
            printError(
                String(
                    format: "warning: loop.rate_hz %.0f is above what bus \"%@\" can carry: %d servos at %d bit/s "
                        + "allow at most %.0f cycles/s (%d bytes a cycle, Return Delay Time 0). The loop will "
                        + "overrun and run near %.0f Hz; lower loop.rate_hz or raise the baud rate.",
                    configuration.loop.rateHz, limit.bus, limit.servos, limit.baudRate, limit.cyclesPerSecond,
                    limit.bytesPerCycle, limit.cyclesPerSecond))
        }

        var simulated: SimulatedRobot?
        let transports: [String: any ByteTransport]
        var imuTransport: (any ByteTransport)?
        do {
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
        } catch {
            throw RunFailure(stage: "load", message: "\(error)")
        }
        defer { simulated?.stop() }
        // A teleoperation leader: its own bus, simulated beside the follower or opened like the robot's.
        var policyTransports: [String: any ByteTransport] = [:]
        var leader: SimulatedRobot?
        defer { leader?.stop() }
        var simulationClock: (any SimulationClock)? = simulated?.clock
        if let teleop = configuration.policy.settings as? TeleopPolicySettings {
            do {
                let opened = try openLeader(
                    teleop, backend: backend, catalog: catalog, fast: fast, port: options.leaderPort)
                policyTransports[TeleopPolicySettings.leaderTransportName] = opened.transport
                leader = opened.simulated
                if let followerClock = simulated?.clock, let leaderClock = opened.simulated?.clock {
                    simulationClock = SimulationClockGroup([followerClock, leaderClock])
                }
            } catch {
                throw RunFailure(stage: "load", message: "leader \(teleop.leaderPath): \(error)")
            }
        }

        let loop: RobotLoop
        // The e-stop watchers end with the run, taking their socket (and its lock) with them.
        var estopWatchers: EmergencyStopSources?
        defer { estopWatchers?.stopWatchers() }
        let calibration: (file: CalibrationFile, path: String)?
        let recording: RunRecording?
        let session: RobotSession
        var rosNode: ROSRun?
        defer { rosNode?.stop() }
        do {
            calibration = try options.loadCalibration(configuration: configuration)
            loop = try RobotLoop(
                configuration: configuration, model: model, catalog: catalog, transports: transports,
                calibration: calibration?.file, calibrationSource: calibration?.path ?? "calibration",
                simulationClock: simulationClock,
                runMarginNs: fast ? RobotLoop.lockstepRunMarginNs : RobotLoop.defaultRunMarginNs,
                imuTransport: imuTransport, policyTransports: policyTransports)
            if let values = options.environmentState {
                values.withUnsafeBufferPointer { loop.observation.setEnvironmentState($0) }
            }
            estopWatchers = loop.supervisor.emergencyStop
            var notes = try loop.startEmergencyStopSources().map { "warning: \($0)" }
            notes += loop.limitsBeyondCalibratedRange().map { "warning: \($0)" }
            notes += loop.policy.notices.map { "note: \($0)" }
            for note in notes { printError(note) }
            session = try RobotSession(loop: loop, fast: fast, durationS: duration)
            // The recording file is opened before any servo is touched: a path that cannot be written fails
            // here, with the robot still unpowered.
            // ROS 2 joins before torque: a domain or network that cannot be joined stops the run unpowered.
            if configuration.ros.enabled {
                rosNode = try ROSRun(loop: loop, configuration: configuration, model: model)
                notes += rosNode?.notes ?? []
                for note in rosNode?.notes ?? [] { printError(note) }
            }
            recording = try options.startRecording(
                loop: loop, configuration: configuration, calibrationPath: calibration?.path,
                liveSinks: (rosNode.map { [$0.publisher] } ?? []) + (options.companion?.sinks ?? []))
            rosNode?.start()
            for note in notes { recording?.writer.log(note) }
        } catch {
            throw failure("configure", error)
        }

        let rate = configuration.loop.rateHz
        if let title { printError(title) }
        let estop = loop.supervisor.emergencyStop
        // A jog policy takes the terminal's other keys (arrows, pages, letters) as its commands.
        let jogKeys = (loop.policy as? JogPolicy).map { JogKeyFeed(input: $0.input) }
        var onOtherByte: (@Sendable (UInt8) -> Void)?
        var onEscape: (@Sendable () -> Void)?
        if let jogKeys { onOtherByte = { byte in jogKeys.feed(byte) } }
        let companion = options.companion
        if let companion {
            onOtherByte = { byte in companion.keyByte(byte) }
            onEscape = { companion.escapeKey() }
        }
        let keys = TerminalKeys(
            onEmergencyStop: { estop.pressKeyboardStop() }, onRecover: { estop.requestRecovery() },
            onOtherByte: onOtherByte, onEscape: onEscape)
        if jogKeys != nil, keys.isActive { printError(JogKeyDecoder.hint) }
        if let companion, !keys.isActive {
            printError(
                "note: standard input is not this run's terminal in the foreground: its keys (\(companion.keysHint)) "
                    + "are not read; Ctrl-C or SIGTERM ends the run")
        }
        session.onNotice = { [recording] notice in
            writeStandardError("\r\u{1B}[K")
            printError(notice)
            recording?.writer.log(notice)
        }
        defer { keys.finish() }
        let status = StatusLine()
        let remoteWatch = ((loop.policy as? ChunkPolicyAdapter)?.chunkPolicy as? RemotePolicy).map(
            RemotePolicyWatch.init)
        var imuComparison = IMUComparison()
        var recordingFailureShown = false
        let sessionOutcome: RobotSessionOutcome
        do {
            sessionOutcome = try session.run(
                started: { realtime in
                    let changes = loop.configurationChanges
                    printError(
                        changes.isEmpty
                            ? "configure: every servo was already set as robot.yaml says; nothing written"
                            : "configure: changed \(changes.count) setting(s):\n  " + changes.joined(separator: "\n  "))
                    printError("real time: \(realtime)")
                    recording?.writer.log("real time: \(realtime)")
                    recording?.writer.attach(
                        name: "realtime.txt", mediaType: "text/plain", data: Array("\(realtime)\n".utf8))
                    if !changes.isEmpty {
                        recording?.writer.log("configure: changed " + changes.joined(separator: "; "))
                    }
                },
                monitor: { progress in
                    recording?.telemetry?.hub.overrunsSoFar(progress.overruns)
                    var companionStatus = ""
                    if let companion {
                        let view = companion.monitor()
                        for line in view.lines {
                            status.finish()
                            printError(line)
                            recording?.writer.log(line)
                        }
                        if view.endRun { session.requestStop() }
                        companionStatus = view.status + "  "
                    }
                    if let imu = loop.imu,
                        let truth = simulated?.imu?.trueLinkOrientation(atSampleTimeS: imu.publishedSampleTimeS)
                    {
                        imuComparison.observe(estimate: imu.publishedLinkOrientation, truth: truth)
                    }
                    if let failure = recording?.writer.failure, !recordingFailureShown {
                        recordingFailureShown = true
                        status.finish()
                        printError("recording: \(failure) (the run goes on; what was written so far is kept)")
                    }
                    for line in remoteWatch?.changes() ?? [] {
                        status.finish()
                        printError(line)
                        recording?.writer.log(line)
                    }
                    guard statusLine else { return }
                    let wake = loop.recentLateness.percentiles()
                    // Most important first: a narrow terminal cuts the end of the line.
                    let state = "\(loop.observedState)"
                    let line =
                        companionStatus + state + String(repeating: " ", count: max(1, 7 - state.count))
                        + String(
                            format: "%5.1f s %6.1f Hz  tracking %5.1f mrad  overruns %lld  bus errors %d  "
                                + "wake p50/p99 %3.0f/%3.0f µs", progress.elapsedS,
                            Double(progress.ticks) / max(progress.elapsedS, 1e-3), 1000 * loop.trackingRMSRad,
                            progress.overruns, loop.busErrorCount, wake.p50Us, wake.p99Us)
                        + (imuComparison.samples > 0
                            ? String(format: "  IMU tilt error %.1f°", imuComparison.lastDeg) : "")
                        + (keys.isActive ? "  (\(TerminalKeys.hint))" : "")
                    status.show(line)
                })
        } catch {
            status.finish()
            _ = try? recording?.finish()
            throw RunFailure(
                stage: error.stage, message: "\(configurationPath): \(error.message)", shutdown: error.shutdown,
                location: error.location)
        }
        status.finish()
        keys.finish()
        let report = sessionOutcome.report
        let finalState = sessionOutcome.finalState
        let stoppedBy = "\(sessionOutcome.stop)"
        var recordingFailure: String?
        var recorded: (path: String, summary: String)?
        do {
            recorded = try recording?.finish()
        } catch {
            recordingFailure = "\(error)"
        }

        let events = loop.supervisor.events.events
        let eventsJSON = JSONValue.array(
            events.map { event in
                .object([
                    ("t", .number(event.timeSeconds)),
                    ("joint", loop.supervisor.jointName(event.jointIndex).map { .string($0) } ?? .null),
                    ("cause", .string("\(event.cause)")),
                    // Which bound, or for an e-stop its source (signal, file, socket, keyboard).
                    (
                        "detail",
                        event.cause == .staleCommand
                            ? .string("policy \"\(loop.policy.typeName)\"")
                            : event.detail.utf8CodeUnitCount > 0 ? .string("\(event.detail)") : .null
                    ),
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
        var exitCode = RunExit.success
        if finalState == .safe && !events.isEmpty { exitCode = RunExit.safeState }
        if case .signal(let number) = sessionOutcome.stop { exitCode = RunExit.signal(number) }
        if case .failure = sessionOutcome.stop { exitCode = RunExit.error }
        if recordingFailure != nil || recording?.writer.failure != nil { exitCode = RunExit.error }
        if sessionOutcome.shutdownFailure != nil { exitCode = RunExit.shutdownFailed }
        let json = JSONValue.object([
            ("robot", .string(configuration.name)), ("backend", .string(backend.rawValue)),
            ("ticks", .integer(Int(report.ticks))), ("achieved_hz", .number(report.achievedHz)),
            ("target_hz", .number(rate)), ("overruns", .integer(Int(report.overruns))),
            ("final_state", .string("\(finalState)")), ("stopped_by", .string(stoppedBy)),
            ("safety_events", eventsJSON),
            ("policy", .string(loop.policy.typeName)),
            ("tracking_rms_rad", .number(loop.trackingRMSRad)),
            ("approach_s", .number(loop.approachS)),
            (
                "final_positions_rad",
                .object(
                    configuration.joints.enumerated().map { j, joint in
                        (joint.name, .number(loop.supervisor.measuredPositionRad[j]))
                    })
            ),
            ("wake_p50_us", .number(report.wakeLateness.p50Us)), ("wake_p99_us", .number(report.wakeLateness.p99Us)),
            ("wake_max_us", .number(report.wakeLateness.maxUs)),
            ("compute_p99_us", .number(report.compute.p99Us)), ("tick_max_us", .number(report.tick.maxUs)),
            ("real_time_factor", .number(sessionOutcome.realTimeFactor)),
            ("bus", busJSON), ("bus_io", .string(loop.busIO.rawValue)),
            ("recording", recorded.map { .string($0.path) } ?? .null),
            ("recording_error", (recordingFailure ?? recording?.writer.failure).map { .string($0) } ?? .null),
            ("calibration", calibration.map { .string($0.path) } ?? .null),
            ("imu", imuComparison.samples > 0 ? imuComparison.json : .null),
            ("shutdown_error", sessionOutcome.shutdownFailure.map { .string($0) } ?? .null),
            ("recoveries", .integer(session.recoveries)),
            ("remote", remoteJSON(loop)),
            ("ros", rosNode?.json ?? .null),
            ("exit_status", .integer(Int(exitCode))),
        ])
        var summary = "\(configuration.name) (\(backend.rawValue)): \(report.ticks) ticks in "
        summary += String(
            format: "%.1f s, %.1f Hz (target %.0f), %lld overruns\n", report.elapsedSeconds, report.achievedHz, rate,
            report.overruns)
        summary += String(
            format:
                "  wake-up lateness p50 %.1f µs, p99 %.1f µs, max %.1f µs; tick compute p99 %.1f µs; longest tick %.1f µs\n",
            report.wakeLateness.p50Us, report.wakeLateness.p99Us, report.wakeLateness.maxUs, report.compute.p99Us,
            report.tick.maxUs)
        summary += String(
            format: "  tracking error (RMS over joints and ticks) %.2f mrad\n", 1000 * loop.trackingRMSRad)
        if backend == .sim {
            summary += String(
                format: "  simulated %.2f s in %.2f s of wall time: real-time factor %.2f\n",
                sessionOutcome.simulatedSeconds, sessionOutcome.wallSeconds, sessionOutcome.realTimeFactor)
        }
        if let recorded { summary += "  recording: \(recorded.summary)\n" }
        if let failure = recordingFailure ?? recording?.writer.failure {
            summary += "  recording FAILED: \(failure)\n"
        }
        if let imu = loop.imu, imuComparison.samples > 0 {
            summary += imuComparison.summary(link: imu.linkName, samplesReceived: imu.samplesReceived) + "\n"
        }
        if let rosNode { summary += rosNode.summary + "\n" }
        switch sessionOutcome.stop {
        case .signal:
            // What the signal did to the robot: the safe state, then torque per joint as configured.
            let holding = configuration.joints.filter { $0.safeState == .hold }.map(\.name)
            let limp = configuration.joints.filter { $0.safeState != .hold }.map(\.name)
            summary += "  stopped by \(stoppedBy): safe state, then shutdown"
            if !limp.isEmpty { summary += "; torque off: " + limp.joined(separator: ", ") }
            if !holding.isEmpty { summary += "; holding with torque on: " + holding.joined(separator: ", ") }
            summary += (recorded == nil ? "" : "; recording flushed") + "; ports closed\n"
        case .failure(let reason):
            summary += "  stopped by a failure: \(reason); safe state, then shutdown\n"
        case .duration, .request:
            break
        }
        if let shutdownFailure = sessionOutcome.shutdownFailure {
            summary += "  SHUTDOWN FAILED: \(shutdownFailure)\n"
        }
        summary += "  final state: \(finalState)"
        if events.isEmpty {
            summary += ", no safety events"
        } else {
            summary +=
                "\n  safety events:\n" + events.map { "    " + loop.supervisor.describe($0) }.joined(separator: "\n")
        }
        return RunOutcome(json: json, summary: summary, exitCode: exitCode, stoppedBy: stoppedBy)
    }
}

/// The terminal's bytes to a jog policy's keyboard command (on the key-reading thread only).
final class JogKeyFeed: @unchecked Sendable {
    // @unchecked: fed by the one key-reading thread.
    let input: JogInput
    var decoder = JogKeyDecoder()
    init(input: JogInput) { self.input = input }
    func feed(_ byte: UInt8) {
        if let key = decoder.feed(byte) { JogKeyDecoder.send(key, to: input) }
    }
}

/// The port of a teleoperation leader's bus: on the `sim` backend a simulated leader arm (its joints following
/// the motion its robot.yaml's `simulation:` names, torque off), otherwise its robot.yaml's port or `port`.
func openLeader(
    _ teleop: TeleopPolicySettings, backend: Backend, catalog: ServoCatalog, fast: Bool, port: String?
) throws -> (transport: any ByteTransport, simulated: SimulatedRobot?) {
    let leader = teleop.leader
    guard let bus = leader.joints.first?.bus else { throw ValidationError("the leader has no joints") }
    switch backend {
    case .sim:
        let checked = try RobotConfiguration.loadChecked(contentsOf: teleop.leaderPath)
        let robot = try SimulatedRobot(
            configuration: checked.configuration, model: checked.model, catalog: catalog, lockstep: fast)
        guard let transport = robot.transports[bus] else { throw ValidationError("no simulated bus \(bus)") }
        return (transport, robot)
    case .pty, .serial:
        guard let transport = try openTransports(configuration: leader, backend: backend, port: port)[bus] else {
            throw ValidationError("the leader's bus \(bus) has no port")
        }
        return (transport, nil)
    }
}

/// A remote policy's counters for `sinew run --json` (`remote`), or null for other policies.
func remoteJSON(_ loop: RobotLoop) -> JSONValue {
    guard let adapter = loop.policy as? ChunkPolicyAdapter, let remote = adapter.chunkPolicy as? RemotePolicy else {
        return .null
    }
    let report = remote.report
    let stale = loop.supervisor.events.events.filter { $0.cause == .staleCommand }.count
    return .object([
        ("url", .string(remote.settings.url)), ("chunks_received", .integer(report.chunksReceived)),
        ("chunks_refused", .integer(report.chunksRefused)), ("failed_requests", .integer(report.failedRequests)),
        ("connections", .integer(report.connections)), ("reconnects", .integer(max(0, report.connections - 1))),
        ("stale_events", .integer(stale)), ("last_error", report.lastError.map { .string($0) } ?? .null),
        ("server_metadata", report.serverMetadata.map { .string($0) } ?? .null),
        ("last_infer_ms", report.lastInferMs.map { .number($0) } ?? .null),
    ])
}

/// Says what changed with a remote policy's server since the last look: a connection, a refused chunk, a failed
/// request (the run reports each as it happens; `--json`'s `remote` has the totals).
final class RemotePolicyWatch {
    let remote: RemotePolicy
    var last = RemotePolicy.Report()
    init(_ remote: RemotePolicy) { self.remote = remote }

    func changes() -> [String] {
        let now = remote.report
        defer { last = now }
        var lines: [String] = []
        if now.connections > last.connections {
            lines.append(
                last.connections == 0
                    ? "remote: connected to \(remote.settings.url)"
                    : "remote: reconnected to \(remote.settings.url) (connection \(now.connections))")
        }
        if now.chunksRefused > last.chunksRefused {
            lines.append("remote: \(now.chunksRefused - last.chunksRefused) chunk(s) refused: \(now.lastError ?? "?")")
        }
        if now.failedRequests > last.failedRequests && (last.failedRequests == 0 || now.connections != last.connections)
        {
            lines.append(
                "remote: no answer from the server: \(now.lastError ?? "?") (holding; reconnecting with backoff)")
        }
        return lines
    }
}
