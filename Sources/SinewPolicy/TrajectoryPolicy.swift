/// Waypoints in joint space joined by minimum-jerk segments (zero velocity and acceleration at every
/// waypoint), time-parameterised within each joint's velocity and acceleration limits: a waypoint's duration
/// is a lower bound, and a segment too fast for a joint is stretched (``notices`` says which and why). The
/// first segment starts from wherever the robot was activated, at no more than half the velocity limit.
/// Looping repeats the waypoints after the first.
public final class TrajectoryPolicy: Policy {
    public let typeName = "trajectory"
    public let commands: [PolicyJointCommand]
    public private(set) var notices: [String] = []

    /// One waypoint: a position per joint (rad, robot.yaml order) and the time to reach it from the one before
    /// (s, > 0; a lower bound).
    public struct Waypoint: Sendable, Equatable {
        public var positionsRad: [Double]
        public var durationS: Double
        public init(positionsRad: [Double], durationS: Double) {
            self.positionsRad = positionsRad
            self.durationS = durationS
        }
    }

    /// A joint's limits for the time law: rad/s and rad/s² (infinity: none).
    public struct JointLimits: Sendable, Equatable {
        public var velocityRadPerS: Double
        public var accelerationRadPerS2: Double
        public init(velocityRadPerS: Double = .infinity, accelerationRadPerS2: Double = .infinity) {
            self.velocityRadPerS = velocityRadPerS
            self.accelerationRadPerS2 = accelerationRadPerS2
        }
    }

    /// A minimum-jerk move of length Δ over T peaks at 1.875 Δ/T in velocity and 10/√3 Δ/T² in acceleration.
    static let peakVelocityFactor = 1.875
    static let peakAccelerationFactor = 10 / 3.0.squareRoot()
    /// The approach from an unknown pose uses at most this fraction of each limit.
    static let approachLimitFraction = 0.5

    let jointNames: [String]
    let limits: [JointLimits]
    let waypoints: [UnsafeMutableBufferPointer<Double>]
    let start: UnsafeMutableBufferPointer<Double>
    /// End time of each segment (s from activation); segment 0 is the approach from the start pose.
    var segmentEndS: [Double]
    let configuredFirstS: Double
    public let loops: Bool

    /// The length of one pass with the first segment as configured (s): the approach may add to it.
    public let nominalDurationS: Double
    /// How long the approach from the activation pose to the first waypoint takes (s), once reset.
    public private(set) var approachS = 0.0

    /// The time of the last waypoint (s from activation, the approach included), once reset; nil when looping.
    public var plannedDurationS: Double? { loops ? nil : segmentEndS.last }

    public init(jointNames: [String], waypoints: [Waypoint], loops: Bool, limits: [JointLimits]) {
        precondition(!waypoints.isEmpty && limits.count == jointNames.count, "waypoints and one limit per joint")
        self.jointNames = jointNames
        self.limits = limits
        self.loops = loops
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
        let n = max(1, jointNames.count)
        self.waypoints = waypoints.map { waypoint in
            let p = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
            _ = p.initialize(from: waypoint.positionsRad)
            return p
        }
        start = .allocate(capacity: n)
        start.initialize(repeating: 0)
        configuredFirstS = waypoints[0].durationS
        var ends: [Double] = []
        var t = 0.0
        var stretchNotices: [String] = []
        for (i, waypoint) in waypoints.enumerated() {
            var duration = waypoint.durationS
            if i > 0 {
                let (needed, joint, reason) = Self.shortestDuration(
                    from: waypoints[i - 1].positionsRad, to: waypoint.positionsRad, limits: limits, fraction: 1)
                if needed > duration * (1 + 1e-9) {
                    stretchNotices.append(
                        "trajectory: segment to waypoint \(i + 1) stretched from \(Self.seconds(duration)) to "
                            + "\(Self.seconds(needed)): joint \(jointNames[joint]) would exceed its \(reason)")
                    duration = needed
                }
            }
            t += duration
            ends.append(t)
        }
        segmentEndS = ends
        nominalDurationS = t
        notices = stretchNotices
    }

    deinit {
        for p in waypoints { p.deallocate() }
        start.deallocate()
    }

    private static func seconds(_ s: Double) -> String { "\((s * 1000).rounded() / 1000) s" }

    /// The shortest minimum-jerk duration (s) from `a` to `b` within `fraction` of every limit, with the joint
    /// and the limit that sets it.
    static func shortestDuration(from a: [Double], to b: [Double], limits: [JointLimits], fraction: Double) -> (
        Double, Int, String
    ) {
        var best = 0.0
        var joint = 0
        var reason = ""
        for j in 0..<limits.count {
            let distance = abs(b[j] - a[j])
            let v = limits[j].velocityRadPerS * fraction
            let acc = limits[j].accelerationRadPerS2 * fraction
            if v.isFinite && v > 0 {
                let t = peakVelocityFactor * distance / v
                if t > best { (best, joint, reason) = (t, j, "velocity limit \(v) rad/s") }
            }
            if acc.isFinite && acc > 0 {
                let t = (peakAccelerationFactor * distance / acc).squareRoot()
                if t > best { (best, joint, reason) = (t, j, "acceleration limit \(acc) rad/s²") }
            }
        }
        return (best, joint, reason)
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        for j in 0..<jointNames.count { start[j] = observation.positionRad[j] }
        // The approach starts from an unknown pose: half of each limit, and 1 rad/s for a joint without one.
        var needed = configuredFirstS
        let first = waypoints[0]
        for j in 0..<jointNames.count {
            let distance = abs(first[j] - start[j])
            let v = limits[j].velocityRadPerS
            let speed = v.isFinite && v > 0 ? Self.approachLimitFraction * v : 1.0
            needed = max(needed, Self.peakVelocityFactor * distance / speed)
            let acc = limits[j].accelerationRadPerS2 * Self.approachLimitFraction
            if acc.isFinite && acc > 0 {
                needed = max(needed, (Self.peakAccelerationFactor * distance / acc).squareRoot())
            }
        }
        approachS = needed
        let shift = approachS - segmentEndS[0]
        for i in 0..<segmentEndS.count { segmentEndS[i] += shift }
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let ends = segmentEndS
        let count = ends.count
        var time = Double(observation.timeNs) * 1e-9
        let total = ends[count - 1]
        if loops && time > total && total > ends[0] {
            // Loop over the waypoints after the approach from the start pose.
            time = ends[0] + (time - ends[0]).truncatingRemainder(dividingBy: total - ends[0])
        }
        var segment = 0
        while segment < count - 1 && time > ends[segment] { segment += 1 }
        let segmentStart = segment == 0 ? 0 : ends[segment - 1]
        let duration = ends[segment] - segmentStart
        let s = duration > 0 ? max(0, min(1, (time - segmentStart) / duration)) : 1
        let blend = s * s * s * (10 - 15 * s + 6 * s * s)
        let end = waypoints[segment]
        let from = segment == 0 ? start : waypoints[segment - 1]
        for j in 0..<jointNames.count { command.positionRad[j] = from[j] + blend * (end[j] - from[j]) }
    }
}
