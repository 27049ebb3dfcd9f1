import Foundation

/// The secret the dashboard and the metrics endpoint require: from `--token-file` (or robot.yaml's
/// `telemetry.token_file`), or generated at start and printed. Compared in constant time.
public struct AccessToken: Sendable, Equatable {
    public let value: String

    /// Characters a token may hold: URL-safe, so it travels in a query string and a cookie unencoded.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }

    public init(_ value: String) throws(AccessTokenError) {
        guard value.utf8.count >= 16 else { throw .init("a token needs at least 16 characters") }
        guard value.utf8.count <= 256 else { throw .init("a token may have at most 256 characters") }
        guard value.utf8.allSatisfy(Self.isTokenByte) else {
            throw .init("a token may hold only letters, digits and - _ . ~")
        }
        self.value = value
    }

    /// 32 random bytes from the system's generator, as 64 hexadecimal digits.
    public static func generate() -> AccessToken {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }
        return try! AccessToken(hex.joined())  // 64 hex digits always pass
    }

    /// The token in the file at `path` (its first line, white space around it dropped).
    public static func load(path: String) throws(AccessTokenError) -> AccessToken {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .init("cannot read the token file \(path): \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: 4096)) ?? nil
        let text = String(decoding: data ?? Data(), as: UTF8.self)
        let line = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map(String.init) ?? ""
        do {
            return try AccessToken(line.trimmingCharacters(in: .whitespaces))
        } catch {
            throw .init("token file \(path): \(error.message)")
        }
    }

    /// Whether `candidate` is this token, in time that depends on the length only.
    public func matches<S: StringProtocol>(_ candidate: S?) -> Bool {
        guard let candidate else { return false }
        let a = Array(value.utf8)
        let b = Array(candidate.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

public struct AccessTokenError: Error, Sendable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where a request carries the token: `Authorization: Bearer TOKEN`, the cookie `sinew_token`, or the query
/// parameter `token`. Each reader takes text from outside and never fails: malformed input yields nil.
public enum RequestToken {
    public static let cookieName = "sinew_token"
    /// Longest header or query this looks into; longer ones are not searched (the token is at most 256 bytes).
    static let maximumInputBytes = 8192

    /// The bearer token of an `Authorization` header value.
    public static func fromAuthorization(_ header: String?) -> Substring? {
        guard let header, header.utf8.count <= maximumInputBytes else { return nil }
        let trimmed = header.drop { $0 == " " || $0 == "\t" }
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        let token = trimmed.dropFirst(7).drop { $0 == " " }
        let end = token.firstIndex { $0 == " " || $0 == "\t" } ?? token.endIndex
        let value = token[..<end]
        return value.isEmpty ? nil : value
    }

    /// The value of the cookie `sinew_token` in a `Cookie` header value (`a=b; sinew_token=…`).
    public static func fromCookie(_ header: String?) -> Substring? {
        guard let header, header.utf8.count <= maximumInputBytes else { return nil }
        for pair in header.split(separator: ";") {
            let item = pair.drop { $0 == " " || $0 == "\t" }
            guard let equals = item.firstIndex(of: "=") else { continue }
            if item[..<equals] == cookieName {
                var value = item[item.index(after: equals)...]
                while value.last == " " || value.last == "\t" { value = value.dropLast() }
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 {
                    value = value.dropFirst().dropLast()
                }
                return value
            }
        }
        return nil
    }

    /// The parameter `token` of a request target (`/path?a=b&token=…`); no percent-decoding, since a token is
    /// URL-safe.
    public static func fromQuery(target: String) -> Substring? {
        guard target.utf8.count <= maximumInputBytes, let question = target.firstIndex(of: "?") else { return nil }
        var query = target[target.index(after: question)...]
        if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
        for pair in query.split(separator: "&") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            if pair[..<equals] == "token" { return pair[pair.index(after: equals)...] }
        }
        return nil
    }

    /// Whether a request with these header values and target carries `token` in any of the three places.
    public static func authorizes(
        _ token: AccessToken, authorization: String?, cookie: String?, target: String
    ) -> Bool {
        token.matches(fromAuthorization(authorization)) || token.matches(fromCookie(cookie))
            || token.matches(fromQuery(target: target))
    }
}

/// What a dashboard client may ask of the robot over its WebSocket, one text message each: `estop` (the robot goes
/// to its safe state in the next tick) or `recover` (as the terminal's `r`). Anything else is refused.
public enum DashboardCommand: Equatable, Sendable {
    case emergencyStop
    case recover

    /// The longest message read; longer ones are refused unread.
    public static let maximumMessageBytes = 64

    public init?(message: String) {
        guard message.utf8.count <= Self.maximumMessageBytes else { return nil }
        let word = message.trimmingCharacters(in: .whitespacesAndNewlines)
        switch word {
        case "estop": self = .emergencyStop
        case "recover": self = .recover
        default: return nil
        }
    }
}
