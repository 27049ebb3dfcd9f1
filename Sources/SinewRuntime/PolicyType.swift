import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewPolicy
import Yams

/// A policy type robot.yaml's `policy.type` can name: it reads its settings from the `policy:` mapping once,
/// when the file is loaded (errors carry file:line:column), and the settings build the policy when a loop is
/// made. The built-in types are ``PolicyTypes/builtin``; a program adds its own by passing a longer list to
/// ``RobotConfiguration/load(contentsOf:policyTypes:)``.
public protocol PolicyType: Sendable {
    /// The word in `policy.type`.
    var name: String { get }
    /// What it does, in one line (`sinew run --help`, and errors naming an unknown type).
    var summary: String { get }
    /// The keys valid in the `policy:` mapping besides `type`; any other is an error with a suggestion.
    var keys: [String] { get }
    /// Reads the settings. Throw the reader's errors, so each names its file, line, column and key.
    func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings
}

/// The parsed settings of one policy: immutable, checked against the robot's URDF when the configuration is,
/// and the factory of the policy a loop runs.
public protocol PolicySettings: Sendable {
    /// The type's name (`policy.type`).
    var typeName: String { get }
    /// Checks that need the URDF (frames exist, goals are reachable, positions inside the model's limits):
    /// throws for what cannot run, returns warnings for what runs but deserves a word.
    func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    /// Builds the policy for one loop (called once, before configure: not real-time).
    func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy
    /// Equality across the existential (``RobotConfiguration`` is `Equatable`).
    func isEqual(to other: any PolicySettings) -> Bool
    /// Why `sinew replay` cannot compute this policy again from a recording — it reads something the recording
    /// does not hold (a leader arm, a keyboard, a server) — or nil when it can. Such a policy's recorded
    /// targets are replayed through the guard instead.
    var replayLimitation: String? { get }
}

extension PolicySettings {
    public var replayLimitation: String? { nil }

    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    { [] }
}

extension PolicySettings where Self: Equatable {
    public func isEqual(to other: any PolicySettings) -> Bool { (other as? Self) == self }
}

/// What a policy type's settings may use to build the policy for one loop.
public struct PolicyBuildContext: @unchecked Sendable {
    // @unchecked: the transports are handed over before the loop starts and used by one thread at a time.
    public let configuration: RobotConfiguration
    public let model: RobotModel
    public let catalog: ServoCatalog
    /// The supervisor's limits per joint, robot.yaml order (velocity already scaled by
    /// `safety.velocity_limit_scale`): plan within these.
    public let jointLimits: [JointSafetyLimits]
    /// The loop's rate, Hz.
    public let loopRateHz: Double
    /// Whether the loop runs in lockstep on a simulation clock (an asynchronous part must then be stepped
    /// deterministically inside the tick).
    public let lockstep: Bool
    /// Ports for buses a policy reads besides the robot's own (a teleoperation leader arm), by the name the
    /// policy's settings give the bus; the front end opens them (hardware, pty or simulator).
    public let policyTransports: [String: any ByteTransport]

    public init(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog, jointLimits: [JointSafetyLimits],
        loopRateHz: Double, lockstep: Bool, policyTransports: [String: any ByteTransport] = [:]
    ) {
        self.configuration = configuration
        self.model = model
        self.catalog = catalog
        self.jointLimits = jointLimits
        self.loopRateHz = loopRateHz
        self.lockstep = lockstep
        self.policyTransports = policyTransports
    }
}

/// The policy types robot.yaml knows without help.
public enum PolicyTypes {
    public static let builtin: [any PolicyType] = [
        HoldPolicyType(), TrajectoryPolicyType(), CartesianPolicyType(), ImpedancePolicyType(),
        GravityCompensationPolicyType(), TeleopPolicyType(), JogPolicyType(), MLPPolicyType(), RemotePolicyType(),
        ROSPolicyType(),
    ]

    /// `name — summary` per type, for help texts.
    public static func describe(_ types: [any PolicyType] = builtin) -> String {
        types.map { "\($0.name) — \($0.summary)" }.joined(separator: "\n")
    }
}

/// The `policy:` mapping of a robot.yaml, for a ``PolicyType`` to read its settings from. Every error it
/// throws names the file, line, column and key path, and suggests a key for a mistyped one.
public struct PolicySettingsReader {
    let fields: YAMLFields
    /// The robot's joints, in robot.yaml order (parsed before the policy).
    public let joints: [RobotConfiguration.Joint]
    /// The directory of the robot.yaml, against which relative paths resolve.
    public let baseDirectory: String

