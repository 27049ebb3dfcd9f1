import Foundation
import SinewCore
import SinewKinematics
import SinewTestSupport

/// The reference robots and Pinocchio's values for them (Tests/Fixtures/kinematics, see its README.md).
let kinematicsReferenceDirectory = fixturesDirectory + "/kinematics"

/// The path of a file in Tests/Fixtures/kinematics, or an error naming it when it is missing.
func kinematicsFixture(_ name: String) throws -> String { try fixture("kinematics/" + name) }

let here = SourceLocation(file: "test")

/// A link with a point mass (and a small inertia) at `com`.
func massLink(_ name: String, mass: Double, com: (Double, Double, Double), inertia: Double = 0) -> LinkDescription {
    LinkDescription(
        name: name,
        inertial: LinkInertial(
            mass: mass, origin: RigidTransform(xyz: com, rpy: (0, 0, 0)), ixx: inertia, iyy: inertia, izz: inertia),
        location: here)
}

func joint(
    _ name: String, _ type: JointType, _ parent: String, _ child: String, xyz: (Double, Double, Double) = (0, 0, 0),
    rpy: (Double, Double, Double) = (0, 0, 0), axis: (Double, Double, Double) = (0, 0, 1),
    limits: JointLimits = JointLimits(lower: -3, upper: 3), mimic: MimicRelation? = nil,
    location: SourceLocation = here
) -> JointDescription {
    JointDescription(
        name: name, type: type, parent: parent, child: child, origin: RigidTransform(xyz: xyz, rpy: rpy), axis: axis,
        limits: limits, mimic: mimic, location: location)
}

/// Row-major 4x4 of a pose.
func matrix(_ t: RigidTransform) -> [Double] { t.matrix4x4.flatMap { $0 } }

/// Deterministic pseudo-random numbers for tests.
struct TestRandom {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * next() }
}
