import Foundation
import SinewKinematics
import SinewRuntime

/// How joint positions are written in a LeRobot dataset, so that a policy trained on it runs on an arm calibrated
/// by LeRobot and the reverse. LeRobot's motor buses normalise each motor (`MotorNormMode`, lerobot/motors):
/// `DEGREES` for body joints when a robot is built with `use_degrees` (the SO-100/SO-101 default since LeRobot
/// 0.5), `RANGE_M100_100` otherwise, and `RANGE_0_100` for grippers in both cases.
public enum LeRobotJointUnits: String, Sendable, CaseIterable {
    /// Body joints in degrees (rad · 180/π), grippers 0…100 over their range (LeRobot's `use_degrees`).
    case degrees
    /// Body joints −100…100 over their range, grippers 0…100 (LeRobot's normalised ranges).
    case range
    /// Radians, as Sinew measures them (not a LeRobot convention: for tools of one's own).
    case rad
}

/// The conversion between Sinew's joint positions (rad, robot.yaml order) and a dataset's, per joint.
public struct LeRobotJointConversion: Sendable, Equatable {
    public let units: LeRobotJointUnits
    public let jointNames: [String]
    /// Which joints are grippers (0…100 in `degrees` and `range`).
    public let isGripper: [Bool]
    /// The range each joint's 0…100 or −100…100 spans, rad (the narrower of the URDF's and robot.yaml's limits).
    public let lowRad: [Double]
    public let highRad: [Double]

    /// For `configuration`'s joints; grippers are the joints named in `gripperJoints`, by default those whose name
    /// contains "gripper" (LeRobot's SO and Koch arms name theirs so).
    public init(
        units: LeRobotJointUnits, configuration: RobotConfiguration, model: RobotModel, gripperJoints: [String]? = nil
    ) {
        self.units = units
        jointNames = configuration.joints.map(\.name)
        isGripper = jointNames.map { name in gripperJoints.map { $0.contains(name) } ?? name.contains("gripper") }
        let limits = configuration.resolvedJointLimits(against: model)
        lowRad = limits.map { $0.lowerRad.isFinite ? $0.lowerRad : -Double.pi }
        highRad = limits.map { $0.upperRad.isFinite ? $0.upperRad : Double.pi }
    }

    /// LeRobot's feature names for the joints: `shoulder_pan.pos`, as its SO-101 writes them.
    public var featureNames: [String] { jointNames.map { "\($0).pos" } }

    /// A joint position (rad) in the dataset's units.
    public func toDataset(_ q: Double, joint j: Int) -> Double {
        switch units {
        case .rad: return q
        case .degrees where !isGripper[j]: return q * 180 / .pi
        case .degrees, .range:
            let fraction = (q - lowRad[j]) / (highRad[j] - lowRad[j])
            return isGripper[j] ? 100 * fraction : 200 * fraction - 100
        }
    }

    /// A dataset value in rad.
    public func fromDataset(_ x: Double, joint j: Int) -> Double {
        switch units {
        case .rad: return x
        case .degrees where !isGripper[j]: return x * .pi / 180
        case .degrees, .range:
            let fraction = isGripper[j] ? x / 100 : (x + 100) / 200
            return lowRad[j] + fraction * (highRad[j] - lowRad[j])
        }
    }

    /// How a reader turns the dataset's values back into rad: value = scale · x + offset per joint (the MLP
    /// policy's normalisation folds it in).
    public var toRadAffine: [(scale: Double, offset: Double)] {
        jointNames.indices.map { j in
            let offset = fromDataset(0, joint: j)
            return (fromDataset(1, joint: j) - offset, offset)
        }
    }
}

/// One episode as a dataset holds it: the task's string and the frames, already in the dataset's units.
public struct LeRobotEpisode: Sendable {
    public var task: String
    public var state: [[Double]]
    public var action: [[Double]]
    /// The task's observation per frame; empty when the dataset has none.
    public var environment: [[Double]]

