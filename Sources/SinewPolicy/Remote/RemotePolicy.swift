import Foundation
import Synchronization

/// A learned policy served elsewhere — an openpi server (`serve_policy.py`: pi0, pi0.5 and anything it serves),
/// or Sinew's own Python server hosting a LeRobot policy — reached over openpi's websocket protocol: on connecting
/// the server sends one msgpack frame of metadata; then each request is one binary msgpack frame of observations
/// (numpy arrays in msgpack-numpy's layout, a prompt) and each answer one of actions (`actions`: H × D); a text
/// frame is the server's error. A bearer token goes in the handshake's `Authorization` header.
///
/// It is a ``ChunkPolicy``: ``ChunkPolicyAdapter`` asks it for a chunk at ``rateHz`` on a thread of its own and
/// the mixed-rate bridge executes the chunks. A chunk the server gets wrong (shape, NaN or infinity, a position
/// beyond a joint's limits) is refused with the reason and never executed; a server that dies, stalls or
/// disconnects yields nothing, the bridge holds when its last chunk runs out and the watchdog brings the robot
/// to its safe state; the policy reconnects with a growing backoff. Every one of these is counted (``report``).
public final class RemotePolicy: ChunkPolicy, @unchecked Sendable {
    // @unchecked: used by the adapter's one thread (or the tick in lockstep); the counters are atomics.

    /// How joint positions are written in the server's arrays.
    public enum Units: String, Sendable, CaseIterable {
        /// Radians (openpi's robots).
        case rad
        /// Degrees.
        case deg
        /// LeRobot's normalised ranges: −100…100 over each joint's range (`range_m100_100`), 0…100 for the
        /// grippers (`range_0_100`).
        case lerobot
    }

    /// Absolute positions, or changes from the position measured when the observation was taken.
    public enum ActionMode: String, Sendable, CaseIterable {
        case absolute, delta
    }

    public struct Settings: Sendable, Equatable {
        /// `ws://HOST:PORT[/PATH]`.
        public var url: String
        /// Sent as `Authorization: Bearer TOKEN`.
        public var token: String?
        /// Allow a plain connection to a host other than this machine (the token and the observations cross
        /// the network in the clear).
        public var insecure = false
        /// For `wss://`: a PEM file of the certificates to trust instead of the system's (a self-signed server).
        public var caFile: String?
        /// The joints the actions command, in the order of the action's columns (robot.yaml names).
        public var actionJoints: [String]
        /// Which columns of the server's action rows they are (default: the first ones, in order).
        public var actionColumns: [Int]?
        public var actionKey = "actions"
        public var actionUnits = Units.rad
        public var actionMode = ActionMode.absolute
        /// The joints whose positions the observation's state holds, in order.
        public var stateJoints: [String]
        public var stateKey = "observation.state"
        public var stateUnits = Units.rad
        /// The task prompt and its key (`prompt` for openpi, `task` for LeRobot); nil key: no prompt.
        public var prompt = ""
        public var promptKey: String? = "prompt"
        /// Per joint (robot.yaml name) the range (rad) LeRobot's normalised units span; default: its limits.
        public var rangesRad: [String: [Double]] = [:]
        /// Joints in LeRobot's 0…100 gripper range rather than −100…100.
        public var gripperJoints: [String] = []
        /// The time between a chunk's steps (s), and the most steps used of one chunk.
        public var stepDurationS = 1.0 / 30
        public var maxChunkSteps = 50
        /// Ask for the next chunk when this fraction of the last one is left (LeRobot's `chunk_size_threshold`):
        /// sets the request rate from the chunk's length.
        public var requestWhenRemaining = 0.5
        /// The longest wait for an answer (s); and for connecting.
        public var timeoutS = 2.0
        /// The largest frame taken from the server, bytes.
        public var maximumMessageBytes = 16 << 20

        public init(url: String, actionJoints: [String], stateJoints: [String]) {
            self.url = url
            self.actionJoints = actionJoints
            self.stateJoints = stateJoints
        }
    }

    /// What the run reports about the server.
    public struct Report: Sendable, Equatable {
        public var chunksReceived = 0
        public var chunksRefused = 0
        public var failedRequests = 0
        public var connections = 0
        public var lastError: String?
        /// The server's metadata frame, as text (msgpack shown as JSON-like), from the last connection.
        public var serverMetadata: String?
        /// The server's last reported inference time, ms.
        public var lastInferMs: Double?
        public init() {}
    }

