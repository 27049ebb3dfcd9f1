import Foundation
import SinewCore
import SinewKinematics
import Testing

/// Closed-form checks on small robots built in code.
@Suite struct AnalyticKinematicsTests {
    // Planar arm in the x-y plane (joints about z), gravity along -y.
    let l1 = 0.7, l2 = 0.5, c1 = 0.3, c2 = 0.2, m1 = 2.0, m2 = 1.5, i1 = 0.01, i2 = 0.02, g = 9.81

    func planarArm() throws -> RobotModel {
        let description = RobotDescription(
            name: "planar",
            links: [
                LinkDescription(name: "base", location: here),
                massLink("link1", mass: m1, com: (c1, 0, 0), inertia: i1),
                massLink("link2", mass: m2, com: (c2, 0, 0), inertia: i2),
                LinkDescription(name: "tip", location: here),
            ],
            joints: [
                joint("j1", .revolute, "base", "link1"),
                joint("j2", .revolute, "link1", "link2", xyz: (l1, 0, 0)),
                joint("tip", .fixed, "link2", "tip", xyz: (l2, 0, 0)),
            ], file: "planar.urdf")
        return try RobotModel(description, gravity: (0, -g, 0))
    }

    @Test func planarTwoLinkArmMatchesClosedForm() throws {
        let model = try planarArm()
        let w = KinematicsWorkspace(model: model)
        let tip = try #require(model.linkIndex(named: "tip"))
        #expect(model.links[model.deepestLink].name == "link2")
        for (q1, q2) in [(0.3, -0.8), (1.2, 2.1), (-2.5, 0.4)] {
            let q = [q1, q2]
            let (s1, k1, s12, k12) = (sin(q1), cos(q1), sin(q1 + q2), cos(q1 + q2))
            w.forwardKinematics(q)
            let p = w.linkPose(tip).translation
            #expect(abs(p.0 - (l1 * k1 + l2 * k12)) < 1e-12)
            #expect(abs(p.1 - (l1 * s1 + l2 * s12)) < 1e-12)
            #expect(abs(p.2) < 1e-12)

            w.frameJacobian(q, link: tip)
            let expected: [[Double]] = [
                [-l1 * s1 - l2 * s12, l1 * k1 + l2 * k12, 0, 0, 0, 1], [-l2 * s12, l2 * k12, 0, 0, 0, 1],
            ]
            for c in 0..<2 { for r in 0..<6 { #expect(abs(w.jacobian(row: r, column: c) - expected[c][r]) < 1e-12) } }

            w.gravityEfforts(q)
            #expect(abs(w.efforts[0] - g * (m1 * c1 * k1 + m2 * (l1 * k1 + c2 * k12))) < 1e-10)
            #expect(abs(w.efforts[1] - g * m2 * c2 * k12) < 1e-10)

            w.computeMassMatrix(q)
            let m11 = m1 * c1 * c1 + m2 * (l1 * l1 + c2 * c2 + 2 * l1 * c2 * cos(q2)) + i1 + i2
            let m12 = m2 * (c2 * c2 + l1 * c2 * cos(q2)) + i2
            let m22 = m2 * c2 * c2 + i2
            #expect(abs(w.massMatrix(row: 0, column: 0) - m11) < 1e-12)
            #expect(abs(w.massMatrix(row: 0, column: 1) - m12) < 1e-12)
            #expect(abs(w.massMatrix(row: 1, column: 0) - m12) < 1e-12)
            #expect(abs(w.massMatrix(row: 1, column: 1) - m22) < 1e-12)
        }
    }

    @Test func prismaticChainIsACartesianGantry() throws {
        let (ma, mb, mc) = (3.0, 2.0, 0.5)
        let description = RobotDescription(
            name: "gantry",
            links: [
                LinkDescription(name: "base", location: here), massLink("x", mass: ma, com: (0.1, 0, 0)),
                massLink("y", mass: mb, com: (0, 0.2, 0)), massLink("z", mass: mc, com: (0, 0, -0.1)),
            ],
            joints: [
                joint("jz", .prismatic, "y", "z", xyz: (0, 0, 0.5), axis: (0, 0, 1)),
                joint("jx", .prismatic, "base", "x", xyz: (1, 0, 0), axis: (2, 0, 0)),
                joint("jy", .prismatic, "x", "y", axis: (0, 1, 0)),
            ], file: "gantry.urdf")
        let model = try RobotModel(description)
        #expect(model.joints.map(\.name) == ["jx", "jy", "jz"])
        let w = KinematicsWorkspace(model: model)
        let q = [0.25, -0.5, 0.125]
        let z = try #require(model.linkIndex(named: "z"))
        w.forwardKinematics(q)
        let p = w.linkPose(z).translation
        #expect(abs(p.0 - 1.25) < 1e-15 && abs(p.1 + 0.5) < 1e-15 && abs(p.2 - 0.625) < 1e-15)
        w.gravityEfforts(q)
        #expect(abs(w.efforts[0]) < 1e-12 && abs(w.efforts[1]) < 1e-12)
        #expect(abs(w.efforts[2] - mc * 9.81) < 1e-12)
        w.computeMassMatrix(q)
        let expected = [[ma + mb + mc, 0, 0], [0, mb + mc, 0], [0, 0, mc]]
        for r in 0..<3 { for c in 0..<3 { #expect(abs(w.massMatrix(row: r, column: c) - expected[r][c]) < 1e-12) } }
        w.frameJacobian(q, link: z)
        for c in 0..<3 { for r in 0..<6 { #expect(w.jacobian(row: r, column: c) == (r == c ? 1 : 0)) } }
    }

    @Test func siblingsAreOrderedByJointNameAsUrdfdomDoes() throws {
        let description = RobotDescription(
            name: "tree",
            links: ["torso", "left", "right", "head", "left_hand"].map { massLink($0, mass: 1, com: (0, 0, 0.1)) },
            joints: [
                joint("right_shoulder", .revolute, "torso", "right"), joint("neck", .revolute, "torso", "head"),
                joint("left_wrist", .revolute, "left", "left_hand"), joint("left_shoulder", .revolute, "torso", "left"),
            ], file: "tree.urdf")
        let model = try RobotModel(description)
        #expect(model.joints.map(\.name) == ["left_shoulder", "left_wrist", "neck", "right_shoulder"])
        #expect(model.links.map(\.name) == ["torso", "left", "right", "head", "left_hand"])
        #expect(model.links[model.deepestLink].name == "left_hand")
        #expect(model.joints[1].parentJoint == 0 && model.joints[3].parentJoint == nil)
    }

    @Test func continuousJointsWrapAround() throws {
        let model = try RobotModel(urdf: kinematicsFixture("kinova.urdf"))
        let continuous = model.joints.indices.filter { model.joints[$0].type == .continuous }
        #expect(continuous.count == 3)
        for j in continuous {
            #expect(model.joints[j].lowerLimit == -.infinity && model.joints[j].upperLimit == .infinity)
        }
        let w = KinematicsWorkspace(model: model)
        var q = [0.3, 2.9, 1.1, -0.7, 3.0, 0.5]
        try #require(q.count == model.dofCount)
        w.forwardKinematics(q)
        let before = model.links.indices.map { matrix(w.linkPose($0)) }
        for j in continuous { q[j] += 2 * Double.pi * Double(j % 2 == 0 ? 3 : -2) }
        w.forwardKinematics(q)
        for l in model.links.indices {
            for (a, b) in zip(before[l], matrix(w.linkPose(l))) { #expect(abs(a - b) < 1e-12) }
        }
    }
}

/// Derivatives of forward kinematics agree with the Jacobian and with inverse dynamics.
@Suite struct FiniteDifferenceTests {
    static let robots = ["panda", "kinova", "ur5_robot", "so101"]

    @Test(arguments: robots)
    func jacobianIsTheDerivativeOfForwardKinematics(robot: String) throws {
        let model = try RobotModel(urdf: kinematicsFixture("\(robot).urdf"))
        let w = KinematicsWorkspace(model: model)
        var random = TestRandom(state: 7)
        let h = 1e-6
        for link in model.links.indices {
            let q = model.joints.map { _ in random.uniform(-1.5, 1.5) }
            w.frameJacobian(q, link: link)
            let jacobian = Array(w.jacobian)
            for j in 0..<model.dofCount {
                var qp = q
                var qm = q
                qp[j] += h
                qm[j] -= h
                w.forwardKinematics(qp)
                let plus = w.linkPose(link)
                w.forwardKinematics(qm)
                let minus = w.linkPose(link)
                let v = [
                    (plus.translation.0 - minus.translation.0) / (2 * h),
                    (plus.translation.1 - minus.translation.1) / (2 * h),
                    (plus.translation.2 - minus.translation.2) / (2 * h),
                ]
                // Angular velocity: the skew part of dR·Rᵀ.
                let dR = zip(plus.flat.prefix(9), minus.flat.prefix(9)).map { ($0 - $1) / (2 * h) }
                w.forwardKinematics(q)
                let R = w.linkPose(link).flat
                func m(_ a: [Double], _ r: Int, _ c: Int) -> Double { a[3 * r + c] }
                var W = [[Double]](repeating: [0, 0, 0], count: 3)
                for r in 0..<3 { for c in 0..<3 { W[r][c] = (0..<3).reduce(0) { $0 + m(dR, r, $1) * m(R, c, $1) } } }
                let omega = [W[2][1], W[0][2], W[1][0]]
                for r in 0..<3 {
                    #expect(abs(jacobian[6 * j + r] - v[r]) < 1e-6, "\(robot) link \(link) joint \(j) v\(r)")
                    #expect(abs(jacobian[6 * j + 3 + r] - omega[r]) < 1e-6, "\(robot) link \(link) joint \(j) w\(r)")
                }
            }
        }
    }

    /// Gravity torques are the gradient of the potential energy computed from the link poses.
    @Test(arguments: robots)
    func gravityTorqueIsTheGradientOfPotentialEnergy(robot: String) throws {
        let model = try RobotModel(urdf: kinematicsFixture("\(robot).urdf"))
        let w = KinematicsWorkspace(model: model)
        func potential(_ q: [Double]) -> Double {
            w.forwardKinematics(q)
            var energy = 0.0
            for (l, link) in model.links.enumerated() {
                guard let inertial = link.inertial else { continue }
                let com = (w.linkPose(l) * inertial.origin).translation
                energy += inertial.mass * 9.81 * com.2
            }
            return energy
        }
        var random = TestRandom(state: 11)
        for _ in 0..<5 {
            let q = model.joints.map { _ in random.uniform(-1.5, 1.5) }
            w.gravityEfforts(q)
            let tau = Array(w.efforts)
            for j in 0..<model.dofCount {
                var qp = q
                var qm = q
                qp[j] += 1e-6
                qm[j] -= 1e-6
                let derivative = (potential(qp) - potential(qm)) / 2e-6
                #expect(abs(derivative - tau[j]) < 1e-6 * max(1, abs(tau[j])), "\(robot) joint \(j)")
            }
        }
    }

    /// RNEA, CRBA and ABA describe the same dynamics: τ = M·a + b(q, v), and ABA inverts RNEA.
    @Test(arguments: robots)
    func inverseAndForwardDynamicsAgree(robot: String) throws {
        let model = try RobotModel(urdf: kinematicsFixture("\(robot).urdf"))
        let w = KinematicsWorkspace(model: model)
        let n = model.dofCount
        var random = TestRandom(state: 13)
        for _ in 0..<10 {
            let q = (0..<n).map { _ in random.uniform(-1.5, 1.5) }
            let v = (0..<n).map { _ in random.uniform(-2, 2) }
            let a = (0..<n).map { _ in random.uniform(-3, 3) }
            w.inverseDynamics(q, v, a)
            let tau = Array(w.efforts)
            w.inverseDynamics(q, v, [Double](repeating: 0, count: n))
            let bias = Array(w.efforts)
            w.computeMassMatrix(q)
            for i in 0..<n {
                let ma = (0..<n).reduce(0.0) { $0 + w.massMatrix(row: i, column: $1) * a[$1] }
                #expect(abs(ma + bias[i] - tau[i]) < 1e-9 * max(1, abs(tau[i])), "\(robot) row \(i)")
            }
            w.forwardDynamics(q, v, tau)
            for i in 0..<n { #expect(abs(w.accelerations[i] - a[i]) < 1e-7 * max(1, abs(a[i])), "\(robot) ddq \(i)") }
        }
    }
}

/// The simulator's integrator: a pendulum released from rest conserves energy closely at a 1 kHz step
/// without damping, and settles with damping.
@Suite struct SemiImplicitStepTests {
    @Test func pendulumSwingsAndSettles() throws {
        let description = RobotDescription(
            name: "pendulum",
            links: [LinkDescription(name: "base", location: here), massLink("bob", mass: 1, com: (0.5, 0, 0))],
            joints: [joint("swing", .revolute, "base", "bob", axis: (0, 1, 0))], file: "pendulum.urdf")
        let model = try RobotModel(description)
        let w = KinematicsWorkspace(model: model)
        func simulate(damping: Double, seconds: Double) -> (q: Double, v: Double) {
            var q = [0.0]
            var v = [0.0]
            var next = [0.0]
            let armature = [0.01]
            for _ in 0..<Int(seconds * 1000) {
                let tau = [-damping * v[0]]
                q.withUnsafeBufferPointer { qp in
                    v.withUnsafeBufferPointer { vp in
                        tau.withUnsafeBufferPointer { tp in
                            [damping].withUnsafeBufferPointer { dp in
                                armature.withUnsafeBufferPointer { ap in
                                    next.withUnsafeMutableBufferPointer { np in
                                        w.semiImplicitStep(
                                            positions: qp, velocities: vp, efforts: tp, damping: dp, armature: ap,
                                            dt: 0.001,
                                            velocitiesOut: np)
                                    }
                                }
                            }
                        }
                    }
                }
                v[0] = next[0]
                q[0] += 0.001 * v[0]
            }
            return (q[0], v[0])
        }
        // Released horizontal, the bob falls (rotation about +y takes +x toward −z: positive angle).
        let early = simulate(damping: 0, seconds: 0.1)
        #expect(early.q > 0 && early.v > 0)
        // Energy: ½(I+armature)v² = m g 0.5 sin(q) stays within 1 % over a few swings.
        let later = simulate(damping: 0, seconds: 3)
        let kinetic = 0.5 * (0.25 + 0.01) * later.v * later.v
        let potentialDrop = 9.81 * 0.5 * sin(later.q)
        #expect(abs(kinetic - potentialDrop) < 0.01 * 9.81 * 0.5)
        // With strong damping it hangs straight down (q = π/2) at rest.
        let settled = simulate(damping: 2, seconds: 20)
        #expect(abs(settled.q - Double.pi / 2) < 1e-3 && abs(settled.v) < 1e-3)
    }
}