    public init(task: String, state: [[Double]], action: [[Double]], environment: [[Double]]) {
        self.task = task
        self.state = state
        self.action = action
        self.environment = environment
    }

    /// An episode of frames taken in the loop (rad), converted.
    public init(task: String, frames: [EpisodeFrame], conversion: LeRobotJointConversion) {
        self.task = task
        state = frames.map { frame in frame.stateRad.enumerated().map { conversion.toDataset($1, joint: $0) } }
        action = frames.map { frame in frame.actionRad.enumerated().map { conversion.toDataset($1, joint: $0) } }
        environment = frames.map(\.environment)
    }
}

/// What `python -m sinew_dataset write` reads: the dataset's features, its episodes and Sinew's own notes
/// (units, ranges, where the data came from), as JSON.
public struct LeRobotDatasetSpec {
    public var fps: Int
    public var robotType: String
    public var conversion: LeRobotJointConversion
    /// Names of `observation.environment_state`'s entries; empty: no such feature.
    public var environmentNames: [String]
    public var episodes: [LeRobotEpisode]
    /// Free-form facts kept in meta/sinew.json (strings).
    public var notes: [(String, String)]

    public init(
        fps: Int, robotType: String, conversion: LeRobotJointConversion, environmentNames: [String],
        episodes: [LeRobotEpisode], notes: [(String, String)]
    ) {
        self.fps = fps
        self.robotType = robotType
        self.conversion = conversion
        self.environmentNames = environmentNames
        self.episodes = episodes
        self.notes = notes
    }

    /// The JSON text (numbers with round-trip precision).
    public var jsonText: String {
        var out = "{\"format\":\"sinew-episodes-1\",\"fps\":\(fps),\"robot_type\":"
        Self.string(robotType, into: &out)
        out += ",\"features\":{"
        func feature(_ name: String, _ names: [String]) {
            Self.string(name, into: &out)
            out += ":{\"dtype\":\"float32\",\"shape\":[\(names.count)],\"names\":["
            for (i, n) in names.enumerated() {
                if i > 0 { out += "," }
                Self.string(n, into: &out)
            }
            out += "]}"
        }
        feature("observation.state", conversion.featureNames)
        out += ","
        feature("action", conversion.featureNames)
        if !environmentNames.isEmpty {
            out += ","
            feature("observation.environment_state", environmentNames)
        }
        out += "},\"episodes\":["
        for (e, episode) in episodes.enumerated() {
            if e > 0 { out += "," }
            out += "{\"task\":"
            Self.string(episode.task, into: &out)
            out += ",\"observation.state\":"
            Self.rows(episode.state, into: &out)
            out += ",\"action\":"
            Self.rows(episode.action, into: &out)
            if !environmentNames.isEmpty {
                out += ",\"observation.environment_state\":"
                Self.rows(episode.environment, into: &out)
            }
            out += "}"
        }
        out += "],\"sinew\":{\"units\":"
        Self.string(conversion.units.rawValue, into: &out)
        out += ",\"joints\":["
        for j in conversion.jointNames.indices {
            if j > 0 { out += "," }
            out += "{\"name\":"
            Self.string(conversion.jointNames[j], into: &out)
            let affine = conversion.toRadAffine[j]
            out +=
                ",\"gripper\":\(conversion.isGripper[j]),\"range_rad\":[\(conversion.lowRad[j]),\(conversion.highRad[j])]"
            out += ",\"rad_per_unit\":\(affine.scale),\"rad_at_zero\":\(affine.offset)}"
        }
        out += "]"
        for (key, value) in notes {
            out += ","
            Self.string(key, into: &out)
            out += ":"
            Self.string(value, into: &out)
        }
        out += "}}"
        return out
    }

    static func rows(_ rows: [[Double]], into out: inout String) {
        out += "["
        for (r, row) in rows.enumerated() {
            if r > 0 { out += "," }
            out += "["
            for (i, x) in row.enumerated() {
                if i > 0 { out += "," }
                out += x.isFinite ? "\(x)" : "null"
            }
            out += "]"
        }
        out += "]"
    }

    static func string(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
