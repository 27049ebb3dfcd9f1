import Foundation
import SinewCore
import SinewKinematics
import Yams

extension TaskConfiguration {
    /// The keys every task.yaml may have, whatever its type.
    public static let commonKeys = [
        "name", "type", "instruction", "time_limit_s", "start_rad", "start_noise_rad", "fps", "randomization",
    ]

    /// Reads and checks a `task.yaml` for `robot` (its joints name `start_rad`'s entries) against the robot's
    /// URDF `model`. Every error names the file, line, column and key, as robot.yaml's do.
    public static func load(
        contentsOf path: String, robot: RobotConfiguration, model: RobotModel,
        taskTypes: [any TaskType] = TaskConfiguration.builtinTypes
    ) throws(ConfigurationError) -> (task: TaskConfiguration, warnings: [ConfigurationWarning]) {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
            size.int64Value > Int64(RobotConfiguration.maximumFileBytes)
        {
            throw ConfigurationError(
                .tooLarge, at: SourceLocation(file: path), keyPath: "",
                expected: "a task.yaml of at most \(RobotConfiguration.maximumFileBytes) bytes",
                found: "a file of \(size) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(
                .unreadableFile, at: SourceLocation(file: path), keyPath: "", expected: "a readable file",
                found: FileManager.default.fileExists(atPath: path) ? "a file that cannot be read" : "no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(
                .unreadableFile, at: SourceLocation(file: path), keyPath: "", expected: "UTF-8 text",
                found: "bytes that are not UTF-8")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let task = try parse(
            text, file: path, baseDirectory: directory.isEmpty ? "." : directory, robot: robot, taskTypes: taskTypes)
        let warnings = try task.settings.check(against: model, configuration: robot)
        return (task, warnings)
    }

    /// Parses task.yaml text for `robot`; `file` names it in errors.
    public static func parse(
        _ text: String, file: String, baseDirectory: String, robot: RobotConfiguration,
        taskTypes: [any TaskType] = TaskConfiguration.builtinTypes
    ) throws(ConfigurationError) -> TaskConfiguration {
        let reader = YAMLReader(file: file)
        let root = try composeYAML(text, file: file, what: "task.yaml")
        let names = taskTypes.map(\.name)
        let expectedType = "one of " + names.map { "'\($0)'" }.joined(separator: ", ")
        guard case .mapping(let mapping) = root else {
            throw reader.error(
                .wrongType, root, "", expected: "a mapping with keys \(commonKeys.joined(separator: ", "))")
        }
        guard let typeNode = mapping["type"], !reader.isNull(typeNode) else {
            throw ConfigurationError(
                .missingKey, at: reader.location(root), keyPath: "type", expected: expectedType, found: "nothing")
        }
        let typeName = try reader.scalarText(typeNode, "type", expected: expectedType)
        guard let type = taskTypes.first(where: { $0.name == typeName }) else {
            throw ConfigurationError(
                .invalidValue, at: reader.location(typeNode), keyPath: "type", expected: expectedType,
                found: "'\(typeName)'", suggestion: KeySuggestion.closest(to: typeName, among: names))
        }
        let fields = try YAMLFields(root, path: "", allowed: commonKeys + type.keys, reader: reader)
        let settingsReader = PolicySettingsReader(fields: fields, joints: robot.joints, baseDirectory: baseDirectory)
        let settings = try type.settings(from: settingsReader)
        var name = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        if let nameNode = fields["name"] {
            name = try reader.string(nameNode, "name", expected: RobotConfiguration.nameRule)
            guard RobotConfiguration.isSafeName(name) else {
                throw reader.error(.invalidValue, nameNode, "name", expected: RobotConfiguration.nameRule)
            }
        }
        let instruction = try fields.string("instruction") ?? name.replacingOccurrences(of: "_", with: " ")
        let timeLimitS = try fields.double(
            "time_limit_s", default: 10, unit: "s", where: { $0 > 0 && $0 <= 3600 }, "in (0, 3600]")
        let startRad = try settingsReader.perJoint(
            "start_rad", default: .nan, unit: "rad", where: { abs($0) <= RobotConfiguration.positionBoundRad },
            "in [-100, 100]")
        if let startRad, let missing = startRad.firstIndex(where: \.isNaN) {
            throw fields.missing(
                "start_rad", expected: "a start position for every joint (none for \(robot.joints[missing].name))")
        }
        let startNoiseRad = try fields.double(
            "start_noise_rad", default: 0, unit: "rad", where: { $0 >= 0 && $0 <= 1 }, "in [0, 1]")
        let fps = try fields.int(
            "fps", default: 30, where: { (1...1000).contains($0) }, "in 1–1000 (frames per second)")
        var randomization = DomainRandomization()
        if let node = fields["randomization"] {
            let ranges = try YAMLFields(node, path: "randomization", allowed: DomainRandomization.keys, reader: reader)
            for knob in DomainRandomization.knobs {
                guard let rangeNode = ranges[knob.key] else { continue }
                let path = ranges.childPath(knob.key)
                let expected =
                    "[low, high] (\(knob.unit)) with low ≤ high, both in "
                    + "[\(YAMLReader.text(knob.bounds.lowerBound)), \(YAMLReader.text(knob.bounds.upperBound))]"
                let items = try reader.list(rangeNode, path, expected: expected)
                guard items.count == 2 else {
                    throw reader.error(
                        .invalidValue, rangeNode, path, expected: expected, found: "a list of \(items.count)")
                }
                let low = try reader.double(items[0], "\(path)[0]", expected: expected)
                let high = try reader.double(items[1], "\(path)[1]", expected: expected)
                guard low <= high, randomization.set(knob.key, low...high) != nil else {
                    throw reader.error(.invalidValue, rangeNode, path, expected: expected, found: "[\(low), \(high)]")
                }
            }
        }
        return TaskConfiguration(
            name: name, file: file, settings: settings, instruction: instruction, timeLimitS: timeLimitS,
            startRad: startRad, startNoiseRad: startNoiseRad, fps: fps, randomization: randomization,
            location: reader.location(root))
    }

    /// Composes a YAML document with robot.yaml's defences: a size limit, no keys that are not scalars (an alias
    /// bomb hashed as a key), and a limit on the document once aliases and merge keys are expanded.
    static func composeYAML(_ text: String, file: String, what: String) throws(ConfigurationError) -> Node {
        let reader = YAMLReader(file: file)
        if text.utf8.count > RobotConfiguration.maximumFileBytes {
            throw ConfigurationError(
                .tooLarge, at: SourceLocation(file: file), keyPath: "",
                expected: "a \(what) of at most \(RobotConfiguration.maximumFileBytes) bytes",
                found: "a document of \(text.utf8.count) bytes")
        }
        if let key = YAMLKeyScan.firstNonScalarKey(in: text) {
            throw ConfigurationError(
                .wrongType, at: SourceLocation(file: file, line: key.line, column: key.column), keyPath: "",
                expected: "plain keys (\(what)'s keys are words)", found: key.what)
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigurationError(
                    .malformedYAML, at: SourceLocation(file: file), keyPath: "", expected: "a mapping",
                    found: "an empty document")
            }
            root = node
        } catch let error as ConfigurationError {
            throw error
        } catch let error as YamlError {
            let mark = error.mark
            throw ConfigurationError(
                .malformedYAML, at: SourceLocation(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0),
                keyPath: "", expected: "valid YAML", found: error.problem)
        } catch {
            throw ConfigurationError(
                .malformedYAML, at: SourceLocation(file: file), keyPath: "", expected: "valid YAML", found: "\(error)")
        }
        let limit = RobotConfiguration.maximumExpandedNodes
        if let node = YAMLExpansion.nodeWhereLimitIsPassed(root, limit: limit) {
            throw ConfigurationError(
                .tooLarge, at: reader.location(node), keyPath: "",
                expected: "at most \(limit) nodes once aliases and merge keys ('<<') are expanded",
                found: "a document that expands to more (here the count passes the limit)")
        }
        return root
    }
}
