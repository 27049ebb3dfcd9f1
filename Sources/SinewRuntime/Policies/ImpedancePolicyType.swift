import SinewCore
import SinewKinematics
import SinewPolicy

/// `policy: {type: impedance, …}`: each listed joint a spring and damper about a target, by effort (servos in
/// current mode), gravity compensated by default (``ImpedancePolicy``).
public struct ImpedancePolicyType: PolicyType {
    public init() {}
    public var name: String { "impedance" }
    public var summary: String {
        "per-joint stiffness and damping about a target, by effort (current-mode servos), gravity compensated"
    }
    public var keys: [String] {
        ["joints", "stiffness_nm_per_rad", "damping_nms_per_rad", "target_rad", "gravity_compensation"]
    }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        let n = reader.joints.count
        return ImpedancePolicySettings(
            typeName: name, joints: try reader.jointNames("joints") ?? reader.joints.map(\.name),
            stiffnessNmPerRad: try reader.perJoint(
                "stiffness_nm_per_rad", default: 0, unit: "N·m/rad", where: { $0 >= 0 && $0 <= 1000 }, "in [0, 1000]")
                ?? [Double](repeating: 5, count: n),
            dampingNmsPerRad: try reader.perJoint(
                "damping_nms_per_rad", default: 0, unit: "N·m·s/rad", where: { $0 >= 0 && $0 <= 100 }, "in [0, 100]")
                ?? [Double](repeating: 0.1, count: n),
            targetRad: try reader.perJoint(
                "target_rad", default: 0, unit: "rad", where: { abs($0) <= RobotConfiguration.positionBoundRad },
                "in [-100, 100]"),
            compensatesGravity: try reader.bool("gravity_compensation", default: true),
            location: reader.location)
    }
}

/// `policy: {type: gravity_compensation, …}`: the listed joints carry the arm's weight and nothing more, so it
/// floats where it is left and can be moved by hand (``ImpedancePolicy`` without stiffness).
public struct GravityCompensationPolicyType: PolicyType {
    public init() {}
    public var name: String { "gravity_compensation" }
    public var summary: String {
        "the arm's weight carried by effort (current-mode servos) from its URDF: it floats and can be moved by hand"
    }
    public var keys: [String] { ["joints", "damping_nms_per_rad"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        let n = reader.joints.count
        return ImpedancePolicySettings(
            typeName: name, joints: try reader.jointNames("joints") ?? reader.joints.map(\.name),
            stiffnessNmPerRad: [Double](repeating: 0, count: n),
            dampingNmsPerRad: try reader.perJoint(
                "damping_nms_per_rad", default: 0, unit: "N·m·s/rad", where: { $0 >= 0 && $0 <= 100 }, "in [0, 100]")
                ?? [Double](repeating: 0.02, count: n),
            targetRad: nil, compensatesGravity: true, location: reader.location)
    }
}

/// Settings of `impedance` and `gravity_compensation`: per robot joint (robot.yaml order).
public struct ImpedancePolicySettings: PolicySettings, Equatable {
    public let typeName: String
    /// The joints driven by effort; the others hold their activation pose by position.
    public let joints: [String]
    public let stiffnessNmPerRad: [Double]
    public let dampingNmsPerRad: [Double]
    /// The springs' rest positions; nil: the pose at activation.
    public let targetRad: [Double]?
    public let compensatesGravity: Bool
    public let location: SourceLocation

    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        var warnings: [ConfigurationWarning] = []
        let massless = model.links.allSatisfy { ($0.inertial?.mass ?? 0) == 0 }
        if compensatesGravity && massless {
            warnings.append(
                ConfigurationWarning(
                    at: location, keyPath: "policy",
                    "\(model.file) gives no link a mass: gravity compensation adds nothing"))
        }
        return warnings
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        do {
            return try ImpedancePolicy(
                typeName: typeName, model: context.model, jointNames: context.configuration.joints.map(\.name),
                drivenJoints: joints, stiffnessNmPerRad: stiffnessNmPerRad, dampingNmsPerRad: dampingNmsPerRad,
                targetRad: targetRad, compensatesGravity: compensatesGravity)
        } catch {
            throw RobotLoopError("policy \"\(typeName)\": \(error)", location: RobotErrorLocation(joint: error.joint))
        }
    }
}
