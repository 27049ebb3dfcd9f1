import Foundation
import SinewCore
import SinewKinematics
import Yams

extension RobotConfiguration {
    /// Reads a policy file for this robot: a YAML file whose `policy:` mapping is written exactly as robot.yaml's
    /// (`type` and the type's keys; relative paths, such as an `mlp` policy's `file`, from the policy file's
    /// directory), so `sinew sim eval --policy reach-mlp.yaml` can try a policy without editing robot.yaml. The
    /// settings are checked against the URDF; errors name the file, line, column and key.
    public func loadPolicy(
        contentsOf path: String, model: RobotModel, policyTypes: [any PolicyType] = PolicyTypes.builtin
    ) throws(ConfigurationError) -> (policy: Policy, warnings: [ConfigurationWarning]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(
                .unreadableFile, at: SourceLocation(file: path), keyPath: "", expected: "a readable policy file",
                found: FileManager.default.fileExists(atPath: path) ? "a file that cannot be read" : "no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(
                .unreadableFile, at: SourceLocation(file: path), keyPath: "", expected: "UTF-8 text",
                found: "bytes that are not UTF-8")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let root = try TaskConfiguration.composeYAML(text, file: path, what: "policy file")
        let reader = YAMLReader(file: path)
        let top = try YAMLFields(root, path: "", allowed: ["policy"], reader: reader)
        let node = try top.required("policy", expected: "a policy mapping {type: …} as in robot.yaml")
        let names = policyTypes.map(\.name)
        let expected = "one of " + names.map { "'\($0)'" }.joined(separator: ", ")
        guard case .mapping(let mapping) = node, let typeNode = mapping["type"], !reader.isNull(typeNode) else {
            throw reader.error(.missingKey, node, "policy.type", expected: expected)
        }
        let typeName = try reader.scalarText(typeNode, "policy.type", expected: expected)
        guard let type = policyTypes.first(where: { $0.name == typeName }) else {
            throw ConfigurationError(
                .invalidValue, at: reader.location(typeNode), keyPath: "policy.type", expected: expected,
                found: "'\(typeName)'", suggestion: KeySuggestion.closest(to: typeName, among: names))
        }
        let fields = try YAMLFields(node, path: "policy", allowed: ["type"] + type.keys, reader: reader)
        let settings = try type.settings(
            from: PolicySettingsReader(
                fields: fields, joints: joints, baseDirectory: directory.isEmpty ? "." : directory))
        let policy = Policy(settings: settings, location: reader.location(node))
        let warnings = try settings.check(against: model, configuration: replacingPolicy(policy))
        return (policy, warnings)
    }
}
