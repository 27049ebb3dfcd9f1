import SinewCore
import SinewKinematics

/// A person's hand on a simulated robot: it holds some of the robot's joints (its columns) and says, at every
/// physics step, where it puts each. ``RobotJointDynamics`` moves a held joint there kinematically, as a hand
/// far stronger than an unpowered arm moves it, while the joint's servo has its torque off; a servo switched
/// torque on holds its joint itself and the hand lets go, taking hold again (``grasp(column:atPositionRad:)``)
/// when the torque goes off. Implementations: ``JointMotionPlayback`` (a recorded or synthesised motion) and
/// ``ManualHand`` (joints moved live, from a terminal's keys). Called on the simulation thread: allocation-free.
public protocol JointHand: AnyObject {
    /// Per column, the joint it holds (URDF-level index in the robot's model).
    var modelJoints: [Int] { get }
    /// Moves the hand's time on by `dtS` seconds.
    func advance(byS dtS: Double)
    /// Where the hand puts column `c`'s joint now: position (rad or m) and velocity (rad/s or m/s).
    func state(column c: Int) -> (positionRad: Double, velocityRadPerS: Double)
    /// The hand takes hold of column `c`'s joint again, where the joint is (its servo's torque went off).
    func grasp(column c: Int, atPositionRad positionRad: Double)
}

/// A hand moving some of a simulated robot's joints along a ``JointMotion`` (a leader arm held by a person):
/// every physics step of the ``RobotJointDynamics`` it is installed in, those joints are put where the motion
/// is at that step's time, with the motion's velocity — kinematically, as a hand far stronger than the arm
/// moves it. The servos read their shafts as usual: without backlash a shaft is the joint; with backlash the
/// joint drags the shaft by the flank it presses on, and the reading trails the joint by up to half the play
/// after every reversal. Joints the motion leaves out move under the physics. Allocation-free per step.
///
/// Time starts at the motion's first row when the playback is installed and runs with the physics (simulated
/// time), looping at the motion's end.
public final class JointMotionPlayback: JointHand {
    public let motion: JointMotion
    /// Per motion column, the joint it moves (URDF-level index in the robot's model).
    public let modelJoints: [Int]
    /// Physics time since the playback started, s.
    public private(set) var elapsedS: Double = 0
    /// The motion at ``elapsedS`` (column order): positions in rad, velocities in rad/s.
    let positionsRad: UnsafeMutableBufferPointer<Double>
    let velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    var segment = 0

    /// - Throws: when a column names no moving joint of `model`, or a mimic joint (it follows its master:
    ///   move the master instead).
    public init(motion: JointMotion, model: RobotModel) throws(RobotSimulationError) {
        var joints: [Int] = []
        for name in motion.jointNames {
            guard let j = model.jointIndex(named: name) else {
                throw RobotSimulationError(
                    "\(motion.file):\(motion.headerLine): the motion moves joint \"\(name)\", which is not a moving "
                        + "joint of \(model.file)")
            }
            if let mimic = model.joints[j].mimic {
                throw RobotSimulationError(
                    "\(motion.file):\(motion.headerLine): joint \"\(name)\" mimics \""
                        + "\(model.joints[mimic.master].name)\" in \(model.file); the motion must move that one")
            }
            joints.append(j)
        }
        self.motion = motion
        modelJoints = joints
        positionsRad = .allocate(capacity: max(joints.count, 1))
        velocitiesRadPerS = .allocate(capacity: max(joints.count, 1))
        positionsRad.initialize(repeating: 0)
        velocitiesRadPerS.initialize(repeating: 0)
        motion.sample(atS: 0, segment: &segment, positionsRad: positionsRad, velocitiesRadPerS: velocitiesRadPerS)
    }

    deinit {
        positionsRad.deallocate()
        velocitiesRadPerS.deallocate()
    }

    /// Moves the motion's time on by `dtS` seconds and samples it there.
    public func advance(byS dtS: Double) {
        elapsedS += dtS
        motion.sample(
            atS: elapsedS, segment: &segment, positionsRad: positionsRad, velocitiesRadPerS: velocitiesRadPerS)
    }

    /// Where the motion puts column `c`'s joint now: position (rad) and velocity (rad/s).
    public func state(column c: Int) -> (positionRad: Double, velocityRadPerS: Double) {
        (positionsRad[c], velocitiesRadPerS[c])
    }

    /// A recording does not wait: the motion kept its time while the servo held the joint, and the joint goes
    /// back to where the motion is now.
    public func grasp(column c: Int, atPositionRad positionRad: Double) {}
}

/// A hand moving joints live: each joint it holds goes towards a target at most ``speedRadPerS`` (a person's
/// unhurried hand), and ``nudge(column:byRad:)`` moves a target (from a terminal's keys, `sinew virtual-bus
/// --hand keys`). Targets stay within the joints' URDF limits. Taking hold of a joint again (its servo's
/// torque went off) puts the target where the joint is, so nothing jumps. Allocation-free per step; the
/// targets are written under the same lock as the physics runs (``VirtualBusServer/withBus(_:)``).
public final class ManualHand: JointHand, @unchecked Sendable {
    public let modelJoints: [Int]
    /// Fastest a joint is moved, rad/s (m/s for a prismatic joint).
    public let speedRadPerS: Double
    let lower: [Double]
    let upper: [Double]
    let targetsRad: UnsafeMutableBufferPointer<Double>
    let positionsRad: UnsafeMutableBufferPointer<Double>
    let velocitiesRadPerS: UnsafeMutableBufferPointer<Double>

