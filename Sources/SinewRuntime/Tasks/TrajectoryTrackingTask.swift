import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy

/// `type: trajectory_tracking`: follow a joint-space reference — the task's waypoints, each joint of each
/// waypoint moved per episode by a uniform draw in ±`waypoint_noise_rad`, joined by minimum-jerk segments exactly
/// as the `trajectory` policy joins them from the start pose — and end the reference's last segment close to it.
/// The episode succeeds when the reference has ended (plus `settle_s`) with the RMS tracking error over the
/// episode (over joints and ticks) within `tolerance_rad` and the final error within `final_tolerance_rad`; it
/// fails as soon as any joint is more than `max_error_rad` from the reference. The task's observation is the
/// reference's joint positions now (rad, robot.yaml order). The `trajectory` policy does it with the episode's
/// waypoints.
public struct TrajectoryTrackingTaskType: TaskType {
    public init() {}
    public var name: String { "trajectory_tracking" }
    public var summary: String {
        "follow a joint-space reference through waypoints perturbed per episode, within a tracking tolerance"
    }
    public var keys: [String] {
        ["waypoints", "waypoint_noise_rad", "tolerance_rad", "final_tolerance_rad", "max_error_rad", "settle_s"]
    }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any TaskSettings {
        TrajectoryTrackingTaskSettings(
            waypoints: try reader.waypoints("waypoints"),
            waypointNoiseRad: try reader.double(
                "waypoint_noise_rad", default: 0, unit: "rad", where: { $0 >= 0 && $0 <= 1 }, "in [0, 1]"),
            toleranceRad: try reader.double(
                "tolerance_rad", default: 0.05, unit: "rad", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]"),
            finalToleranceRad: try reader.double(
                "final_tolerance_rad", default: 0.05, unit: "rad", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]"),
            maxErrorRad: try reader.double(
                "max_error_rad", default: 0.3, unit: "rad", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]"),
            settleS: try reader.double(
                "settle_s", default: 0.3, unit: "s", where: { $0 >= 0 && $0 <= 60 }, "in [0, 60]"),
            location: reader.location(of: "waypoints"))
    }
}

/// The `trajectory_tracking` task's settings.
public struct TrajectoryTrackingTaskSettings: TaskSettings, Equatable {
    public let waypoints: [RobotConfiguration.Waypoint]
    public let waypointNoiseRad: Double
    public let toleranceRad: Double
    public let finalToleranceRad: Double
    public let maxErrorRad: Double
    public let settleS: Double
    public let location: SourceLocation
    public var typeName: String { "trajectory_tracking" }

    public func observationNames(configuration: RobotConfiguration) -> [String] {
        configuration.joints.map { "reference.\($0.name)" }
    }

    /// The waypoints are inside the URDF's limits (as the `trajectory` policy's must be).
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        do {
            return try RobotConfiguration.Trajectory(waypoints: waypoints).check(
                against: model, configuration: configuration)
        } catch {
            throw ConfigurationError(
                error.kind, at: error.location, keyPath: error.keyPath.replacingOccurrences(of: "policy.", with: ""),
                expected: error.expected, found: error.found)
        }
    }

    public func makeEpisode(_ context: TaskEpisodeContext, random: inout SplitMix64) throws(TaskError)
        -> any TaskEpisode
    {
        let limits = context.configuration.resolvedJointLimits(against: context.model)
        var perturbed: [RobotConfiguration.Waypoint] = []
        for waypoint in waypoints {
            var q = waypoint.positionsRad
            for j in q.indices {
                if waypointNoiseRad > 0 { q[j] += random.uniform(-waypointNoiseRad...waypointNoiseRad) }
                let margin = context.configuration.joints[j].commandMarginRad(context.configuration.safety)
                q[j] = min(max(q[j], limits[j].lowerRad + margin), limits[j].upperRad - margin)
            }
            perturbed.append(
                RobotConfiguration.Waypoint(positionsRad: q, durationS: waypoint.durationS, location: waypoint.location)
            )
        }
        return TrajectoryTrackingEpisode(settings: self, context: context, waypoints: perturbed)
    }
}