    public let typeName = "remote"
    public let settings: Settings
    public let endpoint: WebSocketClient.Endpoint
    public var joints: [String] { settings.actionJoints }
    public var rateHz: Double
    public var maxChunkSteps: Int { settings.maxChunkSteps }
    public var stepDurationS: Double { settings.stepDurationS }
    public var notices: [String] {
        [
            "remote: policy server \(settings.url) (token \(settings.token == nil ? "none" : "given")), chunks of up to "
                + "\(settings.maxChunkSteps) steps every \(settings.stepDurationS) s asked for at \(rateHz) Hz; actions in "
                + "\(settings.actionUnits.rawValue) (\(settings.actionMode.rawValue)) for \(settings.actionJoints.joined(separator: ", "))"
        ]
    }

    /// Index in the robot's joints of each state joint and each action joint.
    let stateIndex: [Int]
    let actionIndex: [Int]
    /// Limits (rad) per robot joint: the chunks' positions must lie within them; and the normalisation ranges.
    let lowerRad: [Double]
    let upperRad: [Double]
    let rangeLowRad: [Double]
    let rangeHighRad: [Double]
    let gripper: [Bool]
    private var client: WebSocketClient?
    private var backoffS = 0.25
    private var nextAttemptS = 0.0
    private let lock = Mutex<Report>(Report())
    private let stopRequested = Atomic<Bool>(false)

    /// - Parameters:
    ///   - jointNames: the robot's joints, robot.yaml order.
    ///   - lowerRad, upperRad: each robot joint's position limits (rad).
    public init(settings: Settings, jointNames: [String], lowerRad: [Double], upperRad: [Double])
        throws(RemotePolicyError)
    {
        self.settings = settings
        endpoint = try WebSocketClient.Endpoint(url: settings.url)
        guard endpoint.secure || endpoint.isLoopback || settings.insecure else {
            throw RemotePolicyError(
                .refused,
                "\(settings.url): a plain ws:// connection to another machine carries the token and the robot's "
                    + "observations in the clear; use wss:// (TLS), reach it through an SSH tunnel "
                    + "(ws://127.0.0.1:PORT), or accept that with `insecure: true` (sinew run --insecure)")
        }
        func indices(_ names: [String], _ what: String) throws(RemotePolicyError) -> [Int] {
            var result: [Int] = []
            for name in names {
                guard let j = jointNames.firstIndex(of: name) else {
                    throw RemotePolicyError(.refused, "remote: \(what) joint \"\(name)\" is not one of the robot's")
                }
                result.append(j)
            }
            return result
        }
        stateIndex = try indices(settings.stateJoints, "state")
        actionIndex = try indices(settings.actionJoints, "action")
        guard !actionIndex.isEmpty else { throw RemotePolicyError(.refused, "remote: no action joints") }
        if let columns = settings.actionColumns {
            guard columns.count == actionIndex.count, columns.allSatisfy({ $0 >= 0 }) else {
                throw RemotePolicyError(
                    .refused, "remote: action columns must be one non-negative index per action joint")
            }
        }
        guard settings.stepDurationS > 0, settings.maxChunkSteps >= 1,
            settings.requestWhenRemaining > 0 && settings.requestWhenRemaining < 1
        else {
            throw RemotePolicyError(.refused, "remote: a chunk's step, length and request threshold must be positive")
        }
        self.lowerRad = lowerRad
        self.upperRad = upperRad
        rangeLowRad = jointNames.enumerated().map { j, name in settings.rangesRad[name]?[0] ?? lowerRad[j] }
        rangeHighRad = jointNames.enumerated().map { j, name in settings.rangesRad[name]?[1] ?? upperRad[j] }
        gripper = jointNames.map { settings.gripperJoints.contains($0) }
        if settings.stateUnits == .lerobot || settings.actionUnits == .lerobot {
            for j in stateIndex + actionIndex
            where !(rangeLowRad[j].isFinite && rangeHighRad[j].isFinite && rangeHighRad[j] > rangeLowRad[j]) {
                throw RemotePolicyError(
                    .refused,
                    "remote: joint \"\(jointNames[j])\" needs a finite range for LeRobot's normalised units (ranges_rad)"
                )
            }
        }
        // Ask again when `requestWhenRemaining` of a chunk is left.
        rateHz = 1 / (Double(settings.maxChunkSteps) * settings.stepDurationS * (1 - settings.requestWhenRemaining))
    }