    /// - Parameters:
    ///   - joints: the joints the hand holds (URDF-level indices in `model`), each once; mimic joints follow
    ///     their masters and cannot be held.
    ///   - initialPositionsRad: where each of them is now (column order).
    public init(
        model: RobotModel, joints: [Int], initialPositionsRad: [Double], speedRadPerS: Double = 1.0
    ) throws(RobotSimulationError) {
        guard joints.count == initialPositionsRad.count else {
            throw RobotSimulationError("\(initialPositionsRad.count) positions given for \(joints.count) joints")
        }
        for j in joints where j < 0 || j >= model.dofCount || model.joints[j].mimic != nil {
            throw RobotSimulationError("joint \(j) of \(model.file) cannot be held (not a moving, non-mimic joint)")
        }
        modelJoints = joints
        self.speedRadPerS = speedRadPerS
        lower = joints.map { model.joints[$0].lowerLimit }
        upper = joints.map { model.joints[$0].upperLimit }
        let count = max(joints.count, 1)
        targetsRad = .allocate(capacity: count)
        positionsRad = .allocate(capacity: count)
        velocitiesRadPerS = .allocate(capacity: count)
        targetsRad.initialize(repeating: 0)
        positionsRad.initialize(repeating: 0)
        velocitiesRadPerS.initialize(repeating: 0)
        for (c, position) in initialPositionsRad.enumerated() {
            positionsRad[c] = position
            targetsRad[c] = min(max(position, lower[c]), upper[c])
        }
    }

    deinit {
        targetsRad.deallocate()
        positionsRad.deallocate()
        velocitiesRadPerS.deallocate()
    }

    /// Moves column `c`'s target by `deltaRad`, within the joint's limits; returns the new target.
    @discardableResult
    public func nudge(column c: Int, byRad deltaRad: Double) -> Double {
        targetsRad[c] = min(max(targetsRad[c] + deltaRad, lower[c]), upper[c])
        return targetsRad[c]
    }

    /// Column `c`'s target, rad.
    public func target(column c: Int) -> Double { targetsRad[c] }

    public func advance(byS dtS: Double) {
        for c in 0..<modelJoints.count {
            let step = speedRadPerS * dtS
            let error = targetsRad[c] - positionsRad[c]
            let move = max(-step, min(step, error))
            positionsRad[c] += move
            velocitiesRadPerS[c] = dtS > 0 ? move / dtS : 0
        }
    }

    public func state(column c: Int) -> (positionRad: Double, velocityRadPerS: Double) {
        (positionsRad[c], velocitiesRadPerS[c])
    }

    public func grasp(column c: Int, atPositionRad positionRad: Double) {
        positionsRad[c] = positionRad
        velocitiesRadPerS[c] = 0
        targetsRad[c] = min(max(positionRad, lower[c]), upper[c])
    }
}

/// The keys of `sinew virtual-bus --hand keys`, decoded from the bytes a terminal sends: ↑/↓ (or `k`/`j`) pick
/// the previous/next joint, `1`–`9` pick a joint by its place in robot.yaml, ←/→ (or `-`/`+`, `a`/`d`) move the
/// picked joint's target by one step down/up. A parser of outside input: any byte sequence is taken, unknown
/// bytes and escape sequences ignored.
public struct ManualHandKeyDecoder: Sendable {
    public enum Action: Sendable, Equatable {
        /// Pick the joint `n` places after (or before, negative) the one picked.
        case pickNext(Int)
        /// Pick the joint at this place in robot.yaml (0-based).
        case pick(Int)
        /// Move the picked joint's target one step up (+1) or down (−1).
        case nudge(Double)
    }

    public static let hint = "hand: ↑/↓ pick a joint (or 1-9), ←/→ move it (held keys repeat), Ctrl-C stops"

    private var escapeLength = 0

    public init() {}

    /// Feeds one byte; returns the action it completes, if any.
    public mutating func feed(_ byte: UInt8) -> Action? {
        if escapeLength > 0 || byte == 0x1B {
            escapeLength += 1
            if escapeLength == 1 { return nil }
            if escapeLength == 2 {
                if byte != UInt8(ascii: "[") && byte != UInt8(ascii: "O") { escapeLength = 0 }
                return nil
            }
            escapeLength = 0
            switch byte {
            case UInt8(ascii: "A"): return .pickNext(-1)
            case UInt8(ascii: "B"): return .pickNext(1)
            case UInt8(ascii: "C"): return .nudge(1)
            case UInt8(ascii: "D"): return .nudge(-1)
            default: return nil
            }
        }
        switch byte {
        case UInt8(ascii: "1")...UInt8(ascii: "9"): return .pick(Int(byte - UInt8(ascii: "1")))
        case UInt8(ascii: "k"): return .pickNext(-1)
        case UInt8(ascii: "j"): return .pickNext(1)
        case UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: "d"): return .nudge(1)
        case UInt8(ascii: "-"), UInt8(ascii: "a"): return .nudge(-1)
        default: return nil
        }
    }
}
