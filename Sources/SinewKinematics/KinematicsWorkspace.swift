import CKinematics
import SinewCore

/// Everything one thread needs to run the kinematics and dynamics of a `RobotModel`, allocated once.
/// No method allocates: results go into the workspace's own buffers, which stay valid until the next
/// call that writes them. Not thread-safe: give every thread its own workspace.
///
/// Joint vectors are URDF-level (`RobotModel.dofCount` entries, mimic joints included) in the model's
/// joint order; units rad, m, rad/s, m/s, N·m, N. Poses and Jacobians are in the root link's frame.
public final class KinematicsWorkspace {
    public let model: RobotModel
    private let data: OpaquePointer
    /// Frame Jacobian written by `frameJacobian`: 6 × dofCount, column-major, rows [vx vy vz wx wy wz]
    /// (velocity of the frame origin and angular velocity, both in the root frame).
    public let jacobian: UnsafeMutableBufferPointer<Double>
    /// Joint-space mass matrix written by `massMatrix`: dofCount × dofCount, column-major.
    public let massMatrix: UnsafeMutableBufferPointer<Double>
    /// Joint forces written by `inverseDynamics` / `gravityEfforts`.
    public let efforts: UnsafeMutableBufferPointer<Double>
    /// Joint accelerations written by `forwardDynamics`.
    public let accelerations: UnsafeMutableBufferPointer<Double>

    public init(model: RobotModel) {
        self.model = model
        data = sk_data_create(model.handle)
        let n = model.dofCount
        jacobian = .allocate(capacity: max(1, 6 * n))
        massMatrix = .allocate(capacity: max(1, n * n))
        efforts = .allocate(capacity: max(1, n))
        accelerations = .allocate(capacity: max(1, n))
        for buffer in [jacobian, massMatrix, efforts, accelerations] { buffer.initialize(repeating: 0) }
    }

    deinit {
        sk_data_destroy(data)
        for buffer in [jacobian, massMatrix, efforts, accelerations] { buffer.deallocate() }
    }

    /// World pose of every link (see `linkPose`).
    @inlinable public func forwardKinematics(_ positions: [Double]) {
        positions.withUnsafeBufferPointer { forwardKinematics($0) }
    }

    public func forwardKinematics(_ positions: UnsafeBufferPointer<Double>) {
        precondition(positions.count == model.dofCount, "joint vector size")
        sk_forward_kinematics(model.handle, data, positions.baseAddress)
    }

    /// Pose of a link (index into `model.links`) in the root frame, after `forwardKinematics`.
    public func linkPose(_ link: Int) -> RigidTransform {
        RigidTransform(flat: sk_frame_poses(data)! + 12 * link)
    }

    /// Frame Jacobian of a link at `positions`, into `jacobian`.
    @inlinable public func frameJacobian(_ positions: [Double], link: Int) {
        positions.withUnsafeBufferPointer { frameJacobian($0, link: link) }
    }

    public func frameJacobian(_ positions: UnsafeBufferPointer<Double>, link: Int) {
        precondition(positions.count == model.dofCount, "joint vector size")
        sk_frame_jacobian(model.handle, data, positions.baseAddress, Int32(link), jacobian.baseAddress)
    }

    /// Inverse dynamics (RNEA) into `efforts`: the joint forces that produce `accelerations` at
    /// (`positions`, `velocities`) under gravity.
    @inlinable public func inverseDynamics(_ positions: [Double], _ velocities: [Double], _ accelerations: [Double]) {
        positions.withUnsafeBufferPointer { q in
            velocities.withUnsafeBufferPointer { v in
                accelerations.withUnsafeBufferPointer { a in inverseDynamics(q, v, a) }
            }
        }
    }