    /// Connects once and closes (before the robot is configured): a server that is not there, or refuses the
    /// token, fails the run before any torque. Returns the server's metadata.
    @discardableResult
    public func probe() throws(RemotePolicyError) -> String {
        let connection = try connect()
        let metadata = report.serverMetadata ?? "{}"
        connection.close()
        client = nil
        note { $0.connections -= 1 }
        return metadata
    }

    /// The counters, the last error and the server's metadata (any thread).
    public var report: Report { lock.withLock { $0 } }

    private func note(_ change: (inout Report) -> Void) { lock.withLock { change(&$0) } }

    public func reset(from observation: PolicyObservation) {
        stopRequested.store(false, ordering: .releasing)
        backoffS = 0.25
        nextAttemptS = 0
    }

    public func deactivate() {
        stopRequested.store(true, ordering: .releasing)
        client?.shutDown()
    }

    // MARK: Units

    /// A joint position (rad) in the server's units.
    public func toServer(_ q: Double, joint j: Int, units: Units) -> Double {
        switch units {
        case .rad: return q
        case .deg: return q * 180 / .pi
        case .lerobot:
            let fraction = (q - rangeLowRad[j]) / (rangeHighRad[j] - rangeLowRad[j])
            return gripper[j] ? fraction * 100 : fraction * 200 - 100
        }
    }

    /// A joint position in the server's units, in rad.
    public func fromServer(_ x: Double, joint j: Int, units: Units) -> Double {
        switch units {
        case .rad: return x
        case .deg: return x * .pi / 180
        case .lerobot:
            let fraction = gripper[j] ? x / 100 : (x + 100) / 200
            return rangeLowRad[j] + fraction * (rangeHighRad[j] - rangeLowRad[j])
        }
    }

    /// A change of position in the server's units, in rad.
    func deltaFromServer(_ x: Double, joint j: Int, units: Units) -> Double {
        switch units {
        case .rad: return x
        case .deg: return x * .pi / 180
        case .lerobot: return x / (gripper[j] ? 100 : 200) * (rangeHighRad[j] - rangeLowRad[j])
        }
    }

    // MARK: The request

    public func computeChunk(_ observation: PolicyObservation, into chunk: ActionChunk) {
        do {
            try request(observation, into: chunk)
        } catch {
            // Nothing to execute: the bridge holds when its chunk runs out, and the watchdog applies.
            chunk.stepCount = 0
            note {
                if error.kind == .badMessage || error.kind == .serverError {
                    $0.chunksRefused += 1
                } else {
                    $0.failedRequests += 1
                }
                $0.lastError = error.message
            }
            if error.kind != .badMessage {
                client?.close()
                client = nil
                nextAttemptS = WebSocketClient.now() + backoffS
                backoffS = min(backoffS * 2, 5)
            }
        }
    }

    private func connect() throws(RemotePolicyError) -> WebSocketClient {
        if let client { return client }
        guard WebSocketClient.now() >= nextAttemptS else {
            throw RemotePolicyError(.connection, "waiting to reconnect to \(settings.url)")
        }
        var headers: [(String, String)] = []
        if let token = settings.token { headers.append(("Authorization", "Bearer \(token)")) }
        let connection = try WebSocketClient(
            endpoint: endpoint, headers: headers, timeoutS: settings.timeoutS,
            maximumMessageBytes: settings.maximumMessageBytes, caFile: settings.caFile)
        // The server speaks first: its metadata.
        let metadata: String
        switch try connection.receive(timeoutS: settings.timeoutS) {
        case .binary(let bytes):
            do {
                metadata = Self.describe(try MessagePack.decode(bytes))
            } catch {
                throw RemotePolicyError(.protocolViolation, "the server's metadata frame: \(error)")
            }
        case .text(let text):
            throw RemotePolicyError(.serverError, "the server sent an error instead of its metadata: \(text)")
        }
        client = connection
        backoffS = 0.25
        note {
            $0.connections += 1
            $0.serverMetadata = metadata
        }
        return connection
    }

