import SinewCore
import Testing

@Test func rpyComposesYawPitchRoll() {
    let t = RigidTransform(xyz: (0, 0, 0), rpy: (0, 0, Double.pi / 2))
    #expect(abs(t.rotation.0) < 1e-15)
    #expect(abs(t.rotation.3 - 1) < 1e-15)
}
