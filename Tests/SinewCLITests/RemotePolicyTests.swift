import Foundation
import SinewTestSupport
import Testing

/// `python -m sinew_policy_server` (python/sinew_policy_server) as a child of the test: it ends with the test
/// (SINEW_EXIT_WITH_PARENT), and is killed on demand.
final class PolicyServerChild {
    let process: Process
    let port: Int
    let logPath: String

    init(_ arguments: [String], port: Int = 0) throws {
        let python = try testPython(importing: ["websockets", "msgpack", "numpy"])
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-server-\(UUID().uuidString)")
            .path
        let readyPath = base + ".port"
        logPath = base + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments =
            ["-m", "sinew_policy_server", "--port", String(port), "--ready-file", readyPath] + arguments
        var environment = sinewChildEnvironment
        environment["PYTHONPATH"] = repositoryRoot + "/python"
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let end = Date().addingTimeInterval(20)
        var found: Int?
        while Date() < end && process.isRunning {
            if let text = try? String(contentsOfFile: readyPath, encoding: .utf8),
                let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                found = p
                break
            }
            usleep(50_000)
        }
        try? FileManager.default.removeItem(atPath: readyPath)
        guard let found else {
            process.terminate()
            throw ServerDidNotStart(log: (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
        }
        self.port = found
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGKILL, as a crashed or killed server: no goodbye on the socket.
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

struct ServerDidNotStart: Error, CustomStringConvertible {
    var log: String
    var description: String { "the policy server did not start:\n\(log)" }
}

/// Remote learned policies end to end: the Python server with its numpy stand-in drives the simulated SO-101
/// through `sinew run` in real time, over openpi's websocket protocol with a token.
@Suite(.serialized) struct RemotePolicyTests {
    /// A scratch directory holding a token file (`token`, for the server and the robot alike).
    static func scratchDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-remote-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let token = "test-token-\(UInt32.random(in: 0...UInt32.max))"
        try (token + "\n").write(to: directory.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        return directory
    }

    /// A robot.yaml (the SO-101's) in `directory` whose policy is `remote` at `port`, with its token file.
    static func robotYAML(in directory: URL, port: Int, policyLines: [String] = [], estopSocket: Bool = false) throws
        -> (robot: String, socket: String)
    {
        let shipped = try String(contentsOfFile: repositoryRoot + "/Hardware/robots/so101/robot.yaml", encoding: .utf8)
        var lines = shipped.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "policy:"))
        let end = try #require(lines[start...].firstIndex(of: ""))
        lines.replaceSubrange(
            start..<end,
            with: [
                "policy:", "  type: remote", "  url: ws://127.0.0.1:\(port)", "  token_file: token", "  prompt: wave",
                "  chunk: {steps: 50, step_s: 0.0333, request_when_remaining: 0.7}",
            ] + policyLines.map { "  " + $0 })
        let socket = directory.appendingPathComponent("estop.sock").path
        var text = lines.joined(separator: "\n").replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        text = text.replacingOccurrences(
            of: "    file: /tmp/sinew-so101.estop    # `touch` it to stop the arm",
            with: estopSocket ? "    socket: \(socket)" : "    required: false")
        let robot = directory.appendingPathComponent("robot.yaml").path
        try text.write(toFile: robot, atomically: true, encoding: .utf8)
        return (robot, socket)
    }

    static func json(_ text: String) throws -> [String: Any] {
        let line = try #require(text.split(separator: "\n").last(where: { $0.hasPrefix("{") }), "no JSON in: \(text)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    /// The arm follows the stand-in's chunks: every chunk taken, none refused, no safety event, tracking within
    /// 30 mrad RMS, and the run reports the server's metadata.
    @Test func theArmFollowsTheStandInsChunks() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try PolicyServerChild(["--token-file", directory.appendingPathComponent("token").path])
        let (robot, _) = try Self.robotYAML(in: directory, port: server.port)
        let result = try runSinew(["run", robot, "--duration", "5", "--json"])
        let report = try Self.json(result.stdout)
        let remote = try #require(report["remote"] as? [String: Any], "\(result.stdout)\n\(result.stderr)")
        print("remote stand-in: \(remote); tracking \(report["tracking_rms_rad"] ?? "?") rad")
        #expect(result.status == 0, "\(result.stderr)\n\(server.log)")
        #expect(report["final_state"] as? String == "active")
        #expect((remote["chunks_received"] as? Int ?? 0) >= 6)
        #expect(remote["chunks_refused"] as? Int == 0)
        #expect((report["safety_events"] as? [Any])?.isEmpty == true)
        #expect((report["tracking_rms_rad"] as? Double ?? 1) < 0.03)
        #expect((remote["server_metadata"] as? String)?.contains("stand-in") == true)
    }

    /// A client without the server's token is refused at the handshake (401), and the run ends before any
    /// servo is touched, saying so.
    @Test func aWrongTokenIsRefusedBeforeTorque() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let serverToken = directory.appendingPathComponent("server-token").path
        try "another-token\n".write(toFile: serverToken, atomically: true, encoding: .utf8)
        let server = try PolicyServerChild(["--token-file", serverToken])
        let (robot, _) = try Self.robotYAML(in: directory, port: server.port)
        let result = try runSinew(["run", robot, "--duration", "3", "--json"])
        let report = try Self.json(result.stdout)
        let error = report["error"] as? String ?? ""
        print("wrong token: exit \(result.status), \(error)")
        #expect(result.status == 1)
        #expect(report["final_state"] as? String == "unconfigured")
        #expect(error.contains("401") && error.contains("token"))
        #expect(server.log.contains("wrong or missing token"))
    }

