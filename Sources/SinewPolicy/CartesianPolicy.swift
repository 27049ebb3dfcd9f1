import Foundation
import SinewCore
import SinewKinematics

/// Pose goals for one frame of the robot, reached along straight lines: the frame's origin moves on the
/// segment between the two positions and its orientation turns about one fixed axis (the geodesic of SO(3)),
/// both following one time law (minimum jerk or trapezoidal velocity). Every tick the joint targets come from
/// differential inverse kinematics (damped least squares on the frame Jacobian, the joint limits as
/// constraints, a pull toward a rest pose in the null space) driven by the path's twist plus a correction of
/// the measured pose's error, so the frame ends on the goal even where a servo gives under load.
///
/// Planned at activation from the pose the robot is in: each segment's duration is the configured one or
/// longer, stretched to the Cartesian speeds and to the joints' velocity limits along the path; a segment the
/// differential solution cannot follow (through a singularity or a joint limit) goes in joint space instead,
/// to a full inverse-kinematics solution of its goal (both said in ``notices``). Goals out of reach are
/// refused when the policy is made, before any motion.
public final class CartesianPolicy: Policy {
    /// One goal: a position (m, root frame), an orientation (nil: any), and the time to reach it from the
    /// previous goal (s, a lower bound).
    public struct Goal: Sendable, Equatable {
        public var positionM: SIMD3<Double>
        public var orientation: Rotation3?
        public var durationS: Double
        public init(positionM: SIMD3<Double>, orientation: Rotation3? = nil, durationS: Double = 0) {
            self.positionM = positionM
            self.orientation = orientation
            self.durationS = durationS
        }
    }

    /// How the path parameter goes from 0 to 1 over a segment.
    public enum TimeLaw: String, Sendable, CaseIterable {
        /// 10τ³ − 15τ⁴ + 6τ⁵: zero velocity and acceleration at both ends; peak speed 1.875 × the mean.
        case minimumJerk = "minimum_jerk"
        /// Constant acceleration for a third of the segment, constant speed, constant deceleration; peak
        /// speed 1.5 × the mean.
        case trapezoidal

        var peakSpeedFactor: Double { self == .minimumJerk ? 1.875 : 1.5 }

        /// s and ds/dτ at τ ∈ [0, 1].
        @inline(__always) func evaluate(_ tau: Double) -> (s: Double, rate: Double) {
            let t = max(0, min(1, tau))
            switch self {
            case .minimumJerk:
                let t2 = t * t
                return (t2 * t * (10 - 15 * t + 6 * t2), 30 * t2 * (1 - 2 * t + t2))
            case .trapezoidal:
                if t < 1.0 / 3 { return (2.25 * t * t, 4.5 * t) }
                if t > 2.0 / 3 { return (1 - 2.25 * (1 - t) * (1 - t), 4.5 * (1 - t)) }
                return (0.25 + 1.5 * (t - 1.0 / 3), 1.5)
            }
        }
    }

    public struct Settings: Sendable, Equatable {
        /// The URDF link whose origin and orientation are controlled.
        public var frame: String
        public var goals: [Goal]
        public var timeLaw: TimeLaw = .minimumJerk
        /// After the last goal, go back to the first and repeat.
        public var loops = false
        /// Peak Cartesian speeds along a segment: m/s and rad/s.
        public var linearSpeedMPerS = 0.2
        public var angularSpeedRadPerS = 1.0
        /// How fast the measured pose's error is corrected (1/s).
        public var feedbackGainPerS = 5.0
        /// Pull toward the rest pose in the null space (1/s); the rest pose is the activation pose unless
        /// given (rad, per joint).
        public var nullSpaceGainPerS = 0.5
        public var restRad: [Double]?
        /// Damping of the least squares (see ``DifferentialIK``).
        public var dampingLambda = 0.02
        public init(frame: String, goals: [Goal]) {
            self.frame = frame
            self.goals = goals
        }
    }

    public let typeName = "cartesian"
    public let commands: [PolicyJointCommand]
    public private(set) var notices: [String] = []
    public let settings: Settings
    let kinematics: PolicyKinematics
    let ik: DifferentialIK
    let link: Int
    let periodS: Double
    /// The fraction of each joint's velocity limit a plan uses (the feedback needs the rest).
    static let jointSpeedFraction = 0.8
    /// Path samples when planning a segment.
    static let planSamples = 400

