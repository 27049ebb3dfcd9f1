import Foundation
import SinewCore

/// A 3-D rotation matrix (row-major) with the few operations Cartesian control needs: products, the
/// exponential and logarithm maps of SO(3), quaternion and roll-pitch-yaw conversions. A value type of nine
/// doubles: nothing here allocates.
public struct Rotation3: Sendable, Equatable {
    public var m: (Double, Double, Double, Double, Double, Double, Double, Double, Double)

    public static let identity = Rotation3(m: (1, 0, 0, 0, 1, 0, 0, 0, 1))

    public init(m: (Double, Double, Double, Double, Double, Double, Double, Double, Double)) { self.m = m }

    public init(_ transform: RigidTransform) { m = transform.rotation }

    /// From a unit quaternion (w, x, y, z); normalised first.
    public init(quaternion q: (w: Double, x: Double, y: Double, z: Double)) {
        let norm = (q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z).squareRoot()
        let (w, x, y, z) = norm > 0 ? (q.w / norm, q.x / norm, q.y / norm, q.z / norm) : (1, 0, 0, 0)
        m = (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
        )
    }

    /// From roll, pitch, yaw (rad; URDF's convention: R = Rz(yaw) · Ry(pitch) · Rx(roll)).
    public init(rollRad: Double, pitchRad: Double, yawRad: Double) {
        let (cr, sr) = (cos(rollRad), sin(rollRad))
        let (cp, sp) = (cos(pitchRad), sin(pitchRad))
        let (cy, sy) = (cos(yawRad), sin(yawRad))
        m = (
            cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
            sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
            -sp, cp * sr, cp * cr
        )
    }

    public static func == (a: Rotation3, b: Rotation3) -> Bool {
        a.m.0 == b.m.0 && a.m.1 == b.m.1 && a.m.2 == b.m.2 && a.m.3 == b.m.3 && a.m.4 == b.m.4 && a.m.5 == b.m.5
            && a.m.6 == b.m.6 && a.m.7 == b.m.7 && a.m.8 == b.m.8
    }

    public var transposed: Rotation3 { Rotation3(m: (m.0, m.3, m.6, m.1, m.4, m.7, m.2, m.5, m.8)) }

    public static func * (a: Rotation3, b: Rotation3) -> Rotation3 {
        let x = a.m
        let y = b.m
        return Rotation3(
            m: (
                x.0 * y.0 + x.1 * y.3 + x.2 * y.6, x.0 * y.1 + x.1 * y.4 + x.2 * y.7, x.0 * y.2 + x.1 * y.5 + x.2 * y.8,
                x.3 * y.0 + x.4 * y.3 + x.5 * y.6, x.3 * y.1 + x.4 * y.4 + x.5 * y.7, x.3 * y.2 + x.4 * y.5 + x.5 * y.8,
                x.6 * y.0 + x.7 * y.3 + x.8 * y.6, x.6 * y.1 + x.7 * y.4 + x.8 * y.7, x.6 * y.2 + x.7 * y.5 + x.8 * y.8
            ))
    }

    /// The rotation vector applied to a vector.
    public func apply(_ v: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3(
            m.0 * v.x + m.1 * v.y + m.2 * v.z, m.3 * v.x + m.4 * v.y + m.5 * v.z, m.6 * v.x + m.7 * v.y + m.8 * v.z)
    }

    /// exp: the rotation by |ω| (rad) about ω's direction (Rodrigues).
    public static func exp(_ omega: SIMD3<Double>) -> Rotation3 {
        let angle = (omega * omega).sum().squareRoot()
        guard angle > 1e-12 else {
            return Rotation3(m: (1, -omega.z, omega.y, omega.z, 1, -omega.x, -omega.y, omega.x, 1))
        }
        let k = omega / angle
        let (s, c) = (sin(angle), cos(angle))
        let v = 1 - c
        return Rotation3(
            m: (
                c + k.x * k.x * v, k.x * k.y * v - k.z * s, k.x * k.z * v + k.y * s,
                k.y * k.x * v + k.z * s, c + k.y * k.y * v, k.y * k.z * v - k.x * s,
                k.z * k.x * v - k.y * s, k.z * k.y * v + k.x * s, c + k.z * k.z * v
            ))
    }

    /// log: the rotation vector (axis × angle, angle in [0, π]) of this rotation.
    public var log: SIMD3<Double> {
        let trace = m.0 + m.4 + m.8
        let cosAngle = max(-1, min(1, (trace - 1) / 2))
        let angle = acos(cosAngle)
        let skew = SIMD3(m.7 - m.5, m.2 - m.6, m.3 - m.1)
        if angle < 1e-6 { return skew / 2 }
        if angle < Double.pi - 1e-4 { return skew * (angle / (2 * sin(angle))) }
        // Near π the skew part vanishes: the axis from the diagonal, its sign from the skew part.
        var axis = SIMD3(
            ((m.0 + 1) / 2).squareRoot(), ((m.4 + 1) / 2).squareRoot(), ((m.8 + 1) / 2).squareRoot())
        if axis.x >= axis.y && axis.x >= axis.z {
            axis.y = (m.1 + m.3) / (4 * axis.x)
            axis.z = (m.2 + m.6) / (4 * axis.x)
        } else if axis.y >= axis.z {
            axis.x = (m.1 + m.3) / (4 * axis.y)
            axis.z = (m.5 + m.7) / (4 * axis.y)
        } else {
            axis.x = (m.2 + m.6) / (4 * axis.z)
            axis.y = (m.5 + m.7) / (4 * axis.z)
        }
        if (axis * skew).sum() < 0 { axis = -axis }
        let norm = (axis * axis).sum().squareRoot()
        return axis / max(norm, 1e-12) * angle
    }

    /// The angle (rad) between two rotations.
    public static func angle(_ a: Rotation3, _ b: Rotation3) -> Double {
        let d = a.transposed * b
        return acos(max(-1, min(1, (d.m.0 + d.m.4 + d.m.8 - 1) / 2)))
    }
}

extension RigidTransform {
    /// The translation as a vector (m).
    public var translationVector: SIMD3<Double> { SIMD3(translation.0, translation.1, translation.2) }

    /// A pose from a rotation and a translation (m).
    public init(rotation: Rotation3, translationM p: SIMD3<Double>) {
        self = RigidTransform.identity
        self.rotation = rotation.m
        translation = (p.x, p.y, p.z)
    }
}
