import SinewCore
import SinewDrivers
import SinewKinematics

/// A robot's rigid-body dynamics behind the servos of one virtual bus, or of every bus of a robot with several
/// (a ``VirtualBusGroup``, servos numbered bus after bus): the servos' output torques pass
/// through each joint's reducer into the robot, whose joints move under gravity, their coupling, the URDF's
/// joint damping and friction and the drives' reflected rotor inertia; the servos then see their shafts
/// where the joints put them. Mimic joints follow their masters; joints without a servo are passive.
///
/// The joint state here is the simulator's ground truth (URDF-level joint order, rad and rad/s).
///
/// Backlash (a mapping's `backlashRad`, free play at the joint) makes the reducer's input side a body of its
/// own: the servo's shaft, with the rotor's reflected inertia, drives the joint only while it presses on one
/// flank of the play. When the contact torque would pull instead of push, the shaft lets go, crosses the play
/// under the servo's torque alone, and meets the other flank in an inelastic impact. The servos therefore
/// read their own shafts, which differ from the joint by up to half the play, as real encoders on the motor
/// side of a reducer do. Without backlash the shaft is rigidly tied to the joint.
///
/// A hand can hold joints (``hold(with:)``; ``play(_:)`` for a recorded motion): while a held joint's servo has
/// its torque off, the joint goes where the hand says at every step, whatever the forces, and the shafts follow
/// it through the play as they would. A servo switched torque on holds its joint itself: the hand lets go of
/// that joint (a person lets go of an arm that holds itself) and takes hold of it again when the torque goes off
/// (``JointHand/grasp(column:atPositionRad:)``).
public final class RobotJointDynamics: JointDynamics {
    public let model: RobotModel
    /// Per servo (in the bus's order, or the group's): the joint it drives and how.
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
    /// Per joint, the inertia on its axis that no servo brings (a floor for passive joints), kg·m² or kg.
    let baseArmature: UnsafeMutableBufferPointer<Double>
    /// Per servo, the rotor's inertia reflected to the joint through both gearboxes, kg·m² or kg.
    let servoArmature: UnsafeMutableBufferPointer<Double>
    /// Per servo, where its shaft sits in the play, in joint units: shaft = joint + play, |play| ≤ backlash/2.
    let playRad: UnsafeMutableBufferPointer<Double>
    /// Per servo, its shaft's speed in joint units, rad/s (the joint's own while in contact).
    let shaftVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// Per servo, the flank its shaft presses on: +1 or −1 (driving the joint that way), 0 while crossing the
    /// play. Always +1 without backlash.
    let contactSide: UnsafeMutableBufferPointer<Double>
    let hasBacklash: Bool
    /// The hand holding joints, once ``hold(with:)`` or ``play(_:)`` installed one.
    public private(set) var hand: (any JointHand)?
    /// The hand moving joints along a motion, when the hand is one (``play(_:)``).
    public var playback: JointMotionPlayback? { hand as? JointMotionPlayback }
    /// Per joint (URDF-level), the hand's column that holds it, or -1.
    let playedColumn: UnsafeMutableBufferPointer<Int>
    /// Per joint, 1 while the hand moves it this step (held, and no servo on it has torque on), else 0.
    let handMoves: UnsafeMutableBufferPointer<UInt8>
    /// Speed below which Coulomb friction is blended to zero, rad/s: keeps the model smooth at rest.
    let frictionBlendSpeed = 0.02
    /// Where the mechanical stops sit beyond each joint's URDF limits, rad or m.
    public var hardStopBeyondLimitRad = 0.05

