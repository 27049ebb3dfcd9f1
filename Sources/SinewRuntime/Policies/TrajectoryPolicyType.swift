import SinewKinematics
import SinewPolicy

/// `policy: {type: trajectory, waypoints: […], loop: false}`: joint-space waypoints joined by minimum-jerk
/// segments within each joint's velocity and acceleration limits (``TrajectoryPolicy``).
public struct TrajectoryPolicyType: PolicyType {
    public init() {}
    public var name: String { "trajectory" }
    public var summary: String {
        "joint-space waypoints joined by minimum-jerk segments, stretched to the joints' velocity and acceleration limits"
    }
    public var keys: [String] { ["waypoints", "loop"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        RobotConfiguration.Trajectory(
            waypoints: try reader.waypoints("waypoints"), loop: try reader.bool("loop", default: false))
    }
}

extension PolicySettingsReader {
    /// Joint-space waypoints (`{duration_s, positions_rad}` each, positions as a list in joint order or a map
    /// joint → rad, joints left out keeping the previous waypoint's value); at least one.
    public func waypoints(_ key: String) throws(ConfigurationError) -> [RobotConfiguration.Waypoint] {
        guard let node = fields[key] else { throw fields.missing(key, expected: "a list of waypoints") }
        let keyPath = fields.childPath(key)
        let items = try reader.list(node, keyPath, expected: "a list of waypoints")
        if items.isEmpty {
            throw reader.error(.invalidValue, node, keyPath, expected: "at least one waypoint", found: "an empty list")
        }
        var waypoints: [RobotConfiguration.Waypoint] = []
        for (i, item) in items.enumerated() {
            waypoints.append(
                try reader.waypoint(
                    item, path: "\(keyPath)[\(i)]", joints: joints, previous: waypoints.last?.positionsRad))
        }
        return waypoints
    }
}

extension RobotConfiguration.Trajectory: PolicySettings {
    public var typeName: String { "trajectory" }

    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        var warnings: [ConfigurationWarning] = []
        for (w, waypoint) in waypoints.enumerated() {
            for (j, joint) in configuration.joints.enumerated() {
                let urdf = model.joints[model.jointIndex(named: joint.name)!]
                let q = waypoint.positionsRad[j]
                let path = "policy.waypoints[\(w)].positions_rad.\(joint.name)"
                if q < urdf.lowerLimit || q > urdf.upperLimit {
                    throw ConfigurationError(
                        .outsideModelLimits, at: waypoint.location, keyPath: path,
                        expected: "a position within the URDF limits [\(urdf.lowerLimit), \(urdf.upperLimit)] rad",
                        found: "\(q)")
                }
                let lower = max(urdf.lowerLimit, joint.limits.positionRad?.lower ?? -.infinity)
                let upper = min(urdf.upperLimit, joint.limits.positionRad?.upper ?? .infinity)
                let margin = joint.commandMarginRad(configuration.safety)
                if q < lower + margin || q > upper - margin {
                    warnings.append(
                        ConfigurationWarning(
                            at: waypoint.location, keyPath: path,
                            "\(q) rad is within the \(margin) rad safety margin (half the backlash included) of "
                                + "the limits [\(lower), \(upper)]; commands there are clamped"))
                }
            }
        }
        warnings += speedWarnings(configuration, limits: configuration.resolvedJointLimits(against: model))
        return warnings
    }

    /// Segments too fast for a joint. The interpolation is the policy's business, so this assumes the
    /// gentlest common one, minimum jerk, whose peak speed is 1.875 × the segment's average. The first
    /// waypoint is skipped: it starts from wherever the robot is.
    private func speedWarnings(_ configuration: RobotConfiguration, limits: [RobotConfiguration.ResolvedJointLimits])
        -> [ConfigurationWarning]
    {
        var warnings: [ConfigurationWarning] = []
        let peakFactor = 1.875
        for w in waypoints.indices.dropFirst() {
            let from = waypoints[w - 1]
            let to = waypoints[w]
            for (j, joint) in configuration.joints.enumerated() {
                let peakRadPerS = peakFactor * abs(to.positionsRad[j] - from.positionsRad[j]) / to.durationS
                let path = "policy.waypoints[\(w)].duration_s"
                if peakRadPerS > limits[j].velocityRadPerS {
                    warnings.append(
                        ConfigurationWarning(
                            at: to.location, keyPath: path,
                            "\(joint.name) would peak near \(peakRadPerS) rad/s (minimum-jerk profile), above its "
                                + "velocity limit \(limits[j].velocityRadPerS) rad/s; the trajectory policy stretches the "
                                + "segment to fit (give it more time to silence this)"))
                } else if peakRadPerS / configuration.loop.rateHz > configuration.safety.maxStepRad {
                    warnings.append(
                        ConfigurationWarning(
                            at: to.location, keyPath: path,
                            "\(joint.name) would move up to \(peakRadPerS / configuration.loop.rateHz) rad per tick, more than "
                                + "safety.max_step_rad \(configuration.safety.maxStepRad)"))
                }
            }
        }
        return warnings
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        let configuration = context.configuration
        return TrajectoryPolicy(
            jointNames: configuration.joints.map(\.name),
            waypoints: waypoints.map {
                TrajectoryPolicy.Waypoint(positionsRad: $0.positionsRad, durationS: $0.durationS)
            },
            loops: loop,
            limits: zip(configuration.joints, context.jointLimits).map { joint, limit in
                TrajectoryPolicy.JointLimits(
                    velocityRadPerS: limit.velocityLimitRadPerS,
                    accelerationRadPerS2: joint.limits.accelerationRadPerS2 ?? .infinity)
            })
    }
}
