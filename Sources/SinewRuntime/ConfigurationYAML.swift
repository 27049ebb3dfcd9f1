import Foundation
import SinewCore
import Yams

/// Reading helpers over Yams' node tree that keep the file, line, column and key path of every value, so
/// any error can say exactly where it is.
struct YAMLReader {
    let file: String

    func location(_ node: Node) -> SourceLocation {
        guard let mark = node.mark else { return SourceLocation(file: file) }
        return SourceLocation(file: file, line: mark.line, column: mark.column)
    }

    func error(
        _ kind: ConfigurationError.Kind, _ node: Node, _ path: String, expected: String, found: String? = nil
    ) -> ConfigurationError {
        ConfigurationError(kind, at: location(node), keyPath: path, expected: expected, found: found ?? describe(node))
    }

    /// A node in words, for "found …".
    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if isNull(node) { return "nothing" }
            return "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// `key:` with no value, `~` and `null` all mean "not given".
    func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    func scalarText(_ node: Node, _ path: String, expected: String) throws(ConfigurationError) -> String {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            throw error(.wrongType, node, path, expected: expected)
        }
        return scalar.string
    }

    func string(_ node: Node, _ path: String, expected: String = "a string") throws(ConfigurationError) -> String {
        let text = try scalarText(node, path, expected: expected)
        if text.isEmpty { throw error(.invalidValue, node, path, expected: expected, found: "an empty string") }
        return text
    }

    func double(_ node: Node, _ path: String, expected: String = "a number") throws(ConfigurationError) -> Double {
        let text = try scalarText(node, path, expected: expected)
        if let value = node.float ?? Double(text), value.isFinite { return value }
        throw error(.wrongType, node, path, expected: expected, found: "'\(text)'")
    }

    func int(_ node: Node, _ path: String, expected: String = "an integer") throws(ConfigurationError) -> Int {
        let text = try scalarText(node, path, expected: expected)
        if let value = Int(text) { return value }
        // Yams reads YAML 1.1 integers (0x1F, 1_000, sexagesimal 1:30) too, but multiplies the sexagesimal
        // digits without overflow checks (`1:1:1:1:1:1:1:1:1:1:1:1` would trap): those never reach it.
        if !text.contains(":"), let value = node.int { return value }
        throw error(.wrongType, node, path, expected: expected, found: "'\(text)'")
    }

    func bool(_ node: Node, _ path: String) throws(ConfigurationError) -> Bool {
        let text = try scalarText(node, path, expected: "true or false")
        if let value = node.bool { return value }
        throw error(.wrongType, node, path, expected: "true or false", found: "'\(text)'")
    }

    /// One of the raw values of an enum; the expected text lists them all.
    func word<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, _: T.Type) throws(ConfigurationError)
        -> T where T.RawValue == String
    {
        let words = T.allCases.map { "'\($0.rawValue)'" }.joined(separator: " or ")
        let text = try scalarText(node, path, expected: words)
        guard let value = T(rawValue: text) else { throw error(.invalidValue, node, path, expected: words) }
        return value
    }

    func list(_ node: Node, _ path: String, expected: String = "a list") throws(ConfigurationError) -> [Node] {
        guard case .sequence(let sequence) = node else { throw error(.wrongType, node, path, expected: expected) }
        return Array(sequence)
    }

    /// Three numbers, each within ±`bound` (written `boundText` in messages, when given).
    func vector3(_ node: Node, _ path: String, unit: String, bound: Double, boundText: String? = nil)
        throws(ConfigurationError) -> SIMD3<Double>
    {
        let text = boundText ?? Self.text(bound)
        let range = "in [-\(text), \(text)]"
        let expected = "a list of three numbers [x, y, z] (\(unit)), each \(range)"
        let items = try list(node, path, expected: expected)
        guard items.count == 3 else {
            throw error(.invalidValue, node, path, expected: expected, found: "a list of \(items.count)")
        }
        var v = SIMD3<Double>.zero
        for i in 0..<3 {
            let itemPath = "\(path)[\(i)]"
            let itemExpected = "a number \(range) (\(unit))"
            v[i] = try double(items[i], itemPath, expected: itemExpected)
            guard abs(v[i]) <= bound else { throw error(.invalidValue, items[i], itemPath, expected: itemExpected) }
        }
        return v
    }

    /// A bound in messages: `100`, `6.283185307179586`.
    static func text(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    /// A device path or `virtual`.
    func port(_ node: Node, _ path: String) throws(ConfigurationError) -> RobotConfiguration.Port {
        let expected = "'virtual' or a device path such as /dev/ttyACM0"
        let text = try string(node, path, expected: expected)
        if text == "virtual" { return .virtual }
        guard text.hasPrefix("/") else { throw error(.invalidValue, node, path, expected: expected) }
        return .device(text)
    }
}

/// The keys of one YAML mapping, checked against the keys valid at that place.
struct YAMLFields {
    let reader: YAMLReader
    let node: Node
    let path: String
    private let values: [String: (key: Node, value: Node)]

