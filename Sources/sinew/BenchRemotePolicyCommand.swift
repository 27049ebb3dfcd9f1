import ArgumentParser
import Foundation
import SinewPolicy

/// `sinew bench remote-policy`: a remote policy's round trip on loopback, Sinew's client against Sinew's Python
/// server, beside LeRobot's async-inference transport with the same payload in the same run.
struct RemotePolicyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote-policy",
        abstract: "Round trip of a remote policy on loopback: Sinew's client and server beside LeRobot's transport.",
        discussion: """
            One request is the observation a policy for an arm with a camera gets — a 6-joint state (float32), one \
            224×224×3 uint8 image and a task prompt — and its answer an action chunk of 50×6 (float32). Sinew: its \
            websocket client (openpi's protocol, msgpack, a bearer token) to `python -m sinew_policy_server` with \
            the numpy stand-in policy, timed from encoding the observation to the decoded actions. LeRobot: its \
            async-inference transport as its robot client and policy server use it (a pickled observation streamed \
            in 2 MiB pieces over gRPC, then the pickled action list), run by --lerobot-script \
            (Benchmarks/remote_policy/lerobot_transport.py) with the same payload and stand-in. Both after \
            warm-up, --calls round trips each. Goal: Sinew's p99 ≤ 2 ms and ≤ 0.5× LeRobot's.
            --python must have numpy, msgpack and websockets, and the server importable (pip install ./python, \
            or PYTHONPATH); the LeRobot script also needs grpcio, protobuf and lerobot. `make bench-remote-policy` \
            builds such an environment (.build/bench-remote-venv) and runs this.
            JSON keys: sinew_p50_ms, sinew_p99_ms, lerobot_transport_p50_ms, lerobot_transport_p99_ms (null when not \
            measured), calls, observation_bytes, actions_bytes.
            """)

    @Option(help: "The Python that runs the policy server (and the LeRobot script).")
    var python = "python3"

    @Option(
        help: "LeRobot's transport harness (Benchmarks/remote_policy/lerobot_transport.py); left out: not compared.")
    var lerobotScript: String?

    @Option(help: "Round trips timed, after 100 of warm-up.")
    var calls = 2000

    @Flag(help: "One JSON object instead of the table.")
    var json = false

    func validate() throws {
        guard (100...1_000_000).contains(calls) else { throw ValidationError("--calls must be 100–1000000") }
    }

    func run() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-bench-remote-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
        let tokenPath = scratch.appendingPathComponent("token").path
        let readyPath = scratch.appendingPathComponent("port").path
        try (token + "\n").write(toFile: tokenPath, atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = [
            python, "-m", "sinew_policy_server", "--policy", "standin", "--port", "0", "--ready-file", readyPath,
            "--token-file", tokenPath, "--steps", "50", "--columns", "6",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["SINEW_EXIT_WITH_PARENT"] = "1"
        server.environment = environment
        server.standardOutput = FileHandle.nullDevice
        let serverLog = scratch.appendingPathComponent("server.log").path
        _ = FileManager.default.createFile(atPath: serverLog, contents: nil)
        server.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: serverLog))
        try server.run()
        defer {
            if server.isRunning {
                server.terminate()
                server.waitUntilExit()
            }
        }
        var port: Int?
        for _ in 0..<200 where port == nil && server.isRunning {
            port = (try? String(contentsOfFile: readyPath, encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if port == nil { usleep(50_000) }
        }
        guard let port else {
            let log = (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? ""
            throw ValidationError("the policy server did not start with \(python) (pip install ./python?):\n\(log)")
        }
        if !json { printError("measuring Sinew's client and server, \(calls) round trips after 100 of warm-up …") }
        let sinew = try measureSinew(port: port, token: token)
        var lerobot: (p50: Double, p99: Double)?
        if let lerobotScript {
            if !json { printError("measuring LeRobot's transport with the same payload …") }
            lerobot = try measureLeRobot(script: lerobotScript)
        }
        let report = JSONValue.object([
            ("calls", .integer(calls)), ("sinew_p50_ms", .number(sinew.p50)), ("sinew_p99_ms", .number(sinew.p99)),
            ("lerobot_transport_p50_ms", lerobot.map { .number($0.p50) } ?? .null),
            ("lerobot_transport_p99_ms", lerobot.map { .number($0.p99) } ?? .null),
            ("observation_bytes", .integer(sinew.requestBytes)), ("actions_bytes", .integer(sinew.answerBytes)),
        ])
        if json {
            print(report.text)
            return
        }
        func ms(_ x: Double) -> String { String(format: "%7.3f", x) }
        var lines = [
            "remote policy round trip on loopback (6-joint state + 224×224×3 image + prompt → 50×6 chunk):",
            "  transport                              p50 ms   p99 ms",
            "  Sinew (websocket, msgpack, token)     \(ms(sinew.p50))  \(ms(sinew.p99))   goal p99 ≤ 2 ms: "
                + (sinew.p99 <= 2 ? "met" : "NOT met"),
        ]
        if let lerobot {
            lines.append("  LeRobot (gRPC, pickle, 2 MiB pieces)  \(ms(lerobot.p50))  \(ms(lerobot.p99))")
            let ratio = sinew.p99 / lerobot.p99
            lines.append(
                String(
                    format: "  Sinew's p99 is %.2f× LeRobot's (goal ≤ 0.5×: %@)", ratio,
                    ratio <= 0.5 ? "met" : "NOT met"))
        } else {
            lines.append("  LeRobot's transport: not measured (give --lerobot-script; make bench-remote-policy does)")
        }
        print(lines.joined(separator: "\n"))
    }

    func measureSinew(port: Int, token: String) throws -> (
        p50: Double, p99: Double, requestBytes: Int, answerBytes: Int
    ) {
        let client = try WebSocketClient(
            endpoint: WebSocketClient.Endpoint(url: "ws://127.0.0.1:\(port)"),
            headers: [("Authorization", "Bearer \(token)")])
        defer { client.close() }
        _ = try client.receive(timeoutS: 5)  // metadata
        var generator = SystemRandomNumberGenerator()
        let image = (0..<(224 * 224 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let state = (0..<6).map { _ in Double.random(in: -1...1, using: &generator) }
        var times: [Double] = []
        var sizes = (0, 0)
        for k in 0..<(calls + 100) {
            let start = WebSocketClientClock.now()
            var writer = MessagePackWriter(reservingCapacity: image.count + 512)
            writer.writeMapHeader(3)
            writer.write("observation.state")
            writer.write(NumpyArray(float32: state, shape: [6]).messagePack)
            writer.write("observation.images.front")
            writer.write(NumpyArray(dtype: "|u1", shape: [224, 224, 3], data: image).messagePack)
            writer.write("prompt")
            writer.write("pick up the cube")
            try client.send(.binary(writer.bytes))
            guard case .binary(let answer) = try client.receive(timeoutS: 5) else {
                throw ValidationError("the server answered with an error")
            }
            let actions = try NumpyArray(try MessagePack.decode(answer)["actions"] ?? .null)
            guard actions.shape == [50, 6] else { throw ValidationError("actions of shape \(actions.shape)") }
            if k >= 100 { times.append((WebSocketClientClock.now() - start) * 1000) }
            sizes = (writer.bytes.count, answer.count)
        }
        times.sort()
        return (times[times.count / 2], times[Int(0.99 * Double(times.count - 1))], sizes.0, sizes.1)
    }

    func measureLeRobot(script: String) throws -> (p50: Double, p99: Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--calls", String(calls)]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
            let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let p50 = object["p50_ms"] as? Double, let p99 = object["p99_ms"] as? Double
        else {
            throw ValidationError("LeRobot's transport harness failed:\n\(text)")
        }
        return (p50, p99)
    }
}

/// CLOCK_MONOTONIC in seconds.
enum WebSocketClientClock {
    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
