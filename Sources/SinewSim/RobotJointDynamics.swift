import SinewDrivers
import SinewKinematics

/// A robot's rigid-body dynamics behind the servos of one virtual bus: the servos' output torques pass
/// through each joint's reducer into the robot, whose joints move under gravity, their coupling, the URDF's
/// joint damping and friction and the drives' reflected rotor inertia; the servos then see their shafts
/// where the joints put them. Mimic joints follow their masters; joints without a servo are passive.
///
/// The joint state here is the simulator's ground truth (URDF-level joint order, rad and rad/s).
public final class RobotJointDynamics: JointDynamics {
    public let model: RobotModel
    /// Per bus servo (in the bus's order): the joint it drives and how.
    public let mappings: [JointServoMapping]
    let servoJoint: [Int]
    let workspace: KinematicsWorkspace
    /// Ground-truth joint positions (rad or m) and velocities (rad/s or m/s), URDF-level order.
    public let positions: UnsafeMutableBufferPointer<Double>
    public let velocities: UnsafeMutableBufferPointer<Double>
    let efforts: UnsafeMutableBufferPointer<Double>
    let damping: UnsafeMutableBufferPointer<Double>
    let armature: UnsafeMutableBufferPointer<Double>
    let nextVelocities: UnsafeMutableBufferPointer<Double>
    /// Speed below which Coulomb friction is blended to zero, rad/s: keeps the model smooth at rest.
    let frictionBlendSpeed = 0.02
    /// Where the mechanical stops sit beyond each joint's URDF limits, rad or m.
    public var hardStopBeyondLimitRad = 0.05

    /// - Parameters:
    ///   - mappings: one per servo of the bus, in the bus's servo order; each names a moving joint of `model`.
    ///   - servoModels: the servo model of each of those servos (for its reflected rotor inertia).
    ///   - initialPositions: URDF-level joint positions at start (default: all zero, mimic joints following).
    public init(
        model: RobotModel, mappings: [JointServoMapping], servoModels: [ServoModel], initialPositions: [Double]? = nil
    ) throws(RobotSimulationError) {
        self.model = model
        self.mappings = mappings
        var joints: [Int] = []
        for mapping in mappings {
            guard let j = model.jointIndex(named: mapping.jointName) else {
                throw RobotSimulationError(
                    "servo \(mapping.servoID) drives joint \"\(mapping.jointName)\", which is not a moving joint of "
                        + "\(model.file)")
            }
            joints.append(j)
        }
        servoJoint = joints
        workspace = KinematicsWorkspace(model: model)
        let n = model.dofCount
        positions = .allocate(capacity: max(n, 1))
        velocities = .allocate(capacity: max(n, 1))
        efforts = .allocate(capacity: max(n, 1))
        damping = .allocate(capacity: max(n, 1))
        armature = .allocate(capacity: max(n, 1))
        nextVelocities = .allocate(capacity: max(n, 1))
        for buffer in [positions, velocities, efforts, damping, armature, nextVelocities] {
            buffer.initialize(repeating: 0)
        }
        var q = initialPositions ?? [Double](repeating: 0, count: n)
        guard q.count == n else {
            throw RobotSimulationError("\(q.count) initial joint positions given for \(n) joints")
        }
        model.mimicFolding.applyMimic(to: &q)
        for j in 0..<n { positions[j] = q[j] }
        for (s, mapping) in mappings.enumerated() where s < servoModels.count {
            // The rotor's inertia, seen through the servo's gearbox and then the joint's reducer.
            let rotor = DCMotorGearModel(servoModels[s].physical).reflectedRotorInertiaKgM2
            armature[joints[s]] += rotor * mapping.reducerRatio * mapping.reducerRatio
        }
        // A passive joint still needs some inertia on its axis for the mass matrix to stay invertible when
        // its link is massless.
        for j in 0..<n where armature[j] == 0 { armature[j] = 1e-6 }
    }

