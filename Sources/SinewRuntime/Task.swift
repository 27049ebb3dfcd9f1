import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy

/// A task for a robot (`task.yaml`, beside robot.yaml): what the robot alone does not say — a goal, when the
/// episode succeeds or fails, how long it may take, and the task's own observation (a reach target, a reference
/// trajectory) — plus how each episode starts and which physical parameters are randomised from one episode to
/// the next. Parsed once, immutable (``TaskConfiguration/load(contentsOf:robot:model:taskTypes:)``).
///
/// Tasks are evaluated on the robot's joint positions (the simulator's ground truth in `sinew sim eval`; on a
/// real arm the measured ones would do): nothing here imports the simulator.
public struct TaskConfiguration: Sendable {
    /// `name:` (default: the file's name without `.yaml`).
    public let name: String
    public let file: String
    /// The type's settings (`type:` and its keys).
    public let settings: any TaskSettings
    /// LeRobot's task string (`instruction:`, the line in tasks.parquet a language-conditioned policy reads).
    public let instruction: String
    /// An episode that has not succeeded after this long has failed (`time_limit_s`, s).
    public let timeLimitS: Double
    /// Where the arm starts each episode, robot.yaml joint order (rad); nil: mid-range.
    public let startRad: [Double]?
    /// Each joint's start is moved by a uniform draw in ±this (rad), per episode.
    public let startNoiseRad: Double
    /// Dataset frames per second for `sinew record` (LeRobot's `fps`).
    public let fps: Int
    /// What each episode randomises (`randomization:`); used when randomisation is switched on.
    public let randomization: DomainRandomization
    public let location: SourceLocation

    public init(
        name: String, file: String, settings: any TaskSettings, instruction: String, timeLimitS: Double,
        startRad: [Double]?, startNoiseRad: Double, fps: Int, randomization: DomainRandomization,
        location: SourceLocation
    ) {
        self.name = name
        self.file = file
        self.settings = settings
        self.instruction = instruction
        self.timeLimitS = timeLimitS
        self.startRad = startRad
        self.startNoiseRad = startNoiseRad
        self.fps = fps
        self.randomization = randomization
        self.location = location
    }

    /// The types `type:` can name without help.
    public static let builtinTypes: [any TaskType] = [ReachTaskType(), TrajectoryTrackingTaskType()]
}

/// A task type `task.yaml`'s `type:` can name: it reads its own keys once (errors carry file:line:column), and
/// its settings make one ``TaskEpisode`` per episode.
public protocol TaskType: Sendable {
    /// The word in `type:`.
    var name: String { get }
    /// What it is, in one line.
    var summary: String { get }
    /// The keys it reads besides the common ones (`name`, `type`, `instruction`, `time_limit_s`, `start_rad`,
    /// `start_noise_rad`, `fps`, `randomization`).
    var keys: [String] { get }
    /// Reads the settings (the reader's joints are the robot's).
    func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any TaskSettings
}

/// One task type's parsed settings: immutable, checked against the robot, the factory of its episodes.
public protocol TaskSettings: Sendable {
    var typeName: String { get }
    /// Checks that need the URDF and robot.yaml (frames exist, targets in reach): throws for what cannot run.
    func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    /// The names of the task observation's entries (LeRobot's `observation.environment_state` names), in order.
    func observationNames(configuration: RobotConfiguration) -> [String]
    /// One episode, its random choices (a target, a perturbed trajectory) drawn from `random`.
    func makeEpisode(_ context: TaskEpisodeContext, random: inout SplitMix64) throws(TaskError) -> any TaskEpisode
}

/// What an episode is made with.
public struct TaskEpisodeContext {
    public let configuration: RobotConfiguration
    /// The robot's URDF model (geometry: the episode's forward kinematics).
    public let model: RobotModel
    /// Where the episode starts, robot.yaml joint order (rad).
    public let startRad: [Double]
    public init(configuration: RobotConfiguration, model: RobotModel, startRad: [Double]) {
        self.configuration = configuration
        self.model = model
        self.startRad = startRad
    }
}

/// Where an episode stands after a tick.
public enum TaskStatus: Sendable, Equatable {
    case running
    case succeeded
    /// Failed for a reason of the task's own (time limits and safety events are the runner's).
    case failed(String)
}

