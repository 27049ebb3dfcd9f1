import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy
import Yams

/// `policy: {type: mlp, file: …, observation: […], action: {…}}`: a feed-forward network from a `.safetensors`
/// file evaluated inside the tick (``MLPPolicy``; the file format, the layouts and LeRobot's normalisation in
/// docs/mlp-policy.md).
public struct MLPPolicyType: PolicyType {
    public init() {}
    public var name: String { "mlp" }
    public var summary: String {
        "a feed-forward network from a .safetensors file (LeRobot's normalisation) evaluated in the tick"
    }
    public var keys: [String] {
        [
            "file", "layer_prefix", "activation", "output_activation", "rate_hz", "observation", "action",
            "normalization", "max_speed_rad_s",
        ]
    }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        guard let file = try reader.path("file") else {
            throw reader.error("file", expected: "the network's .safetensors file (relative to robot.yaml)")
        }
        let activations = MLPActivation.allCases.map(\.rawValue)
        func activation(_ key: String) throws(ConfigurationError) -> MLPActivation? {
            guard reader.has(key) else { return nil }
            return MLPActivation(rawValue: try reader.word(key, choices: activations, default: "identity"))
        }
        let all = reader.joints.map(\.name)
        let observation = try observationItems(reader, allJoints: all)
        var actionJoints = all
        var actionMode = MLPPolicy.ActionMode.absolute
        if let action = try reader.mapping("action", keys: ["joints", "mode"]) {
            actionJoints = try action.jointNames("joints") ?? all
            actionMode =
                MLPPolicy.ActionMode(
                    rawValue: try action.word("mode", choices: ["absolute", "delta"], default: "absolute"))
                ?? .absolute
        }
        var observationNormalization = MLPNormalization(feature: "observation.state")
        var actionNormalization = MLPNormalization(feature: "action")
        if let normalization = try reader.mapping("normalization", keys: ["observation", "action"]) {
            observationNormalization = try Self.normalization(
                normalization, "observation", default: observationNormalization)
            actionNormalization = try Self.normalization(normalization, "action", default: actionNormalization)
        }
        var settings = MLPPolicy.Settings(
            file: file, observation: observation, actionJoints: actionJoints, actionMode: actionMode,
            ticksPerInference: 1, activation: try activation("activation"),
            outputActivation: try activation("output_activation"),
            layerPrefix: try reader.string("layer_prefix") ?? "layers.",
            observationNormalization: observationNormalization, actionNormalization: actionNormalization)
        if reader.has("max_speed_rad_s") {
            settings.maxSpeedRadPerS = try reader.double(
                "max_speed_rad_s", default: 1, unit: "rad/s", where: { $0 > 0 && $0 <= 1000 }, "in (0, 1000]")
        }
        let rateHz =
            try reader.has("rate_hz")
            ? reader.double("rate_hz", default: 0, unit: "Hz", where: { $0 > 0 && $0 <= 10_000 }, "in (0, 10000]") : nil
        return MLPPolicySettings(
            settings: settings, rateHz: rateHz, baseDirectory: reader.baseDirectory,
            fileLocation: reader.location(of: "file"),
            rateLocation: reader.location(of: "rate_hz"))
    }

    /// `observation:` — a list of `joint_positions: [joints]`, `joint_velocities: [joints]`,
    /// `joint_efforts: [joints]` (a list of names, or `all`), `previous_action`, `previous_network_output`,
    /// `phase: {period_s: P}`, `environment_state: N` (the task's observation in simulation). Default: every
    /// joint's position and velocity.
    private func observationItems(_ reader: PolicySettingsReader, allJoints: [String]) throws(ConfigurationError)
        -> [MLPPolicy.ObservationItem]
    {
        guard let node = reader.fields["observation"] else {
            return [.jointPositions(allJoints), .jointVelocities(allJoints)]
        }
        let yaml = reader.reader
        let path = reader.fields.childPath("observation")
        let words = [
            "joint_positions", "joint_velocities", "joint_efforts", "previous_action", "previous_network_output",
            "phase", "environment_state",
        ]
        let items = try yaml.list(
            node, path, expected: "a list of observation items (\(words.joined(separator: ", ")))")
        var result: [MLPPolicy.ObservationItem] = []
        for (i, item) in items.enumerated() {
            let itemPath = "\(path)[\(i)]"
            if case .scalar = item {
                let word = try yaml.scalarText(item, itemPath, expected: "previous_action or previous_network_output")
                switch word {
                case "previous_action": result.append(.previousAction)
                case "previous_network_output": result.append(.previousNetworkOutput)
                default:
                    throw ConfigurationError(
                        .invalidValue, at: yaml.location(item), keyPath: itemPath,
                        expected: "previous_action, previous_network_output, or a mapping such as joint_positions: all",
                        found: "'\(word)'", suggestion: KeySuggestion.closest(to: word, among: words))
                }
                continue
            }
            let fields = try YAMLFields(item, path: itemPath, allowed: words, reader: yaml)
            let one = PolicySettingsReader(fields: fields, joints: reader.joints, baseDirectory: reader.baseDirectory)
            func joints(_ key: String) throws(ConfigurationError) -> [String] {
                if let node = fields[key], case .scalar(let scalar) = node, scalar.string == "all" { return allJoints }
                return try one.jointNames(key) ?? allJoints
            }
            if fields["joint_positions"] != nil {
                result.append(.jointPositions(try joints("joint_positions")))
            } else if fields["joint_velocities"] != nil {
                result.append(.jointVelocities(try joints("joint_velocities")))
            } else if fields["joint_efforts"] != nil {
                result.append(.jointEfforts(try joints("joint_efforts")))
            } else if fields["environment_state"] != nil {
                result.append(
                    .environmentState(
                        count: try one.int(
                            "environment_state", default: 0, where: { $0 >= 1 && $0 <= 64 }, "in 1–64 (entries)")))
            } else if let phase = try one.mapping("phase", keys: ["period_s"]) {
                result.append(
                    .phase(
                        periodS: try phase.requiredDouble(
                            "period_s", unit: "s", where: { $0 > 0 && $0 <= 1e6 }, "in (0, 1000000]")))
            } else {
                throw ConfigurationError(
                    .invalidValue, at: yaml.location(item), keyPath: itemPath,
                    expected: "one of \(words.joined(separator: ", "))",
                    found: "an empty mapping")
            }
        }
        return result
    }

    private static func normalization(_ reader: PolicySettingsReader, _ key: String, default value: MLPNormalization)
        throws(ConfigurationError) -> MLPNormalization
    {
        guard let side = try reader.mapping(key, keys: ["mode", "feature", "stats_file", "mean", "std", "min", "max"])
        else { return value }
        var result = value
        if side.has("mode") {
            result.mode = MLPNormalizationMode(
                name: try side.word(
                    "mode", choices: MLPNormalizationMode.allCases.map(\.rawValue), default: "IDENTITY"))
        }
        if let feature = try side.string("feature") { result.feature = feature }
        result.statsFile = try side.path("stats_file")
        let bound = 1e9
        let stats = MLPNormalizationStats(
            mean: try side.numbers("mean", count: nil, unit: "input units", bound: bound),
            std: try side.numbers("std", count: nil, unit: "input units", bound: bound),
            min: try side.numbers("min", count: nil, unit: "input units", bound: bound),
            max: try side.numbers("max", count: nil, unit: "input units", bound: bound))
        if stats.mean != nil || stats.std != nil || stats.min != nil || stats.max != nil { result.stats = stats }
        return result
    }
}