    init(fields: YAMLFields, joints: [RobotConfiguration.Joint], baseDirectory: String) {
        self.fields = fields
        self.joints = joints
        self.baseDirectory = baseDirectory
    }

    var reader: YAMLReader { fields.reader }

    /// The key path of the mapping (`policy`, or `policy.goals[2]` for a nested one).
    public var path: String { fields.path }
    /// Where the mapping starts.
    public var location: SourceLocation { reader.location(fields.node) }
    /// Whether `key` is given (and not null).
    public func has(_ key: String) -> Bool { fields[key] != nil }
    /// Where `key`'s value is, or the mapping's start when it is absent.
    public func location(of key: String) -> SourceLocation {
        fields[key].map { reader.location($0) } ?? location
    }

    /// A number within `valid` (`rule` says which, e.g. "in (0, 100]"), `default` when absent.
    public func double(
        _ key: String, default value: Double, unit: String, where valid: (Double) -> Bool, _ rule: String
    ) throws(ConfigurationError) -> Double {
        try fields.double(key, default: value, unit: unit, where: valid, rule)
    }

    /// A number that must be given.
    public func requiredDouble(_ key: String, unit: String, where valid: (Double) -> Bool, _ rule: String)
        throws(ConfigurationError) -> Double
    {
        guard let value = try fields.optionalDouble(key, unit: unit, where: valid, rule) else {
            throw fields.missing(key, expected: "a number \(rule) (\(unit))")
        }
        return value
    }

    public func int(_ key: String, default value: Int, where valid: (Int) -> Bool, _ rule: String)
        throws(ConfigurationError) -> Int
    { try fields.int(key, default: value, where: valid, rule) }

    public func bool(_ key: String, default value: Bool) throws(ConfigurationError) -> Bool {
        try fields.bool(key, default: value)
    }

    public func string(_ key: String) throws(ConfigurationError) -> String? { try fields.string(key) }

    /// A word out of `choices`, `default` when absent.
    public func word(_ key: String, choices: [String], default value: String) throws(ConfigurationError) -> String {
        guard let node = fields[key] else { return value }
        let expected = choices.map { "'\($0)'" }.joined(separator: " or ")
        let text = try reader.scalarText(node, fields.childPath(key), expected: expected)
        guard choices.contains(text) else {
            throw ConfigurationError(
                .invalidValue, at: reader.location(node), keyPath: fields.childPath(key), expected: expected,
                found: "'\(text)'", suggestion: KeySuggestion.closest(to: text, among: choices))
        }
        return text
    }

    /// A path, resolved against the robot.yaml's directory; nil when absent.
    public func path(_ key: String) throws(ConfigurationError) -> String? {
        guard let text = try fields.string(key) else { return nil }
        return text.hasPrefix("/") ? text : (baseDirectory as NSString).appendingPathComponent(text)
    }

    /// A list of exactly `count` numbers each within ±`bound` (or of any length when `count` is nil).
    public func numbers(_ key: String, count: Int?, unit: String, bound: Double) throws(ConfigurationError) -> [Double]?
    {
        guard let node = fields[key] else { return nil }
        let keyPath = fields.childPath(key)
        let boundText = YAMLReader.text(bound)
        let shape = count.map { "a list of \($0) numbers" } ?? "a list of numbers"
        let expected = "\(shape) (\(unit)), each in [-\(boundText), \(boundText)]"
        let items = try reader.list(node, keyPath, expected: expected)
        if let count, items.count != count {
            throw reader.error(.invalidValue, node, keyPath, expected: expected, found: "a list of \(items.count)")
        }
        var values: [Double] = []
        for (i, item) in items.enumerated() {
            let value = try reader.double(item, "\(keyPath)[\(i)]", expected: "a number (\(unit))")
            guard abs(value) <= bound else {
                throw reader.error(
                    .invalidValue, item, "\(keyPath)[\(i)]",
                    expected: "a number in [-\(boundText), \(boundText)] (\(unit))")
            }
            values.append(value)
        }
        return values
    }

