import SinewCore
import SinewKinematics

/// A configuration together with the URDF model it was checked against.
public struct CheckedRobotConfiguration: Sendable {
    public let configuration: RobotConfiguration
    public let model: RobotModel
    /// Things accepted but worth telling the user (see `RobotConfiguration.check(against:)`).
    public let warnings: [ConfigurationWarning]
}

extension RobotConfiguration {
    /// Loads `robot.yaml`, then its URDF, and checks one against the other. `policyTypes`: the types
    /// `policy.type` may name (the built-ins, and a program's own), as in ``load(contentsOf:policyTypes:)``.
    public static func loadChecked(
        contentsOf path: String, policyTypes: [any PolicyType] = PolicyTypes.builtin
    ) throws(ConfigurationError) -> CheckedRobotConfiguration {
        let configuration = try load(contentsOf: path, policyTypes: policyTypes)
        let model: RobotModel
        do {
            model = try RobotModel(urdf: configuration.modelPath)
        } catch {
            throw ConfigurationError(
                .modelUnloadable, at: SourceLocation(file: path), keyPath: "model",
                expected: "a loadable URDF at \(configuration.modelPath)", found: error.description)
        }
        let warnings = try configuration.check(against: model)
        return CheckedRobotConfiguration(configuration: configuration, model: model, warnings: warnings)
    }

    /// Checks the configuration against the robot's URDF model.
    ///
    /// Errors: a configured joint missing from the URDF or not a moving joint; a workspace frame or IMU
    /// link that is not a URDF link; a trajectory waypoint outside the URDF's position limits.
    ///
    /// Warnings (returned): configured position, velocity or effort limits wider than the URDF's — not an
    /// error because the safety supervisor enforces the narrower of the two, but usually a mistake; and
    /// waypoints within the safety position margin of a limit (they will be clamped).
    public func check(against model: RobotModel) throws(ConfigurationError) -> [ConfigurationWarning] {
        var warnings: [ConfigurationWarning] = []
        let movingNames = model.joints.map { "'\($0.name)'" }.joined(separator: ", ")
        for (i, joint) in joints.enumerated() {
            let path = "joints[\(i)].name"
            guard let index = model.jointIndex(named: joint.name) else {
                if model.fixedJoints.contains(where: { $0.name == joint.name }) {
                    throw ConfigurationError(
                        .notAMovingJoint, at: joint.location, keyPath: path,
                        expected: "a moving joint of \(model.file) (\(movingNames))",
                        found: "'\(joint.name)', a fixed joint")
                }
                throw ConfigurationError(
                    .unknownModelJoint, at: joint.location, keyPath: path,
                    expected: "a joint of \(model.file) (\(movingNames))", found: "'\(joint.name)'")
            }
            let urdf = model.joints[index]
            guard urdf.type.isMoving else {
                throw ConfigurationError(
                    .notAMovingJoint, at: joint.location, keyPath: path, expected: "a moving joint of \(model.file)",
                    found: "'\(joint.name)', a \(urdf.type.rawValue) joint")
            }
            let limitsPath = "joints[\(i)].limits"
            if let position = joint.limits.positionRad,
                position.lower < urdf.lowerLimit || position.upper > urdf.upperLimit
            {
                warnings.append(
                    ConfigurationWarning(
                        at: joint.location, keyPath: "\(limitsPath).position_rad",
                        "[\(position.lower), \(position.upper)] rad reaches beyond the URDF's "
                            + "[\(urdf.lowerLimit), \(urdf.upperLimit)]; the URDF's limits apply there"))
            }
            if let velocity = joint.limits.velocityRadPerS, velocity > urdf.velocityLimit {
                warnings.append(
                    ConfigurationWarning(
                        at: joint.location, keyPath: "\(limitsPath).velocity_rad_s",
                        "\(velocity) rad/s exceeds the URDF's \(urdf.velocityLimit); the URDF's limit applies"))
            }
            if let effort = joint.limits.effortNm, effort > urdf.effortLimit {
                warnings.append(
                    ConfigurationWarning(
                        at: joint.location, keyPath: "\(limitsPath).effort_nm",
                        "\(effort) N·m exceeds the URDF's \(urdf.effortLimit); the URDF's limit applies"))
            }
        }

        let linkNames = model.links.map(\.name)
        for (i, box) in safety.workspace.enumerated() where model.linkIndex(named: box.frame) == nil {
            throw ConfigurationError(
                .unknownFrame, at: box.location, keyPath: "safety.workspace[\(i)].frame",
                expected: "a link of \(model.file)" + suggestionText(box.frame, linkNames), found: "'\(box.frame)'")
        }
        if let imu, model.linkIndex(named: imu.link) == nil {
            throw ConfigurationError(
                .unknownFrame, at: imu.location, keyPath: "imu.link",
                expected: "a link of \(model.file)" + suggestionText(imu.link, linkNames), found: "'\(imu.link)'")
        }

        if let motion = simulation?.motion { try check(motion: motion, against: model) }

        warnings += try policy.settings.check(against: model, configuration: self)
        return warnings
    }

