import SinewCore
import SinewKinematics

/// Kinematics and dynamics of the robot seen through its configured joints (robot.yaml order): fills the
/// URDF-level joint vector from a policy's observation (mimic joints follow their masters, URDF joints the
/// robot does not drive stay at 0), and folds URDF-level efforts and Jacobian columns back onto the
/// configured joints. Everything is allocated at init; no method allocates. One per policy (not thread-safe).
public final class PolicyKinematics {
    public let model: RobotModel
    public let workspace: KinematicsWorkspace
    /// URDF joint index of each configured joint.
    public let urdfIndex: [Int]
    /// URDF-level positions (rad), filled by ``setPositions(_:)``.
    public let urdfPositions: UnsafeMutableBufferPointer<Double>
    /// Per configured joint: gravity efforts (N·m) after ``computeGravity()``.
    public let gravityNm: UnsafeMutableBufferPointer<Double>
    /// 6 × joints, column-major (rows vx vy vz wx wy wz, root frame), after ``computeJacobian(link:)``.
    public let jacobian: UnsafeMutableBufferPointer<Double>
    private let mimics: [(joint: Int, master: Int, multiplier: Double, offset: Double)]
    /// For each URDF joint, the configured joint it belongs to (itself or its mimic master), or -1.
    private let configuredOf: [Int]
    private let multiplierOf: [Double]

    /// Nil names the first configured joint that is not a moving joint of the URDF.
    public init(model: RobotModel, jointNames: [String]) throws(PolicyKinematicsError) {
        self.model = model
        workspace = KinematicsWorkspace(model: model)
        var indices: [Int] = []
        for name in jointNames {
            guard let index = model.jointIndex(named: name) else {
                throw PolicyKinematicsError(joint: name, model: model.file)
            }
            indices.append(index)
        }
        urdfIndex = indices
        let n = max(1, model.dofCount)
        urdfPositions = .allocate(capacity: n)
        urdfPositions.initialize(repeating: 0)
        gravityNm = .allocate(capacity: max(1, jointNames.count))
        gravityNm.initialize(repeating: 0)
        jacobian = .allocate(capacity: 6 * max(1, jointNames.count))
        jacobian.initialize(repeating: 0)
        mimics = model.joints.enumerated().compactMap { i, joint in
            joint.mimic.map { (i, $0.master, $0.multiplier, $0.offset) }
        }
        var owner = [Int](repeating: -1, count: model.dofCount)
        var multiplier = [Double](repeating: 1, count: model.dofCount)
        for (j, index) in indices.enumerated() { owner[index] = j }
        for m in mimics where owner[m.master] >= 0 {
            owner[m.joint] = owner[m.master]
            multiplier[m.joint] = m.multiplier
        }
        configuredOf = owner
        multiplierOf = multiplier
    }

    deinit {
        urdfPositions.deallocate()
        gravityNm.deallocate()
        jacobian.deallocate()
    }

    public var jointCount: Int { urdfIndex.count }

    /// URDF-level positions from configured-joint positions (rad, robot.yaml order), then forward kinematics.
    public func setPositions(_ positionRad: UnsafeMutableBufferPointer<Double>) {
        for j in 0..<urdfIndex.count { urdfPositions[urdfIndex[j]] = positionRad[j] }
        for m in mimics { urdfPositions[m.joint] = m.multiplier * urdfPositions[m.master] + m.offset }
        workspace.forwardKinematics(UnsafeBufferPointer(urdfPositions))
    }

    /// Pose of a link in the root frame at the last ``setPositions(_:)``.
    public func linkPose(_ link: Int) -> RigidTransform { workspace.linkPose(link) }

    /// Gravity efforts at the last positions, per configured joint (N·m, generalised forces of the joint;
    /// a mimic joint's share goes to its master), into ``gravityNm``.
    public func computeGravity() {
        workspace.gravityEfforts(UnsafeBufferPointer(urdfPositions))
        for j in 0..<urdfIndex.count { gravityNm[j] = 0 }
        for i in 0..<configuredOf.count where configuredOf[i] >= 0 {
            gravityNm[configuredOf[i]] += multiplierOf[i] * workspace.efforts[i]
        }
    }

    /// The frame Jacobian of `link` at the last positions over the configured joints, into ``jacobian``.
    public func computeJacobian(link: Int) {
        workspace.frameJacobian(UnsafeBufferPointer(urdfPositions), link: link)
        for k in 0..<jacobian.count { jacobian[k] = 0 }
        for i in 0..<configuredOf.count where configuredOf[i] >= 0 {
            let j = configuredOf[i]
            for r in 0..<6 { jacobian[6 * j + r] += multiplierOf[i] * workspace.jacobian[6 * i + r] }
        }
    }
}

/// A configured joint the URDF does not have as a moving joint.
public struct PolicyKinematicsError: Error, Sendable, CustomStringConvertible {
    public let joint: String
    public let model: String
    public var description: String { "joint \"\(joint)\" is not a moving joint of \(model)" }
}
