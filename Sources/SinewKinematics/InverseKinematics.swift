import CKinematics
import SinewCore

/// Inverse kinematics of one link for a full 6-D pose target: Levenberg–Marquardt on the pose error over
/// the independent joints that move the link, projected onto the joint limits, restarted from random
/// configurations inside a time budget. Mimic joints follow their masters. Allocation-free per solve.
public final class InverseKinematicsSolver {
    public struct Options: Sendable {
        /// Convergence: position error (m) and rotation error (rad) both at most this.
        public var tolerance: Double = 1e-6
        /// Give up after this long (s), keeping the best configuration found.
        public var timeBudgetSeconds: Double = 0.005
        /// Iterations before a restart from a random configuration.
        public var maxIterationsPerAttempt: Int = 60
        /// Seed of the random restarts (solves are deterministic for a given seed and time budget).
        public var randomSeed: UInt64 = 0x5EED

        public init() {}
    }

    public struct Solution: Sendable {
        /// True when both errors are within the tolerance.
        public var converged: Bool
        /// Remaining position error (m) and rotation error (rad) of the best configuration.
        public var positionError: Double
        public var rotationError: Double
        public var attempts: Int
        public var iterations: Int
    }

    public let model: RobotModel
    public var options: Options
    private let workspace: KinematicsWorkspace
    /// The configuration found by the last `solve` (URDF-level, `model.dofCount`).
    public let positions: UnsafeMutableBufferPointer<Double>
    private let lower: UnsafeMutableBufferPointer<Double>
    private let upper: UnsafeMutableBufferPointer<Double>
    private let mimicMaster: UnsafeMutableBufferPointer<Int32>
    private let mimicMultiplier: UnsafeMutableBufferPointer<Double>
    private let mimicOffset: UnsafeMutableBufferPointer<Double>

    public init(model: RobotModel, options: Options = Options()) {
        self.model = model
        self.options = options
        workspace = KinematicsWorkspace(model: model)
        let n = max(1, model.dofCount)
        positions = .allocate(capacity: n)
        lower = .allocate(capacity: n)
        upper = .allocate(capacity: n)
        mimicMaster = .allocate(capacity: n)
        mimicMultiplier = .allocate(capacity: n)
        mimicOffset = .allocate(capacity: n)
        positions.initialize(repeating: 0)
        for (i, joint) in model.joints.enumerated() {
            lower[i] = joint.lowerLimit
            upper[i] = joint.upperLimit
            mimicMaster[i] = Int32(joint.mimic?.master ?? -1)
            mimicMultiplier[i] = joint.mimic?.multiplier ?? 1
            mimicOffset[i] = joint.mimic?.offset ?? 0
        }
    }

    deinit {
        positions.deallocate()
        lower.deallocate()
        upper.deallocate()
        mimicMaster.deallocate()
        mimicMultiplier.deallocate()
        mimicOffset.deallocate()
    }

    /// Solves for `link` (index into `model.links`) reaching `target` (pose in the root frame), starting
    /// from `seed` (URDF-level joint positions). The answer is in `positions`.
    public func solve(link: Int, target: RigidTransform, seed: UnsafeBufferPointer<Double>) -> Solution {
        precondition(seed.count == model.dofCount, "joint vector size")
        var problem = sk_ik_problem()
        problem.frame = Int32(link)
        withUnsafeMutableBytes(of: &problem.target) { raw in
            let p = raw.bindMemory(to: Double.self)
            let r = target.rotation
            let t = target.translation
            (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]) = (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8)
            (p[9], p[10], p[11]) = (t.0, t.1, t.2)
        }
        problem.lower = UnsafePointer(lower.baseAddress)
        problem.upper = UnsafePointer(upper.baseAddress)
        problem.mimic_master = UnsafePointer(mimicMaster.baseAddress)
        problem.mimic_multiplier = UnsafePointer(mimicMultiplier.baseAddress)
        problem.mimic_offset = UnsafePointer(mimicOffset.baseAddress)
        problem.tolerance = options.tolerance
        problem.time_budget_s = options.timeBudgetSeconds
        problem.max_iterations = Int32(options.maxIterationsPerAttempt)
        problem.random_seed = options.randomSeed
        let r = sk_ik_solve(model.handle, workspace.cData, &problem, seed.baseAddress, positions.baseAddress)
        return Solution(
            converged: r.success != 0, positionError: r.position_error, rotationError: r.rotation_error,
            attempts: Int(r.attempts), iterations: Int(r.iterations))
    }

    /// Convenience for callers outside the control tick.
    public func solve(link: Int, target: RigidTransform, seed: [Double]) -> Solution {
        seed.withUnsafeBufferPointer { solve(link: link, target: target, seed: $0) }
    }
}
