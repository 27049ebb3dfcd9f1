import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy

/// `policy: {type: remote, url: ws://HOST:PORT, token_file: PATH, …}`: a learned policy on a policy server
/// (openpi's, or `python -m sinew_policy_server` hosting a LeRobot policy), its action chunks executed through the
/// mixed-rate bridge (``RemotePolicy``, ``ChunkPolicyAdapter``).
public struct RemotePolicyType: PolicyType {
    public init() {}
    public var name: String { "remote" }
    public var summary: String {
        "a learned policy on a policy server (openpi's protocol, a bearer token), its action chunks blended at the loop's rate"
    }
    public var keys: [String] {
        [
            "url", "token_file", "insecure", "ca_file", "prompt", "observation", "action", "chunk", "ranges_rad",
            "gripper_joints",
            "bridge", "timeout_s",
        ]
    }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        guard let url = try reader.string("url") else {
            throw reader.error("url", expected: "the policy server's address, ws://HOST:PORT or wss://HOST:PORT")
        }
        let all = reader.joints.map(\.name)
        var settings = RemotePolicy.Settings(url: url, actionJoints: all, stateJoints: all)
        if let tokenPath = try reader.path("token_file") {
            guard let text = try? String(contentsOfFile: tokenPath, encoding: .utf8),
                let line = text.split(whereSeparator: \.isNewline).first,
                !line.trimmingCharacters(in: .whitespaces).isEmpty
            else {
                throw reader.error("token_file", expected: "a readable file whose first line is the token")
            }
            settings.token = line.trimmingCharacters(in: .whitespaces)
        }
        settings.insecure = try reader.bool("insecure", default: false)
        settings.caFile = try reader.path("ca_file")
        settings.prompt = try reader.string("prompt") ?? ""
        settings.timeoutS = try reader.double(
            "timeout_s", default: 2, unit: "s", where: { $0 > 0 && $0 <= 60 }, "in (0, 60]")
        let units = RemotePolicy.Units.allCases.map(\.rawValue)
        if let observation = try reader.mapping("observation", keys: ["state_key", "joints", "units", "prompt_key"]) {
            settings.stateKey = try observation.string("state_key") ?? settings.stateKey
            settings.stateJoints = try observation.jointNames("joints") ?? all
            settings.stateUnits =
                RemotePolicy.Units(rawValue: try observation.word("units", choices: units, default: "rad")) ?? .rad
            if observation.has("prompt_key") {
                let key = try observation.string("prompt_key") ?? ""
                settings.promptKey = key == "none" ? nil : key
            }
        }
        if let action = try reader.mapping("action", keys: ["key", "joints", "columns", "units", "mode"]) {
            settings.actionKey = try action.string("key") ?? settings.actionKey
            settings.actionJoints = try action.jointNames("joints") ?? all
            if let columns = try action.numbers(
                "columns", count: settings.actionJoints.count, unit: "column index", bound: 1e4)
            {
                guard columns.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }) else {
                    throw action.error("columns", expected: "one non-negative integer per action joint")
                }
                settings.actionColumns = columns.map { Int($0) }
            }
            settings.actionUnits =
                RemotePolicy.Units(rawValue: try action.word("units", choices: units, default: "rad")) ?? .rad
            settings.actionMode =
                RemotePolicy.ActionMode(
                    rawValue: try action.word("mode", choices: ["absolute", "delta"], default: "absolute"))
                ?? .absolute
        }
        if let chunk = try reader.mapping("chunk", keys: ["steps", "step_s", "request_when_remaining"]) {
            settings.maxChunkSteps = try chunk.int(
                "steps", default: 50, where: { (1...10_000).contains($0) }, "in 1–10000")
            settings.stepDurationS = try chunk.double(
                "step_s", default: 1.0 / 30, unit: "s between actions", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]")
            settings.requestWhenRemaining = try chunk.double(
                "request_when_remaining", default: 0.5, unit: "fraction of a chunk", where: { $0 > 0 && $0 < 1 },
                "in (0, 1)")
        }
        if let ranges = try reader.mapping("ranges_rad", keys: all) {
            for name in all where ranges.has(name) {
                guard let range = try ranges.numbers(name, count: 2, unit: "rad", bound: 100), range[0] < range[1]
                else {
                    throw ranges.error(name, expected: "[low, high] (rad), low below high")
                }
                settings.rangesRad[name] = range
            }
        }
        settings.gripperJoints = try reader.jointNames("gripper_joints") ?? []
        var bridge = ChunkBridgeSettings()
        if let bridgeReader = try reader.mapping(
            "bridge", keys: ["mode", "k", "old_weight", "blend_horizon_s", "switch_blend_s"])
        {
            let mode = try bridgeReader.word(
                "mode", choices: ["latest", "temporal_ensemble", "weighted_average", "prefix_freeze"],
                default: "latest")
            switch mode {
            case "latest": bridge.mode = .latest
            case "weighted_average":
                bridge.mode = .weightedAverage(
                    oldWeight: try bridgeReader.double(
                        "old_weight", default: 0.3, unit: "weight", where: { $0 >= 0 && $0 <= 1 }, "in [0, 1]"))
            case "prefix_freeze":
                bridge.mode = .prefixFreeze(
                    blendHorizonS: try bridgeReader.double(
                        "blend_horizon_s", default: 0.2, unit: "s", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]"))
            default:
                bridge.mode = .temporalEnsemble(
                    k: try bridgeReader.double(
                        "k", default: 0.01, unit: "1/chunk", where: { $0 >= 0 && $0 <= 10 }, "in [0, 10]"))
            }
            bridge.switchBlendS = try bridgeReader.double(
                "switch_blend_s", default: bridge.switchBlendS, unit: "s", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]")
        }
        return RemotePolicySettings(settings: settings, bridge: bridge, location: reader.location(of: "url"))
    }
}

