import Foundation
import SinewCore
import SinewKinematics

/// What a person asks a jogged frame to do: per axis (x, y, z, roll, pitch, yaw) a value in [−1, 1], a fraction
/// of the jog speed. Two sources may write it at once — the terminal's keys and a joystick — each through a
/// hand-off of its own (lock-free; the tick never waits), and the tick adds them. A source's command lapses
/// at its expiry (CLOCK_MONOTONIC ns): a key held down repeats, a key let go lapses, a vanished joystick
/// stops writing.
public final class JogInput: @unchecked Sendable {
    // @unchecked: each channel has one writer thread and one reader (the tick); they meet in triple buffers.
    /// One source's command.
    public final class Command: @unchecked Sendable {
        public var axes: (Double, Double, Double, Double, Double, Double) = (0, 0, 0, 0, 0, 0)
        /// When it lapses (CLOCK_MONOTONIC ns); `Int64.max`: never.
        public var expiresAtNs: Int64 = 0
        public init() {}
        func copy(from other: Command) {
            axes = other.axes
            expiresAtNs = other.expiresAtNs
        }
    }

    /// The channels: keys, joystick, and one for programs (tests, a network source).
    public enum Source: Int, Sendable, CaseIterable {
        case keyboard, joystick, program
    }

    private let channels: [TripleBuffer<Command>]

    public init() {
        channels = Source.allCases.map { _ in TripleBuffer { Command() } }
    }

    /// Sets one source's command (its writer thread only).
    public func set(
        _ source: Source, axes: (Double, Double, Double, Double, Double, Double), expiresAtNs: Int64 = .max
    ) {
        let channel = channels[source.rawValue]
        channel.writeSlot.axes = axes
        channel.writeSlot.expiresAtNs = expiresAtNs
        channel.publish()
    }

    /// The sum of the sources' live commands, each axis clamped to [−1, 1] (the tick; allocation-free).
    public func read(nowNs: Int64) -> (Double, Double, Double, Double, Double, Double) {
        var sum = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for channel in channels {
            channel.take()
            let command = channel.readSlot
            guard command.expiresAtNs > nowNs else { continue }
            sum.0 += command.axes.0
            sum.1 += command.axes.1
            sum.2 += command.axes.2
            sum.3 += command.axes.3
            sum.4 += command.axes.4
            sum.5 += command.axes.5
        }
        func clamp(_ v: Double) -> Double { v.isFinite ? min(max(v, -1), 1) : 0 }
        return (clamp(sum.0), clamp(sum.1), clamp(sum.2), clamp(sum.3), clamp(sum.4), clamp(sum.5))
    }
}

/// Cartesian jogging of one frame: the person's command (``JogInput``: keys, a joystick) is a twist — up to
/// `linearSpeedMPerS` along x, y, z and `angularSpeedRadPerS` about them, in the root frame or the frame's own
/// — turned into joint motion by differential inverse kinematics (damped least squares, the joint limits as
/// constraints, a pull toward the activation pose in the null space). The twist changes within an
/// acceleration limit, so a key pressed or let go never steps the arm. The supervisor's joint and workspace
/// limits stay in force. Nothing asked: the arm holds where it is.
public final class JogPolicy: Policy {
    /// Which frame the twist's axes are in.
    public enum AxesFrame: String, Sendable, CaseIterable {
        /// The URDF root (the robot's base): x forward, z up as the URDF sets them.
        case base
        /// The jogged frame itself (tool coordinates).
        case tool
    }

    public struct Settings: Sendable, Equatable {
        public var frame: String
        public var linearSpeedMPerS = 0.05
        public var angularSpeedRadPerS = 0.3
        public var axesFrame = AxesFrame.base
        /// How fast the twist may change: m/s² and rad/s².
        public var linearAccelerationMPerS2 = 0.5
        public var angularAccelerationRadPerS2 = 3.0
        public var nullSpaceGainPerS = 0.5
        public var dampingLambda = 0.02
        public init(frame: String) { self.frame = frame }
    }

    public let typeName = "jog"
    public let commands: [PolicyJointCommand]
    public let settings: Settings
    public let input: JogInput
    /// What feeds ``input`` besides the caller (a joystick reader), kept as long as the policy.
    public var inputSources: [AnyObject] = []
    /// Lines for the run's start (the joystick found, the keys).
    public var extraNotices: [String] = []
    public var notices: [String] {
        [
            "jog: \(settings.frame) at up to \(settings.linearSpeedMPerS) m/s and \(settings.angularSpeedRadPerS) "
                + "rad/s, axes in the \(settings.axesFrame == .base ? "robot's base" : "tool's own") frame"
        ] + extraNotices
    }
    let kinematics: PolicyKinematics
    let ik: DifferentialIK
    let link: Int
    let periodS: Double
    let commandRad: UnsafeMutableBufferPointer<Double>
    let restRad: UnsafeMutableBufferPointer<Double>
    var twist = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    var lastTimeNs: Int64 = -1
    /// The pose the frame is asked to be at: the twist integrated from the activation pose. The measured pose's
    /// error from it is corrected like the `cartesian` policy's, so the axes not jogged hold even where a servo
    /// gives under load; it never runs more than `maximumLeadM` / `maximumLeadRad` ahead of the measured pose
    /// (jogging into a limit does not wind it up).
    var targetPositionM = SIMD3<Double>.zero
    var targetRotation = Rotation3.identity
    static let maximumLeadM = 0.02
    static let maximumLeadRad = 0.1
    static let feedbackGainPerS = 5.0
    /// Reads the wall clock for the inputs' expiry (a lockstep run's loop time is simulated).
    let wallClockNs: @Sendable () -> Int64

