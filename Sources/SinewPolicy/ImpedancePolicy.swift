import SinewKinematics

/// Joint-space impedance on joints driven by effort (servos in current mode): each joint behaves as a
/// spring of stiffness K (N·m/rad) and a damper D (N·m·s/rad) about its target, with the robot's gravity
/// added as a feed-forward from recursive Newton–Euler when compensating:
///
///     τ = K (q* − q) − D q̇ + g(q)
///
/// With K = 0 and gravity compensated it is the `gravity_compensation` policy: the arm floats where it is
/// left and can be moved by hand. The target starts at the pose the robot is activated (or recovered) in,
/// so nothing jumps. Joints not listed hold their activation pose by position.
public final class ImpedancePolicy: Policy {
    public let typeName: String
    public let commands: [PolicyJointCommand]
    public let notices: [String]
    let kinematics: PolicyKinematics
    let stiffnessNmPerRad: UnsafeMutableBufferPointer<Double>
    let dampingNmsPerRad: UnsafeMutableBufferPointer<Double>
    let targetRad: UnsafeMutableBufferPointer<Double>
    let configuredTargetRad: [Double]?
    let driven: UnsafeMutableBufferPointer<Bool>
    public let compensatesGravity: Bool

    /// - Parameters:
    ///   - typeName: `impedance` or `gravity_compensation`.
    ///   - jointNames: every joint of the robot, robot.yaml order.
    ///   - drivenJoints: the joints driven by effort (the others hold by position).
    ///   - stiffnessNmPerRad, dampingNmsPerRad: per robot joint (entries of joints not driven are ignored).
    ///   - targetRad: the spring's rest positions per robot joint; nil: the pose at activation.
    public init(
        typeName: String, model: RobotModel, jointNames: [String], drivenJoints: [String], stiffnessNmPerRad: [Double],
        dampingNmsPerRad: [Double], targetRad: [Double]?, compensatesGravity: Bool
    ) throws(PolicyKinematicsError) {
        self.typeName = typeName
        kinematics = try PolicyKinematics(model: model, jointNames: jointNames)
        let n = max(1, jointNames.count)
        func buffer(_ values: [Double]) -> UnsafeMutableBufferPointer<Double> {
            let b = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
            b.initialize(repeating: 0)
            for (i, v) in values.prefix(n).enumerated() { b[i] = v }
            return b
        }
        self.stiffnessNmPerRad = buffer(stiffnessNmPerRad)
        self.dampingNmsPerRad = buffer(dampingNmsPerRad)
        self.targetRad = buffer(targetRad ?? [])
        configuredTargetRad = targetRad
        driven = .allocate(capacity: n)
        driven.initialize(repeating: false)
        for (j, name) in jointNames.enumerated() where drivenJoints.contains(name) { driven[j] = true }
        self.compensatesGravity = compensatesGravity
        commands = jointNames.map {
            PolicyJointCommand(joint: $0, kind: drivenJoints.contains($0) ? .effort : .position)
        }
        notices =
            compensatesGravity
            ? [] : ["\(typeName): gravity is not compensated; the joints sag until the springs carry the weight"]
    }

    deinit {
        stiffnessNmPerRad.deallocate()
        dampingNmsPerRad.deallocate()
        targetRad.deallocate()
        driven.deallocate()
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        if configuredTargetRad == nil {
            for j in 0..<kinematics.jointCount { targetRad[j] = observation.positionRad[j] }
        }
        compute(observation, into: command)
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        if compensatesGravity {
            kinematics.setPositions(observation.positionRad)
            kinematics.computeGravity()
        }
        for j in 0..<kinematics.jointCount where driven[j] {
            let q = observation.positionRad[j]
            var tau = stiffnessNmPerRad[j] * (targetRad[j] - q) - dampingNmsPerRad[j] * observation.velocityRadPerS[j]
            if compensatesGravity { tau += kinematics.gravityNm[j] }
            command.effortNm[j] = tau
            command.positionRad[j] = targetRad[j]
        }
    }
}