/// One episode of `trajectory_tracking`: the reference planned from the start pose, the error every tick.
public final class TrajectoryTrackingEpisode: TaskEpisode {
    public let settings: TrajectoryTrackingTaskSettings
    /// The episode's waypoints (perturbed).
    public let waypoints: [RobotConfiguration.Waypoint]
    public let observation: UnsafeMutableBufferPointer<Double>
    let reference: TrajectoryPolicy
    let referenceObservation: PolicyObservation
    let referenceCommand: PolicyCommand
    /// When the reference ends (s from activation), settling included.
    let endS: Double
    var squares = 0.0
    var samples = 0
    var lastErrorRad = 0.0
    var maxErrorRad = 0.0

    init(
        settings: TrajectoryTrackingTaskSettings, context: TaskEpisodeContext, waypoints: [RobotConfiguration.Waypoint]
    ) {
        self.settings = settings
        self.waypoints = waypoints
        let configuration = context.configuration
        let names = configuration.joints.map(\.name)
        let safety = configuration.jointSafetyLimits(against: context.model)
        reference = TrajectoryPolicy(
            jointNames: names,
            waypoints: waypoints.map {
                TrajectoryPolicy.Waypoint(positionsRad: $0.positionsRad, durationS: $0.durationS)
            },
            loops: false,
            limits: zip(configuration.joints, safety).map { joint, limit in
                TrajectoryPolicy.JointLimits(
                    velocityRadPerS: limit.velocityLimitRadPerS,
                    accelerationRadPerS2: joint.limits.accelerationRadPerS2 ?? .infinity)
            })
        referenceObservation = PolicyObservation(jointNames: names)
        referenceCommand = PolicyCommand(jointCount: names.count)
        for j in names.indices { referenceObservation.positionRad[j] = context.startRad[j] }
        reference.reset(from: referenceObservation, into: referenceCommand)
        endS = (reference.plannedDurationS ?? 0) + settings.settleS
        observation = .allocate(capacity: max(1, names.count))
        for j in names.indices { observation[j] = context.startRad[j] }
    }

    deinit { observation.deallocate() }

    public func update(timeS: Double, positionsRad: UnsafeBufferPointer<Double>) -> TaskStatus {
        referenceObservation.timeNs = Int64((timeS * 1e9).rounded())
        referenceCommand.computedForNs = referenceObservation.timeNs
        reference.compute(referenceObservation, into: referenceCommand)
        var worst = 0.0
        var sum = 0.0
        let n = min(positionsRad.count, referenceCommand.jointCount)
        for j in 0..<n {
            observation[j] = referenceCommand.positionRad[j]
            let e = positionsRad[j] - referenceCommand.positionRad[j]
            worst = max(worst, abs(e))
            sum += e * e
        }
        let rms = n > 0 ? (sum / Double(n)).squareRoot() : 0
        lastErrorRad = rms
        maxErrorRad = max(maxErrorRad, worst)
        squares += sum
        samples += n
        if worst > settings.maxErrorRad { return .failed("a joint strayed more than max_error_rad from the reference") }
        guard timeS >= endS else { return .running }
        let overall = samples > 0 ? (squares / Double(samples)).squareRoot() : 0
        return overall <= settings.toleranceRad && rms <= settings.finalToleranceRad
            ? .succeeded : .failed("tracking error above tolerance_rad at the reference's end")
    }

    public func builtinPolicy(named type: String) -> (any PolicySettings)? {
        guard type == "trajectory" else { return nil }
        return RobotConfiguration.Trajectory(waypoints: waypoints)
    }

    public var report: TaskEpisodeReport {
        TaskEpisodeReport(
            errorUnit: "rad", finalError: lastErrorRad,
            rmsError: samples > 0 ? (squares / Double(samples)).squareRoot() : 0, maxError: maxErrorRad,
            goal: waypoints.enumerated().map { ("waypoint\($0.offset)_rad", $0.element.positionsRad) })
    }
}
