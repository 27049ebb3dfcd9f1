import Foundation

/// A unit quaternion `(w, x, y, z)` describing the orientation of the sensor frame relative to an earth frame:
/// `v_earth = q ⊗ v_sensor ⊗ q⁻¹`. Hamilton convention, scalar first.
public struct OrientationQuaternion: Sendable, Equatable {
    public var w: Double
    public var x: Double
    public var y: Double
    public var z: Double

    public static let identity = OrientationQuaternion(w: 1, x: 0, y: 0, z: 0)

    @inlinable
    public init(w: Double, x: Double, y: Double, z: Double) {
        self.w = w
        self.x = x
        self.y = y
        self.z = z
    }

    /// Rotation by `angleRad` about `axis` (normalised here; a zero axis gives the identity).
    @inlinable
    public init(axis: SIMD3<Double>, angleRad: Double) {
        let n = (axis * axis).sum().squareRoot()
        if n == 0 {
            self = .identity
            return
        }
        let s = sin(angleRad / 2) / n
        self.init(w: cos(angleRad / 2), x: axis.x * s, y: axis.y * s, z: axis.z * s)
    }

    /// Rotation by the rotation vector `rotationVectorRad` (axis times angle).
    @inlinable
    public init(rotationVectorRad r: SIMD3<Double>) {
        let angle = (r * r).sum().squareRoot()
        if angle < 1e-12 {
            // Second-order accurate and avoids 0/0 for the tiny rotations of one gyroscope sample.
            self.init(w: 1 - angle * angle / 8, x: r.x / 2, y: r.y / 2, z: r.z / 2)
            return
        }
        let s = sin(angle / 2) / angle
        self.init(w: cos(angle / 2), x: r.x * s, y: r.y * s, z: r.z * s)
    }

    /// Hamilton product `a ⊗ b` (apply `b` first, then `a`).
    @inlinable
    public static func * (a: OrientationQuaternion, b: OrientationQuaternion) -> OrientationQuaternion {
        OrientationQuaternion(
            w: a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
            x: a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
            y: a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
            z: a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w
        )
    }

    @inlinable
    public var conjugate: OrientationQuaternion { OrientationQuaternion(w: w, x: -x, y: -y, z: -z) }

    @inlinable
    public var norm: Double { (w * w + x * x + y * y + z * z).squareRoot() }

    @inlinable
    public var normalized: OrientationQuaternion {
        let n = norm
        return OrientationQuaternion(w: w / n, x: x / n, y: y / n, z: z / n)
    }

    /// `v` rotated by this quaternion (sensor → earth for an orientation).
    @inlinable
    public func rotate(_ v: SIMD3<Double>) -> SIMD3<Double> {
        // v + 2w(u×v) + 2u×(u×v), u = vector part: cheaper than building the matrix.
        let u = SIMD3(x, y, z)
        let t = 2 * SIMD3(u.y * v.z - u.z * v.y, u.z * v.x - u.x * v.z, u.x * v.y - u.y * v.x)
        return v + w * t + SIMD3(u.y * t.z - u.z * t.y, u.z * t.x - u.x * t.z, u.x * t.y - u.y * t.x)
    }

    /// `v` rotated by the inverse (earth → sensor for an orientation).
    @inlinable
    public func inverseRotate(_ v: SIMD3<Double>) -> SIMD3<Double> { conjugate.rotate(v) }

    /// Quaternion of a rotation matrix given by its rows (Shepperd's method, stable for every rotation).
    public init(rotationMatrixRows r0: SIMD3<Double>, _ r1: SIMD3<Double>, _ r2: SIMD3<Double>) {
        let trace = r0.x + r1.y + r2.z
        if trace > 0 {
            let s = (trace + 1).squareRoot() * 2
            self.init(w: s / 4, x: (r2.y - r1.z) / s, y: (r0.z - r2.x) / s, z: (r1.x - r0.y) / s)
        } else if r0.x > r1.y && r0.x > r2.z {
            let s = (1 + r0.x - r1.y - r2.z).squareRoot() * 2
            self.init(w: (r2.y - r1.z) / s, x: s / 4, y: (r0.y + r1.x) / s, z: (r0.z + r2.x) / s)
        } else if r1.y > r2.z {
            let s = (1 + r1.y - r0.x - r2.z).squareRoot() * 2
            self.init(w: (r0.z - r2.x) / s, x: (r0.y + r1.x) / s, y: s / 4, z: (r1.z + r2.y) / s)
        } else {
            let s = (1 + r2.z - r0.x - r1.y).squareRoot() * 2
            self.init(w: (r1.x - r0.y) / s, x: (r0.z + r2.x) / s, y: (r1.z + r2.y) / s, z: s / 4)
        }
        self = normalized
    }

    /// Error of this estimate against `reference` as in the BROAD benchmark: with `e = self ⊗ reference⁻¹`
    /// (an earth-frame rotation), total `2·acos|e_w|`, heading (about earth up) `2·atan|e_z/e_w|` and
    /// inclination `2·acos√(e_w² + e_z²)`, all in radians.
    public func errorAnglesRad(
        relativeTo reference: OrientationQuaternion
    ) -> (totalRad: Double, headingRad: Double, inclinationRad: Double) {
        let e = normalized * reference.normalized.conjugate
        let ew = abs(e.w)
        return (
            2 * acos(min(1, ew)), 2 * atan(abs(e.z) / ew), 2 * acos(min(1, (e.w * e.w + e.z * e.z).squareRoot()))
        )
    }

    /// The angle (rad, 0…π) of the rotation between two orientations, ignoring the quaternion sign.
    public func angleRad(to other: OrientationQuaternion) -> Double {
        let e = self * other.conjugate
        return 2 * acos(min(1, abs(e.w) / e.norm))
    }
}