    /// - Parameters:
    ///   - mappings: one per servo of the bus (or of the group, bus after bus), in that order; each names a moving
    ///     joint of `model`.
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
        baseArmature = .allocate(capacity: max(n, 1))
        for buffer in [positions, velocities, efforts, damping, armature, nextVelocities, baseArmature] {
            buffer.initialize(repeating: 0)
        }
        playedColumn = .allocate(capacity: max(n, 1))
        playedColumn.initialize(repeating: -1)
        handMoves = .allocate(capacity: max(n, 1))
        handMoves.initialize(repeating: 0)
        let servoCount = max(mappings.count, 1)
        servoArmature = .allocate(capacity: servoCount)
        playRad = .allocate(capacity: servoCount)
        shaftVelocityRadPerS = .allocate(capacity: servoCount)
        contactSide = .allocate(capacity: servoCount)
        for buffer in [servoArmature, playRad, shaftVelocityRadPerS] { buffer.initialize(repeating: 0) }
        // With play, a shaft starts in its middle, free; without, it is tied to the joint from the start.
        contactSide.initialize(repeating: 1)
        for (s, mapping) in mappings.enumerated() where mapping.backlashRad > 0 { contactSide[s] = 0 }
        hasBacklash = mappings.contains { $0.backlashRad > 0 }
        var q = initialPositions ?? [Double](repeating: 0, count: n)
        guard q.count == n else {
            throw RobotSimulationError("\(q.count) initial joint positions given for \(n) joints")
        }
        model.mimicFolding.applyMimic(to: &q)
        for j in 0..<n { positions[j] = q[j] }
        for (s, mapping) in mappings.enumerated() where s < servoModels.count {
            // The rotor's inertia, seen through the servo's gearbox and then the joint's reducer.
            let rotor = DCMotorGearModel(servoModels[s].physical).reflectedRotorInertiaKgM2
            servoArmature[s] = rotor * mapping.reducerRatio * mapping.reducerRatio
        }
        // A passive joint still needs some inertia on its axis for the mass matrix to stay invertible when
        // its link is massless.
        for j in 0..<n where !joints.contains(j) { baseArmature[j] = 1e-6 }
        for (s, j) in joints.enumerated() { shaftVelocityRadPerS[s] = velocities[j] }
    }

    deinit {
        for buffer in [positions, velocities, efforts, damping, armature, nextVelocities, baseArmature] {
            buffer.deallocate()
        }
        for buffer in [servoArmature, playRad, shaftVelocityRadPerS, contactSide] { buffer.deallocate() }
        playedColumn.deallocate()
        handMoves.deallocate()
    }

    /// From now on a hand moves the motion's joints along it, as a person moves a leader arm: at every physics
    /// step those joints take the motion's position and velocity at that step's time (time 0, the motion's
    /// first row, is now; it loops). The joints go to the motion's start at once; the servos see it at the
    /// next step, or at once through `shaftState(forServo:)` and `VirtualBus.setJointState`. Replaces an
    /// earlier motion.
    ///
    /// - Throws: when the motion moves a joint that is not a moving joint of the model, or a mimic joint.
    public func play(_ motion: JointMotion) throws(RobotSimulationError) {
        try hold(with: try JointMotionPlayback(motion: motion, model: model))
    }

    /// From now on `hand` holds its joints (replacing an earlier hand): they go where it puts them at once (the
    /// servos see it at the next step, or at once through `shaftState(forServo:)` and
    /// `VirtualBus.setJointState`), and at every step while their servos' torque is off.
    ///
    /// - Throws: when the hand holds a joint that is not a moving joint of the model, or one twice.
    public func hold(with hand: any JointHand) throws(RobotSimulationError) {
        var seen = Set<Int>()
        for j in hand.modelJoints where j < 0 || j >= model.dofCount || !seen.insert(j).inserted {
            throw RobotSimulationError("the hand holds joint \(j) of \(model.file) twice or it is not a moving joint")
        }
        for j in 0..<model.dofCount {
            playedColumn[j] = -1
            handMoves[j] = 0
        }
        for (c, j) in hand.modelJoints.enumerated() {
            playedColumn[j] = c
            handMoves[j] = 1
            let state = hand.state(column: c)
            setJointState(joint: j, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        self.hand = hand
    }

    /// Which held joints the hand moves this step: not those whose servos hold them with torque on. A joint the
    /// hand takes hold of again is grasped where it is.
    func updateHandHold(_ hand: any JointHand, outputs: UnsafeBufferPointer<ActuatorOutput>) {
        for (c, j) in hand.modelJoints.enumerated() {
            var torqued = false
            for s in 0..<min(outputs.count, mappings.count) where servoJoint[s] == j && outputs[s].isTorqueEnabled {
                torqued = true
            }
            if !torqued && handMoves[j] == 0 { hand.grasp(column: c, atPositionRad: positions[j]) }
            handMoves[j] = torqued ? 0 : 1
        }
    }

    /// The velocities the hand gives the joints it moves over the coming step, in place of what the forces would.
    func prescribeNextVelocities(_ hand: any JointHand) {
        for (c, j) in hand.modelJoints.enumerated() where handMoves[j] != 0 {
            nextVelocities[j] = hand.state(column: c).velocityRadPerS
        }
    }

    /// Shaft angles (rad) and speeds (rad/s) of every servo for the current joint state, so the virtual
    /// servos start where the robot is. Call once after creating the bus.
    public func servoShaftStates() -> [(positionRad: Double, velocityRadPerS: Double)] {
        mappings.indices.map(shaftState(forServo:))
    }

    /// Moves a joint of the robot (by hand, in a test), rad or m and rad/s or m/s; the servos see it at the
    /// next physics step, or at once through `shaftState(forServo:)` and `VirtualBus.setJointState`.
    public func setJointState(joint: Int, positionRad: Double, velocityRadPerS: Double = 0) {
        positions[joint] = positionRad
        velocities[joint] = velocityRadPerS
        for (s, j) in servoJoint.enumerated() where j == joint && contactSide[s] != 0 {
            shaftVelocityRadPerS[s] = velocityRadPerS
        }
    }

    /// The shaft angle (rad) and speed (rad/s) of a bus servo for the robot's current joint state (and,
    /// with backlash, where its shaft sits in the play).
    public func shaftState(forServo s: Int) -> (positionRad: Double, velocityRadPerS: Double) {
        let m = mappings[s]
        let j = servoJoint[s]
        return (
            m.shaftAngleRad(forJointPositionRad: positions[j] + playRad[s]),
            m.direction * m.reducerRatio * shaftVelocityRadPerS[s]
        )
    }

    /// Where servo `s`'s shaft sits in its reducer's play, in joint units (rad or m): the servo reads the
    /// joint plus this. Zero without backlash.
    public func playRad(forServo s: Int) -> Double { playRad[s] }

    /// Joint forces, their slopes and the inertia on each axis for this step: the URDF's damping and
    /// friction, and every servo whose shaft presses on its joint.
    func loadJoints(outputs: UnsafeBufferPointer<ActuatorOutput>) {
        let n = model.dofCount
        for j in 0..<n {
            let joint = model.joints[j]
            let v = velocities[j]
            // URDF viscous damping (implicit) and Coulomb friction (blended near rest).
            let coulomb = joint.friction * max(-1, min(1, v / frictionBlendSpeed))
            efforts[j] = -joint.damping * v - coulomb
            damping[j] = joint.damping
            armature[j] = baseArmature[j]
        }
        for s in 0..<min(outputs.count, mappings.count) where contactSide[s] != 0 {
            let m = mappings[s]
            let j = servoJoint[s]
            efforts[j] += m.direction * m.reducerRatio * m.reducerEfficiency * outputs[s].torqueNm
            damping[j] += m.reducerRatio * m.reducerRatio * outputs[s].dampingNmsPerRad
            armature[j] += servoArmature[s]
        }
        for j in 0..<n where armature[j] == 0 { armature[j] = 1e-6 }
    }

    /// Lets go of every shaft whose contact torque, over the step just computed, would pull its joint
    /// back instead of pushing it; true when any did (the step must then be computed again).
    func releaseShaftsThatWouldPull(outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double) -> Bool {
        var released = false
        for s in 0..<min(outputs.count, mappings.count) where contactSide[s] != 0 && mappings[s].backlashRad > 0 {
            let m = mappings[s]
            let j = servoJoint[s]
            let change = nextVelocities[j] - velocities[j]
            // What the servo side delivers through the flank: its torque at the new speed, less what it
            // takes to accelerate its own rotor along with the joint.
            let delivered =
                m.direction * m.reducerRatio * m.reducerEfficiency * outputs[s].torqueNm
                - m.reducerRatio * m.reducerRatio * outputs[s].dampingNmsPerRad * change
                - servoArmature[s] * change / dtS
            if contactSide[s] * delivered < 0 {
                contactSide[s] = 0
                released = true
            }
        }
        return released
    }

    /// Moves the shafts that are crossing their play under their servos' torque alone, and engages any that
    /// reaches a flank: an inelastic impact that shares the momentum of the shaft and of its joint.
    func moveFreeShafts(outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double) {
        var massMatrixReady = false
        for s in 0..<min(outputs.count, mappings.count) where contactSide[s] == 0 {
            let m = mappings[s]
            let j = servoJoint[s]
            let inertia = servoArmature[s] > 0 ? servoArmature[s] : 1e-6
            let torque = m.direction * m.reducerRatio * outputs[s].torqueNm
            let slope = m.reducerRatio * m.reducerRatio * outputs[s].dampingNmsPerRad
            shaftVelocityRadPerS[s] += dtS * torque / (inertia + dtS * slope)
            playRad[s] += dtS * (shaftVelocityRadPerS[s] - velocities[j])
            let half = 0.5 * m.backlashRad
            guard abs(playRad[s]) >= half else { continue }
            let side: Double = playRad[s] > 0 ? 1 : -1
            playRad[s] = side * half
            if !massMatrixReady {
                workspace.computeMassMatrix(UnsafeBufferPointer(positions))
                massMatrixReady = true
            }
            let jointInertia = workspace.massMatrix(row: j, column: j) + armature[j]
            // A joint a hand moves does not give way: the shaft takes its speed.
            let common =
                handMoves[j] != 0
                ? velocities[j]
                : (inertia * shaftVelocityRadPerS[s] + jointInertia * velocities[j]) / (inertia + jointInertia)
            velocities[j] = common
            shaftVelocityRadPerS[s] = common
            contactSide[s] = side
        }
    }

    public func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        let n = model.dofCount
        let hand = self.hand
        if let hand { updateHandHold(hand, outputs: outputs) }
        loadJoints(outputs: outputs)
        integrateJoints(dtS: dtS)
        if let hand {
            hand.advance(byS: dtS)
            prescribeNextVelocities(hand)
        }
        if hasBacklash && releaseShaftsThatWouldPull(outputs: outputs, dtS: dtS) {
            loadJoints(outputs: outputs)
            integrateJoints(dtS: dtS)
            if let hand { prescribeNextVelocities(hand) }
        }
        for j in 0..<n {
            velocities[j] = nextVelocities[j]
            positions[j] += dtS * nextVelocities[j]
            if let hand, handMoves[j] != 0 { positions[j] = hand.state(column: playedColumn[j]).positionRad }
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
        if hasBacklash { moveFreeShafts(outputs: outputs, dtS: dtS) }
        // A shaft in contact moves with its joint (its play stays at the flank).
        for s in 0..<mappings.count where contactSide[s] != 0 { shaftVelocityRadPerS[s] = velocities[servoJoint[s]] }
        for s in 0..<min(positionsRad.count, mappings.count) {
            let m = mappings[s]
            let j = servoJoint[s]
            positionsRad[s] = m.shaftAngleRad(forJointPositionRad: positions[j] + playRad[s])
            velocitiesRadPerS[s] = m.direction * m.reducerRatio * shaftVelocityRadPerS[s]
        }
    }

    func integrateJoints(dtS: Double) {
        workspace.semiImplicitStep(
            positions: UnsafeBufferPointer(positions), velocities: UnsafeBufferPointer(velocities),
            efforts: UnsafeBufferPointer(efforts), damping: UnsafeBufferPointer(damping),
            armature: UnsafeBufferPointer(armature), dt: dtS, velocitiesOut: nextVelocities)
    }
}

/// Why a simulated robot could not be built.
public struct RobotSimulationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
