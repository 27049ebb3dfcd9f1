import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy
import SinewRuntime

/// Sweeps one joint to and fro about the pose it was activated in, the way one checks a joint's tracking:
///
///     q(t) = q₀ + A · e(t) · sin(2π t / T)
///
/// with q₀ the joint's position at activation (rad), A the amplitude (rad), T the period (s), and e(t) an envelope
/// that eases the amplitude in over the first period (a smoothstep from 0 to 1), so neither the position nor the
/// velocity jumps when the loop starts. The other joints hold their activation pose: the policy declares only
/// its joint in ``commands``, and the loop keeps the rest where they were.
///
/// It runs inline, in the tick: ``compute(_:into:)`` reads two numbers and writes one, with no allocation, lock or
/// logging. It also keeps how far the joint really swung (``largestExcursionRad``), from the observations the
/// loop hands it.
public final class SineSweepPolicy: Policy {
    public let typeName = "sine_sweep"
    public let commands: [PolicyJointCommand]
    public let notices: [String]
    public let joint: String
    public let amplitudeRad: Double
    public let periodS: Double
    /// The joint's index in robot.yaml order (the observation's and command's order).
    private let index: Int
    private var centerRad = 0.0
    private var activationNs: Int64 = 0
    /// The largest distance of the measured position from q₀ since activation (rad).
    public private(set) var largestExcursionRad = 0.0

    /// - Parameters:
    ///   - jointNames: the robot's joints, in robot.yaml order.
    ///   - joint: the one to sweep.
    ///   - amplitudeRad: A, rad (> 0).
    ///   - periodS: T, s (> 0).
    public init(jointNames: [String], joint: String, amplitudeRad: Double, periodS: Double) throws(SineSweepError) {
        guard let index = jointNames.firstIndex(of: joint) else {
            throw SineSweepError("no joint \"\(joint)\" (joints: \(jointNames.joined(separator: ", ")))")
        }
        guard amplitudeRad > 0 && amplitudeRad.isFinite && periodS > 0 && periodS.isFinite else {
            throw SineSweepError("amplitude \(amplitudeRad) rad and period \(periodS) s must be positive")
        }
        self.index = index
        self.joint = joint
        self.amplitudeRad = amplitudeRad
        self.periodS = periodS
        commands = [PolicyJointCommand(joint: joint, kind: .position)]
        let peak = Self.peakSpeedRadPerS(amplitudeRad: amplitudeRad, periodS: periodS)
        notices = [
            "sine_sweep: \(joint) ± \(amplitudeRad) rad every \(periodS) s, "
                + String(format: "peaking at %.2f rad/s", peak)
        ]
    }

    /// The sweep's fastest speed once eased in, rad/s: 2πA/T.
    public static func peakSpeedRadPerS(amplitudeRad: Double, periodS: Double) -> Double {
        2 * Double.pi * amplitudeRad / periodS
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        centerRad = observation.positionRad[index]
        activationNs = observation.timeNs
        largestExcursionRad = 0
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let tS = Double(observation.timeNs - activationNs) * 1e-9
        let x = min(1, max(0, tS / periodS))
        let envelope = x * x * (3 - 2 * x)
        command.positionRad[index] = centerRad + amplitudeRad * envelope * sin(2 * Double.pi * tS / periodS)
        largestExcursionRad = max(largestExcursionRad, abs(observation.positionRad[index] - centerRad))
    }
}

/// Why a sine sweep cannot be made.
public struct SineSweepError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `policy: {type: sine_sweep, joint: NAME, amplitude_rad: A, period_s: T}` in a robot.yaml: the policy above as a
/// robot.yaml type. Hand it to `RobotConfiguration.load(contentsOf:policyTypes:)` (or `loadChecked`) beside
/// the built-in types; a mistyped key or a bad value is then an error with the file, line and column.
public struct SineSweepPolicyType: PolicyType {
    public init() {}
    public var name: String { "sine_sweep" }
    public var summary: String { "one joint swept sinusoidally about its activation pose, the others held" }
    public var keys: [String] { ["joint", "amplitude_rad", "period_s"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        let names = reader.joints.map(\.name)
        guard let joint = try reader.string("joint") else {
            throw reader.error("joint", expected: "the joint to sweep, one of \(names.joined(separator: ", "))")
        }
        guard names.contains(joint) else {
            throw reader.error(
                "joint", expected: "one of the robot's joints (\(names.joined(separator: ", ")))", found: "'\(joint)'")
        }
        return SineSweepSettings(
            joint: joint,
            amplitudeRad: try reader.double(
                "amplitude_rad", default: 0.2, unit: "rad", where: { $0 > 0 && $0 <= 1.5 }, "in (0, 1.5]"),
            periodS: try reader.double(
                "period_s", default: 2, unit: "s", where: { $0 >= 0.2 && $0 <= 60 }, "in [0.2, 60]"),
            location: reader.location(of: "amplitude_rad"))
    }
}

/// The parsed `policy:` mapping: immutable, checked against the URDF when the robot.yaml is, and the factory of
/// the policy a loop runs.
public struct SineSweepSettings: PolicySettings, Equatable {
    public let joint: String
    public let amplitudeRad: Double
    public let periodS: Double
    /// Where `amplitude_rad` is in the robot.yaml (the `policy:` mapping when it is left out).
    public let location: SourceLocation
    public var typeName: String { "sine_sweep" }

    /// A sweep wider than the joint's range, or faster than its velocity limit, cannot run: refused with the
    /// file and line before anything moves.
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        guard let j = configuration.joints.firstIndex(where: { $0.name == joint }) else { return [] }
        let limits = configuration.resolvedJointLimits(against: model)[j]
        if 2 * amplitudeRad > limits.upperRad - limits.lowerRad {
            throw ConfigurationError(
                .invalidValue, at: location, keyPath: "policy.amplitude_rad",
                expected: "at most half of \(joint)'s range [\(limits.lowerRad), \(limits.upperRad)] rad",
                found: "\(amplitudeRad)")
        }
        let peak = SineSweepPolicy.peakSpeedRadPerS(amplitudeRad: amplitudeRad, periodS: periodS)
        if peak > limits.velocityRadPerS {
            throw ConfigurationError(
                .invalidValue, at: location, keyPath: "policy.amplitude_rad",
                expected: "a sweep within \(joint)'s velocity limit \(limits.velocityRadPerS) rad/s (2π A / T)",
                found: "\(amplitudeRad) rad every \(periodS) s, peaking at \(peak) rad/s")
        }
        return []
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        do {
            return try SineSweepPolicy(
                jointNames: context.configuration.joints.map(\.name), joint: joint, amplitudeRad: amplitudeRad,
                periodS: periodS)
        } catch {
            throw RobotLoopError("policy \"sine_sweep\": \(error)", location: RobotErrorLocation(joint: joint))
        }
    }
}