    deinit {
        for buffer in [positions, velocities, efforts, damping, armature, nextVelocities] { buffer.deallocate() }
    }

    /// Shaft angles (rad) and speeds (rad/s) of every servo for the current joint state, so the virtual
    /// servos start where the robot is. Call once after creating the bus.
    public func servoShaftStates() -> [(positionRad: Double, velocityRadPerS: Double)] {
        mappings.enumerated().map { s, m in
            let j = servoJoint[s]
            return (m.shaftAngleRad(forJointPositionRad: positions[j]), m.direction * m.reducerRatio * velocities[j])
        }
    }

    /// Moves a joint of the robot (by hand, in a test), rad or m and rad/s or m/s; the servos see it at the
    /// next physics step, or at once through `shaftState(forServo:)` and `VirtualBus.setJointState`.
    public func setJointState(joint: Int, positionRad: Double, velocityRadPerS: Double = 0) {
        positions[joint] = positionRad
        velocities[joint] = velocityRadPerS
    }

    /// The shaft angle (rad) and speed (rad/s) of a bus servo for the robot's current joint state.
    public func shaftState(forServo s: Int) -> (positionRad: Double, velocityRadPerS: Double) {
        let m = mappings[s]
        let j = servoJoint[s]
        return (m.shaftAngleRad(forJointPositionRad: positions[j]), m.direction * m.reducerRatio * velocities[j])
    }

    public func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        let n = model.dofCount
        for j in 0..<n {
            let joint = model.joints[j]
            let v = velocities[j]
            // URDF viscous damping (implicit) and Coulomb friction (blended near rest).
            let coulomb = joint.friction * max(-1, min(1, v / frictionBlendSpeed))
            efforts[j] = -joint.damping * v - coulomb
            damping[j] = joint.damping
        }
        for s in 0..<min(outputs.count, mappings.count) {
            let m = mappings[s]
            let j = servoJoint[s]
            efforts[j] += m.direction * m.reducerRatio * m.reducerEfficiency * outputs[s].torqueNm
            damping[j] += m.reducerRatio * m.reducerRatio * outputs[s].dampingNmsPerRad
        }
        workspace.semiImplicitStep(
            positions: UnsafeBufferPointer(positions), velocities: UnsafeBufferPointer(velocities),
            efforts: UnsafeBufferPointer(efforts), damping: UnsafeBufferPointer(damping),
            armature: UnsafeBufferPointer(armature), dt: dtS, velocitiesOut: nextVelocities)
        for j in 0..<n {
            velocities[j] = nextVelocities[j]
            positions[j] += dtS * nextVelocities[j]
            // Mechanical stops a little beyond the URDF's limits: an unpowered arm comes to rest on them
            // instead of folding through itself (an inelastic stop).
            let joint = model.joints[j]
            if positions[j] > joint.upperLimit + hardStopBeyondLimitRad {
                positions[j] = joint.upperLimit + hardStopBeyondLimitRad
                velocities[j] = min(velocities[j], 0)
            } else if positions[j] < joint.lowerLimit - hardStopBeyondLimitRad {
                positions[j] = joint.lowerLimit - hardStopBeyondLimitRad
                velocities[j] = max(velocities[j], 0)
            }
        }
        // Mimic joints are held to their masters (a rigid coupling).
        for j in 0..<n {
            guard let mimic = model.joints[j].mimic else { continue }
            positions[j] = mimic.multiplier * positions[mimic.master] + mimic.offset
            velocities[j] = mimic.multiplier * velocities[mimic.master]
        }
        for s in 0..<min(positionsRad.count, mappings.count) {
            let m = mappings[s]
            let j = servoJoint[s]
            positionsRad[s] = m.shaftAngleRad(forJointPositionRad: positions[j])
            velocitiesRadPerS[s] = m.direction * m.reducerRatio * velocities[j]
        }
    }
}

/// Why a simulated robot could not be built.
public struct RobotSimulationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
