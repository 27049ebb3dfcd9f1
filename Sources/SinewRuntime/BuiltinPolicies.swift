import SinewPolicy

/// The policies robot.yaml's `policy:` can name, built from its parsed settings.
public enum BuiltinPolicies {
    /// The policy `configuration.policy` describes, planning within `limits` (the supervisor's joint limits:
    /// velocity limits already scaled by `safety.velocity_limit_scale`).
    public static func make(for configuration: RobotConfiguration, limits: [JointSafetyLimits]) -> any Policy {
        let jointNames = configuration.joints.map(\.name)
        switch configuration.policy {
        case .hold:
            return HoldPolicy(jointNames: jointNames)
        case .trajectory(let trajectory):
            return TrajectoryPolicy(
                jointNames: jointNames,
                waypoints: trajectory.waypoints.map {
                    TrajectoryPolicy.Waypoint(positionsRad: $0.positionsRad, durationS: $0.durationS)
                },
                loops: trajectory.loop,
                limits: zip(configuration.joints, limits).map { joint, limit in
                    TrajectoryPolicy.JointLimits(
                        velocityRadPerS: limit.velocityLimitRadPerS,
                        accelerationRadPerS2: joint.limits.accelerationRadPerS2 ?? .infinity)
                })
        }
    }
}

extension RobotLoop {
    /// A policy the loop can run: it commands joints of this robot, each once, by position (the act stage
    /// writes position goals; velocity and effort goals need the servos' other operating modes, not yet
    /// configured), and an asynchronous one runs at a rate in (0, loop rate].
    static func checkPolicy(_ policy: any Policy, configuration: RobotConfiguration) throws(RobotLoopError) {
        let names = Set(configuration.joints.map(\.name))
        var seen: Set<String> = []
        for command in policy.commands {
            guard names.contains(command.joint) else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(command.joint)\", which \(configuration.file) "
                        + "does not have (joints: \(configuration.joints.map(\.name).joined(separator: ", ")))",
                    location: RobotErrorLocation(joint: command.joint))
            }
            guard seen.insert(command.joint).inserted else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(command.joint)\" twice",
                    location: RobotErrorLocation(joint: command.joint))
            }
            guard command.kind == .position else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(command.joint)\" by \(command.kind.rawValue); "
                        + "this version of Sinew drives servos by position only",
                    location: RobotErrorLocation(joint: command.joint))
            }
        }
        if case .asynchronous(let rateHz) = policy.execution {
            let loopHz = configuration.loop.rateHz
            guard rateHz > 0 && rateHz <= loopHz else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" runs at \(rateHz) Hz; an asynchronous policy runs at a rate "
                        + "above 0 and at most the loop's \(loopHz) Hz")
            }
        }
    }
}