    init(_ node: Node, path: String, allowed: [String], reader: YAMLReader) throws(ConfigurationError) {
        self.reader = reader
        self.node = node
        self.path = path
        let keyList = allowed.joined(separator: ", ")
        guard case .mapping(let mapping) = node else {
            throw reader.error(.wrongType, node, path, expected: "a mapping with keys \(keyList)")
        }
        var values: [String: (key: Node, value: Node)] = [:]
        for (keyNode, valueNode) in try Self.flattened(mapping, path: path, reader: reader) {
            guard case .scalar(let scalar) = keyNode else {
                throw reader.error(.wrongType, keyNode, path, expected: "a plain key")
            }
            let key = scalar.string
            guard allowed.contains(key) else {
                throw ConfigurationError(
                    .unknownKey, at: reader.location(keyNode), keyPath: path, expected: "one of \(keyList)",
                    found: "'\(key)'", suggestion: KeySuggestion.closest(to: key, among: allowed))
            }
            // Explicit keys come first in the flattened list and win over merged ones.
            if values[key] == nil { values[key] = (keyNode, valueNode) }
        }
        self.values = values
    }

    /// The mapping's own pairs, then those brought in by YAML merge keys (`<<: *defaults` or
    /// `<<: [*a, *b]`, earlier sources winning), so shared settings can be written once with an anchor.
    private static func flattened(_ mapping: Node.Mapping, path: String, reader: YAMLReader) throws(ConfigurationError)
        -> [(Node, Node)]
    {
        var own: [(Node, Node)] = []
        var merged: [(Node, Node)] = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode, scalar.string == "<<", scalar.style != .singleQuoted,
                scalar.style != .doubleQuoted
            else {
                own.append((keyNode, valueNode))
                continue
            }
            var sources: [Node] = []
            switch valueNode {
            case .mapping: sources = [valueNode]
            case .sequence(let sequence): sources = Array(sequence)
            default: break
            }
            for source in sources {
                guard case .mapping(let sourceMapping) = source else {
                    throw reader.error(
                        .wrongType, source, path, expected: "a mapping (or a list of mappings) to merge with '<<'")
                }
                merged += try flattened(sourceMapping, path: path, reader: reader)
            }
            if sources.isEmpty {
                throw reader.error(
                    .wrongType, valueNode, path, expected: "a mapping (or a list of mappings) to merge with '<<'")
            }
        }
        return own + merged
    }

    func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value of `key`, nil when absent or null.
    subscript(key: String) -> Node? {
        guard let entry = values[key], !reader.isNull(entry.value) else { return nil }
        return entry.value
    }

    func required(_ key: String, expected: String) throws(ConfigurationError) -> Node {
        if let value = self[key] { return value }
        if let entry = values[key] {
            throw reader.error(.missingKey, entry.value, childPath(key), expected: expected, found: "nothing")
        }
        throw ConfigurationError(
            .missingKey, at: reader.location(node), keyPath: childPath(key), expected: expected, found: "nothing")
    }

    func string(_ key: String, default value: String? = nil) throws(ConfigurationError) -> String? {
        guard let node = self[key] else { return value }
        return try reader.string(node, childPath(key))
    }

    func double(_ key: String, default value: Double, unit: String, where valid: (Double) -> Bool, _ rule: String)
        throws(ConfigurationError) -> Double
    {
        guard let node = self[key] else { return value }
        return try checkedDouble(node, key, unit: unit, where: valid, rule)
    }

    func optionalDouble(_ key: String, unit: String, where valid: (Double) -> Bool, _ rule: String)
        throws(ConfigurationError) -> Double?
    {
        guard let node = self[key] else { return nil }
        return try checkedDouble(node, key, unit: unit, where: valid, rule)
    }

    private func checkedDouble(_ node: Node, _ key: String, unit: String, where valid: (Double) -> Bool, _ rule: String)
        throws(ConfigurationError) -> Double
    {
        let expected = "a number \(rule) (\(unit))"
        let value = try reader.double(node, childPath(key), expected: expected)
        guard valid(value) else { throw reader.error(.invalidValue, node, childPath(key), expected: expected) }
        return value
    }

    func int(_ key: String, default value: Int, where valid: (Int) -> Bool, _ rule: String) throws(ConfigurationError)
        -> Int
    {
        guard let node = self[key] else { return value }
        let expected = "an integer \(rule)"
        let result = try reader.int(node, childPath(key), expected: expected)
        guard valid(result) else { throw reader.error(.invalidValue, node, childPath(key), expected: expected) }
        return result
    }

    func bool(_ key: String, default value: Bool) throws(ConfigurationError) -> Bool {
        guard let node = self[key] else { return value }
        return try reader.bool(node, childPath(key))
    }

    func word<T: RawRepresentable & CaseIterable>(_ key: String, default value: T) throws(ConfigurationError) -> T
    where T.RawValue == String {
        guard let node = self[key] else { return value }
        return try reader.word(node, childPath(key), T.self)
    }

    /// A direction: exactly 1 or -1.
    func direction(_ key: String) throws(ConfigurationError) -> Int {
        guard let node = self[key] else { return 1 }
        let expected = "1 or -1"
        let value = try reader.int(node, childPath(key), expected: expected)
        guard value == 1 || value == -1 else {
            throw reader.error(.invalidValue, node, childPath(key), expected: expected)
        }
        return value
    }
}

extension YamlError {
    /// The position libyaml reported, when it reported one.
    var mark: Mark? {
        switch self {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark
        case .duplicatedKeysInMapping(_, let context): context.mark
        default: nil
        }
    }

    var problem: String {
        switch self {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
            .composer(let context, let problem, _, _):
            if let context { return "\(problem) (\(context.text) at \(context.mark))" }
            return problem
        case .duplicatedKeysInMapping(let duplicates, _):
            return
                "the key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) appears more than once in one mapping"
        case .reader(let problem, _, _, _): return problem
        default: return "\(self)"
        }
    }
}
