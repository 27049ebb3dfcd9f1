import Foundation
import SinewBus

/// What ended a session's loop.
public enum RobotSessionStop: Sendable, Equatable, CustomStringConvertible {
    /// The planned length of the run (`--duration`, or the trajectory's end).
    case duration
    /// SIGINT, SIGTERM or SIGHUP.
    case signal(Int32)
    /// `RobotSession.requestStop()`.
    case request
    /// Something failed after torque came on (the monitor threw, the loop's clock failed, …).
    case failure(String)

    public var description: String {
        switch self {
        case .duration: "duration"
        case .signal(let number):
            switch number {
            case SIGINT: "SIGINT"
            case SIGTERM: "SIGTERM"
            case SIGHUP: "SIGHUP"
            default: "signal \(number)"
            }
        case .request: "request"
        case .failure(let reason): "failure: \(reason)"
        }
    }
}

/// An error of a session, with the stage it happened in and whether torque had been on.
public struct RobotSessionError: Error, CustomStringConvertible, LocatedRobotError {
    /// `configure`, `activate`, `start` or `shutdown`.
    public var stage: String
    public var message: String
    /// What the shutdown that followed the failure did (nil: torque never came on, nothing to undo).
    public var shutdown: String?
    /// The bus, servo and joint of the error behind it, where it names them.
    public var location = RobotErrorLocation()

    public init(stage: String, message: String, shutdown: String?, cause: (any Error)? = nil) {
        self.stage = stage
        self.message = message
        self.shutdown = shutdown
        if let located = cause as? any LocatedRobotError { location = located.location }
    }

    public var description: String {
        var text = message
        if let shutdown { text += "\n" + shutdown }
        return text
    }
}

/// How a session's run went.
public struct RobotSessionOutcome {
    public var report: LoopReport
    public var stop: RobotSessionStop
    /// The lifecycle state when the loop stopped, before shutdown (`active`, or `safe`).
    public var finalState: LifecycleState
    /// Set when the shutdown could not put every servo's torque as configured (joint, servo, bus named).
    public var shutdownFailure: String?
    /// Simulated (or scheduled) seconds per wall-clock second.
    public var realTimeFactor: Double
    /// Simulated seconds the run covered (ticks × period when there is no simulation clock).
    public var simulatedSeconds: Double
    /// Wall-clock seconds the loop ran, as `realTimeFactor` counts them (a paced loop's N ticks span N periods).
    public var wallSeconds: Double
}

/// What a running session shows a monitor (the front end's status line), every `monitorIntervalS`.
public struct RobotSessionProgress {
    public var elapsedS: Double
    public var ticks: Int64
    public var overruns: Int64
}

/// One run of a robot from activation to shutdown: the one owner of the start/stop order for every front end
/// (`sinew run`, `sinew demo`, and whatever comes next). Once torque is on, every way out — the planned end,
/// a signal, an error of the monitor, a loop thread that cannot start — stops the loop, brings the robot to
/// its safe state, shuts down (torque per joint as configured) and says what happened.
public final class RobotSession {
    public let loop: RobotLoop
    /// Run as fast as possible on the simulation clock (lockstep) instead of the wall clock.
    public let fast: Bool
    /// Planned length, seconds of loop time (simulated with `fast`); nil: until a signal or a request.
    public let durationS: Double?
    public var monitorIntervalS = 0.25
    /// Told what the session did on its own (a recovery, or why one was refused); on the monitor's thread.
    public var onNotice: ((String) -> Void)?
    /// Recoveries from the safe state during the run (the socket's `recover`, the terminal's recover key).
    public private(set) var recoveries = 0
    private var scheduler: Scheduler<RobotLoop>?
    private var stopRequested = false

    /// The longest run a duration may ask for, seconds (a year: anything longer is a typo or infinity).
    public static let maximumDurationS = 365.0 * 24 * 3600

    /// - Parameter durationS: seconds, finite, > 0 and at most `maximumDurationS`; checked here, before
    ///   anything touches the robot.
    public init(loop: RobotLoop, fast: Bool, durationS: Double?) throws(RobotSessionError) {
        if let durationS, !(durationS > 0 && durationS <= Self.maximumDurationS) {
            throw RobotSessionError(
                stage: "configure",
                message: "the duration must be a number of seconds above 0 and at most \(Int(Self.maximumDurationS)) "
                    + "(got \(durationS)); leave it out to run until Ctrl-C", shutdown: nil)
        }
        self.loop = loop
        self.fast = fast
        self.durationS = durationS
    }

