import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy

/// `type: reach`: bring a frame (a URDF link, e.g. the gripper's) to a target position drawn per episode
/// uniformly inside a box (root frame), and keep it within `tolerance_m` of it for `hold_s`. The task's
/// observation is the target (x, y, z, m). The `cartesian` policy does it with the target as its goal.
///
/// ```yaml
/// type: reach
/// frame: gripper_frame_link
/// target_box: {min: [0.16, -0.12, 0.06], max: [0.26, 0.12, 0.16]}
/// tolerance_m: 0.02
/// hold_s: 0.3
/// ```
public struct ReachTaskType: TaskType {
    public init() {}
    public var name: String { "reach" }
    public var summary: String {
        "bring a frame to a target drawn per episode inside a box, and hold it there"
    }
    public var keys: [String] { ["frame", "target_box", "tolerance_m", "hold_s", "expert_speed_m_s"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any TaskSettings {
        guard let frame = try reader.string("frame") else {
            throw reader.error("frame", expected: "the URDF link that must reach the target (e.g. the gripper's frame)")
        }
        guard let box = try reader.mapping("target_box", keys: ["min", "max"]) else {
            throw reader.error("target_box", expected: "{min: [x, y, z], max: [x, y, z]} (m, root frame)")
        }
        let bound = RobotConfiguration.distanceBoundM
        guard let low = try box.numbers("min", count: 3, unit: "m", bound: bound) else {
            throw box.error("min", expected: "[x, y, z] (m, root frame)")
        }
        guard let high = try box.numbers("max", count: 3, unit: "m", bound: bound) else {
            throw box.error("max", expected: "[x, y, z] (m, root frame)")
        }
        guard zip(low, high).allSatisfy({ $0 <= $1 }) else {
            throw box.error("max", expected: "every component at least min's", found: "\(high) below \(low)")
        }
        return ReachTaskSettings(
            frame: frame, boxMinM: SIMD3(low[0], low[1], low[2]), boxMaxM: SIMD3(high[0], high[1], high[2]),
            toleranceM: try reader.double(
                "tolerance_m", default: 0.02, unit: "m", where: { $0 > 0 && $0 <= 1 }, "in (0, 1]"),
            holdS: try reader.double("hold_s", default: 0.3, unit: "s", where: { $0 >= 0 && $0 <= 60 }, "in [0, 60]"),
            expertSpeedMPerS: try reader.double(
                "expert_speed_m_s", default: 0.2, unit: "m/s", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]"),
            frameLocation: reader.location(of: "frame"), boxLocation: reader.location(of: "target_box"))
    }
}

/// The `reach` task's settings.
public struct ReachTaskSettings: TaskSettings, Equatable {
    public let frame: String
    /// The box targets are drawn from, root frame, m.
    public let boxMinM: SIMD3<Double>
    public let boxMaxM: SIMD3<Double>
    /// How close the frame must come, m, and for how long it must stay there, s.
    public let toleranceM: Double
    public let holdS: Double
    /// The scripted expert's (`cartesian`) peak speed along its straight line, m/s.
    public let expertSpeedMPerS: Double
    public let frameLocation: SourceLocation
    public let boxLocation: SourceLocation
    public var typeName: String { "reach" }

    public func observationNames(configuration: RobotConfiguration) -> [String] {
        ["target.x", "target.y", "target.z"]
    }

    /// The frame is a link, and the box's corners and centre are reachable by the `cartesian` policy within the
    /// joints' ranges and inside the safety workspace boxes of that frame.
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        guard model.linkIndex(named: frame) != nil else {
            throw ConfigurationError(
                .unknownFrame, at: frameLocation, keyPath: "frame",
                expected: "a link of \(model.file)" + configuration.suggestionText(frame, model.links.map(\.name)),
                found: "'\(frame)'")
        }
        var points: [SIMD3<Double>] = [(boxMinM + boxMaxM) / 2]
        for corner in 0..<8 {
            points.append(
                SIMD3(
                    corner & 1 == 0 ? boxMinM.x : boxMaxM.x, corner & 2 == 0 ? boxMinM.y : boxMaxM.y,
                    corner & 4 == 0 ? boxMinM.z : boxMaxM.z))
        }
        for box in configuration.safety.workspace where box.frame == frame {
            for p in points where !(all(p .>= box.minM) && all(p .<= box.maxM)) {
                throw ConfigurationError(
                    .invalidValue, at: boxLocation, keyPath: "target_box",
                    expected: "a box inside robot.yaml's safety workspace box of \(frame) "
                        + "([\(box.minM.x), \(box.minM.y), \(box.minM.z)] to [\(box.maxM.x), \(box.maxM.y), \(box.maxM.z)] m)",
                    found: "the corner [\(p.x), \(p.y), \(p.z)] outside it")
            }
        }
        let settings = expertSettings(goals: points)
        let policy = CartesianPolicySettings(
            settings: settings, goalLocations: points.map { _ in boxLocation }, location: frameLocation)
        do {
            _ = try policy.check(against: model, configuration: configuration)
        } catch {
            throw ConfigurationError(
                .invalidValue, at: boxLocation, keyPath: "target_box",
                expected: "a box whose corners the arm reaches within its joints' ranges", found: error.found)
        }
        return []
    }

    func expertSettings(goals: [SIMD3<Double>]) -> CartesianPolicy.Settings {
        var settings = CartesianPolicy.Settings(
            frame: frame, goals: goals.map { CartesianPolicy.Goal(positionM: $0, durationS: 0) })
        settings.linearSpeedMPerS = expertSpeedMPerS
        return settings
    }

    public func makeEpisode(_ context: TaskEpisodeContext, random: inout SplitMix64) throws(TaskError)
        -> any TaskEpisode
    {
        let target = SIMD3(
            random.uniform(boxMinM.x...boxMaxM.x), random.uniform(boxMinM.y...boxMaxM.y),
            random.uniform(boxMinM.z...boxMaxM.z))
        return try ReachTaskEpisode(settings: self, context: context, targetM: target)
    }
}

/// One episode of `reach`: a drawn target, the frame's distance to it every tick, the hold.
public final class ReachTaskEpisode: TaskEpisode {
    public let settings: ReachTaskSettings
    /// The episode's target, root frame, m.
    public let targetM: SIMD3<Double>
    public let observation: UnsafeMutableBufferPointer<Double>
    let configuration: RobotConfiguration
    let kinematics: PolicyKinematics
    let link: Int
    let positions: UnsafeMutableBufferPointer<Double>
    /// When the frame last came within the tolerance (s), or -1 while it is outside.
    var insideSinceS = -1.0
    var squares = 0.0
    var samples = 0
    var lastDistanceM = Double.infinity
    var maxDistanceM = 0.0