    struct Segment {
        var startS = 0.0
        var endS = 0.0
        var jointSpace = false
        var positionOnly = false
        var p0 = SIMD3<Double>.zero
        var p1 = SIMD3<Double>.zero
        var r0 = Rotation3.identity
        /// Rotation vector of r0ᵀ r1 (body frame of r0).
        var omega = SIMD3<Double>.zero
    }

    var segments: [Segment]
    /// Joint-space segments' start and end configurations (segments × joints).
    let jointStart: UnsafeMutableBufferPointer<Double>
    let jointEnd: UnsafeMutableBufferPointer<Double>
    /// The commanded configuration the differential solution integrates, and the rest pose.
    let commandRad: UnsafeMutableBufferPointer<Double>
    let restRad: UnsafeMutableBufferPointer<Double>
    let scratchRad: UnsafeMutableBufferPointer<Double>
    /// Joint configurations solving each goal, found when the policy was made (reachability).
    public private(set) var goalSolutionsRad: [[Double]] = []
    var lastTimeNs: Int64 = -1
    /// The segment the last tick was in, and the offset a joint-space segment adds to its planned
    /// configuration: where the command was when it began, corrected since by the measured pose's error.
    var activeSegment = -1
    let correctionRad: UnsafeMutableBufferPointer<Double>
    var loopStartS = 0.0
    var loopLengthS = 0.0

