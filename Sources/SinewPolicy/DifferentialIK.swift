/// Differential inverse kinematics by damped least squares: the joint velocities q̇ that move a frame at a
/// desired twist v, with secondary motion z in the Jacobian's null space,
///
///     q̇ = z + Jᵀ (J Jᵀ + λ² I)⁻¹ (v − J z)
///
/// and the joint limits as constraints: a joint that would leave its range within the step is held at the
/// boundary and the rest re-solved without it; joint speed limits scale the whole answer (its direction, so
/// the path, is kept). Rows are the Jacobian's (vx vy vz in m/s, wx wy wz in rad/s, root frame), all six or
/// the first three for position-only control. Allocated once for a number of joints; `solve` allocates
/// nothing.
public final class DifferentialIK {
    public let jointCount: Int
    /// λ of the damping (m/s and rad/s alike): it trades accuracy near singularities for bounded speeds.
    public var dampingLambda: Double
    /// Position range (rad) and speed limit (rad/s) per joint.
    public let lowerRad: UnsafeMutableBufferPointer<Double>
    public let upperRad: UnsafeMutableBufferPointer<Double>
    public let velocityLimitRadPerS: UnsafeMutableBufferPointer<Double>
    /// The answer of the last `solve`, rad/s.
    public let jointVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// Inputs the caller fills: the desired twist (6) and the null-space motion (per joint, rad/s).
    public let twist: UnsafeMutableBufferPointer<Double>
    public let nullSpaceRadPerS: UnsafeMutableBufferPointer<Double>
    private let fixed: UnsafeMutableBufferPointer<Bool>
    private let system: UnsafeMutableBufferPointer<Double>
    private let residual: UnsafeMutableBufferPointer<Double>

    public init(jointCount: Int, dampingLambda: Double = 0.01) {
        self.jointCount = jointCount
        self.dampingLambda = dampingLambda
        let n = max(1, jointCount)
        func doubles(_ count: Int, _ value: Double = 0) -> UnsafeMutableBufferPointer<Double> {
            let b = UnsafeMutableBufferPointer<Double>.allocate(capacity: count)
            b.initialize(repeating: value)
            return b
        }
        lowerRad = doubles(n, -.infinity)
        upperRad = doubles(n, .infinity)
        velocityLimitRadPerS = doubles(n, .infinity)
        jointVelocityRadPerS = doubles(n)
        twist = doubles(6)
        nullSpaceRadPerS = doubles(n)
        fixed = .allocate(capacity: n)
        fixed.initialize(repeating: false)
        system = doubles(36)
        residual = doubles(6)
    }

    deinit {
        for b in [
            lowerRad, upperRad, velocityLimitRadPerS, jointVelocityRadPerS, twist, nullSpaceRadPerS, system, residual,
        ] {
            b.deallocate()
        }
        fixed.deallocate()
    }

    /// Solves for ``jointVelocityRadPerS`` at `positionRad` with the 6 × joints column-major `jacobian`, for a
    /// step of `dtS` (s). `rows`: 6, or 3 for the translation only.
    public func solve(
        jacobian: UnsafeMutableBufferPointer<Double>, positionRad: UnsafeMutableBufferPointer<Double>, rows: Int,
        dtS: Double
    ) {
        let n = jointCount
        let m = rows
        for k in 0..<n { fixed[k] = false }
        for _ in 0...n {
            // residual = v − J (q̇ of fixed joints, z of free joints)
            for r in 0..<m { residual[r] = twist[r] }
            for k in 0..<n {
                let qk = fixed[k] ? jointVelocityRadPerS[k] : nullSpaceRadPerS[k]
                for r in 0..<m { residual[r] -= jacobian[6 * k + r] * qk }
            }
            // A = J_free J_freeᵀ + λ² I
            for a in 0..<m {
                for b in 0...a {
                    var sum = a == b ? dampingLambda * dampingLambda : 0
                    for k in 0..<n where !fixed[k] { sum += jacobian[6 * k + a] * jacobian[6 * k + b] }
                    system[a * 6 + b] = sum
                }
            }
            choleskySolve(m)
            for k in 0..<n where !fixed[k] {
                var v = nullSpaceRadPerS[k]
                for r in 0..<m { v += jacobian[6 * k + r] * residual[r] }
                jointVelocityRadPerS[k] = v
            }
            // A joint that would leave its range is held at the boundary; the others are solved again.
            var newlyFixed = false
            for k in 0..<n where !fixed[k] {
                let next = positionRad[k] + jointVelocityRadPerS[k] * dtS
                if next > upperRad[k] && jointVelocityRadPerS[k] > 0 {
                    jointVelocityRadPerS[k] = max(0, (upperRad[k] - positionRad[k]) / dtS)
                } else if next < lowerRad[k] && jointVelocityRadPerS[k] < 0 {
                    jointVelocityRadPerS[k] = min(0, (lowerRad[k] - positionRad[k]) / dtS)
                } else {
                    continue
                }
                fixed[k] = true
                newlyFixed = true
            }
            if !newlyFixed { break }
        }
        var scale = 1.0
        for k in 0..<n {
            let speed = abs(jointVelocityRadPerS[k])
            if speed * scale > velocityLimitRadPerS[k] { scale = velocityLimitRadPerS[k] / speed }
        }
        if scale < 1 { for k in 0..<n { jointVelocityRadPerS[k] *= scale } }
    }

    /// Solves `system` (lower triangle, m × m, symmetric positive definite) · x = `residual` in place.
    private func choleskySolve(_ m: Int) {
        for j in 0..<m {
            var d = system[j * 6 + j]
            for k in 0..<j { d -= system[j * 6 + k] * system[j * 6 + k] }
            d = d > 1e-300 ? d.squareRoot() : 1e-150
            system[j * 6 + j] = d
            for i in (j + 1)..<max(j + 1, m) {
                var s = system[i * 6 + j]
                for k in 0..<j { s -= system[i * 6 + k] * system[j * 6 + k] }
                system[i * 6 + j] = s / d
            }
        }
        for i in 0..<m {
            var s = residual[i]
            for k in 0..<i { s -= system[i * 6 + k] * residual[k] }
            residual[i] = s / system[i * 6 + i]
        }
        for i in stride(from: m - 1, through: 0, by: -1) {
            var s = residual[i]
            for k in (i + 1)..<max(i + 1, m) { s -= system[k * 6 + i] * residual[k] }
            residual[i] = s / system[i * 6 + i]
        }
    }
}
