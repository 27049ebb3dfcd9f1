/// Where a telemetry server listens (`--metrics`, `--dashboard`, robot.yaml `telemetry:`): an IP address and a
/// port. Parsed from text a person typed, so every malformed form is an error that says what was expected.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// An IPv4 address in dotted decimal, or an IPv6 address without its brackets.
    public let host: String
    /// The TCP port; 0 asks the system for a free one (tests).
    public let port: Int

    /// The default metrics address (Prometheus' registered port for exporters of this kind is in 9100–9999).
    public static let defaultMetrics = ListenAddress(host: "127.0.0.1", port: 9464)
    /// The default dashboard address.
    public static let defaultDashboard = ListenAddress(host: "127.0.0.1", port: 8464)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Reads `HOST:PORT`, `[IPV6]:PORT`, `localhost:PORT` or a bare `PORT` (loopback). The host must be a numeric
    /// address (or `localhost`): a name that needs a resolver is refused, so where it binds is never a surprise.
    public init(parsing text: String) throws(ListenAddressError) {
        let text = text.trimmingWhitespace
        guard !text.isEmpty else { throw .init(text: text, reason: "empty") }
        guard text.utf8.count <= 64 else { throw .init(text: String(text.prefix(64)), reason: "too long") }
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw .init(text: text, reason: "an IPv6 address in brackets lacks its ']'")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .init(text: text, reason: "expected ':PORT' after ']'") }
            portPart = rest.dropFirst()
            guard Self.isIPv6(hostPart) else { throw .init(text: text, reason: "'\(hostPart)' is not an IPv6 address") }
        } else if let colon = text.lastIndex(of: ":") {
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") {
                throw .init(text: text, reason: "an IPv6 address needs brackets: [ADDRESS]:PORT")
            }
            if hostPart == "localhost" { hostPart = "127.0.0.1" }
            guard Self.isIPv4(hostPart) else {
                throw .init(text: text, reason: "'\(hostPart)' is not an IPv4 address (give a numeric address)")
            }
        } else {
            hostPart = "127.0.0.1"
            portPart = Substring(text)
        }
        guard !portPart.isEmpty, portPart.utf8.count <= 5, portPart.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let port = Int(portPart), port <= 65535
        else { throw .init(text: text, reason: "the port must be a number in 0–65535") }
        self.host = String(hostPart)
        self.port = port
    }

    /// Whether only this machine can connect (127.0.0.0/8 or ::1).
    public var isLoopback: Bool { host.hasPrefix("127.") || host == "::1" }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.utf8.count <= 3 && part.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
                && (Int(part) ?? 256) <= 255
        }
    }

    static func isIPv6(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 39, text.contains(":") else { return false }
        let groups = text.split(separator: ":", omittingEmptySubsequences: false)
        guard groups.count >= 3, groups.count <= 8 else { return false }
        let doubleColons = text.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        return groups.allSatisfy { group in
            group.utf8.count <= 4
                && group.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 102) }
        }
    }
}

/// A listen address that could not be read.
public struct ListenAddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public let reason: String
    public var description: String { "listen address '\(text)': \(reason) (expected HOST:PORT, e.g. 127.0.0.1:9464)" }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" || c == "\r" { s = s.dropLast() }
        return String(s)
    }
}
