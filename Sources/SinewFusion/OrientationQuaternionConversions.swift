import Foundation
import SinewCore
import Synchronization

extension OrientationQuaternion {
    /// The rotation of a pose (parent ← frame) as a unit quaternion.
    public init(_ pose: RigidTransform) {
        let r = pose.rotation
        self.init(rotationMatrixRows: SIMD3(r.0, r.1, r.2), SIMD3(r.3, r.4, r.5), SIMD3(r.6, r.7, r.8))
    }

    /// From roll-pitch-yaw in rad, fixed axes x-y-z (R = Rz(yaw)·Ry(pitch)·Rx(roll)), as URDF origins.
    public init(rollPitchYawRad rpy: SIMD3<Double>) {
        self.init(RigidTransform(xyz: (0, 0, 0), rpy: (rpy.x, rpy.y, rpy.z)))
    }

    /// The rotation as a rotation vector (axis × angle, rad), taking the shorter way round.
    public var rotationVectorRad: SIMD3<Double> {
        let q = w < 0 ? OrientationQuaternion(w: -w, x: -x, y: -y, z: -z) : self
        let v = SIMD3(q.x, q.y, q.z)
        let s = (v * v).sum().squareRoot()
        if s < 1e-12 { return 2 * v }
        return v * (2 * atan2(s, q.w) / s)
    }

    /// Roll, pitch and yaw in rad (R = Rz(yaw)·Ry(pitch)·Rx(roll)). Roll and pitch do not depend on a
    /// heading offset of the earth frame, so a 6-D estimate can be compared with the truth through them.
    public var rollPitchYawRad: SIMD3<Double> {
        let q = normalized
        let roll = atan2(2 * (q.w * q.x + q.y * q.z), 1 - 2 * (q.x * q.x + q.y * q.y))
        let pitch = asin(max(-1, min(1, 2 * (q.w * q.y - q.z * q.x))))
        let yaw = atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        return SIMD3(roll, pitch, yaw)
    }
}

/// An orientation one thread publishes and others read without locks (a status line reading the loop's
/// estimate). Each component is atomic; a reader may see components of two consecutive values, which
/// for a display is harmless and is renormalised away.
public final class PublishedOrientation: Sendable {
    private let w = Atomic<UInt64>(OrientationQuaternion.identity.w.bitPattern)
    private let x = Atomic<UInt64>(0)
    private let y = Atomic<UInt64>(0)
    private let z = Atomic<UInt64>(0)

    public init() {}

    /// Publishes `q` (real-time safe: four relaxed stores).
    public func store(_ q: OrientationQuaternion) {
        w.store(q.w.bitPattern, ordering: .relaxed)
        x.store(q.x.bitPattern, ordering: .relaxed)
        y.store(q.y.bitPattern, ordering: .relaxed)
        z.store(q.z.bitPattern, ordering: .relaxed)
    }

    /// The last published orientation, normalised.
    public func load() -> OrientationQuaternion {
        OrientationQuaternion(
            w: Double(bitPattern: w.load(ordering: .relaxed)), x: Double(bitPattern: x.load(ordering: .relaxed)),
            y: Double(bitPattern: y.load(ordering: .relaxed)), z: Double(bitPattern: z.load(ordering: .relaxed))
        ).normalized
    }
}
