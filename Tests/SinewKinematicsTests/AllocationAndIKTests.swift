import CAllocCounter
import SinewCore
import SinewKinematics
import Testing

@Suite struct WorkspaceAllocationTests {
    /// Every computation of the workspace and the IK solver runs without touching the heap.
    @Test func kinematicsAndDynamicsDoNotAllocate() throws {
        let model = try RobotModel(urdf: kinematicsFixture("panda.urdf"))
        let w = KinematicsWorkspace(model: model)
        let ik = InverseKinematicsSolver(model: model)
        let n = model.dofCount
        let q = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
        let v = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
        let a = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
        defer { for b in [q, v, a] { b.deallocate() } }
        for i in 0..<n { (q[i], v[i], a[i]) = (0.1 * Double(i), 0.2, -0.3) }
        let hand = try #require(model.linkIndex(named: "panda_hand"))
        w.forwardKinematics(UnsafeBufferPointer(q))
        let target = w.linkPose(hand)
        func run() {
            w.forwardKinematics(UnsafeBufferPointer(q))
            w.frameJacobian(UnsafeBufferPointer(q), link: hand)
            w.inverseDynamics(UnsafeBufferPointer(q), UnsafeBufferPointer(v), UnsafeBufferPointer(a))
            w.gravityEfforts(UnsafeBufferPointer(q))
            w.computeMassMatrix(UnsafeBufferPointer(q))
            w.forwardDynamics(UnsafeBufferPointer(q), UnsafeBufferPointer(v), UnsafeBufferPointer(w.efforts))
            _ = w.linkPose(hand)
            _ = ik.solve(link: hand, target: target, seed: UnsafeBufferPointer(v))
        }
        run()
        let before = sinew_thread_allocations()
        for _ in 0..<2000 { run() }
        #expect(sinew_thread_allocations() - before == 0)
    }
}

@Suite struct InverseKinematicsTests {
    @Test(arguments: [("panda", "panda_hand"), ("ur5_robot", "tool0"), ("kinova", "j2s6s200_end_effector")])
    func reachesRandomReachableTargets(robot: String, linkName: String) throws {
        let model = try RobotModel(urdf: kinematicsFixture("\(robot).urdf"))
        let w = KinematicsWorkspace(model: model)
        let ik = InverseKinematicsSolver(model: model)
        let link = try #require(model.linkIndex(named: linkName))
        var random = TestRandom(state: 99)
        var successes = 0
        let trials = 200
        for _ in 0..<trials {
            var q = model.joints.map { j in
                j.lowerLimit.isFinite ? random.uniform(j.lowerLimit, j.upperLimit) : random.uniform(-.pi, .pi)
            }
            model.mimicFolding.applyMimic(to: &q)
            w.forwardKinematics(q)
            let target = w.linkPose(link)
            let solution = ik.solve(link: link, target: target, seed: model.midRangePositions)
            guard solution.converged else { continue }
            successes += 1
            // The answer is within limits and really reaches the target.
            let answer = Array(ik.positions)
            for (j, joint) in model.joints.enumerated() {
                #expect(answer[j] >= joint.lowerLimit - 1e-12 && answer[j] <= joint.upperLimit + 1e-12)
            }
            w.forwardKinematics(answer)
            let reached = w.linkPose(link).flat
            for (a, b) in zip(reached, target.flat) { #expect(abs(a - b) < 1e-5) }
        }
        #expect(successes >= trials * 99 / 100, "\(robot): \(successes)/\(trials)")
    }

    @Test func unreachableTargetReportsTheResidual() throws {
        let model = try RobotModel(urdf: kinematicsFixture("ur5_robot.urdf"))
        let ik = InverseKinematicsSolver(model: model)
        var options = ik.options
        options.timeBudgetSeconds = 0.002
        ik.options = options
        let far = RigidTransform(translation: (5, 0, 0), quaternion: (1, 0, 0, 0))
        let tool = try #require(model.linkIndex(named: "tool0"))
        let solution = ik.solve(link: tool, target: far, seed: model.midRangePositions)
        #expect(!solution.converged)
        #expect(solution.positionError > 3)
    }

    @Test func mimicFoldingSumsFollowerColumnsIntoTheirMaster() throws {
        let model = try RobotModel(urdf: kinematicsFixture("panda.urdf"))
        let folding = model.mimicFolding
        #expect(folding.hasMimicJoints && folding.controlCount == model.dofCount - 1)
        let w = KinematicsWorkspace(model: model)
        let q = model.midRangePositions
        let f1 = try #require(model.jointIndex(named: "panda_finger_joint1"))
        let f2 = try #require(model.jointIndex(named: "panda_finger_joint2"))
        #expect(q[f2] == q[f1])
        let rightFinger = try #require(model.linkIndex(named: "panda_rightfinger"))
        w.frameJacobian(q, link: rightFinger)
        var folded = [Double](repeating: 0, count: 6 * folding.controlCount)
        folded.withUnsafeMutableBufferPointer { out in folding.foldJacobian(UnsafeBufferPointer(w.jacobian), into: out)
        }
        let control = try #require(folding.independentJoints.firstIndex(of: f1))
        for r in 0..<6 {
            #expect(
                abs(folded[6 * control + r] - (w.jacobian(row: r, column: f1) + w.jacobian(row: r, column: f2))) < 1e-15
            )
        }
    }
}
