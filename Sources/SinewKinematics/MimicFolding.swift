/// Maps between the URDF-level joint vector (every moving joint its own degree of freedom, mimic joints
/// included) and the control-level vector (independent joints only, in joint order): for control, a
/// mimic joint is not commanded, it follows `multiplier · master + offset`.
public struct MimicFolding: Sendable {
    /// URDF-level index of each independent joint, in order: the control-level vector's layout.
    public let independentJoints: [Int]
    /// For each URDF-level joint, its control-level index and the multiplier/offset that produce it.
    public let source: [(control: Int, multiplier: Double, offset: Double)]

    init(joints: [RobotModel.Joint]) {
        var independent: [Int] = []
        var controlIndex = [Int](repeating: -1, count: joints.count)
        for (i, joint) in joints.enumerated() where joint.mimic == nil {
            controlIndex[i] = independent.count
            independent.append(i)
        }
        independentJoints = independent
        source = joints.enumerated().map { i, joint in
            if let m = joint.mimic { return (controlIndex[m.master], m.multiplier, m.offset) }
            return (controlIndex[i], 1, 0)
        }
    }

    /// Number of independent joints.
    public var controlCount: Int { independentJoints.count }

    /// True when the robot has mimic joints (otherwise both views are the same).
    public var hasMimicJoints: Bool { independentJoints.count != source.count }

    /// URDF-level positions from control-level ones.
    public func expand(_ control: UnsafeBufferPointer<Double>, into full: UnsafeMutableBufferPointer<Double>) {
        for i in 0..<source.count {
            let s = source[i]
            full[i] = s.multiplier * control[s.control] + s.offset
        }
    }

    /// Overwrites the mimic joints of a URDF-level vector from their masters.
    public func applyMimic(to full: inout [Double]) {
        for i in 0..<source.count
        where source[i].multiplier != 1 || source[i].offset != 0
            || independentJoints[source[i].control] != i
        {
            let s = source[i]
            full[i] = s.multiplier * full[independentJoints[s.control]] + s.offset
        }
    }

    /// Control-level generalised forces from URDF-level ones (τc = Aᵀ τ, A the expansion's Jacobian).
    public func foldEfforts(_ full: UnsafeBufferPointer<Double>, into control: UnsafeMutableBufferPointer<Double>) {
        for k in 0..<control.count { control[k] = 0 }
        for i in 0..<source.count {
            control[source[i].control] += source[i].multiplier * full[i]
        }
    }

    /// Control-level Jacobian (6 × controlCount, column-major) from a URDF-level one (6 × dof count).
    public func foldJacobian(_ full: UnsafeBufferPointer<Double>, into control: UnsafeMutableBufferPointer<Double>) {
        for k in 0..<control.count { control[k] = 0 }
        for i in 0..<source.count {
            let s = source[i]
            for r in 0..<6 { control[6 * s.control + r] += s.multiplier * full[6 * i + r] }
        }
    }
}