    /// - Parameters:
    ///   - limits: per joint: the range commands stay in (rad) and the speed limit (rad/s).
    ///   - wallClockNs: CLOCK_MONOTONIC now, for the inputs' expiry (tests may pass their own).
    public init(
        model: RobotModel, jointNames: [String], settings: Settings, input: JogInput,
        limits: [(lowerRad: Double, upperRad: Double, velocityRadPerS: Double)], loopRateHz: Double,
        wallClockNs: @escaping @Sendable () -> Int64 = JogPolicy.monotonicNowNs
    ) throws(CartesianPolicyError) {
        self.settings = settings
        self.input = input
        self.wallClockNs = wallClockNs
        do {
            kinematics = try PolicyKinematics(model: model, jointNames: jointNames)
        } catch {
            throw CartesianPolicyError(goal: nil, message: error.description)
        }
        guard let link = model.linkIndex(named: settings.frame) else {
            throw CartesianPolicyError(goal: nil, message: "frame \"\(settings.frame)\" is not a link of \(model.file)")
        }
        self.link = link
        periodS = 1 / loopRateHz
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
        let n = jointNames.count
        ik = DifferentialIK(jointCount: n, dampingLambda: settings.dampingLambda)
        for (j, limit) in limits.prefix(n).enumerated() {
            ik.lowerRad[j] = limit.lowerRad
            ik.upperRad[j] = limit.upperRad
            ik.velocityLimitRadPerS[j] = limit.velocityRadPerS
        }
        commandRad = .allocate(capacity: max(1, n))
        commandRad.initialize(repeating: 0)
        restRad = .allocate(capacity: max(1, n))
        restRad.initialize(repeating: 0)
    }

    deinit {
        commandRad.deallocate()
        restRad.deallocate()
    }

    /// CLOCK_MONOTONIC now, ns (the clock ``JogInput`` expiries are on).
    @Sendable public static func monotonicNowNs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        for j in 0..<kinematics.jointCount {
            commandRad[j] = observation.positionRad[j]
            restRad[j] = observation.positionRad[j]
        }
        twist = (0, 0, 0, 0, 0, 0)
        lastTimeNs = -1
        kinematics.setPositions(observation.positionRad)
        let pose = kinematics.linkPose(link)
        targetPositionM = pose.translationVector
        targetRotation = Rotation3(pose)
    }

    @inline(__always) private static func approach(_ value: Double, _ target: Double, _ maxChange: Double) -> Double {
        value + min(max(target - value, -maxChange), maxChange)
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let n = kinematics.jointCount
        let dt = lastTimeNs < 0 ? 0 : Double(observation.timeNs - lastTimeNs) * 1e-9
        lastTimeNs = observation.timeNs
        let asked = input.read(nowNs: wallClockNs())
        let speed = settings.linearSpeedMPerS
        let turnRate = settings.angularSpeedRadPerS
        var target = (
            asked.0 * speed, asked.1 * speed, asked.2 * speed, asked.3 * turnRate, asked.4 * turnRate,
            asked.5 * turnRate
        )
        kinematics.setPositions(observation.positionRad)
        let measured = kinematics.linkPose(link)
        let measuredRotation = Rotation3(measured)
        if settings.axesFrame == .tool {
            let linear = targetRotation.apply(SIMD3(target.0, target.1, target.2))
            let angular = targetRotation.apply(SIMD3(target.3, target.4, target.5))
            target = (linear.x, linear.y, linear.z, angular.x, angular.y, angular.z)
        }
        let dv = settings.linearAccelerationMPerS2 * dt
        let dw = settings.angularAccelerationRadPerS2 * dt
        twist.0 = Self.approach(twist.0, target.0, dv)
        twist.1 = Self.approach(twist.1, target.1, dv)
        twist.2 = Self.approach(twist.2, target.2, dv)
        twist.3 = Self.approach(twist.3, target.3, dw)
        twist.4 = Self.approach(twist.4, target.4, dw)
        twist.5 = Self.approach(twist.5, target.5, dw)
        // The asked pose moves with the twist, held within reach of the measured one.
        let v = SIMD3(twist.0, twist.1, twist.2)
        let w = SIMD3(twist.3, twist.4, twist.5)
        targetPositionM += v * dt
        targetRotation = Rotation3.exp(w * dt) * targetRotation
        let p = measured.translationVector
        var lead = targetPositionM - p
        let leadM = (lead * lead).sum().squareRoot()
        if leadM > Self.maximumLeadM {
            lead *= Self.maximumLeadM / leadM
            targetPositionM = p + lead
        }
        var turn = (targetRotation * measuredRotation.transposed).log
        let turnRad = (turn * turn).sum().squareRoot()
        if turnRad > Self.maximumLeadRad {
            turn *= Self.maximumLeadRad / turnRad
            targetRotation = Rotation3.exp(turn) * measuredRotation
        }
        let k = Self.feedbackGainPerS
        let linear = v + k * lead
        let angular = w + k * turn
        (ik.twist[0], ik.twist[1], ik.twist[2]) = (linear.x, linear.y, linear.z)
        (ik.twist[3], ik.twist[4], ik.twist[5]) = (angular.x, angular.y, angular.z)
        for j in 0..<n { ik.nullSpaceRadPerS[j] = settings.nullSpaceGainPerS * (restRad[j] - commandRad[j]) }
        if dt > 0 {
            kinematics.computeJacobian(link: link)
            ik.solve(jacobian: kinematics.jacobian, positionRad: commandRad, rows: 6, dtS: max(dt, periodS))
            for j in 0..<n { commandRad[j] += ik.jointVelocityRadPerS[j] * dt }
        }
        for j in 0..<n { command.positionRad[j] = commandRad[j] }
    }
}
