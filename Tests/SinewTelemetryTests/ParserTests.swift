import Foundation
import SinewRuntime
import SinewTelemetry
import SinewTestSupport
import Testing

/// The parsers of outside input the telemetry adds: listen addresses (command line, robot.yaml), where a request
/// carries its token (headers, query), and the dashboard's WebSocket commands.
@Suite struct TelemetryParserTests {
    @Test func listenAddresses() throws {
        #expect(try ListenAddress(parsing: "127.0.0.1:9464") == ListenAddress(host: "127.0.0.1", port: 9464))
        #expect(try ListenAddress(parsing: " localhost:80 ") == ListenAddress(host: "127.0.0.1", port: 80))
        #expect(try ListenAddress(parsing: "9464") == ListenAddress(host: "127.0.0.1", port: 9464))
        #expect(try ListenAddress(parsing: "[::1]:8080") == ListenAddress(host: "::1", port: 8080))
        #expect(try ListenAddress(parsing: "0.0.0.0:0").isLoopback == false)
        #expect(try ListenAddress(parsing: "127.0.0.1:0").isLoopback)
        #expect(try ListenAddress(parsing: "[::1]:1").description == "[::1]:1")
        for bad in [
            "", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "256.0.0.1:80", "1.2.3:80",
            "robot.local:80", "::1:80", "[::1]80", "[::1:80", "[zz::1]:80", "1.2.3.4:80a", "1.2.3.4:+80",
            "1.2.3.4:080000", "[1::2::3]:80", "01234.1.1.1:1",
        ] {
            #expect(throws: ListenAddressError.self, "\(bad)") { try ListenAddress(parsing: bad) }
        }
    }

    @Test func tokensInRequests() throws {
        let token = try AccessToken("0123456789abcdef0123")
        #expect(RequestToken.fromAuthorization("Bearer 0123456789abcdef0123") == "0123456789abcdef0123")
        #expect(RequestToken.fromAuthorization("bearer   abc ") == "abc")
        #expect(RequestToken.fromAuthorization("Basic abc") == nil)
        #expect(RequestToken.fromAuthorization("Bearer") == nil)
        #expect(RequestToken.fromCookie("a=1; sinew_token=xyz; b=2") == "xyz")
        #expect(RequestToken.fromCookie("sinew_token=\"xyz\"") == "xyz")
        #expect(RequestToken.fromCookie("sinew_tokenx=1") == nil)
        #expect(RequestToken.fromQuery(target: "/?a=b&token=abc#x") == "abc")
        #expect(RequestToken.fromQuery(target: "/?xtoken=abc") == nil)
        #expect(RequestToken.fromQuery(target: "/") == nil)
        #expect(RequestToken.authorizes(token, authorization: nil, cookie: nil, target: "/?token=0123456789abcdef0123"))
        #expect(
            !RequestToken.authorizes(token, authorization: nil, cookie: nil, target: "/?token=0123456789abcdef0124"))
        #expect(!RequestToken.authorizes(token, authorization: "Bearer 0123", cookie: "sinew_token=", target: "/"))
        #expect(throws: AccessTokenError.self) { try AccessToken("short") }
        #expect(throws: AccessTokenError.self) { try AccessToken("0123456789abcdef 0123") }
        #expect(throws: AccessTokenError.self) { try AccessToken(String(repeating: "a", count: 257)) }
        let generated = AccessToken.generate()
        #expect(generated.value.count == 64)
        #expect(generated != AccessToken.generate())
    }

    @Test func tokenFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("good").path
        try "  abcdefghijklmnop-_.~123 \nsecond line\n".write(toFile: good, atomically: true, encoding: .utf8)
        #expect(try AccessToken.load(path: good).value == "abcdefghijklmnop-_.~123")
        let bad = folder.appendingPathComponent("bad").path
        try "tok en with spaces and more\n".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(throws: AccessTokenError.self) { try AccessToken.load(path: bad) }
        #expect(throws: AccessTokenError.self) {
            try AccessToken.load(path: folder.appendingPathComponent("none").path)
        }
    }

    @Test func dashboardCommands() {
        #expect(DashboardCommand(message: "estop") == .emergencyStop)
        #expect(DashboardCommand(message: " recover\n") == .recover)
        #expect(DashboardCommand(message: "ESTOP") == nil)
        #expect(DashboardCommand(message: "estop now") == nil)
        #expect(DashboardCommand(message: String(repeating: " ", count: 100) + "estop") == nil)
    }

    /// Seeded mutations of valid inputs through every parser: no crash, no hang, and every answer is either a value
    /// that re-reads the same or a clear error.
    @Test func mutatedInputs() throws {
        var random = SeededRandom(seed: 0x5EED_18)
        let seeds = [
            "127.0.0.1:9464", "[::1]:8464", "localhost:1", "9464", "Bearer 0123456789abcdef0123",
            "a=1; sinew_token=0123456789abcdef0123; b=2", "/?token=0123456789abcdef0123&x=y", "estop", "recover",
        ]
        let alphabet = Array(":[]./?&=;\" \t\r\n0123456789abcdefxyzABCDEF-_~%#\u{0}\u{7f}é∂".unicodeScalars)
        let token = try AccessToken("0123456789abcdef0123")
        var accepted = 0
        var refused = 0
        for _ in 0..<20_000 {
            var scalars = Array(seeds[Int(random.next() % UInt64(seeds.count))].unicodeScalars)
            for _ in 0...(random.next() % 4) {
                let position = scalars.isEmpty ? 0 : Int(random.next() % UInt64(scalars.count + 1))
                switch random.next() % 4 {
                case 0: scalars.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: position)
                case 1: if position < scalars.count { scalars.remove(at: position) }
                case 2:
                    if position < scalars.count {
                        scalars[position] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                    }
                default:
                    let cut = Int(random.next() % UInt64(scalars.count + 1))
                    scalars = Array(scalars[..<cut]) + Array(scalars[cut...]) + Array(scalars[..<cut])
                }
            }
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars)
            do {
                let address = try ListenAddress(parsing: text)
                #expect((0...65535).contains(address.port))
                #expect(try ListenAddress(parsing: address.description) == address, "\(text)")
                accepted += 1
            } catch {
                #expect(!error.description.isEmpty)
                refused += 1
            }
            _ = RequestToken.fromAuthorization(text)
            _ = RequestToken.fromCookie(text)
            _ = RequestToken.fromQuery(target: text)
            if RequestToken.authorizes(token, authorization: text, cookie: text, target: text) {
                #expect(text.contains(token.value))
            }
            if let command = DashboardCommand(message: text) {
                #expect(["estop", "recover"].contains(text.trimmingCharacters(in: .whitespacesAndNewlines)))
                _ = command
            }
        }
        #expect(accepted > 100 && refused > 100)
    }
}