    private func request(_ observation: PolicyObservation, into chunk: ActionChunk) throws(RemotePolicyError) {
        guard !stopRequested.load(ordering: .acquiring) else { throw RemotePolicyError(.connection, "stopped") }
        let connection = try connect()
        var writer = MessagePackWriter(reservingCapacity: 512)
        let pairs = 1 + (settings.promptKey == nil ? 0 : 1)
        writer.writeMapHeader(pairs)
        writer.write(settings.stateKey)
        let state = stateIndex.map { toServer(observation.positionRad[$0], joint: $0, units: settings.stateUnits) }
        writer.write(NumpyArray(float32: state, shape: [state.count]).messagePack)
        if let promptKey = settings.promptKey {
            writer.write(promptKey)
            writer.write(settings.prompt)
        }
        try connection.send(.binary(writer.bytes), timeoutS: settings.timeoutS)
        let answer: [UInt8]
        switch try connection.receive(timeoutS: settings.timeoutS) {
        case .binary(let bytes): answer = bytes
        case .text(let text): throw RemotePolicyError(.serverError, "the server's error: \(text.prefix(2000))")
        }
        let message: MessagePackValue
        do {
            message = try MessagePack.decode(
                answer, limits: MessagePackLimits(maximumBytes: settings.maximumMessageBytes))
        } catch {
            throw RemotePolicyError(.badMessage, "the server's answer: \(error)")
        }
        guard let actionValue = message[settings.actionKey] else {
            throw RemotePolicyError(.badMessage, "the server's answer has no \"\(settings.actionKey)\"")
        }
        let actions: NumpyArray
        do {
            actions = try NumpyArray(actionValue)
        } catch {
            throw RemotePolicyError(.badMessage, "\"\(settings.actionKey)\": \(error)")
        }
        if let infer = message["server_timing"]?["infer_ms"]?.number { note { $0.lastInferMs = infer } }
        try fill(chunk, from: actions, observation: observation)
        note { $0.chunksReceived += 1 }
    }

    /// The chunk from the server's H × D (or D) array: columns picked, units converted, deltas added to the
    /// measured pose; refused whole when a value is not finite or a position lies beyond its joint's limits.
    func fill(_ chunk: ActionChunk, from actions: NumpyArray, observation: PolicyObservation) throws(RemotePolicyError)
    {
        let rows: Int
        let width: Int
        switch actions.shape.count {
        case 1: (rows, width) = (1, actions.shape[0])
        case 2: (rows, width) = (actions.shape[0], actions.shape[1])
        default: throw RemotePolicyError(.badMessage, "actions of shape \(actions.shape): expected H × D")
        }
        let columns = settings.actionColumns ?? Array(0..<actionIndex.count)
        guard rows >= 1, let widest = columns.max(), widest < width else {
            throw RemotePolicyError(
                .badMessage,
                "actions of shape \(actions.shape): \(actionIndex.count) joints need columns up to \(columns.max() ?? 0)"
            )
        }
        let values = actions.doubles()
        let steps = min(rows, chunk.capacity)
        for s in 0..<steps {
            for (c, j) in actionIndex.enumerated() {
                let raw = values[s * width + columns[c]]
                let q =
                    settings.actionMode == .delta
                    ? observation.positionRad[j] + deltaFromServer(raw, joint: j, units: settings.actionUnits)
                    : fromServer(raw, joint: j, units: settings.actionUnits)
                guard q.isFinite else {
                    throw RemotePolicyError(
                        .badMessage,
                        "actions step \(s), joint \(settings.actionJoints[c]): \(raw) is not a finite number")
                }
                guard q >= lowerRad[j] - 1e-9 && q <= upperRad[j] + 1e-9 else {
                    throw RemotePolicyError(
                        .badMessage,
                        "actions step \(s), joint \(settings.actionJoints[c]): \(q) rad is beyond its limits "
                            + "[\(lowerRad[j]), \(upperRad[j])]")
                }
                chunk[s, c] = q
            }
        }
        chunk.stepCount = steps
    }

    /// A msgpack value as short JSON-like text, for reports (nesting cut at four levels).
    public static func describe(_ value: MessagePackValue, depth: Int = 0) -> String {
        guard depth < 4 else { return "…" }
        switch value {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .int(let v): return "\(v)"
        case .uint(let v): return "\(v)"
        case .float(let v, _): return "\(v)"
        case .string(let s): return "\"\(s.prefix(80))\""
        case .binary(let b):
            return String(validating: b, as: UTF8.self).map { "\"\($0.prefix(80))\"" } ?? "<\(b.count) bytes>"
        case .array(let items):
            return "[" + items.prefix(8).map { describe($0, depth: depth + 1) }.joined(separator: ", ") + "]"
        case .map(let pairs):
            return "{"
                + pairs.prefix(16).map {
                    "\(describe($0.key, depth: depth + 1)): \(describe($0.value, depth: depth + 1))"
                }
                .joined(separator: ", ") + "}"
        case .ext(let type, let data): return "ext(\(type), \(data.count) bytes)"
        }
    }
}
