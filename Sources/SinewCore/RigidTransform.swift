import Foundation

/// A rigid transform (pose) in 3-D: `rotation` is a 3×3 rotation matrix stored row-major, `translation`
/// in metres. Composes as `a * b` = first b, then a (the pose of b's frame expressed in a's parent).
public struct RigidTransform: Sendable, Equatable {
    public var rotation: (Double, Double, Double, Double, Double, Double, Double, Double, Double)
    public var translation: (Double, Double, Double)

    public static let identity = RigidTransform(
        rotation: (1, 0, 0, 0, 1, 0, 0, 0, 1), translation: (0, 0, 0))

    public init(
        rotation: (Double, Double, Double, Double, Double, Double, Double, Double, Double),
        translation: (Double, Double, Double)
    ) {
        self.rotation = rotation
        self.translation = translation
    }

    /// From a URDF-style origin: `xyz` in metres, `rpy` in radians with R = Rz(yaw)·Ry(pitch)·Rx(roll).
    public init(xyz: (Double, Double, Double), rpy: (Double, Double, Double)) {
        let (sr, cr) = (sin(rpy.0), cos(rpy.0))
        let (sp, cp) = (sin(rpy.1), cos(rpy.1))
        let (sy, cy) = (sin(rpy.2), cos(rpy.2))
        rotation = (
            cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
            sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
            -sp, cp * sr, cp * cr
        )
        translation = xyz
    }

    /// From a translation (m) and a unit quaternion (w, x, y, z).
    public init(translation: (Double, Double, Double), quaternion q: (w: Double, x: Double, y: Double, z: Double)) {
        let n = (q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z).squareRoot()
        let (w, x, y, z) = (q.w / n, q.x / n, q.y / n, q.z / n)
        rotation = (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
        )
        self.translation = translation
    }

    /// The 12 doubles of the C kinematics layout: rotation row-major, then translation.
    public var flat: [Double] {
        let r = rotation
        let t = translation
        return [r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, t.0, t.1, t.2]
    }

    /// From the 12-double C layout.
    public init(flat f: UnsafePointer<Double>) {
        rotation = (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8])
        translation = (f[9], f[10], f[11])
    }

    /// The 4×4 homogeneous matrix, row-major.
    public var matrix4x4: [[Double]] {
        let r = rotation
        let t = translation
        return [[r.0, r.1, r.2, t.0], [r.3, r.4, r.5, t.1], [r.6, r.7, r.8, t.2], [0, 0, 0, 1]]
    }

    public static func * (a: RigidTransform, b: RigidTransform) -> RigidTransform {
        let r = a.rotation
        let s = b.rotation
        let rot = (
            r.0 * s.0 + r.1 * s.3 + r.2 * s.6, r.0 * s.1 + r.1 * s.4 + r.2 * s.7, r.0 * s.2 + r.1 * s.5 + r.2 * s.8,
            r.3 * s.0 + r.4 * s.3 + r.5 * s.6, r.3 * s.1 + r.4 * s.4 + r.5 * s.7, r.3 * s.2 + r.4 * s.5 + r.5 * s.8,
            r.6 * s.0 + r.7 * s.3 + r.8 * s.6, r.6 * s.1 + r.7 * s.4 + r.8 * s.7, r.6 * s.2 + r.7 * s.5 + r.8 * s.8
        )
        let t = b.translation
        let tr = (
            r.0 * t.0 + r.1 * t.1 + r.2 * t.2 + a.translation.0,
            r.3 * t.0 + r.4 * t.1 + r.5 * t.2 + a.translation.1,
            r.6 * t.0 + r.7 * t.1 + r.8 * t.2 + a.translation.2
        )
        return RigidTransform(rotation: rot, translation: tr)
    }

    public static func == (a: RigidTransform, b: RigidTransform) -> Bool {
        a.flat == b.flat
    }
}