    /// A chunk with a NaN is refused with the reason and never executed: the robot goes on with the good ones
    /// (no non-finite command reaches the guard), and the run counts the refusals.
    @Test func aChunkWithNaNIsRefused() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try PolicyServerChild([
            "--token-file", directory.appendingPathComponent("token").path, "--nan-every", "3",
        ])
        let (robot, _) = try Self.robotYAML(in: directory, port: server.port)
        let result = try runSinew(["run", robot, "--duration", "5", "--json"])
        let report = try Self.json(result.stdout)
        let remote = try #require(report["remote"] as? [String: Any], "\(result.stdout)\n\(result.stderr)")
        print("NaN chunks: \(remote)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect((remote["chunks_refused"] as? Int ?? 0) >= 2)
        #expect((remote["chunks_received"] as? Int ?? 0) >= 4)
        #expect((remote["last_error"] as? String)?.contains("not a finite number") == true)
        #expect((report["safety_events"] as? [Any])?.isEmpty == true)
    }

    /// The server killed mid-run: the robot holds when its last chunk runs out, then the watchdog brings it to
    /// its safe state naming the policy; a server started again on the same port and `recover` on the e-stop
    /// socket bring it back under the policy, which reconnects.
    @Test func aKilledServerMeansHoldThenSafeStateAndARestartedOneResumesAfterRecovery() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenPath = directory.appendingPathComponent("token").path
        let first = try PolicyServerChild(["--token-file", tokenPath])
        let (robot, socket) = try Self.robotYAML(in: directory, port: first.port, estopSocket: true)
        let run = try SinewChild(["run", robot, "--duration", "10", "--json"])
        usleep(3_000_000)
        first.kill()
        // The last chunk lasts at most 1.7 s, then the watchdog's 50 ms.
        usleep(3_000_000)
        let second = try PolicyServerChild(["--token-file", tokenPath], port: first.port)
        usleep(500_000)
        let answer = sendLine("recover", to: socket)
        print("recover: \(answer ?? "no answer")")
        #expect(run.wait(within: 20), "the run did not end: \(run.stderr)")
        let report = try Self.json(run.stdout)
        let remote = try #require(report["remote"] as? [String: Any], "\(run.stdout)\n\(run.stderr)")
        let events = report["safety_events"] as? [[String: Any]] ?? []
        print("killed server: \(remote); events \(events); \(second.log.split(separator: "\n").count) server log lines")
        #expect(events.first?["cause"] as? String == "staleCommand")
        #expect((events.first?["detail"] as? String)?.contains("remote") == true)
        #expect(report["recoveries"] as? Int == 1)
        #expect(report["final_state"] as? String == "active", "\(run.stderr)")
        #expect((remote["reconnects"] as? Int ?? 0) >= 1)
        #expect((remote["stale_events"] as? Int ?? 0) >= 1)
    }

    /// One line to a Unix socket, and the first line of the answer.
    func sendLine(_ line: String, to path: String) -> String? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { return nil }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    /// A self-signed certificate (and key) for `names` (subjectAltName entries, e.g. `IP:127.0.0.1`) in `directory`.
    func certificate(in directory: URL, names: String) throws -> (cert: String, key: String) {
        let cert = directory.appendingPathComponent("cert-\(UUID().uuidString.prefix(6)).pem").path
        let key = directory.appendingPathComponent("key-\(UUID().uuidString.prefix(6)).pem").path
        let made = runProcess(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj",
                "/CN=sinew-test", "-addext", "subjectAltName=\(names)",
            ])
        try #require(made.status == 0, "openssl (Debian's openssl, installed by make deps): \(made.output)")
        return (cert, key)
    }

    /// wss://: the arm runs from a server behind TLS whose certificate the robot trusts (`ca_file`), and a server
    /// whose certificate names another host is refused before torque.
    @Test func tlsWithTheServersCertificateCheckedAgainstItsName() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenPath = directory.appendingPathComponent("token").path
        let good = try certificate(in: directory, names: "IP:127.0.0.1,DNS:localhost")
        let server = try PolicyServerChild(["--token-file", tokenPath, "--tls-cert", good.cert, "--tls-key", good.key])
        var (robot, _) = try Self.robotYAML(in: directory, port: server.port, policyLines: ["ca_file: \(good.cert)"])
        var text = try String(contentsOfFile: robot, encoding: .utf8).replacingOccurrences(
            of: "url: ws://", with: "url: wss://")
        try text.write(toFile: robot, atomically: true, encoding: .utf8)
        let result = try runSinew(["run", robot, "--duration", "2", "--json"])
        let report = try Self.json(result.stdout)
        let remote = try #require(report["remote"] as? [String: Any], "\(result.stdout)\n\(result.stderr)")
        print("wss: \(remote)")
        #expect(result.status == 0, "\(result.stderr)\n\(server.log)")
        #expect((remote["chunks_received"] as? Int ?? 0) >= 2)

        let other = try certificate(in: directory, names: "DNS:other.example")
        let wrong = try PolicyServerChild(["--token-file", tokenPath, "--tls-cert", other.cert, "--tls-key", other.key])
        (robot, _) = try Self.robotYAML(in: directory, port: wrong.port, policyLines: ["ca_file: \(other.cert)"])
        text = try String(contentsOfFile: robot, encoding: .utf8).replacingOccurrences(
            of: "url: ws://", with: "url: wss://")
        try text.write(toFile: robot, atomically: true, encoding: .utf8)
        let refused = try runSinew(["run", robot, "--duration", "2", "--json"])
        let error = try Self.json(refused.stdout)["error"] as? String ?? ""
        print("wss with a certificate for another name: \(error)")
        #expect(refused.status == 1)
        #expect(error.contains("not trusted"))
    }
}
