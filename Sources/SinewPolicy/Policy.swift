import SinewFusion

/// How a policy commands one joint. The loop puts the joint's servo in the matching operating mode at
/// configure; a kind the servo cannot take is refused when the loop is built, before any torque. Whatever the
/// kind, the safety supervisor keeps the joint inside its limits, and its safe state holds by position.
///
/// There is no "position plus feed-forward effort" kind: neither the Dynamixel X series nor the Feetech STS
/// adds a current to its position loop (X-series current-based position mode uses Goal Current as a limit).
/// A policy that wants a feed-forward effort commands `effort` and closes its own position loop around it,
/// as the `impedance` policy does.
public enum JointCommandKind: String, Sendable, Equatable, CaseIterable {
    /// A goal position (rad): every servo's default mode.
    case position
    /// A goal velocity (rad/s): Dynamixel velocity mode, Feetech wheel mode.
    case velocity
    /// A goal effort (N·m), sent as Goal Current through the joint's torque constant and reducer: Dynamixel
    /// current mode.
    case effort
}

/// Where a policy runs.
public enum PolicyExecution: Sendable, Equatable {
    /// Inside the tick, on the loop thread, every tick: `compute` must not allocate, lock, log or block.
    case inline
    /// On a thread of its own at `rateHz` (Hz, below the loop rate): `compute` may allocate and take its time;
    /// the tick hands it observations and takes its latest command through lock-free triple buffers and
    /// never waits for it. With a simulation clock it is stepped inside the tick at its rate instead, so a
    /// lockstep run stays deterministic.
    case asynchronous(rateHz: Double)
}

/// One joint a policy commands, by its robot.yaml name, and how.
public struct PolicyJointCommand: Sendable, Equatable {
    public var joint: String
    public var kind: JointCommandKind
    public init(joint: String, kind: JointCommandKind = .position) {
        self.joint = joint
        self.kind = kind
    }
}

/// The decide stage's extension point: reads an observation, writes a command.
///
/// The loop owns both buffers, allocated once when it is built; a policy writes only into the command it is
/// handed, and only the entries of the joints it declares in ``commands`` (the others hold the pose the loop
/// was activated from). Joints are in robot.yaml order in both buffers.
///
/// A policy for `sinew run` is one type: conform to this protocol in a package that depends on Sinew's
/// `SinewPolicy` and `SinewRuntime` products, and hand an instance to `RobotLoop(…, policy:)`
/// (see docs/policies.md and Examples/CustomPolicy).
public protocol Policy: AnyObject {
    /// The policy's type, as robot.yaml's `policy.type` names it; reports and safety events use it.
    var typeName: String { get }
    /// The joints it commands and how. Unknown joint names and kinds the servos cannot take are refused when
    /// the loop is built.
    var commands: [PolicyJointCommand] { get }
    /// Inline in the tick, or asynchronously at its own rate.
    var execution: PolicyExecution { get }
    /// URDF links whose pose the policy reads from ``PolicyObservation/framePositionM`` (forward kinematics
    /// of the measured joints, root frame), in this order.
    var observedFrames: [String] { get }
    /// Lines the run prints before it starts (a stretched trajectory segment, a setting's effect).
    var notices: [String] { get }
    /// How long the policy's motion lasts from activation (s), known once reset; nil: it goes on until stopped.
    /// A run without a duration ends shortly after it.
    var plannedDurationS: Double? { get }

    /// Activation: the robot is at `observation`'s measured pose, and `command` holds that pose. Start from
    /// there, so the first command does not jump.
    func reset(from observation: PolicyObservation, into command: PolicyCommand)
    /// One decision. `command.computedForNs` has been set to `observation.timeNs`; a policy that answers for
    /// an older observation (it computed for that one) sets it back to that observation's time. The watchdog
    /// measures a command's age from it.
    func compute(_ observation: PolicyObservation, into command: PolicyCommand)
    /// The loop stopped (deactivation or the safe state): stop producing, release what it holds.
    func deactivate()
    /// Recovery from the safe state, from the pose the robot is at now (as in ``reset(from:into:)``).
    func recover(from observation: PolicyObservation, into command: PolicyCommand)
}

extension Policy {
    public var execution: PolicyExecution { .inline }
    public var observedFrames: [String] { [] }
    public var notices: [String] { [] }
    public var plannedDurationS: Double? { nil }
    public func deactivate() {}
    public func recover(from observation: PolicyObservation, into command: PolicyCommand) {
        reset(from: observation, into: command)
    }
}

