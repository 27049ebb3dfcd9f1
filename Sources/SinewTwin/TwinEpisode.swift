import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewFusion
import SinewKinematics
import SinewPolicy
import SinewRecording
import SinewRuntime
import SinewSim

/// What every episode of one evaluation shares: the robot (robot.yaml, its nominal URDF model and description),
/// the servo tables and the task. Built once per process.
public struct TwinSetup: @unchecked Sendable {
    // @unchecked: RobotModel is immutable once built; the rest are values.
    public let configuration: RobotConfiguration
    /// The nominal model: the controller's, and the physics' when nothing is randomised.
    public let model: RobotModel
    /// The URDF as parsed, to perturb per episode.
    public let description: RobotDescription
    public let catalog: ServoCatalog
    public let task: TaskConfiguration
    /// The task file's text (kept in per-episode recordings, so an export can rebuild the task's observation).
    public let taskText: String

    public init(configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog, task: TaskConfiguration)
        throws(TwinError)
    {
        self.configuration = configuration
        self.model = model
        self.catalog = catalog
        self.task = task
        do {
            description = try URDFLoader.load(contentsOf: configuration.modelPath)
        } catch {
            throw TwinError("\(configuration.modelPath): \(error)")
        }
        taskText = (try? String(contentsOfFile: task.file, encoding: .utf8)) ?? ""
        let moving = configuration.buses.filter { bus in configuration.joints.contains { $0.bus == bus.name } }
        guard moving.count == 1 else {
            throw TwinError(
                "the simulator drives one bus per robot for now; \(configuration.file) has \(moving.count) with joints")
        }
    }
}

/// Which policy an episode runs.
public enum EpisodePolicy: Sendable {
    /// A built-in type that takes its goal from the task (`cartesian` for reach, `trajectory` for tracking).
    case fromTask(String)
    /// Settings read from a file (a `policy:` mapping: `mlp`, `remote`, any type), or robot.yaml's own.
    case settings(any PolicySettings)

    public var typeName: String {
        switch self {
        case .fromTask(let name): name
        case .settings(let settings): settings.typeName
        }
    }
}

/// How an episode runs.
public struct EpisodeOptions: Sendable {
    /// The ranges to draw the episode's physics from; nil or empty: the nominal robot.
    public var randomization: DomainRandomization?
    /// Collect dataset frames at this rate (Hz), for `sinew record`; nil: none.
    public var frameRateHz: Int?
    /// Record the episode's ticks to this MCAP file.
    public var mcapPath: String?
    /// Emulate the wire's timing on the bus (bytes at the baud rate, return delay, firmware delay).
    public var wireTiming = true
    /// A `sinew` version string for recordings.
    public var library = "sinew"

    public init(randomization: DomainRandomization? = nil, frameRateHz: Int? = nil, mcapPath: String? = nil) {
        self.randomization = randomization
        self.frameRateHz = frameRateHz
        self.mcapPath = mcapPath
    }
}

/// One dataset frame: what the policy saw and what it commanded at one tick (robot.yaml joint order, rad).
public struct EpisodeFrame: Sendable, Equatable, Codable {
    /// Simulated time of the tick the frame was taken at, s since activation.
    public var timeS: Double
    /// Measured joint positions (what the loop read from the servos), rad.
    public var stateRad: [Double]
    /// The policy's joint targets (its command, before the safety supervisor), rad.
    public var actionRad: [Double]
    /// The task's observation the policy saw (``TaskEpisode/observation``).
    public var environment: [Double]

    public init(timeS: Double, stateRad: [Double], actionRad: [Double], environment: [Double]) {
        self.timeS = timeS
        self.stateRad = stateRad
        self.actionRad = actionRad
        self.environment = environment
    }
}

/// How an episode ended and what it measured.
public struct EpisodeResult: Sendable, Equatable, Codable {
    /// `success`; `timeout` (the time limit passed); `safety` (the robot went to its safe state); `task` (the
    /// task's own failure condition); `error` (the episode could not run).
    public var outcome: String
    public var seed: UInt64
    public var succeeded: Bool { outcome == "success" }
    /// Why it failed, in words.
    public var reason: String?
    /// Simulated time at which the task declared success, s since activation.
    public var timeToSuccessS: Double?
    /// Simulated time the episode lasted, s.
    public var durationS: Double
    public var ticks: Int
    /// Wall-clock time it took, s (everything: building the robot, configure, the ticks).
    public var wallS: Double
    /// The loop's tracking error: RMS of measured − target over joints and ticks, rad.
    public var trackingRMSRad: Double
    /// The task's own error (m for reach, rad for tracking): final, RMS, largest, and its unit.
    public var taskErrorUnit: String
    public var taskFinalError: Double
    public var taskRMSError: Double
    public var taskMaxError: Double
    /// The episode's drawn goal, flattened (`target_m` x, y, z for reach).
    public var goalName: String
    public var goal: [Double]
    /// Causes of the safety events, in order.
    public var safetyEvents: [String]
    public var busErrors: Int
    /// Whether the physics was randomised.
    public var randomized: Bool
    /// FNV-1a over every tick's true and measured joint positions and targets (bit patterns): equal hashes for
    /// equal seeds mean bit-identical episodes.
    public var traceHash: String