/// The `remote` policy's settings.
public struct RemotePolicySettings: PolicySettings, Equatable {
    public var replayLimitation: String? { "its commands come from a policy server, which a replay does not ask" }

    public let settings: RemotePolicy.Settings
    public let bridge: ChunkBridgeSettings
    public let location: SourceLocation
    public var typeName: String { "remote" }

    public init(
        settings: RemotePolicy.Settings, bridge: ChunkBridgeSettings = ChunkBridgeSettings(),
        location: SourceLocation = SourceLocation(file: "")
    ) {
        self.settings = settings
        self.bridge = bridge
        self.location = location
    }

    /// The address is one we connect to (a plain connection leaves this machine only when `insecure: true`).
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        let limits = configuration.jointSafetyLimits(against: model)
        do {
            _ = try RemotePolicy(
                settings: settings, jointNames: configuration.joints.map(\.name),
                lowerRad: limits.map(\.positionMinRad), upperRad: limits.map(\.positionMaxRad))
        } catch {
            throw ConfigurationError(
                .invalidValue, at: location, keyPath: "policy", expected: "settings a remote policy can use",
                found: error.message)
        }
        if settings.insecure {
            return [
                ConfigurationWarning(
                    at: location, keyPath: "policy.insecure",
                    "the connection to \(settings.url) is plain text: the token and the observations cross the network unencrypted"
                )
            ]
        }
        return []
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        let names = context.configuration.joints.map(\.name)
        do {
            let remote = try RemotePolicy(
                settings: settings, jointNames: names, lowerRad: context.jointLimits.map(\.positionMinRad),
                upperRad: context.jointLimits.map(\.positionMaxRad))
            // Reach the server before any servo is touched: not there, or the token refused, ends the run here.
            try remote.probe()
            return try ChunkPolicyAdapter(
                policy: remote, jointNames: names, loopRateHz: context.loopRateHz, settings: bridge,
                lockstep: context.lockstep, simulatedInferenceDelayS: 0,
                firstChunkGraceS: 2 * settings.timeoutS)
        } catch let error as RemotePolicyError {
            throw RobotLoopError("policy \"remote\": \(error.message)")
        } catch {
            throw RobotLoopError("policy \"remote\": \(error)")
        }
    }
}