/// What a policy sees: preallocated by the loop and refilled every tick (SI units, robot.yaml joint order).
public final class PolicyObservation: @unchecked Sendable {
    // @unchecked: written by the loop thread only; an asynchronous policy reads its own copy.
    public let jointNames: [String]
    /// Time this observation was taken, ns since the loop was activated, on the loop's clock (simulated time
    /// in a lockstep run).
    public var timeNs: Int64 = 0
    /// Measured joint positions (rad), velocities (rad/s) and efforts (N·m).
    public let positionRad: UnsafeMutableBufferPointer<Double>
    public let velocityRadPerS: UnsafeMutableBufferPointer<Double>
    public let effortNm: UnsafeMutableBufferPointer<Double>
    /// The IMU's link orientation when the robot has one (``hasOrientation``), else identity.
    public var linkOrientation = OrientationQuaternion.identity
    public var hasOrientation = false
    /// The names of ``framePositionM``'s frames (the policy's ``Policy/observedFrames``).
    public let frameNames: [String]
    /// Origins of the observed frames in the URDF root frame, m: x, y, z per frame.
    public let framePositionM: UnsafeMutableBufferPointer<Double>
    /// What the world around the robot says, beyond the robot's own state (LeRobot's
    /// `observation.environment_state`): in the simulator, the task's observation (a reach target's x, y, z in the
    /// root frame, m; a reference trajectory's joint positions, rad), written by whoever runs the task between
    /// ticks. The first ``environmentStateCount`` entries are valid; zero entries when nothing provides one.
    public let environmentState: UnsafeMutableBufferPointer<Double>
    public var environmentStateCount = 0
    /// The most entries ``environmentState`` holds.
    public static let environmentStateCapacity = 64

    public init(jointNames: [String], frameNames: [String] = []) {
        self.jointNames = jointNames
        self.frameNames = frameNames
        let n = max(1, jointNames.count)
        positionRad = .allocate(capacity: n)
        positionRad.initialize(repeating: 0)
        velocityRadPerS = .allocate(capacity: n)
        velocityRadPerS.initialize(repeating: 0)
        effortNm = .allocate(capacity: n)
        effortNm.initialize(repeating: 0)
        framePositionM = .allocate(capacity: max(1, 3 * frameNames.count))
        framePositionM.initialize(repeating: 0)
        environmentState = .allocate(capacity: Self.environmentStateCapacity)
        environmentState.initialize(repeating: 0)
    }

    deinit {
        positionRad.deallocate()
        velocityRadPerS.deallocate()
        effortNm.deallocate()
        framePositionM.deallocate()
        environmentState.deallocate()
    }

    /// Sets the environment state (at most ``environmentStateCapacity`` entries; more are dropped).
    public func setEnvironmentState(_ values: UnsafeBufferPointer<Double>) {
        environmentStateCount = min(values.count, Self.environmentStateCapacity)
        for i in 0..<environmentStateCount { environmentState[i] = values[i] }
    }

    public var jointCount: Int { jointNames.count }

    /// Copies every field of `other` (same layout), without allocating.
    public func copy(from other: PolicyObservation) {
        timeNs = other.timeNs
        for j in 0..<jointNames.count {
            positionRad[j] = other.positionRad[j]
            velocityRadPerS[j] = other.velocityRadPerS[j]
            effortNm[j] = other.effortNm[j]
        }
        linkOrientation = other.linkOrientation
        hasOrientation = other.hasOrientation
        for i in 0..<3 * frameNames.count { framePositionM[i] = other.framePositionM[i] }
        environmentStateCount = other.environmentStateCount
        for i in 0..<environmentStateCount { environmentState[i] = other.environmentState[i] }
    }
}

/// What a policy answers: preallocated by the loop (robot.yaml joint order). Entries of joints the policy
/// does not command keep the activation pose.
public final class PolicyCommand: @unchecked Sendable {
    // @unchecked: each instance is written by one thread at a time; hand-offs go through a triple buffer.
    /// The observation time this command answers (ns since activation, see ``PolicyObservation/timeNs``).
    public var computedForNs: Int64 = 0
    /// Position goals, rad.
    public let positionRad: UnsafeMutableBufferPointer<Double>
    /// Velocity goals, rad/s (joints commanded by velocity).
    public let velocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// Effort goals or feed-forward efforts, N·m.
    public let effortNm: UnsafeMutableBufferPointer<Double>
    public let jointCount: Int

    public init(jointCount: Int) {
        self.jointCount = jointCount
        let n = max(1, jointCount)
        positionRad = .allocate(capacity: n)
        positionRad.initialize(repeating: 0)
        velocityRadPerS = .allocate(capacity: n)
        velocityRadPerS.initialize(repeating: 0)
        effortNm = .allocate(capacity: n)
        effortNm.initialize(repeating: 0)
    }

    deinit {
        positionRad.deallocate()
        velocityRadPerS.deallocate()
        effortNm.deallocate()
    }

    /// Copies every field of `other` (same joint count), without allocating.
    public func copy(from other: PolicyCommand) {
        computedForNs = other.computedForNs
        for j in 0..<jointCount {
            positionRad[j] = other.positionRad[j]
            velocityRadPerS[j] = other.velocityRadPerS[j]
            effortNm[j] = other.effortNm[j]
        }
    }

    /// Holds `observation`'s measured pose: positions measured, velocities and efforts zero.
    public func hold(_ observation: PolicyObservation) {
        computedForNs = observation.timeNs
        for j in 0..<jointCount {
            positionRad[j] = observation.positionRad[j]
            velocityRadPerS[j] = 0
            effortNm[j] = 0
        }
    }
}