    init(settings: ReachTaskSettings, context: TaskEpisodeContext, targetM: SIMD3<Double>) throws(TaskError) {
        self.settings = settings
        self.targetM = targetM
        configuration = context.configuration
        do {
            kinematics = try PolicyKinematics(
                model: context.model, jointNames: context.configuration.joints.map(\.name))
        } catch {
            throw TaskError("reach: \(error)")
        }
        guard let link = context.model.linkIndex(named: settings.frame) else {
            throw TaskError("reach: frame \"\(settings.frame)\" is not a link of \(context.model.file)")
        }
        self.link = link
        positions = .allocate(capacity: max(1, context.configuration.joints.count))
        positions.initialize(repeating: 0)
        observation = .allocate(capacity: 3)
        observation[0] = targetM.x
        observation[1] = targetM.y
        observation[2] = targetM.z
    }

    deinit {
        positions.deallocate()
        observation.deallocate()
    }

    /// The frame's position for joint positions `q` (robot.yaml order), root frame, m.
    public func framePositionM(_ q: UnsafeBufferPointer<Double>) -> SIMD3<Double> {
        for j in 0..<min(q.count, positions.count) { positions[j] = q[j] }
        kinematics.setPositions(positions)
        return kinematics.linkPose(link).translationVector
    }

    public func update(timeS: Double, positionsRad: UnsafeBufferPointer<Double>) -> TaskStatus {
        let d = framePositionM(positionsRad) - targetM
        let distance = (d * d).sum().squareRoot()
        lastDistanceM = distance
        maxDistanceM = max(maxDistanceM, distance)
        squares += distance * distance
        samples += 1
        guard distance <= settings.toleranceM else {
            insideSinceS = -1
            return .running
        }
        if insideSinceS < 0 { insideSinceS = timeS }
        return timeS - insideSinceS >= settings.holdS ? .succeeded : .running
    }

    public func builtinPolicy(named type: String) -> (any PolicySettings)? {
        guard type == "cartesian" else { return nil }
        return CartesianPolicySettings(
            settings: settings.expertSettings(goals: [targetM]), goalLocations: [settings.boxLocation],
            location: settings.frameLocation)
    }

    public var report: TaskEpisodeReport {
        TaskEpisodeReport(
            errorUnit: "m", finalError: lastDistanceM,
            rmsError: samples > 0 ? (squares / Double(samples)).squareRoot() : 0,
            maxError: maxDistanceM, goal: [("target_m", [targetM.x, targetM.y, targetM.z])])
    }
}