    public func inverseDynamics(
        _ positions: UnsafeBufferPointer<Double>, _ velocities: UnsafeBufferPointer<Double>,
        _ accelerations: UnsafeBufferPointer<Double>
    ) {
        let n = model.dofCount
        precondition(positions.count == n && velocities.count == n && accelerations.count == n, "joint vector size")
        sk_rnea(
            model.handle, data, positions.baseAddress, velocities.baseAddress, accelerations.baseAddress,
            efforts.baseAddress)
    }

    /// Joint forces that hold `positions` still under gravity, into `efforts`.
    @inlinable public func gravityEfforts(_ positions: [Double]) {
        positions.withUnsafeBufferPointer { gravityEfforts($0) }
    }

    public func gravityEfforts(_ positions: UnsafeBufferPointer<Double>) {
        precondition(positions.count == model.dofCount, "joint vector size")
        sk_gravity(model.handle, data, positions.baseAddress, efforts.baseAddress)
    }

    /// Joint-space mass matrix (CRBA) into `massMatrix`.
    @inlinable public func computeMassMatrix(_ positions: [Double]) {
        positions.withUnsafeBufferPointer { computeMassMatrix($0) }
    }

    public func computeMassMatrix(_ positions: UnsafeBufferPointer<Double>) {
        precondition(positions.count == model.dofCount, "joint vector size")
        sk_crba(model.handle, data, positions.baseAddress, massMatrix.baseAddress)
    }

    /// Forward dynamics (ABA) into `accelerations`: joint accelerations under joint forces `efforts`
    /// at (`positions`, `velocities`), gravity included.
    @inlinable public func forwardDynamics(_ positions: [Double], _ velocities: [Double], _ efforts: [Double]) {
        positions.withUnsafeBufferPointer { q in
            velocities.withUnsafeBufferPointer { v in
                efforts.withUnsafeBufferPointer { tau in forwardDynamics(q, v, tau) }
            }
        }
    }

    public func forwardDynamics(
        _ positions: UnsafeBufferPointer<Double>, _ velocities: UnsafeBufferPointer<Double>,
        _ efforts: UnsafeBufferPointer<Double>
    ) {
        let n = model.dofCount
        precondition(positions.count == n && velocities.count == n && efforts.count == n, "joint vector size")
        sk_aba(
            model.handle, data, positions.baseAddress, velocities.baseAddress, efforts.baseAddress,
            accelerations.baseAddress)
    }

    /// One semi-implicit Euler step of the joint dynamics, for simulation: the new joint velocities after
    /// `dt` seconds under joint forces `efforts`, whose slope −∂effort/∂velocity is `damping` (taken
    /// implicitly, so stiff geared drives stay stable), with `armature` (reflected rotor inertia, kg·m² or kg)
    /// added to the mass matrix diagonal. Writes `velocitiesOut`; the caller advances positions by
    /// dt·velocitiesOut. Allocation-free.
    public func semiImplicitStep(
        positions: UnsafeBufferPointer<Double>, velocities: UnsafeBufferPointer<Double>,
        efforts: UnsafeBufferPointer<Double>, damping: UnsafeBufferPointer<Double>,
        armature: UnsafeBufferPointer<Double>, dt: Double, velocitiesOut: UnsafeMutableBufferPointer<Double>
    ) {
        let n = model.dofCount
        precondition(
            positions.count == n && velocities.count == n && efforts.count == n && damping.count == n
                && armature.count == n && velocitiesOut.count == n, "joint vector size")
        sk_semi_implicit_step(
            model.handle, data, positions.baseAddress, velocities.baseAddress, efforts.baseAddress,
            damping.baseAddress, armature.baseAddress, dt, velocitiesOut.baseAddress)
    }

    /// Element (row, column) of `jacobian`.
    @inlinable public func jacobian(row: Int, column: Int) -> Double { jacobian[6 * column + row] }

    /// Element (row, column) of `massMatrix`.
    @inlinable public func massMatrix(row: Int, column: Int) -> Double {
        massMatrix[row + model.dofCount * column]
    }

    /// The C workspace, for the inverse-kinematics solver in this module.
    var cData: OpaquePointer { data }
}