    public init(outcome: String, seed: UInt64) {
        self.outcome = outcome
        self.seed = seed
        durationS = 0
        ticks = 0
        wallS = 0
        trackingRMSRad = 0
        taskErrorUnit = ""
        taskFinalError = 0
        taskRMSError = 0
        taskMaxError = 0
        goalName = ""
        goal = []
        safetyEvents = []
        busErrors = 0
        randomized = false
        traceHash = ""
    }
}

/// Why a simulated episode could not be set up.
public struct TwinError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs one episode of a task on the simulated robot in lockstep: the episode's physics drawn from its seed,
/// the robot.yaml's servos behind a virtual bus with wire timing, the runtime's `RobotLoop` driving them tick by
/// tick on the simulation clock (sense → estimate → decide → guard → act → record, the same code as on the
/// robot), and the task evaluated after every tick on the simulator's ground truth. Everything that varies comes
/// from the seed, so one seed gives one episode, bit for bit, whatever process runs it.
public enum TwinEpisode {
    public static func run(
        _ setup: TwinSetup, seed: UInt64, policy: EpisodePolicy, options: EpisodeOptions = EpisodeOptions()
    ) -> (result: EpisodeResult, frames: [EpisodeFrame]) {
        let wallStart = MonotonicInstant.now().nanoseconds
        var frames: [EpisodeFrame] = []
        var result: EpisodeResult
        do {
            result = try runChecked(setup, seed: seed, policy: policy, options: options, frames: &frames)
        } catch {
            result = EpisodeResult(outcome: "error", seed: seed)
            result.reason = "\(error)"
        }
        result.wallS = Double(MonotonicInstant.now().nanoseconds - wallStart) * 1e-9
        return (result, frames)
    }

