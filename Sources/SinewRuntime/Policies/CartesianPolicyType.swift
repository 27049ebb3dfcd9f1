import SinewCore
import SinewKinematics
import SinewPolicy

/// `policy: {type: cartesian, frame: LINK, goals: […]}`: pose goals for one frame reached along straight lines
/// by differential inverse kinematics (``CartesianPolicy``). Each goal is `{position_m: [x, y, z]}` with an
/// optional orientation (`rpy_rad: [roll, pitch, yaw]` or `quaternion_wxyz: [w, x, y, z]`) and `duration_s`
/// (a lower bound).
public struct CartesianPolicyType: PolicyType {
    public init() {}
    public var name: String { "cartesian" }
    public var summary: String {
        "pose goals for a frame, reached along straight lines by differential IK within the joint limits"
    }
    public var keys: [String] {
        [
            "frame", "goals", "time_law", "loop", "linear_speed_m_s", "angular_speed_rad_s", "feedback_gain",
            "rest_rad",
        ]
    }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        guard let frame = try reader.string("frame") else {
            throw reader.error("frame", expected: "the URDF link whose pose the goals give (e.g. the gripper's frame)")
        }
        let goalKeys = ["position_m", "rpy_rad", "quaternion_wxyz", "duration_s"]
        guard
            let goalReaders = try reader.list(
                "goals", keys: goalKeys, expected: "a list of goals {position_m, rpy_rad | quaternion_wxyz, duration_s}"
            )
        else {
            throw reader.error("goals", expected: "a list of goals {position_m: [x, y, z], …}")
        }
        var goals: [CartesianPolicy.Goal] = []
        var locations: [SourceLocation] = []
        for goal in goalReaders {
            guard let p = try goal.numbers("position_m", count: 3, unit: "m", bound: RobotConfiguration.distanceBoundM)
            else { throw goal.error("position_m", expected: "[x, y, z] (m, root frame)") }
            var orientation: Rotation3?
            if let rpy = try goal.numbers("rpy_rad", count: 3, unit: "rad", bound: 10) {
                orientation = Rotation3(rollRad: rpy[0], pitchRad: rpy[1], yawRad: rpy[2])
            }
            if let q = try goal.numbers("quaternion_wxyz", count: 4, unit: "unit quaternion", bound: 1.000001) {
                guard orientation == nil else {
                    throw goal.error("quaternion_wxyz", expected: "rpy_rad or quaternion_wxyz, not both")
                }
                let norm = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).squareRoot()
                guard abs(norm - 1) < 1e-3 else {
                    throw goal.error("quaternion_wxyz", expected: "a unit quaternion", found: "one of norm \(norm)")
                }
                orientation = Rotation3(quaternion: (q[0], q[1], q[2], q[3]))
            }
            let duration = try goal.double(
                "duration_s", default: 0, unit: "s, a lower bound", where: { $0 >= 0 && $0 <= 1e6 }, "in [0, 1000000]")
            goals.append(
                CartesianPolicy.Goal(positionM: SIMD3(p[0], p[1], p[2]), orientation: orientation, durationS: duration))
            locations.append(goal.location)
        }
        var settings = CartesianPolicy.Settings(frame: frame, goals: goals)
        settings.timeLaw =
            CartesianPolicy.TimeLaw(
                rawValue: try reader.word(
                    "time_law", choices: CartesianPolicy.TimeLaw.allCases.map(\.rawValue), default: "minimum_jerk"))
            ?? .minimumJerk
        settings.loops = try reader.bool("loop", default: false)
        settings.linearSpeedMPerS = try reader.double(
            "linear_speed_m_s", default: 0.2, unit: "m/s", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]")
        settings.angularSpeedRadPerS = try reader.double(
            "angular_speed_rad_s", default: 1, unit: "rad/s", where: { $0 > 0 && $0 <= 50 }, "in (0, 50]")
        settings.feedbackGainPerS = try reader.double(
            "feedback_gain", default: 5, unit: "1/s", where: { $0 >= 0 && $0 <= 100 }, "in [0, 100]")
        settings.restRad = try reader.perJoint(
            "rest_rad", default: 0, unit: "rad", where: { abs($0) <= RobotConfiguration.positionBoundRad },
            "in [-100, 100]")
        return CartesianPolicySettings(
            settings: settings, goalLocations: locations, location: reader.location(of: "frame"))
    }
}

/// The `cartesian` policy's settings, with where each goal is in the robot.yaml.
public struct CartesianPolicySettings: PolicySettings, Equatable {
    public let settings: CartesianPolicy.Settings
    public let goalLocations: [SourceLocation]
    public let location: SourceLocation
    public var typeName: String { "cartesian" }

    /// Settings made by a program (a task's goal): `goalLocations` one per goal, used in errors.
    public init(settings: CartesianPolicy.Settings, goalLocations: [SourceLocation], location: SourceLocation) {
        self.settings = settings
        self.goalLocations = goalLocations
        self.location = location
    }

    /// The frame is a link, and every goal is within reach and inside the safety workspace's boxes for that
    /// frame: refused here, before any motion, naming the goal's line.
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        guard model.linkIndex(named: settings.frame) != nil else {
            throw ConfigurationError(
                .unknownFrame, at: location, keyPath: "policy.frame",
                expected: "a link of \(model.file)"
                    + configuration.suggestionText(settings.frame, model.links.map(\.name)),
                found: "'\(settings.frame)'")
        }
        for (g, goal) in settings.goals.enumerated() {
            for box in configuration.safety.workspace where box.frame == settings.frame {
                let p = goal.positionM
                guard all(p .>= box.minM) && all(p .<= box.maxM) else {
                    throw ConfigurationError(
                        .invalidValue, at: goalLocations[g], keyPath: "policy.goals[\(g)].position_m",
                        expected: "a position inside the safety workspace box of \(box.frame) "
                            + "([\(box.minM.x), \(box.minM.y), \(box.minM.z)] to [\(box.maxM.x), \(box.maxM.y), \(box.maxM.z)] m)",
                        found: "[\(p.x), \(p.y), \(p.z)]")
                }
            }
        }
        do {
            _ = try makeCartesianPolicy(model: model, configuration: configuration)
        } catch {
            let g = error.goal ?? 0
            throw ConfigurationError(
                .invalidValue, at: error.goal == nil ? location : goalLocations[g],
                keyPath: error.goal == nil ? "policy" : "policy.goals[\(g)]", expected: "a goal the arm can reach",
                found: error.message)
        }
        return []
    }

    func makeCartesianPolicy(model: RobotModel, configuration: RobotConfiguration) throws(CartesianPolicyError)
        -> CartesianPolicy
    {
        let resolved = configuration.resolvedJointLimits(against: model)
        let limits = zip(configuration.joints, resolved).map { joint, limit in
            let margin = joint.commandMarginRad(configuration.safety)
            return (
                lowerRad: limit.lowerRad + margin, upperRad: limit.upperRad - margin,
                velocityRadPerS: limit.velocityRadPerS
            )
        }
        return try CartesianPolicy(
            model: model, jointNames: configuration.joints.map(\.name), settings: settings, limits: limits,
            loopRateHz: configuration.loop.rateHz)
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        do {
            return try makeCartesianPolicy(model: context.model, configuration: context.configuration)
        } catch {
            throw RobotLoopError("policy \"cartesian\": \(error)")
        }
    }
}