/// The `mlp` policy's settings, with the rate and where the file and rate are written.
public struct MLPPolicySettings: PolicySettings, Equatable {
    public let settings: MLPPolicy.Settings
    /// Inferences per second; nil: every tick.
    public let rateHz: Double?
    public let baseDirectory: String
    public let fileLocation: SourceLocation
    public let rateLocation: SourceLocation
    public var typeName: String { "mlp" }

    /// The file loads, its network fits the observation and action layouts, and the rate divides the loop's.
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        do {
            _ = try make(jointNames: configuration.joints.map(\.name), loopRateHz: configuration.loop.rateHz)
        } catch {
            let rate = error.description.contains("rate_hz")
            throw ConfigurationError(
                .invalidValue, at: rate ? rateLocation : fileLocation, keyPath: rate ? "policy.rate_hz" : "policy.file",
                expected: rate
                    ? "a rate that divides the loop's" : "a network that fits the observation and action layouts",
                found: error.description)
        }
        return []
    }

    func make(jointNames: [String], loopRateHz: Double) throws(MLPPolicyError) -> MLPPolicy {
        var settings = settings
        if let rateHz {
            settings.ticksPerInference = try MLPPolicy.ticksPerInference(rateHz: rateHz, loopRateHz: loopRateHz)
        }
        // `file` and `stats_file` were resolved against robot.yaml's directory when read: resolving them again
        // would double a relative directory (`robots/so101/robots/so101/…`).
        return try MLPPolicy(settings: settings, jointNames: jointNames, baseDirectory: nil)
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        do {
            return try make(jointNames: context.configuration.joints.map(\.name), loopRateHz: context.loopRateHz)
        } catch {
            throw RobotLoopError("policy \"mlp\": \(error)")
        }
    }
}
