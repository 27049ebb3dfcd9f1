import Foundation
import Yams

/// The bounds a `robot.yaml` is held to besides the per-key ranges in `ConfigurationParser.swift`: every
/// number has a physically meaningful range, so nothing computed from it later (periods in nanoseconds,
/// counts, buffer sizes) can overflow or trap; and hostile documents (huge files, merge-key bombs) are
/// refused before they cost memory.
extension RobotConfiguration {
    /// The largest `robot.yaml` read, bytes. A real one is a few kilobytes.
    public static let maximumFileBytes = 1 << 20
    /// The most nodes a document may have once its aliases and merge keys are expanded. A real one has a
    /// few hundred; a merge-key bomb (merges of merges of lists of aliases) has billions.
    public static let maximumExpandedNodes = 100_000
    /// Positions (rad), limits included: within ±this.
    public static let positionBoundRad = 100.0
    /// Distances (m): workspace boxes, IMU mounting.
    public static let distanceBoundM = 100.0
    /// Durations (s): trajectory segments.
    public static let durationBoundS = 1_000_000.0
    /// The longest robot name.
    public static let maximumNameLength = 64

    /// What a robot name may be, in words.
    static let nameRule =
        "a name of 1–\(maximumNameLength) letters, digits, '_', '.' or '-', not starting with '.' "
        + "(it names files such as recordings)"

    /// Whether `name` is a safe robot name: [A-Za-z0-9_.-], 1–64 characters, no leading dot. It becomes part
    /// of file names (`<name>-<date>.csv` recordings), so it must not reach outside a folder or hide a file.
    public static func isSafeName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maximumNameLength, name.first != "." else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }

    /// A safe name made from any text (the default name, from the folder of robot.yaml): other characters
    /// become '_', leading dots go, at most 64 characters; "robot" when nothing is left.
    public static func safeName(from text: String) -> String {
        var bytes = text.utf8.map { byte -> UInt8 in
            let allowed =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
            return allowed ? byte : 0x5F
        }
        while bytes.first == 0x2E { bytes.removeFirst() }
        if bytes.count > maximumNameLength { bytes.removeLast(bytes.count - maximumNameLength) }
        let name = String(decoding: bytes, as: UTF8.self)
        // A folder name made only of characters that are not allowed says nothing.
        return name.isEmpty || name.utf8.allSatisfy({ $0 == 0x5F }) ? "robot" : name
    }
}

/// Counts the nodes of a composed document as the parser will see them: every alias and every merge source
/// counted again where it is used. Stops as soon as the count passes the limit, so a document whose
/// expansion is astronomically large costs no more than the limit to refuse.
enum YAMLExpansion {
    /// The first node at which the expanded document passes `limit` nodes, or nil when it stays within.
    static func nodeWhereLimitIsPassed(_ root: Node, limit: Int) -> Node? {
        var count = 0
        // An explicit stack: a deeply nested document must not overflow the thread's stack here either.
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            count += 1
            if count > limit { return node }
            switch node {
            case .scalar, .alias: break
            case .sequence(let sequence): stack.append(contentsOf: sequence)
            case .mapping(let mapping):
                for (key, value) in mapping {
                    stack.append(key)
                    stack.append(value)
                }
            }
            // The stack holds at most the unvisited siblings along one path; bound it too, since each entry
            // is a node still to be counted.
            if stack.count > limit - count { return node }
        }
        return nil
    }
}

/// Finds mapping keys that are not plain scalars, before the document is composed. robot.yaml's keys are
/// words; a key that is an alias or a collection makes the YAML library hash the whole node it stands for
/// while checking for duplicate keys, which for an alias to a nested alias bomb takes hours, before any
/// limit on the expanded document could apply.
///
/// It looks, outside quoted scalars and comments, for an explicit key (`? `), an alias followed by `:`
/// (`*a: …`), and a flow collection followed by `:` (`[*a]: …`, `{…}: …`): every way a key that is not a
/// scalar can be written.
enum YAMLKeyScan {
    /// 1-based line and column (in Unicode scalars) of the first such key, and what it is.
    static func firstNonScalarKey(in text: String) -> (line: Int, column: Int, what: String)? {
        let scalars = Array(text.unicodeScalars)
        var line = 1
        var lineStart = 0
        var i = 0
        /// Whether position `k` starts a token: after the line's indentation, whitespace or a flow indicator.
        func startsToken(_ k: Int) -> Bool {
            k == lineStart || " \t[{,".unicodeScalars.contains(scalars[k - 1])
        }
        func isBreakOrEnd(_ k: Int) -> Bool {
            k >= scalars.count || " \t\r\n".unicodeScalars.contains(scalars[k])
        }
        /// Whether a ':' that makes what precedes it a key comes after position `k` (spaces skipped).
        func keyIndicator(after k: Int) -> Bool {
            var j = k
            while j < scalars.count && (scalars[j] == " " || scalars[j] == "\t") { j += 1 }
            guard j < scalars.count, scalars[j] == ":" else { return false }
            return isBreakOrEnd(j + 1) || ",]}".unicodeScalars.contains(scalars[j + 1])
        }
        while i < scalars.count {
            let c = scalars[i]
            if c == "\n" {
                line += 1
                lineStart = i + 1
            } else if c == "#" && startsToken(i) {
                while i < scalars.count && scalars[i] != "\n" { i += 1 }
                continue
            } else if (c == "'" || c == "\"") && startsToken(i) {
                // A quoted scalar, possibly over several lines; '' and \" do not end it.
                var j = i + 1
                while j < scalars.count {
                    if scalars[j] == "\n" {
                        line += 1
                        lineStart = j + 1
                    } else if c == "\"" && scalars[j] == "\\" {
                        if j + 1 < scalars.count && scalars[j + 1] == "\n" {
                            line += 1
                            lineStart = j + 2
                        }
                        j += 2
                        continue
                    } else if scalars[j] == c {
                        guard c == "'" && j + 1 < scalars.count && scalars[j + 1] == "'" else { break }
                        j += 1
                    }
                    j += 1
                }
                i = j + 1
                continue
            } else if c == "?" && startsToken(i) && isBreakOrEnd(i + 1) {
                return (line, i - lineStart + 1, "an explicit key ('? ')")
            } else if c == "*" && startsToken(i) {
                // An alias name, as the YAML library reads it: ASCII letters, digits, '_' and '-'.
                var j = i + 1
                while j < scalars.count, case let v = scalars[j].value,
                    (48...57).contains(v) || (65...90).contains(v) || (97...122).contains(v) || v == 95 || v == 45
                {
                    j += 1
                }
                if keyIndicator(after: j) { return (line, i - lineStart + 1, "an alias used as a key") }
                i = j
                continue
            } else if (c == "]" || c == "}") && keyIndicator(after: i + 1) {
                return (line, i - lineStart + 1, "a list or mapping used as a key")
            }
            i += 1
        }
        return nil
    }
}