    /// - Parameters:
    ///   - jointNames: the robot's joints, robot.yaml order; all are commanded by position.
    ///   - limits: per joint: the range the commands stay in (rad) and the speed limit (rad/s).
    ///   - loopRateHz: the loop's rate (the integration step).
    public init(
        model: RobotModel, jointNames: [String], settings: Settings,
        limits: [(lowerRad: Double, upperRad: Double, velocityRadPerS: Double)], loopRateHz: Double
    ) throws(CartesianPolicyError) {
        self.settings = settings
        do {
            kinematics = try PolicyKinematics(model: model, jointNames: jointNames)
        } catch {
            throw CartesianPolicyError(goal: nil, message: error.description)
        }
        guard let link = model.linkIndex(named: settings.frame) else {
            throw CartesianPolicyError(goal: nil, message: "frame \"\(settings.frame)\" is not a link of \(model.file)")
        }
        guard !settings.goals.isEmpty else { throw CartesianPolicyError(goal: nil, message: "no goals") }
        self.link = link
        periodS = 1 / loopRateHz
        let n = jointNames.count
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
        ik = DifferentialIK(jointCount: n, dampingLambda: settings.dampingLambda)
        for (j, limit) in limits.prefix(n).enumerated() {
            ik.lowerRad[j] = limit.lowerRad
            ik.upperRad[j] = limit.upperRad
            ik.velocityLimitRadPerS[j] = limit.velocityRadPerS
        }
        let count = settings.goals.count + (settings.loops && settings.goals.count > 1 ? 1 : 0)
        segments = [Segment](repeating: Segment(), count: count)
        func doubles(_ c: Int) -> UnsafeMutableBufferPointer<Double> {
            let b = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(1, c))
            b.initialize(repeating: 0)
            return b
        }
        jointStart = doubles(count * n)
        jointEnd = doubles(count * n)
        commandRad = doubles(n)
        restRad = doubles(n)
        scratchRad = doubles(n)
        correctionRad = doubles(n)
        goalSolutionsRad = try solveGoals(model: model)
    }

    deinit {
        jointStart.deallocate()
        jointEnd.deallocate()
        commandRad.deallocate()
        restRad.deallocate()
        scratchRad.deallocate()
        correctionRad.deallocate()
    }

    var jointCount: Int { kinematics.jointCount }

    /// When the last goal is reached (s from activation), once planned at activation: one pass when looping.
    public var plannedPassS: Double { segments.last?.endS ?? 0 }

    /// When the last goal is reached (s from activation), once planned; nil when looping.
    public var plannedDurationS: Double? { settings.loops ? nil : plannedPassS }

    // MARK: Reachability (when made)

    /// A configuration reaching every goal, each seeded from the one before: the goal is out of reach when
    /// none is found from many starts.
    private func solveGoals(model: RobotModel) throws(CartesianPolicyError) -> [[Double]] {
        let n = jointCount
        let solver = InverseKinematicsSolver(model: model)
        solver.options.timeBudgetSeconds = 0.2
        solver.options.tolerance = 1e-5
        var seed = (0..<n).map { j in
            let (lo, hi) = (ik.lowerRad[j], ik.upperRad[j])
            return lo.isFinite && hi.isFinite ? (lo + hi) / 2 : 0
        }
        var solutions: [[Double]] = []
        for (g, goal) in settings.goals.enumerated() {
            guard let q = solve(goal, seed: seed, solver: solver) else {
                let closest = closestDistance(goal, seed: seed)
                throw CartesianPolicyError(
                    goal: g,
                    message: "goal \(g + 1) (position [\(goal.positionM.x), \(goal.positionM.y), \(goal.positionM.z)] m"
                        + (goal.orientation == nil ? "" : " with its orientation")
                        + ") is out of reach of \(settings.frame): the closest the joints' ranges allow is "
                        + "\(Int((closest * 1000).rounded())) mm away")
            }
            solutions.append(q)
            seed = q
        }
        return solutions
    }

    /// A configuration (robot.yaml joints) reaching `goal` within 0.5 mm and 0.5°, inside the joints'
    /// ranges, or nil.
    func solve(_ goal: Goal, seed: [Double], solver: InverseKinematicsSolver) -> [Double]? {
        let n = jointCount
        // The nearest solution first: the differential solution iterated from the seed.
        if let q = refine(goal, from: seed) { return q }
        if let orientation = goal.orientation {
            var urdfSeed = [Double](repeating: 0, count: kinematics.model.dofCount)
            for j in 0..<n { urdfSeed[kinematics.urdfIndex[j]] = seed[j] }
            let target = RigidTransform(rotation: orientation, translationM: goal.positionM)
            let solution = solver.solve(link: link, target: target, seed: urdfSeed)
            let q = (0..<n).map { solver.positions[kinematics.urdfIndex[$0]] }
            guard solution.positionError <= 5e-4, solution.rotationError <= 0.5 * .pi / 180 else {
                return refine(goal, from: q)
            }
            return withinRanges(q) ? q : refine(goal, from: q)
        }
        // Position only: the differential solution iterated from spread-out starts.
        var generator = SplitMix64(seed: 0x5EED)
        for _ in 0..<40 {
            let start = (0..<n).map { j in
                let (lo, hi) = (ik.lowerRad[j], ik.upperRad[j])
                let (a, b) = lo.isFinite && hi.isFinite ? (lo, hi) : (-Double.pi, Double.pi)
                return a + (b - a) * generator.uniform(0...1)
            }
            if let q = refine(goal, from: start) { return q }
        }
        return nil
    }

    private func withinRanges(_ q: [Double]) -> Bool {
        q.indices.allSatisfy { q[$0] >= ik.lowerRad[$0] - 1e-9 && q[$0] <= ik.upperRad[$0] + 1e-9 }
    }

    /// Iterates the differential solution toward `goal` from `q` inside the ranges; the configuration when it
    /// reaches it within 0.5 mm and 0.5°, or nil.
    private func refine(_ goal: Goal, from q: [Double]) -> [Double]? {
        let n = jointCount
        for j in 0..<n { scratchRad[j] = min(max(q[j], ik.lowerRad[j]), ik.upperRad[j]) }
        for _ in 0..<300 {
            let error = poseError(at: scratchRad, position: goal.positionM, orientation: goal.orientation)
            if error.position <= 5e-4 && error.rotation <= 0.5 * .pi / 180 {
                return (0..<n).map { scratchRad[$0] }
            }
            for j in 0..<n { ik.nullSpaceRadPerS[j] = 0 }
            kinematics.computeJacobian(link: link)
            ik.solve(
                jacobian: kinematics.jacobian, positionRad: scratchRad, rows: goal.orientation == nil ? 3 : 6, dtS: 1)
            for j in 0..<n { scratchRad[j] += ik.jointVelocityRadPerS[j] }
        }
        return nil
    }

    /// The distance (m) of the closest position reached from the seed by the differential solution.
    private func closestDistance(_ goal: Goal, seed: [Double]) -> Double {
        var best = Double.infinity
        var generator = SplitMix64(seed: 0xC105E)
        var start = seed
        for _ in 0..<20 {
            let n = jointCount
            for j in 0..<n { scratchRad[j] = min(max(start[j], ik.lowerRad[j]), ik.upperRad[j]) }
            for _ in 0..<200 {
                let error = poseError(at: scratchRad, position: goal.positionM, orientation: nil)
                best = min(best, error.position)
                for j in 0..<n { ik.nullSpaceRadPerS[j] = 0 }
                kinematics.computeJacobian(link: link)
                ik.solve(jacobian: kinematics.jacobian, positionRad: scratchRad, rows: 3, dtS: 1)
                for j in 0..<n { scratchRad[j] += ik.jointVelocityRadPerS[j] }
            }
            start = (0..<n).map { j in
                let (lo, hi) = (ik.lowerRad[j], ik.upperRad[j])
                let (a, b) = lo.isFinite && hi.isFinite ? (lo, hi) : (-Double.pi, Double.pi)
                return a + (b - a) * generator.uniform(0...1)
            }
        }
        return best
    }

    /// Sets the kinematics to `q`, fills the twist with the pose error toward the target (translation m, then
    /// rotation vector rad, root frame) and returns its two norms.
    @discardableResult
    func poseError(at q: UnsafeMutableBufferPointer<Double>, position: SIMD3<Double>, orientation: Rotation3?)
        -> (position: Double, rotation: Double)
    {
        kinematics.setPositions(q)
        let pose = kinematics.linkPose(link)
        let dp = position - pose.translationVector
        ik.twist[0] = dp.x
        ik.twist[1] = dp.y
        ik.twist[2] = dp.z
        var rotation = 0.0
        if let orientation {
            let dr = (orientation * Rotation3(pose).transposed).log
            ik.twist[3] = dr.x
            ik.twist[4] = dr.y
            ik.twist[5] = dr.z
            rotation = (dr * dr).sum().squareRoot()
        }
        return ((dp * dp).sum().squareRoot(), rotation)
    }

    // MARK: Planning (at activation and recovery)

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        let n = jointCount
        for j in 0..<n {
            commandRad[j] = observation.positionRad[j]
            restRad[j] = settings.restRad?[j] ?? observation.positionRad[j]
        }
        plan(from: observation.positionRad)
        lastTimeNs = -1
        activeSegment = -1
    }

    private func plan(from start: UnsafeMutableBufferPointer<Double>) {
        let n = jointCount
        var notes: [String] = []
        var q = (0..<n).map { start[$0] }
        for j in 0..<n { scratchRad[j] = q[j] }
        kinematics.setPositions(scratchRad)
        var pose = kinematics.linkPose(link)
        var position = pose.translationVector
        var rotation = Rotation3(pose)
        var time = 0.0
        let goals = settings.goals
        for s in segments.indices {
            let goal = s < goals.count ? goals[s] : goals[0]
            let label = s < goals.count ? "goal \(s + 1)" : "the way back to goal 1"
            var segment = Segment()
            segment.startS = time
            segment.positionOnly = goal.orientation == nil
            segment.p0 = position
            segment.p1 = goal.positionM
            segment.r0 = rotation
            segment.omega = goal.orientation.map { (rotation.transposed * $0).log } ?? .zero
            let law = settings.timeLaw
            let length = ((segment.p1 - segment.p0) * (segment.p1 - segment.p0)).sum().squareRoot()
            let angle = (segment.omega * segment.omega).sum().squareRoot()
            var duration = max(
                goal.durationS, law.peakSpeedFactor * length / settings.linearSpeedMPerS,
                law.peakSpeedFactor * angle / settings.angularSpeedRadPerS)
            let configured = goal.durationS
            // Follow the straight line with the differential solution, as the tick will.
            let path = followLine(segment, from: q)
            let endQ: [Double]
            if let path, path.deviationM <= 0.003, path.deviationRad <= 3 * .pi / 180 {
                endQ = path.endRad
                var jointLimited = duration
                for j in 0..<n where ik.velocityLimitRadPerS[j].isFinite {
                    jointLimited = max(
                        jointLimited,
                        law.peakSpeedFactor * path.peakJointRatePerPath[j]
                            / (Self.jointSpeedFraction * ik.velocityLimitRadPerS[j]))
                }
                duration = jointLimited
            } else {
                // Far or awkward: a full inverse-kinematics solution, reached in joint space.
                let solver = InverseKinematicsSolver(model: kinematics.model)
                solver.options.timeBudgetSeconds = 0.05
                endQ = solve(goal, seed: q, solver: solver) ?? goalSolutionsRad[s < goals.count ? s : 0]
                segment.jointSpace = true
                for j in 0..<n where ik.velocityLimitRadPerS[j].isFinite {
                    duration = max(
                        duration,
                        law.peakSpeedFactor * abs(endQ[j] - q[j])
                            / (Self.jointSpeedFraction * ik.velocityLimitRadPerS[j]))
                }
                notes.append(
                    "cartesian: \(label) is reached in joint space (a straight line there leaves the arm's reach "
                        + "or a joint's range)")
            }
            if duration > configured * (1 + 1e-9) && configured > 0 {
                notes.append(
                    "cartesian: the segment to \(label) takes \(Self.seconds(duration)) instead of "
                        + "\(Self.seconds(configured)) to stay within the speed limits")
            }
            for j in 0..<n {
                jointStart[s * n + j] = q[j]
                jointEnd[s * n + j] = endQ[j]
            }
            time += duration
            segment.endS = time
            segments[s] = segment
            q = endQ
            for j in 0..<n { scratchRad[j] = q[j] }
            kinematics.setPositions(scratchRad)
            pose = kinematics.linkPose(link)
            position = segment.jointSpace ? pose.translationVector : goal.positionM
            rotation = goal.orientation ?? Rotation3(pose)
        }
        loopStartS = segments.count > 1 ? segments[0].endS : 0
        loopLengthS = time - loopStartS
        notices = notes
    }

    private static func seconds(_ s: Double) -> String { "\((s * 1000).rounded() / 1000) s" }

    /// The joints' path along a segment's line by the differential solution from `q`: its end, the largest
    /// joint motion per unit of path parameter (rad), and how far the frame strayed from the line. Nil when it
    /// does not end on the goal.
    private func followLine(_ segment: Segment, from q: [Double]) -> (
        endRad: [Double], peakJointRatePerPath: [Double], deviationM: Double, deviationRad: Double
    )? {
        let n = jointCount
        for j in 0..<n { scratchRad[j] = q[j] }
        var peak = [Double](repeating: 0, count: n)
        var deviationM = 0.0
        var deviationRad = 0.0
        let steps = Self.planSamples
        for k in 1...(steps + 60) {
            let s = min(1, Double(k) / Double(steps))
            let target = segment.p0 + s * (segment.p1 - segment.p0)
            let orientation = segment.positionOnly ? nil : Optional(segment.r0 * Rotation3.exp(s * segment.omega))
            let error = poseError(at: scratchRad, position: target, orientation: orientation)
            if k > 1 && k <= steps + 1 {
                deviationM = max(deviationM, error.position)
                deviationRad = max(deviationRad, error.rotation)
            }
            for j in 0..<n { ik.nullSpaceRadPerS[j] = 0 }
            kinematics.computeJacobian(link: link)
            ik.solve(jacobian: kinematics.jacobian, positionRad: scratchRad, rows: segment.positionOnly ? 3 : 6, dtS: 1)
            for j in 0..<n {
                scratchRad[j] += ik.jointVelocityRadPerS[j]
                if k <= steps { peak[j] = max(peak[j], abs(ik.jointVelocityRadPerS[j]) * Double(steps)) }
            }
        }
        let final = poseError(
            at: scratchRad, position: segment.p1,
            orientation: segment.positionOnly ? nil : Optional(segment.r0 * Rotation3.exp(segment.omega)))
        guard final.position <= 5e-4 && final.rotation <= 0.5 * .pi / 180 else { return nil }
        return ((0..<n).map { scratchRad[$0] }, peak, deviationM, deviationRad)
    }

    // MARK: The tick

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let n = jointCount
        let dt = lastTimeNs < 0 ? 0 : Double(observation.timeNs - lastTimeNs) * 1e-9
        lastTimeNs = observation.timeNs
        var t = Double(observation.timeNs) * 1e-9
        let count = segments.count
        if settings.loops && count > 1 && t > segments[count - 1].endS && loopLengthS > 0 {
            t = loopStartS + (t - loopStartS).truncatingRemainder(dividingBy: loopLengthS)
        }
        var index = 0
        while index < count - 1 && t > segments[index].endS { index += 1 }
        let segment = segments[index]
        let duration = segment.endS - segment.startS
        let (s, rate) = settings.timeLaw.evaluate(duration > 0 ? (t - segment.startS) / duration : 1)
        let sDot = duration > 0 ? rate / duration : 0
        if index != activeSegment {
            // Entering a segment: a joint-space one starts from where the command is, not where it was planned.
            for j in 0..<n { correctionRad[j] = segment.jointSpace ? commandRad[j] - jointStart[index * n + j] : 0 }
            activeSegment = index
        }
        let target: SIMD3<Double>
        let orientation: Rotation3?
        var v = SIMD3<Double>.zero
        var w = SIMD3<Double>.zero
        if segment.jointSpace {
            // The planned configuration, its pose the target of the same correction as on a line.
            for j in 0..<n {
                let a = jointStart[index * n + j]
                scratchRad[j] = a + s * (jointEnd[index * n + j] - a)
            }
            kinematics.setPositions(scratchRad)
            let pose = kinematics.linkPose(link)
            target = pose.translationVector
            orientation = segment.positionOnly ? nil : Rotation3(pose)
        } else {
            target = segment.p0 + s * (segment.p1 - segment.p0)
            orientation = segment.positionOnly ? nil : segment.r0 * Rotation3.exp(s * segment.omega)
            v = sDot * (segment.p1 - segment.p0)
            w = segment.r0.apply(sDot * segment.omega)
        }
        poseError(at: observation.positionRad, position: target, orientation: orientation)
        let k = settings.feedbackGainPerS
        ik.twist[0] = v.x + k * ik.twist[0]
        ik.twist[1] = v.y + k * ik.twist[1]
        ik.twist[2] = v.z + k * ik.twist[2]
        if !segment.positionOnly {
            ik.twist[3] = w.x + k * ik.twist[3]
            ik.twist[4] = w.y + k * ik.twist[4]
            ik.twist[5] = w.z + k * ik.twist[5]
        }
        let rows = segment.positionOnly ? 3 : 6
        if segment.jointSpace {
            // Only the correction moves in the differential solution; the plan carries the motion.
            for j in 0..<n { ik.nullSpaceRadPerS[j] = 0 }
            kinematics.computeJacobian(link: link)
            ik.solve(jacobian: kinematics.jacobian, positionRad: commandRad, rows: rows, dtS: max(dt, periodS))
            for j in 0..<n {
                correctionRad[j] += ik.jointVelocityRadPerS[j] * dt
                commandRad[j] = scratchRad[j] + correctionRad[j]
                command.positionRad[j] = commandRad[j]
            }
            return
        }
        for j in 0..<n { ik.nullSpaceRadPerS[j] = settings.nullSpaceGainPerS * (restRad[j] - commandRad[j]) }
        kinematics.computeJacobian(link: link)
        ik.solve(jacobian: kinematics.jacobian, positionRad: commandRad, rows: rows, dtS: max(dt, periodS))
        for j in 0..<n {
            commandRad[j] += ik.jointVelocityRadPerS[j] * dt
            command.positionRad[j] = commandRad[j]
        }
    }
}

/// Why a Cartesian policy cannot be made: which goal (0-based), and what is wrong.
public struct CartesianPolicyError: Error, Sendable, CustomStringConvertible {
    public let goal: Int?
    public let message: String
    public var description: String { message }
}
