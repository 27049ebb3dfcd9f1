import Foundation
import SinewDrivers
import SinewFusion
import SinewKinematics
import SinewPolicy

/// What a replay found: how many ticks it ran, where its guarded commands first left the recorded ones, and
/// by how much at most per joint.
public struct ReplayReport: Sendable {
    public struct Divergence: Sendable, Equatable {
        /// The segment (0 first; each recovery starts a new one), the recorded tick and its time (s).
        public var segment: Int
        public var tick: Int64
        public var timeS: Double
        /// The joint whose command differed first (the first of them in robot.yaml's order).
        public var joint: String
        public var recordedRad: Double
        public var replayedRad: Double
    }

    public var ticks: Int
    public var firstDivergence: Divergence?
    /// Per joint (robot.yaml's order): the largest |replayed − recorded| guarded command, rad.
    public var maxCommandDifferenceRad: [(joint: String, rad: Double)]
    /// Whether the policy was computed again (false: it reads what the recording lacks, and its recorded
    /// targets went through the guard instead; `policyNote` says why).
    public var recomputedPolicy: Bool
    public var policyNote: String?
    /// Ticks whose lifecycle state (active or safe) differs from the recording's.
    public var stateDifferences: Int
    /// Safety events the replay's guard raised (each with its description), beside the recording's count.
    public var replayedSafetyEvents: [String]
    public var recordedSafetyEvents: Int
    /// What to keep in mind when reading the result (decimated recordings, asynchronous policies, …).
    public var notes: [String]
}

/// Re-runs a recording through a policy and the safety supervisor, tick by tick, without hardware: the same
/// hand-over from the decide stage to the guard as the loop's (``SafetySupervisor/takeCommand(_:targets:)``),
/// the same guard, fed with the recorded measurements, clocks, bus errors and overruns. A deterministic policy
/// configured as in the run reproduces the recorded commands bit for bit; a changed policy or limit shows where
/// the commands part.
public final class ReplayEngine {
    public let configuration: RobotConfiguration
    public let model: RobotModel
    let supervisor: SafetySupervisor
    let observation: PolicyObservation
    let command: PolicyCommand
    let policy: (any Policy)?
    let runner: AsynchronousPolicyRunner?
    let policyNote: String?
    let targets: UnsafeMutableBufferPointer<Double>
    let workspace: KinematicsWorkspace
    let urdfPositions: UnsafeMutableBufferPointer<Double>
    let urdfIndex: [Int]
    let boxLinks: [Int]
    let frameLinks: [Int]
    let mimic: [(joint: Int, master: Int, multiplier: Double, offset: Double)]
    let jointModes: [ServoControlMode]

    /// - Parameters:
    ///   - configuration: the recorded robot.yaml, or a changed one (its joints must be the recording's).
    ///   - overrunBudget: the loop's (``RobotLoop`` uses 10).
    public init(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog, overrunBudget: Int = 10
    ) throws(RobotLoopError) {
        self.configuration = configuration
        self.model = model
        let jointLimits = configuration.jointSafetyLimits(against: model)
        let names = configuration.joints.map(\.name)
        var chosen: (any Policy)?
        let limitation = configuration.policy.settings.replayLimitation
        if limitation == nil {
            chosen = try configuration.policy.settings.makePolicy(
                in: PolicyBuildContext(
                    configuration: configuration, model: model, catalog: catalog, jointLimits: jointLimits,
                    loopRateHz: configuration.loop.rateHz, lockstep: true))
        }
        policyNote = limitation.map {
            "policy \"\(configuration.policy.typeName)\" is not computed again: \($0); its recorded targets go "
                + "through the guard"
        }
        var modes = [ServoControlMode](repeating: .position, count: names.count)
        if let chosen {
            try RobotLoop.checkPolicy(chosen, configuration: configuration, catalog: catalog)
            for c in chosen.commands {
                if let j = configuration.jointIndex(named: c.joint) { modes[j] = RobotLoop.controlMode(for: c.kind) }
            }
        }
        jointModes = modes
        policy = chosen
        if let chosen, case .asynchronous(let rateHz) = chosen.execution {
            runner = AsynchronousPolicyRunner(
                policy: chosen, rateHz: rateHz, loopRateHz: configuration.loop.rateHz, jointNames: names,
                frameNames: chosen.observedFrames, lockstep: true)
        } else {
            runner = nil
        }
        let busNames = configuration.buses.map(\.name).filter { bus in configuration.joints.contains { $0.bus == bus } }
        let setup = try configuration.safetySetup(
            model: model, jointLimits: jointLimits, busNames: busNames, overrunBudget: overrunBudget,
            commandSourceName: "policy \"\(configuration.policy.typeName)\"")
        supervisor = SafetySupervisor(configuration: setup.configuration)
        boxLinks = setup.boxLinks
        observation = PolicyObservation(jointNames: names, frameNames: chosen?.observedFrames ?? [])
        command = PolicyCommand(jointCount: names.count)
        targets = .allocate(capacity: max(1, names.count))
        targets.initialize(repeating: 0)
        workspace = KinematicsWorkspace(model: model)
        urdfPositions = .allocate(capacity: max(1, model.dofCount))
        urdfPositions.initialize(repeating: 0)
        var index: [Int] = []
        for joint in configuration.joints {
            guard let j = model.jointIndex(named: joint.name) else {
                throw RobotLoopError(
                    "joint \"\(joint.name)\" (\(joint.location)) is not a moving joint of \(model.file)")
            }
            index.append(j)
        }
        urdfIndex = index
        var links: [Int] = []
        for frame in chosen?.observedFrames ?? [] {
            guard let link = model.linkIndex(named: frame) else {
                throw RobotLoopError("policy observes frame \"\(frame)\", which is not a link of \(model.file)")
            }
            links.append(link)
        }
        frameLinks = links
        mimic = model.joints.enumerated().compactMap { i, joint in
            joint.mimic.map { (i, $0.master, $0.multiplier, $0.offset) }
        }
    }