    /// A simulation motion moves joints the hand can move (not mimic joints, which follow their masters), within
    /// the URDF's limits: the simulated arm's mechanical stops are just beyond them.
    func check(motion: JointMotion, against model: RobotModel, path: String = "simulation.motion")
        throws(ConfigurationError)
    {
        for (c, name) in motion.jointNames.enumerated() {
            guard let j = model.jointIndex(named: name) else { continue }
            let joint = model.joints[j]
            if let mimic = joint.mimic {
                throw ConfigurationError(
                    .invalidMotion,
                    at: SourceLocation(file: motion.file, line: motion.headerLine, column: motion.jointColumns[c]),
                    keyPath: path,
                    expected: "joints a hand moves",
                    found:
                        "joint '\(name)' mimics '\(model.joints[mimic.master].name)': the motion must move that one")
            }
            for row in 0..<motion.rowCount {
                let value = motion.positionRad(row: row, joint: c)
                guard value < joint.lowerLimit || value > joint.upperLimit else { continue }
                throw ConfigurationError(
                    .outsideModelLimits, at: SourceLocation(file: motion.file, line: motion.rowLines[row]),
                    keyPath: path,
                    expected:
                        "positions of \(name) within the URDF's limits [\(joint.lowerLimit), \(joint.upperLimit)] rad",
                    found: "\(value)")
            }
        }
    }

    /// A joint motion file given outside robot.yaml (`sinew virtual-bus --hand FILE`: a hand moving this robot's
    /// joints along it), read and checked as `simulation.motion` is: every column a configured joint, no mimic
    /// joint, every position within the URDF's limits. Errors name the motion file's line and column, and
    /// `option` as the key.
    public func loadHandMotion(contentsOf file: String, model: RobotModel, option: String = "--hand")
        throws(ConfigurationError) -> JointMotion
    {
        let expected = "a joint motion CSV file (header t_s and joint names, then rows of time and positions)"
        let motion: JointMotion
        do {
            motion = try JointMotion.load(contentsOf: file)
        } catch {
            throw ConfigurationError(
                error.kind == .unreadableFile ? .unreadableFile : error.kind == .tooLarge ? .tooLarge : .invalidMotion,
                at: error.location.line == 0 ? SourceLocation(file: file) : error.location, keyPath: option,
                expected: expected, found: error.problem)
        }
        let names = joints.map(\.name)
        for (c, name) in motion.jointNames.enumerated() where !names.contains(name) {
            let configured = names.map { "'\($0)'" }.joined(separator: ", ")
            throw ConfigurationError(
                .invalidMotion,
                at: SourceLocation(file: file, line: motion.headerLine, column: motion.jointColumns[c]),
                keyPath: option,
                expected: "a joint of \(self.file) as each column's name: \(configured)",
                found: "column '\(name)' is not a configured joint\(suggestionText(name, names))")
        }
        try check(motion: motion, against: model, path: option)
        return motion
    }

