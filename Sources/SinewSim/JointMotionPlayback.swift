import SinewCore
import SinewKinematics

/// A hand moving some of a simulated robot's joints along a ``JointMotion`` (a leader arm held by a person):
/// every physics step of the ``RobotJointDynamics`` it is installed in, those joints are put where the motion
/// is at that step's time, with the motion's velocity — kinematically, as a hand far stronger than the arm
/// moves it. The servos read their shafts as usual: without backlash a shaft is the joint; with backlash the
/// joint drags the shaft by the flank it presses on, and the reading trails the joint by up to half the play
/// after every reversal. Joints the motion leaves out move under the physics. Allocation-free per step.
///
/// Time starts at the motion's first row when the playback is installed and runs with the physics (simulated
/// time), looping at the motion's end.
public final class JointMotionPlayback {
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
    func advance(byS dtS: Double) {
        elapsedS += dtS
        motion.sample(
            atS: elapsedS, segment: &segment, positionsRad: positionsRad, velocitiesRadPerS: velocitiesRadPerS)
    }

    /// Where the motion puts column `c`'s joint now: position (rad) and velocity (rad/s).
    public func state(column c: Int) -> (positionRad: Double, velocityRadPerS: Double) {
        (positionsRad[c], velocitiesRadPerS[c])
    }
}