    deinit {
        targets.deallocate()
        urdfPositions.deallocate()
    }

    /// Replays every segment of `run`. Throws when the recording's joints are not robot.yaml's.
    public func replay(_ run: RecordedRun) throws(RobotLoopError) -> ReplayReport {
        let names = configuration.joints.map(\.name)
        guard run.jointNames == names else {
            throw RobotLoopError(
                "\(run.path) records the joints \(run.jointNames.joined(separator: ", ")); \(configuration.file) has "
                    + names.joined(separator: ", "))
        }
        var report = ReplayReport(
            ticks: 0, firstDivergence: nil, maxCommandDifferenceRad: names.map { ($0, 0) },
            recomputedPolicy: policy != nil, policyNote: policyNote, stateDifferences: 0, replayedSafetyEvents: [],
            recordedSafetyEvents: run.safetyEvents.count, notes: [])
        if let every = run.metadata["decimation"].flatMap(Int.init), every > 1 {
            report.notes.append(
                "the run recorded every \(every)th tick: a policy with state of its own (a filter, an integrator) "
                    + "sees fewer ticks than it did")
        }
        if policy?.execution != .inline, run.metadata["lockstep"] != "true" {
            report.notes.append(
                "the policy ran on its own thread in real time; the replay steps it in lockstep, so its commands "
                    + "arrive on other ticks than they did")
        }
        let stops = emergencyStopTicks(run)
        let eventsBefore = supervisor.events.count
        for (s, segment) in run.segments.enumerated() {
            if let start = segment.start {
                begin(start)
            } else if s == 0, let first = segment.ticks.first {
                // A recording without its start (cut at the front): begin from the first tick's measurements.
                begin(
                    RecordedRun.Start(
                        recovering: false, loopTimeNs: first.loopTimeNs, positionRad: first.positionRad,
                        velocityRadPerS: first.velocityRadPerS, effortNm: first.effortNm, commandRad: first.commandRad,
                        targetRad: first.targetRad, imu: first.imu))
                report.notes.append("the recording has no activation record: the replay starts from its first tick")
            }
            for (k, tick) in segment.ticks.enumerated() {
                step(tick, emergencyStop: stops.contains(Pair(segment: s, tick: k)))
                report.ticks += 1
                for j in 0..<names.count where j < tick.commandRad.count {
                    let replayed = supervisor.outputPositionRad[j]
                    let recorded = tick.commandRad[j]
                    guard replayed.bitPattern != recorded.bitPattern else { continue }
                    let difference = abs(replayed - recorded)
                    if report.firstDivergence == nil {
                        report.firstDivergence = ReplayReport.Divergence(
                            segment: s, tick: tick.tick, timeS: tick.timeS, joint: names[j], recordedRad: recorded,
                            replayedRad: replayed)
                    }
                    if difference > report.maxCommandDifferenceRad[j].rad || difference.isNaN {
                        report.maxCommandDifferenceRad[j].rad = difference.isNaN ? .infinity : difference
                    }
                }
                let state = supervisor.isSafeStateLatched ? "safe" : "active"
                if state != tick.state { report.stateDifferences += 1 }
            }
        }
        for index in eventsBefore..<supervisor.events.count {
            report.replayedSafetyEvents.append(supervisor.describe(supervisor.events[index]))
        }
        runner?.stop()
        return report
    }

    private struct Pair: Hashable {
        let segment: Int
        let tick: Int
    }

    /// The ticks an e-stop reached the guard: an outside input, replayed where the recording has it.
    private func emergencyStopTicks(_ run: RecordedRun) -> Set<Pair> {
        var stops = Set<Pair>()
        for event in run.safetyEvents where event.cause == "emergencyStop" {
            // The segment: the last one whose first tick was logged before the event.
            var segment = 0
            for (s, candidate) in run.segments.enumerated() {
                if let first = candidate.ticks.first, first.logTimeNs <= event.logTimeNs { segment = s }
            }
            let ticks = run.segments[segment].ticks
            let eventNs = Int64((event.timeS * 1e9).rounded())
            if let k = ticks.firstIndex(where: { $0.loopTimeNs >= eventNs - 1000 }) {
                stops.insert(Pair(segment: segment, tick: k))
            }
        }
        return stops
    }

