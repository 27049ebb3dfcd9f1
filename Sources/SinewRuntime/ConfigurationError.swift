import SinewCore

/// What is wrong with a `robot.yaml`, where, and what was expected instead.
///
/// `location` points at the offending node (the key itself for an unknown key, the enclosing mapping for
/// a missing key); `keyPath` names it the way a user would write it, e.g. `joints[2].reducer.ratio`.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file could not be read.
        case unreadableFile
        /// The text is not YAML (scanner/parser error from the YAML library), or uses a YAML feature the
        /// configuration does not accept (for example an empty document).
        case malformedYAML
        /// A key that is not valid at that place; `suggestion` holds the closest valid key, if any is close.
        case unknownKey
        /// A required key is absent.
        case missingKey
        /// The node has the wrong shape or scalar type (a list where a number was expected, …).
        case wrongType
        /// The value has the right type but is out of range or not one of the allowed words.
        case invalidValue
        /// Two joints (or buses) with the same name.
        case duplicateName
        /// A joint names a bus that is not configured.
        case unknownBus
        /// Two servos on one bus share an ID.
        case duplicateServoID
        /// A servo ID outside the protocol's range.
        case servoIDOutOfRange
        /// A servo model not in `ServoModelCatalog`.
        case unknownServoModel
        /// A servo model that does not speak the protocol of the bus it is on.
        case servoProtocolMismatch
        /// Position limits with lo ≥ hi.
        case invalidLimits
        /// The URDF named by `model` could not be loaded (its own error is in `found`).
        case modelUnloadable
        /// A configured joint does not exist in the URDF.
        case unknownModelJoint
        /// A configured joint exists in the URDF but does not move (fixed, floating, planar).
        case notAMovingJoint
        /// A frame (workspace box, IMU link) that is not a link of the URDF.
        case unknownFrame
        /// A value outside what the URDF allows where that cannot be tolerated (trajectory waypoints).
        case outsideModelLimits
        /// The motion file `simulation.motion` names is not a valid motion, or moves a joint that is not
        /// configured (the location is in the motion file where it can be, and `found` says what is wrong).
        case invalidMotion
        /// The file, or the document once its aliases and merge keys are expanded, is larger than a
        /// configuration can sensibly be (`RobotConfiguration.maximumFileBytes`, `maximumExpandedNodes`).
        case tooLarge
    }

    public var kind: Kind
    /// File, 1-based line and column of the offending node.
    public var location: SourceLocation
    /// Where in the document, e.g. `joints[2].reducer.ratio`; empty for the document itself.
    public var keyPath: String
    /// What would have been accepted, in words.
    public var expected: String
    /// What was there, in words (a quoted scalar, "a mapping", "nothing", …).
    public var found: String
    /// For `unknownKey`: the closest valid key, when one is close enough to be a likely typo.
    public var suggestion: String?

    public init(
        _ kind: Kind, at location: SourceLocation, keyPath: String, expected: String, found: String,
        suggestion: String? = nil
    ) {
        self.kind = kind
        self.location = location
        self.keyPath = keyPath
        self.expected = expected
        self.found = found
        self.suggestion = suggestion
    }

    public var description: String {
        switch kind {
        case .unknownKey:
            let place = keyPath.isEmpty ? "at the top level" : "in \(keyPath)"
            var text = "\(location): unknown key \(found) \(place)"
            if let suggestion {
                text += "; did you mean '\(suggestion)'?"
            } else {
                text += "; expected \(expected)"
            }
            return text
        case .malformedYAML:
            return "\(location): not valid YAML: \(found)"
        case .tooLarge:
            return "\(location): too large: \(found); expected \(expected)"
        case .invalidMotion:
            // The location is in the motion file, and `found` says what is wrong there in full.
            return "\(location): \(keyPath): \(found)"
        default:
            let subject = keyPath.isEmpty ? "" : "\(keyPath): "
            return "\(location): \(subject)expected \(expected), found \(found)"
        }
    }
}

/// Something in a configuration that is accepted but probably not what was meant (for example a position
/// limit wider than the URDF's: the safety supervisor enforces the narrower of the two anyway).
public struct ConfigurationWarning: Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    public var keyPath: String
    public var message: String

    public init(at location: SourceLocation, keyPath: String, _ message: String) {
        self.location = location
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String { "\(location): warning: \(keyPath): \(message)" }
}

/// Typo suggestions: the valid key with the smallest optimal-string-alignment distance (Levenshtein plus
/// adjacent transpositions, so `ratoi` is one edit from `ratio`), if it is close enough to be a typo
/// rather than a different word.
enum KeySuggestion {
    static func closest(to key: String, among candidates: [String]) -> String? {
        // A typo is a few edits from a short word; a very long key is none (and would cost length² here).
        guard key.unicodeScalars.count <= 100 else { return nil }
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let d = distance(key, candidate)
            if best == nil || d < best!.distance { best = (candidate, d) }
        }
        guard let best else { return nil }
        let tolerance = max(1, min(3, (best.name.count + 2) / 3))
        // A one-letter key is one edit from every other one-letter key: no suggestion unless something stays.
        return best.distance <= tolerance && best.distance < best.name.count ? best.name : nil
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let s = Array(a.lowercased().unicodeScalars)
        let t = Array(b.lowercased().unicodeScalars)
        if s.isEmpty { return t.count }
        if t.isEmpty { return s.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: t.count + 1), count: s.count + 1)
        for i in 0...s.count { d[i][0] = i }
        for j in 0...t.count { d[0][j] = j }
        for i in 1...s.count {
            for j in 1...t.count {
                let cost = s[i - 1] == t[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, s[i - 1] == t[j - 2], s[i - 2] == t[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[s.count][t.count]
    }
}