    static func runChecked(
        _ setup: TwinSetup, seed: UInt64, policy policyChoice: EpisodePolicy, options: EpisodeOptions,
        frames: inout [EpisodeFrame]
    ) throws -> EpisodeResult {
        let configuration = setup.configuration
        let model = setup.model
        let task = setup.task
        let n = configuration.joints.count
        let startRad = task.startPose(configuration: configuration, model: model, seed: seed)
        var taskRandom = TaskConfiguration.random(seed: seed, stream: .task)
        let episode = try task.settings.makeEpisode(
            TaskEpisodeContext(configuration: configuration, model: model, startRad: startRad), random: &taskRandom)
        let ranges = options.randomization ?? DomainRandomization()
        let sample = ranges.sample(seed: seed, linkCount: setup.description.links.count, jointCount: n)
        let physicsModel =
            sample.isNeutral
            ? model : try perturbedModel(setup.description, sample: sample, configuration: configuration)

        // The servos and the bus.
        guard
            let bus = configuration.buses.first(where: { bus in configuration.joints.contains { $0.bus == bus.name } })
        else { throw TwinError("\(configuration.file) has no bus with joints") }
        let joints = configuration.joints.enumerated().filter { $0.element.bus == bus.name }
        var servoModels: [ServoModel] = []
        for (_, joint) in joints {
            guard let servo = setup.catalog.model(named: joint.servoModel) else {
                throw TwinError("no servo table for \(joint.servoModel) (joint \(joint.name))")
            }
            servoModels.append(servo)
        }
        var busOptions = VirtualBusOptions()
        busOptions.baudRate = bus.baudRate
        busOptions.wireTiming = options.wireTiming
        busOptions.randomSeed = sample.busSeed
        let virtualBus = try VirtualBus(
            servos: zip(servoModels, joints).map { ($0, UInt8($1.element.servoID)) }, options: busOptions)
        var mappings: [JointServoMapping] = []
        for ((j, joint), servo) in zip(joints, servoModels) {
            var mapping = joint.servoMapping(servo: servo)
            mapping.backlashRad += sample.backlashRad[j]
            mappings.append(mapping)
        }
        var start = physicsModel.midRangePositions
        var urdfIndex: [Int] = []
        for (j, joint) in configuration.joints.enumerated() {
            guard let u = physicsModel.jointIndex(named: joint.name) else {
                throw TwinError("joint \"\(joint.name)\" is not a moving joint of \(physicsModel.file)")
            }
            urdfIndex.append(u)
            start[u] = startRad[j]
        }
        let robot = try RobotJointDynamics(
            model: physicsModel, mappings: mappings, servoModels: servoModels, initialPositions: start)
        virtualBus.dynamics = robot
        for (slot, (j, _)) in joints.enumerated() {
            let servo = virtualBus.servos[slot]
            servo.motor.coulombFrictionNm *= sample.jointFrictionScale[j]
            let gain = sample.servoGainScale[j]
            if gain != 1 {
                for name in [
                    "P Coefficient", "D Coefficient", "I Coefficient", "Position P Gain", "Position D Gain",
                    "Position I Gain",
                ] {
                    guard let value = servo.registerValue(named: name), let spec = servo.model.register(named: name)
                    else { continue }
                    let scaled = Int64((Double(value) * gain).rounded())
                    servo.setRegisterValue(named: name, min(max(scaled, spec.minimum ?? 0), spec.maximum ?? 65535))
                }
            }
        }
        var imuTransport: (any ByteTransport)?
        if let declared = configuration.imu, declared.port == .virtual {
            let (loopEnd, deviceEnd) = BytePipe.makePair()
            var sensor = IMUSensorModel.consumerMEMS(sampleRateHz: declared.rateHz, seed: sample.sensorSeed)
            for keyPath in [\IMUSensorModel.gyroscope, \IMUSensorModel.accelerometer] {
                sensor[keyPath: keyPath].noiseDensity *= sample.imuNoiseScale
                sensor[keyPath: keyPath].biasInstability *= sample.imuNoiseScale
            }
            let imu = try VirtualLinkIMU(
                robot: robot, linkName: declared.link, mountingXYZ: declared.mountingXYZ,
                mountingRPY: declared.mountingRPY, sensor: sensor, transport: deviceEnd)
            virtualBus.dynamics = imu
            imuTransport = loopEnd
        }
        if sample.encoderNoiseCounts > 0, let counts = servoModels.first?.countsPerTurn {
            virtualBus.dynamics = NoisyEncoders(
                inner: virtualBus.dynamics, sigmaRad: sample.encoderNoiseCounts * 2 * Double.pi / Double(counts),
                seed: sample.sensorSeed ^ 0x5EED)
        }
        for (i, state) in robot.servoShaftStates().enumerated() {
            virtualBus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        let transport = LockstepBusTransport(bus: virtualBus)
        transport.requestLatencyNs = sample.busLatencyNs
        let clock: any SimulationClock =
            sample.loopJitterNs > 0
            ? JitteredClock(inner: transport, maxLatenessNs: sample.loopJitterNs, seed: sample.loopSeed) : transport

        // The policy and the loop.
        let settings: any PolicySettings
        switch policyChoice {
        case .fromTask(let name):
            guard let fromTask = episode.builtinPolicy(named: name) else {
                throw TwinError(
                    "policy \"\(name)\" cannot take its goal from a \(task.settings.typeName) task (reach: cartesian; "
                        + "trajectory_tracking: trajectory); give a policy file instead")
            }
            settings = fromTask
        case .settings(let given):
            settings = given
        }
        // A teleoperation leader is simulated too, on a bus of its own, its joints following its motion file.
        var policyTransports: [String: any ByteTransport] = [:]
        var loopClock = clock
        var leader: SimulatedLeader?
        if let teleop = settings as? TeleopPolicySettings {
            let simulated = try SimulatedLeader(teleop, catalog: setup.catalog)
            policyTransports[TeleopPolicySettings.leaderTransportName] = simulated.transport
            loopClock = SimulationClockGroup([clock, simulated.transport])
            leader = simulated
        }
        let jointLimits = configuration.jointSafetyLimits(against: model)
        let policy = try settings.makePolicy(
            in: PolicyBuildContext(
                configuration: configuration, model: model, catalog: setup.catalog, jointLimits: jointLimits,
                loopRateHz: configuration.loop.rateHz, lockstep: true, policyTransports: policyTransports))
        let loop = try RobotLoop(
            configuration: configuration, model: model, catalog: setup.catalog, transports: [bus.name: transport],
            simulationClock: loopClock, runMarginNs: RobotLoop.lockstepRunMarginNs, imuTransport: imuTransport,
            policy: policy, policyTransports: policyTransports)
        defer { _ = leader }
        let limitTicks = Int((task.timeLimitS * configuration.loop.rateHz).rounded(.up))
        var recording: (recorder: TickRecorder, writer: RecordingWriter)?
        if let path = options.mcapPath {
            let recorder = loop.attachRecorder(capacity: limitTicks + 64)
            let context = mcapContext(
                setup: setup, loop: loop, seed: seed, sample: sample, randomization: ranges, episode: episode,
                policy: policyChoice, library: options.library)
            do {
                let writer = try RecordingWriter(
                    recorder: recorder, path: path, format: .mcap(context), events: loop.supervisor.events,
                    describe: { [supervisor = loop.supervisor] in supervisor.describe($0) })
                recording = (recorder, writer)
            } catch {
                throw TwinError("cannot record to \(path): \(error)")
            }
        }

        // Configure and activate, then tick until the task is decided, the robot goes safe or time runs out.
        loop.observation.setEnvironmentState(UnsafeBufferPointer(episode.observation))
        try loop.lifecycle.configure()
        try loop.lifecycle.activate()
        // Packets are lost from the first tick on: configure checks every servo without retrying much, as a
        // person would start over on a bad cable; the question is how the running loop copes.
        virtualBus.setReplyLossProbability(sample.packetLoss)
        let activatedNs = clock.nanoseconds
        let truth = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(1, n))
        truth.initialize(repeating: 0)
        defer { truth.deallocate() }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        @inline(__always) func mix(_ value: Double) {
            var bits = value.bitPattern
            for _ in 0..<8 {
                hash = (hash ^ (bits & 0xFF)) &* 0x0000_0100_0000_01B3
                bits >>= 8
            }
        }
        var tick = TickInfo(loopStartNs: 0)
        loop.loopDidStart(tick)
        var status = TaskStatus.running
        var outcome = "timeout"
        var reason: String? = "the time limit of \(task.timeLimitS) s passed"
        var timeToSuccessS: Double?
        var timeS = 0.0
        var ticks = 0
        let periodS = 1 / configuration.loop.rateHz
        var nextFrame = 0
        let frameRate = options.frameRateHz.map(Double.init)
        while ticks < limitTicks {
            tick.index = Int64(ticks)
            loop.sense(&tick)
            loop.estimate(&tick)
            loop.decide(&tick)
            loop.guardCommands(&tick)
            loop.act(&tick)
            loop.record(&tick)
            ticks += 1
            timeS = Double(clock.nanoseconds &- activatedNs) * 1e-9
            if let frameRate, timeS + periodS / 2 >= Double(nextFrame) / frameRate {
                frames.append(
                    EpisodeFrame(
                        timeS: timeS, stateRad: (0..<n).map { loop.supervisor.measuredPositionRad[$0] },
                        actionRad: (0..<n).map { loop.targetPositionRad[$0] },
                        environment: Array(UnsafeBufferPointer(episode.observation))))
                nextFrame += 1
            }
            for j in 0..<n {
                truth[j] = robot.positions[urdfIndex[j]]
                mix(truth[j])
                mix(loop.supervisor.measuredPositionRad[j])
                mix(loop.targetPositionRad[j])
            }
            if loop.lifecycle.state == .safe {
                outcome = "safety"
                let cause = loop.supervisor.safeStateCause.map { "\($0)" } ?? "an e-stop"
                reason = "the robot went to its safe state: \(cause)"
                break
            }
            status = episode.update(timeS: timeS, positionsRad: UnsafeBufferPointer(truth))
            if status != .running { break }
            loop.observation.setEnvironmentState(UnsafeBufferPointer(episode.observation))
        }
        switch status {
        case .succeeded:
            outcome = "success"
            reason = nil
            timeToSuccessS = timeS
        case .failed(let why):
            outcome = "task"
            reason = why
        case .running:
            break
        }
        if let recording {
            recording.writer.log("episode \(seed): \(outcome)" + (reason.map { ": \($0)" } ?? ""))
            do {
                try recording.writer.close()
            } catch {
                throw TwinError("recording \(options.mcapPath ?? ""): \(error)")
            }
        }
        let report = episode.report
        var result = EpisodeResult(outcome: outcome, seed: seed)
        result.reason = reason
        result.timeToSuccessS = timeToSuccessS
        result.durationS = timeS
        result.ticks = ticks
        result.trackingRMSRad = loop.trackingRMSRad
        result.taskErrorUnit = report.errorUnit
        result.taskFinalError = report.finalError
        result.taskRMSError = report.rmsError
        result.taskMaxError = report.maxError
        result.goalName = report.goal.first?.0 ?? ""
        result.goal = report.goal.flatMap(\.1)
        result.safetyEvents = loop.supervisor.events.events.map { "\($0.cause)" }
        result.busErrors = loop.busErrorCount
        result.randomized = !sample.isNeutral
        result.traceHash = String(hash, radix: 16)
        return result
    }