    func suggestionText(_ name: String, _ candidates: [String]) -> String {
        guard let best = KeySuggestion.closest(to: name, among: candidates) else { return "" }
        return " (did you mean '\(best)'?)"
    }
}

extension RobotConfiguration {
    /// The limits that apply to one joint once the URDF and the configuration are combined.
    public struct ResolvedJointLimits: Sendable, Equatable {
        /// Position range (rad): the narrower of the URDF's and `limits.position_rad`; ±infinity if neither.
        public let lowerRad: Double
        public let upperRad: Double
        /// Speed (rad/s): the smaller of the two, times `safety.velocity_limit_scale`; infinity if neither.
        public let velocityRadPerS: Double
        /// Effort (N·m): the smaller of the two; infinity if neither.
        public let effortNm: Double

        public init(lowerRad: Double, upperRad: Double, velocityRadPerS: Double, effortNm: Double) {
            self.lowerRad = lowerRad
            self.upperRad = upperRad
            self.velocityRadPerS = velocityRadPerS
            self.effortNm = effortNm
        }
    }

    /// For each configured joint, in `joints` order, the limits the safety supervisor should enforce (the
    /// position margin is not applied here). Joints the model lacks get the configuration's limits only;
    /// run `check(against:)` first to rule that out.
    public func resolvedJointLimits(against model: RobotModel) -> [ResolvedJointLimits] {
        joints.map { joint in
            let urdf = model.jointIndex(named: joint.name).map { model.joints[$0] }
            let lower = max(urdf?.lowerLimit ?? -.infinity, joint.limits.positionRad?.lower ?? -.infinity)
            let upper = min(urdf?.upperLimit ?? .infinity, joint.limits.positionRad?.upper ?? .infinity)
            let velocity = min(urdf?.velocityLimit ?? .infinity, joint.limits.velocityRadPerS ?? .infinity)
            let effort = min(urdf?.effortLimit ?? .infinity, joint.limits.effortNm ?? .infinity)
            return ResolvedJointLimits(
                lowerRad: lower, upperRad: upper, velocityRadPerS: velocity * safety.velocityLimitScale,
                effortNm: effort)
        }
    }

    /// What the safety supervisor enforces per configured joint, in `joints` order: the resolved limits, the
    /// command margin (`safety.position_margin_rad` plus half the reducer's backlash), the step limit and its
    /// fault threshold (4 × `safety.max_step_rad`), and the safe state. A loop's policy plans within these
    /// (``PolicyBuildContext/jointLimits``); a program that builds a policy outside a loop passes them too.
    public func jointSafetyLimits(against model: RobotModel) -> [JointSafetyLimits] {
        let limits = resolvedJointLimits(against: model)
        return joints.enumerated().map { i, joint in
            JointSafetyLimits(
                positionMinRad: limits[i].lowerRad, positionMaxRad: limits[i].upperRad,
                positionMarginRad: joint.commandMarginRad(safety), velocityLimitRadPerS: limits[i].velocityRadPerS,
                effortLimitNm: limits[i].effortNm, maxStepRadPerTick: safety.maxStepRad,
                stepFaultRadPerTick: 4 * safety.maxStepRad,
                safeState: joint.safeState == .hold ? .hold : .torqueOff,
                maxVelocityStepRadPerSPerTick: velocityStepPerTick(
                    joint, velocityLimitRadPerS: limits[i].velocityRadPerS))
        }
    }

    /// How much a velocity goal may change in one tick (rad/s): the joint's `acceleration_rad_s2` over the loop's
    /// rate, or, without one, whatever reaches the velocity limit in 0.1 s (unlimited when neither is known).
    func velocityStepPerTick(_ joint: Joint, velocityLimitRadPerS: Double) -> Double {
        let acceleration = joint.limits.accelerationRadPerS2 ?? 10 * velocityLimitRadPerS
        return acceleration.isFinite ? acceleration / loop.rateHz : .infinity
    }
}