    /// One value per joint: a map joint name → value (joints left out get `default`) or a list in joint
    /// order; a single number applies to every joint. Nil when the key is absent.
    public func perJoint(
        _ key: String, default value: Double, unit: String, where valid: (Double) -> Bool, _ rule: String
    )
        throws(ConfigurationError) -> [Double]?
    {
        guard let node = fields[key] else { return nil }
        let keyPath = fields.childPath(key)
        let expected = "a number \(rule) (\(unit)), a list of them in joint order, or a map joint → number"
        func checked(_ item: Node, _ itemPath: String) throws(ConfigurationError) -> Double {
            let v = try reader.double(item, itemPath, expected: "a number \(rule) (\(unit))")
            guard valid(v) else {
                throw reader.error(.invalidValue, item, itemPath, expected: "a number \(rule) (\(unit))")
            }
            return v
        }
        switch node {
        case .scalar:
            return [Double](repeating: try checked(node, keyPath), count: joints.count)
        case .sequence(let sequence):
            guard sequence.count == joints.count else {
                throw reader.error(
                    .invalidValue, node, keyPath, expected: "\(joints.count) numbers, one per joint in order",
                    found: "a list of \(sequence.count)")
            }
            var values: [Double] = []
            for (j, item) in sequence.enumerated() { values.append(try checked(item, "\(keyPath)[\(j)]")) }
            return values
        case .mapping:
            let names = joints.map(\.name)
            let map = try YAMLFields(node, path: keyPath, allowed: names, reader: reader)
            var values = [Double](repeating: value, count: joints.count)
            for (j, name) in names.enumerated() {
                if let item = map[name] { values[j] = try checked(item, map.childPath(name)) }
            }
            return values
        default:
            throw reader.error(.wrongType, node, keyPath, expected: expected)
        }
    }

    /// Joint names (robot.yaml's), each known and given once; nil when absent.
    public func jointNames(_ key: String) throws(ConfigurationError) -> [String]? {
        guard let node = fields[key] else { return nil }
        let keyPath = fields.childPath(key)
        let names = joints.map(\.name)
        let items = try reader.list(node, keyPath, expected: "a list of joint names")
        var result: [String] = []
        for (i, item) in items.enumerated() {
            let name = try reader.string(item, "\(keyPath)[\(i)]", expected: "a joint name")
            guard names.contains(name) else {
                throw ConfigurationError(
                    .invalidValue, at: reader.location(item), keyPath: "\(keyPath)[\(i)]",
                    expected: "one of the robot's joints (\(names.joined(separator: ", ")))", found: "'\(name)'",
                    suggestion: KeySuggestion.closest(to: name, among: names))
            }
            guard !result.contains(name) else {
                throw reader.error(.invalidValue, item, "\(keyPath)[\(i)]", expected: "each joint once")
            }
            result.append(name)
        }
        return result
    }

    /// A list of mappings, each read with its own allowed keys (`goals:`, `waypoints:`); nil when absent.
    public func list(_ key: String, keys allowed: [String], expected: String) throws(ConfigurationError)
        -> [PolicySettingsReader]?
    {
        guard let node = fields[key] else { return nil }
        let keyPath = fields.childPath(key)
        let items = try reader.list(node, keyPath, expected: expected)
        if items.isEmpty {
            throw reader.error(.invalidValue, node, keyPath, expected: expected, found: "an empty list")
        }
        var readers: [PolicySettingsReader] = []
        for (i, item) in items.enumerated() {
            let fields = try YAMLFields(item, path: "\(keyPath)[\(i)]", allowed: allowed, reader: reader)
            readers.append(PolicySettingsReader(fields: fields, joints: joints, baseDirectory: baseDirectory))
        }
        return readers
    }

    /// A nested mapping with its own allowed keys; nil when absent.
    public func mapping(_ key: String, keys allowed: [String]) throws(ConfigurationError) -> PolicySettingsReader? {
        guard let node = fields[key] else { return nil }
        let fields = try YAMLFields(node, path: self.fields.childPath(key), allowed: allowed, reader: reader)
        return PolicySettingsReader(fields: fields, joints: joints, baseDirectory: baseDirectory)
    }

    /// An error about `key` (or the mapping when nil) with file, line, column and key path.
    public func error(_ key: String?, expected: String, found: String? = nil) -> ConfigurationError {
        guard let key else {
            return ConfigurationError(
                .invalidValue, at: location, keyPath: path, expected: expected, found: found ?? "this mapping")
        }
        if let node = fields[key] {
            return reader.error(.invalidValue, node, fields.childPath(key), expected: expected, found: found)
        }
        return fields.missing(key, expected: expected)
    }
}