    /// What a per-episode recording keeps besides the ticks: robot.yaml, the URDF and the task file, and the
    /// episode's seed, policy and physics draws as metadata (`sinew dataset export` rebuilds the task's observation
    /// from the task file and the seed).
    static func mcapContext(
        setup: TwinSetup, loop: RobotLoop, seed: UInt64, sample: DomainRandomization.Sample,
        randomization: DomainRandomization, episode: any TaskEpisode, policy: EpisodePolicy, library: String
    ) -> MCAPRecordingContext {
        var attachments: [(name: String, mediaType: String, data: [UInt8])] = []
        for (path, type) in [
            (setup.configuration.file, "application/yaml"), (setup.configuration.modelPath, "application/xml"),
        ] {
            if let data = FileManager.default.contents(atPath: path) {
                attachments.append(((path as NSString).lastPathComponent, type, Array(data)))
            }
        }
        attachments.append(("task.yaml", "application/yaml", Array(setup.taskText.utf8)))
        var ranges: [String: String] = [:]
        for (key, range) in randomization.ranges { ranges[key] = "\(range.lowerBound):\(range.upperBound)" }
        return MCAPRecordingContext(
            configuration: setup.configuration, model: setup.model, compression: .zstd(level: 3),
            attachments: attachments,
            metadata: [
                (
                    "sinew",
                    [
                        "robot": setup.configuration.name, "policy": policy.typeName,
                        "rate_hz": "\(setup.configuration.loop.rateHz)",
                    ]
                ),
                (
                    "sinew.episode",
                    [
                        "seed": "\(seed)", "task": setup.task.name, "task_type": setup.task.settings.typeName,
                        "instruction": setup.task.instruction, "goal": "\(episode.report.goal.flatMap(\.1))",
                        "randomized": "\(!sample.isNeutral)",
                    ]
                ),
                ("sinew.randomization", ranges),
            ],
            library: library)
    }
}