/// SplitMix64: a small deterministic generator for mutation tests.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// robot.yaml's `telemetry:` section.
@Suite struct TelemetryConfigurationTests {
    static func so101(with telemetry: String) throws -> RobotConfiguration {
        let path = repositoryRoot + "/Hardware/robots/so101/robot.yaml"
        let text = try String(contentsOfFile: path, encoding: .utf8) + "\n" + telemetry
        return try RobotConfiguration.parse(text, file: path, baseDirectory: "/robots/so101")
    }

    @Test func telemetrySection() throws {
        let none = try Self.so101(with: "")
        #expect(none.telemetry == RobotConfiguration.Telemetry())
        let set = try Self.so101(
            with: "telemetry:\n  listen: 127.0.0.1:9464\n  dashboard: \"8464\"\n  token_file: secret.token\n")
        #expect(set.telemetry.metrics == ListenAddress(host: "127.0.0.1", port: 9464))
        #expect(set.telemetry.dashboard == ListenAddress(host: "127.0.0.1", port: 8464))
        #expect(set.telemetry.tokenFile == "/robots/so101/secret.token")
        do {
            _ = try Self.so101(with: "telemetry:\n  listen: robot.local:9464\n")
            Issue.record("a host name was accepted")
        } catch {
            #expect("\(error)".contains("telemetry.listen"), "\(error)")
            #expect("\(error)".contains("not an IPv4 address"), "\(error)")
        }
        do {
            _ = try Self.so101(with: "telemetry:\n  dashbord: 127.0.0.1:1\n")
            Issue.record("a misspelt key was accepted")
        } catch {
            #expect("\(error)".contains("dashboard"), "\(error)")
        }
    }
}