    /// The policy's start, as the loop's activation or recovery makes it.
    private func begin(_ start: RecordedRun.Start) {
        let n = configuration.joints.count
        for j in 0..<n {
            supervisor.measuredPositionRad[j] = value(start.positionRad, j)
            supervisor.measuredVelocityRadPerS[j] = value(start.velocityRadPerS, j)
            supervisor.measuredEffortNm[j] = value(start.effortNm, j)
            supervisor.jointControlMode[j] = jointModes[j].rawValue
            supervisor.readingFresh[j] = true
            supervisor.hardwareErrorFlags[j] = 0
        }
        if start.recovering { supervisor.emergencyStop.clear() }
        observe(timeNs: start.loopTimeNs, imu: start.imu)
        command.hold(observation)
        if let runner {
            _ = runner.start(from: observation, command: command, recovering: start.recovering)
        } else if let policy {
            if start.recovering {
                policy.recover(from: observation, into: command)
            } else {
                policy.reset(from: observation, into: command)
            }
        } else {
            for j in 0..<n { command.positionRad[j] = value(start.targetRad, j) }
        }
        supervisor.takeStartCommand(command, targets: targets)
        supervisor.rearm()
    }

    private func value(_ values: [Double], _ j: Int) -> Double { j < values.count ? values[j] : 0 }

    private func observe(timeNs: Int64, imu: [Double]?) {
        observation.timeNs = timeNs
        for j in 0..<configuration.joints.count {
            observation.positionRad[j] = supervisor.measuredPositionRad[j]
            observation.velocityRadPerS[j] = supervisor.measuredVelocityRadPerS[j]
            observation.effortNm[j] = supervisor.measuredEffortNm[j]
        }
        if let imu, imu.count == 4 {
            observation.linkOrientation = OrientationQuaternion(w: imu[0], x: imu[1], y: imu[2], z: imu[3])
            observation.hasOrientation = true
        } else {
            observation.hasOrientation = false
        }
    }

    /// One tick: sense (the recorded measurements), estimate (forward kinematics), decide, guard.
    private func step(_ tick: RecordedRun.Tick, emergencyStop: Bool) {
        let names = configuration.joints.map(\.name)
        for j in 0..<names.count {
            supervisor.measuredPositionRad[j] = value(tick.positionRad, j)
            supervisor.measuredVelocityRadPerS[j] = value(tick.velocityRadPerS, j)
            supervisor.measuredEffortNm[j] = value(tick.effortNm, j)
            supervisor.readingFresh[j] = !tick.staleJoints.contains(names[j])
        }
        if !boxLinks.isEmpty || !frameLinks.isEmpty {
            for i in 0..<model.dofCount { urdfPositions[i] = 0 }
            for j in 0..<names.count { urdfPositions[urdfIndex[j]] = supervisor.measuredPositionRad[j] }
            for m in mimic { urdfPositions[m.joint] = m.multiplier * urdfPositions[m.master] + m.offset }
            workspace.forwardKinematics(UnsafeBufferPointer(urdfPositions))
            for b in 0..<boxLinks.count {
                let p = workspace.linkPose(boxLinks[b]).translation
                supervisor.framePositionM[3 * b] = p.0
                supervisor.framePositionM[3 * b + 1] = p.1
                supervisor.framePositionM[3 * b + 2] = p.2
            }
            for f in 0..<frameLinks.count {
                let p = workspace.linkPose(frameLinks[f]).translation
                observation.framePositionM[3 * f] = p.0
                observation.framePositionM[3 * f + 1] = p.1
                observation.framePositionM[3 * f + 2] = p.2
            }
        }
        observe(timeNs: tick.loopTimeNs, imu: tick.imu)
        if let runner {
            runner.exchange(observation, command)
        } else if let policy {
            command.computedForNs = tick.loopTimeNs
            policy.compute(observation, into: command)
        } else {
            command.computedForNs = tick.commandTimeNs
            for j in 0..<names.count {
                command.positionRad[j] = value(tick.targetRad, j)
                command.velocityRadPerS[j] = value(tick.velocityGoalRadPerS, j)
                command.effortNm[j] = value(tick.effortGoalNm, j)
            }
        }
        supervisor.takeCommand(command, targets: targets)
        if emergencyStop { supervisor.emergencyStop.pressKeyboardStop() }
        _ = supervisor.guardTick(
            SafetyTickInput(
                nowNs: tick.loopTimeNs, loopStartNs: 0, lastCommandTimeNs: command.computedForNs,
                busErrorsThisTick: tick.busErrors, overrunsInARow: tick.overrunsInARow,
                failingBusIndex: tick.failingBus, busDisconnected: tick.busDisconnected))
        if tick.shutdownRequested && !supervisor.isSafeStateLatched { supervisor.enterSafeStateWithoutFault() }
    }
}