/// A teleoperation leader arm in simulation (`sinew record --leader`): its robot.yaml's servos on a lockstep bus
/// of their own, torque off, its joints moved along the motion file its `simulation: {motion: …}` names, as a
/// person's hand moves a real leader. It replays the motion from its start in every episode.
final class SimulatedLeader {
    let transport: LockstepBusTransport
    let dynamics: RobotJointDynamics

    init(_ teleop: TeleopPolicySettings, catalog: ServoCatalog) throws {
        let checked = try RobotConfiguration.loadChecked(contentsOf: teleop.leaderPath)
        let configuration = checked.configuration
        guard let motion = configuration.simulation?.motion else {
            throw TwinError(
                "the leader \(teleop.leaderPath) has no `simulation: {motion: FILE}`: in simulation a leader's joints "
                    + "follow a recorded motion (Hardware/README.md)")
        }
        guard
            let bus = configuration.buses.first(where: { bus in configuration.joints.contains { $0.bus == bus.name } })
        else { throw TwinError("\(teleop.leaderPath) has no bus with joints") }
        let joints = configuration.joints.filter { $0.bus == bus.name }
        var servos: [ServoModel] = []
        for joint in joints {
            guard let servo = catalog.model(named: joint.servoModel) else {
                throw TwinError("no servo table for \(joint.servoModel) (leader joint \(joint.name))")
            }
            servos.append(servo)
        }
        var options = VirtualBusOptions()
        options.baudRate = bus.baudRate
        let virtualBus = try VirtualBus(servos: zip(servos, joints).map { ($0, UInt8($1.servoID)) }, options: options)
        var start = checked.model.midRangePositions
        for joint in joints {
            if let j = checked.model.jointIndex(named: joint.name), let p = joint.limits.positionRad {
                start[j] = min(max(start[j], p.lower), p.upper)
            }
        }
        dynamics = try RobotJointDynamics(
            model: checked.model, mappings: zip(joints, servos).map { $0.servoMapping(servo: $1) },
            servoModels: servos, initialPositions: start)
        try dynamics.play(motion)
        virtualBus.dynamics = dynamics
        for (i, state) in dynamics.servoShaftStates().enumerated() {
            virtualBus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        transport = LockstepBusTransport(bus: virtualBus)
    }
}