    /// Asks a running session to end (from the monitor or any thread that owns the session).
    public func requestStop() {
        stopRequested = true
        scheduler?.requestStop()
    }

    /// Configures, activates and runs the loop until the planned end, a signal or a failure, then shuts down.
    /// - Parameters:
    ///   - started: called once the loop thread runs, with what its real-time set-up obtained.
    ///   - monitor: called about every `monitorIntervalS` while the loop runs (status lines); an error it throws
    ///     ends the run through the safe state and is reported as `.failure`.
    public func run(
        started: (RealtimeSetupReport) -> Void, monitor: (RobotSessionProgress) throws -> Void
    ) throws(RobotSessionError) -> RobotSessionOutcome {
        let configuration = loop.configuration
        do {
            try loop.lifecycle.configure()
        } catch {
            throw RobotSessionError(stage: "configure", message: "\(error)", shutdown: nil, cause: error)
        }
        // From the activation on, torque may be on: every failure goes through `shutDownAfterFailure`.
        ShutdownSignals.install()
        defer { ShutdownSignals.restoreDefaults() }
        do {
            try loop.lifecycle.activate()
        } catch {
            throw RobotSessionError(
                stage: "activate", message: "\(error)", shutdown: shutDownAfterFailure(), cause: error)
        }

        let rateHz = configuration.loop.rateHz
        let overrun: OverrunPolicy =
            configuration.loop.overrun == .skip ? .skip : .catchUp(max: configuration.loop.catchUpMax)
        // Without a duration, a policy whose motion ends (a trajectory, Cartesian goals) ends the run half a
        // second after it; the others run until stopped.
        let durationS = self.durationS ?? loop.policy.plannedDurationS.map { $0 + 0.5 }
        let plannedTicks = durationS.map { Int64(($0 * rateHz).rounded(.up)) }
        func makeScheduler(ticks: Int64?) -> Scheduler<RobotLoop> {
            Scheduler(
                configuration: SchedulerConfiguration(
                    rate: fast ? .asFastAsPossible : .fixed(hertz: rateHz), overrunPolicy: overrun,
                    fifoPriority: fast ? nil : configuration.loop.priority, cpu: configuration.loop.cpu,
                    lockMemory: true, maxTicks: ticks),
                body: loop)
        }
        var scheduler = makeScheduler(ticks: plannedTicks)
        self.scheduler = scheduler
        let realtime: RealtimeSetupReport
        do {
            realtime = try scheduler.start()
        } catch {
            throw RobotSessionError(
                stage: "start", message: "cannot start the loop thread: \(error)", shutdown: shutDownAfterFailure())
        }
        started(realtime)
        // The loop segments before a recovery (each recovery stops the loop, recovers, and starts a new one).
        var earlier: [LoopReport] = []

        let startNs = MonotonicInstant.now().nanoseconds
        var stop: RobotSessionStop?
        // Wall time the loop may take beyond the planned duration before it is stopped by the clock: a loop
        // slower than its rate (buses that cannot carry it) still ends on time.
        let graceS = max(2 / rateHz, 0.02)
        while scheduler.isRunning {
            usleep(UInt32(max(monitorIntervalS, 0.01) * 1e6))
            let elapsedS = Double(MonotonicInstant.now().nanoseconds - startNs) * 1e-9
            if !fast, let durationS, elapsedS >= durationS + graceS {
                stop = .duration
                scheduler.requestStop()
            }
            // A port that went away (a USB adapter unplugged, the virtual bus killed): the supervisor has the
            // robot in its safe state within the bus-error budget; the run ends instead of ticking on a dead bus.
            if loop.busDisconnected, stop == nil {
                let bus = loop.disconnectedBusName ?? "?"
                let code = loop.disconnectedBusErrno ?? 0
                let reason = code == 0 ? "hung up" : String(cString: strerror(code)) + " (errno \(code))"
                stop = .failure("bus \"\(bus)\" disconnected: \(reason)")
                usleep(UInt32(min(0.2, 20 / rateHz) * 1e6))  // the ticks that bring the robot to its safe state
                scheduler.requestStop()
            }
            if stop == nil, loop.supervisor.emergencyStop.takeRecoveryRequest() {
                if loop.observedState == .safe {
                    let doneTicks = earlier.reduce(0) { $0 + $1.ticks }
                    scheduler.requestStop()
                    if let segment = try? scheduler.join() { earlier.append(segment) }
                    let left = plannedTicks.map { max($0 - doneTicks - (earlier.last?.ticks ?? 0), 1) }
                    onNotice?(recover())
                    scheduler = makeScheduler(ticks: left)
                    self.scheduler = scheduler
                    do {
                        _ = try scheduler.start()
                    } catch {
                        throw RobotSessionError(
                            stage: "start", message: "cannot restart the loop thread after recovery: \(error)",
                            shutdown: shutDownAfterFailure())
                    }
                } else {
                    onNotice?("recover: nothing to recover, the robot is \(loop.observedState)")
                }
            }
            do {
                try monitor(
                    RobotSessionProgress(
                        elapsedS: elapsedS, ticks: earlier.reduce(0) { $0 + $1.ticks } + scheduler.ticksCompleted,
                        overruns: earlier.reduce(0) { $0 + $1.overruns } + scheduler.overrunsSoFarCount))
            } catch {
                stop = .failure("\(error)")
                scheduler.requestStop()
            }
        }
        var report: LoopReport
        do {
            report = try scheduler.join()
        } catch {
            throw RobotSessionError(
                stage: "start", message: "the loop thread: \(error)", shutdown: shutDownAfterFailure())
        }
        if !earlier.isEmpty {
            // Counts over every segment; latency percentiles are the last segment's.
            report.ticks += earlier.reduce(0) { $0 + $1.ticks }
            report.overruns += earlier.reduce(0) { $0 + $1.overruns }
            report.skippedDeadlines += earlier.reduce(0) { $0 + $1.skippedDeadlines }
            report.elapsedSeconds += earlier.reduce(0) { $0 + $1.elapsedSeconds }
            report.achievedHz = report.elapsedSeconds > 0 ? Double(report.ticks) / report.elapsedSeconds : 0
        }
        switch report.stopReason {
        case .maxTicks: stop = stop ?? .duration
        case .shutdownSignal: stop = .signal(ShutdownSignals.signal)
        case .sleepFailed(let errno): stop = .failure("the loop's clock failed (clock_nanosleep errno \(errno))")
        case .stopRequested, .bodyRequested: stop = stop ?? .request
        }
        let stopped = stop ?? .request
        // Anything but the planned end (or a plain request) leaves the robot in its safe state before shutdown.
        if stopped != .duration && stopped != .request && loop.lifecycle.state == .active {
            _ = loop.lifecycle.enterSafeState(cause: nil, jointIndex: nil)
        }
        let finalState = loop.lifecycle.state
        var shutdownFailure: String?
        do {
            try loop.lifecycle.shutdown()
        } catch {
            shutdownFailure = "shutdown: \(error)"
        }
        let periodS = 1 / rateHz
        let simulatedSeconds =
            loop.simulationClock.map { Double($0.nanoseconds) * 1e-9 } ?? Double(report.ticks) * periodS
        // N paced ticks span N periods of wall time (the first one starts a period before its wake-up).
        let wallS = report.elapsedSeconds + (fast || report.ticks == 0 ? 0 : periodS)
        return RobotSessionOutcome(
            report: report, stop: stopped, finalState: finalState, shutdownFailure: shutdownFailure,
            realTimeFactor: wallS > 0 ? simulatedSeconds / wallS : 0, simulatedSeconds: simulatedSeconds,
            wallSeconds: wallS)
    }