/// One episode of a task: its random choices made, its state advanced every tick from the robot's joints.
///
/// ``update(timeS:positionsRad:)`` runs inside the lockstep loop after every tick: it must not allocate.
public protocol TaskEpisode: AnyObject {
    /// The task's observation now, ``TaskSettings/observationNames(configuration:)`` order (units per entry).
    var observation: UnsafeMutableBufferPointer<Double> { get }
    /// Advances the task to `timeS` (s since activation) with the robot's joint positions (robot.yaml order,
    /// rad): refreshes ``observation`` and says whether the episode succeeded or failed.
    func update(timeS: Double, positionsRad: UnsafeBufferPointer<Double>) -> TaskStatus
    /// The settings of a built-in policy type that needs no file of its own in this episode (`cartesian`: the
    /// target as its goal; `trajectory`: the reference's waypoints); nil when the type cannot do this task.
    func builtinPolicy(named type: String) -> (any PolicySettings)?
    /// Figures of the episode so far: the error it measures (`error` — m for reach, rad for tracking), its RMS
    /// and largest value over the episode, and the sampled goal, for reports.
    var report: TaskEpisodeReport { get }
}

/// What an episode measured about its task.
public struct TaskEpisodeReport: Sendable, Equatable {
    /// The unit of the error figures: `m` (a frame's distance to its target) or `rad` (joint tracking error).
    public var errorUnit: String
    /// The error at the end of the episode.
    public var finalError: Double
    /// RMS of the error over the episode's ticks.
    public var rmsError: Double
    /// The largest error over the episode.
    public var maxError: Double
    /// The episode's random goal, e.g. `target_m: [x, y, z]`.
    public var goal: [(String, [Double])]

    public init(errorUnit: String, finalError: Double, rmsError: Double, maxError: Double, goal: [(String, [Double])]) {
        self.errorUnit = errorUnit
        self.finalError = finalError
        self.rmsError = rmsError
        self.maxError = maxError
        self.goal = goal
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.errorUnit == b.errorUnit && a.finalError == b.finalError && a.rmsError == b.rmsError
            && a.maxError == b.maxError && a.goal.map(\.0) == b.goal.map(\.0) && a.goal.map(\.1) == b.goal.map(\.1)
    }
}

/// Why an episode could not be made (a target no configuration reaches, …).
public struct TaskError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension TaskConfiguration {
    /// Each episode's random draws come from a generator seeded from the episode's seed and a stream number, so
    /// that the task's choices (the target) do not depend on whether randomisation is on: the same seed gives the
    /// same target with and without it.
    public enum RandomStream: UInt64 {
        case task = 1
        case start = 2
        case physics = 3
        case bus = 4
        case sensors = 5
        case loop = 6
    }

    /// The generator of one stream of one episode.
    public static func random(seed: UInt64, stream: RandomStream) -> SplitMix64 {
        // Two rounds of SplitMix64 on (seed, stream): neighbouring seeds give unrelated streams.
        var mixer = SplitMix64(seed: seed ^ (stream.rawValue &* 0x9E37_79B9_7F4A_7C15))
        _ = mixer.next()
        return SplitMix64(seed: mixer.next())
    }

    /// The start pose of an episode: `start_rad` (or mid-range), each joint moved by ±`start_noise_rad`, kept
    /// inside the joint's limits less the safety margin.
    public func startPose(configuration: RobotConfiguration, model: RobotModel, seed: UInt64) -> [Double] {
        var random = Self.random(seed: seed, stream: .start)
        let limits = configuration.resolvedJointLimits(against: model)
        var pose: [Double] = []
        for (j, joint) in configuration.joints.enumerated() {
            let limit = limits[j]
            let lower = limit.lowerRad.isFinite ? limit.lowerRad : -Double.pi
            let upper = limit.upperRad.isFinite ? limit.upperRad : Double.pi
            var q = startRad?[j] ?? (lower + upper) / 2
            if startNoiseRad > 0 { q += random.uniform(-startNoiseRad...startNoiseRad) }
            let margin = joint.commandMarginRad(configuration.safety)
            pose.append(min(max(q, lower + margin), upper - margin))
        }
        return pose
    }
}