    /// Recovery from the safe state with the loop stopped: re-arms the e-stop sources, refuses while one still
    /// reads asserted (the e-stop file is still there), else recovers (servo errors cleared, torque on from the
    /// present pose). Says what it did; on refusal or failure the robot stays in its safe state.
    private func recover() -> String {
        let estop = loop.supervisor.emergencyStop
        estop.clear()
        // A source still asserted triggers again within its watcher's period.
        usleep(120_000)
        if let still = estop.poll() {
            return "recover: refused, the \(still) e-stop is still asserted: clear it first (the robot stays safe)"
        }
        do {
            try loop.lifecycle.recover()
            recoveries += 1
            return "recover: the robot is active again, starting from its present pose"
        } catch {
            return "recover: failed, the robot stays safe: \(error)"
        }
    }

    /// After a failure with torque possibly on: the safe state, then shutdown. Says what it did.
    private func shutDownAfterFailure() -> String {
        scheduler?.requestStop()
        // Joined whether or not it is still running (a loop that already ended still has a thread to reap);
        // a scheduler that never started answers notStarted, which is nothing to undo.
        _ = try? scheduler?.join()
        if loop.lifecycle.state == .active { _ = loop.lifecycle.enterSafeState(cause: nil, jointIndex: nil) }
        do {
            try loop.lifecycle.shutdown()
            return "the robot was brought to its safe state and shut down (torque per joint as configured)"
        } catch {
            return "shutting down after the failure also failed: \(error)"
        }
    }
}
