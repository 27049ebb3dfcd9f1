import Foundation
import SinewRecording

/// A Sinew MCAP recording read back for replay and export: the policy's starts and every tick's inputs and
/// outputs, in the order the run had them.
public struct RecordedRun: Sendable {
    /// The policy's start (activation or recovery): what it observed and the command it answered.
    public struct Start: Sendable {
        public var recovering: Bool
        public var loopTimeNs: Int64
        public var positionRad: [Double]
        public var velocityRadPerS: [Double]
        public var effortNm: [Double]
        /// The guard's starting command and the policy's target, rad.
        public var commandRad: [Double]
        public var targetRad: [Double]
        /// The IMU's estimate of its link's orientation (w, x, y, z), if there was one.
        public var imu: [Double]?
    }

    /// One tick: what the loop measured and decided, and the inputs of its guard.
    public struct Tick: Sendable {
        public var tick: Int64
        /// Seconds since the loop (segment) started.
        public var timeS: Double
        public var state: String
        /// The policy's clock and the time its command was computed for, ns.
        public var loopTimeNs: Int64
        public var commandTimeNs: Int64
        public var positionRad: [Double]
        public var velocityRadPerS: [Double]
        public var effortNm: [Double]
        /// The guarded command sent to the servos, the policy's target, and the velocity and effort goals.
        public var commandRad: [Double]
        public var targetRad: [Double]
        public var velocityGoalRadPerS: [Double]
        public var effortGoalNm: [Double]
        public var imu: [Double]?
        /// Joints whose servo gave no valid reading this tick.
        public var staleJoints: [String]
        public var busErrors: Int
        public var failingBus: Int
        public var busDisconnected: Bool
        public var overrunsInARow: Int
        public var shutdownRequested: Bool
        /// When the tick was logged (ns since the Unix epoch).
        public var logTimeNs: UInt64
    }

    /// A run between two starts of the policy.
    public struct Segment: Sendable {
        public var start: Start?
        public var ticks: [Tick] = []
    }

    /// A safety event as recorded.
    public struct SafetyEvent: Sendable {
        public var timeS: Double
        public var cause: String
        public var joint: String?
        public var detail: String?
        public var description: String
        public var logTimeNs: UInt64
    }

    public var path: String
    public var jointNames: [String]
    public var segments: [Segment]
    public var safetyEvents: [SafetyEvent]
    public var lifecycle: [(timeS: Double, from: String?, to: String, cause: String?)]
    public var logLines: [(timeS: Double, message: String)]
    public var attachments: [MCAPAttachment]
    public var metadata: [String: String]
    /// Messages per topic.
    public var messageCounts: [String: Int]
    /// Whether the file was read through a damaged or unfinished end (repair it to keep what was read).
    public var damage: String?

    public var tickCount: Int { segments.reduce(0) { $0 + $1.ticks.count } }

    /// An attachment by name (robot.yaml's own name, `command_line.txt`, …).
    public func attachment(named name: String) -> MCAPAttachment? { attachments.first { $0.name == name } }

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    private struct JointStatesJSON: Decodable {
        let tick: Int64
        let t: Double
        let position: [String: Double?]
        let velocity: [String: Double?]
        let effort: [String: Double?]
    }

    private struct CommandsJSON: Decodable {
        let tick: Int64
        let loop_time_ns: Int64?
        let command_time_ns: Int64?
        let command: [String: Double?]
        let target: [String: Double?]?
        let velocity_goal: [String: Double?]?
        let effort_goal: [String: Double?]?
    }

    private struct Quaternion: Decodable {
        let w: Double
        let x: Double
        let y: Double
        let z: Double
    }

    private struct EstimatesJSON: Decodable {
        let tick: Int64
        let imu: Quaternion?
    }

    private struct TimingJSON: Decodable {
        let tick: Int64
        let state: String
        let overruns_in_a_row: Int?
        let bus_errors: Int?
        let failing_bus: Int?
        let bus_disconnected: Bool?
        let shutdown_requested: Bool?
        let stale_joints: [String]?
    }

    private struct ActivationJSON: Decodable {
        let recovering: Bool
        let loop_time_ns: Int64
        let position: [String: Double?]
        let velocity: [String: Double?]
        let effort: [String: Double?]
        let command: [String: Double?]
        let target: [String: Double?]?
        let imu: Quaternion?
    }

    private struct SafetyJSON: Decodable {
        let t: Double
        let cause: String
        let joint: String?
        let detail: String?
        let description: String
    }

    private struct LifecycleJSON: Decodable {
        let t: Double
        let from: String?
        let to: String
        let cause: String?
    }

    private struct LogJSON: Decodable {
        let t: Double
        let message: String
    }

    /// Reads `path`. An unfinished file (a killed run) is read as far as it is whole, and says so in `damage`.
    public static func load(path: String) throws(LoadError) -> RecordedRun {
        do {
            return try load(
                MCAPReader(path: path, options: MCAPReaderOptions(validateCRCs: true, allowsIncompleteFile: true)),
                path: path)
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(description: "\(path): \(error)")
        }
    }

    /// Reads a recording held in memory (`name` in errors), as ``load(path:)`` does a file.
    public static func load(bytes: [UInt8], name: String) throws(LoadError) -> RecordedRun {
        do {
            return try load(
                MCAPReader(
                    bytes: bytes, name: name, options: MCAPReaderOptions(validateCRCs: true, allowsIncompleteFile: true)
                ),
                path: name)
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(description: "\(name): \(error)")
        }
    }

    private static func load(_ reader: MCAPReader, path: String) throws(LoadError) -> RecordedRun {
        var topics: [UInt16: String] = [:]
        for (id, channel) in reader.channels { topics[id] = channel.topic }
        var run = RecordedRun(
            path: path, jointNames: [], segments: [], safetyEvents: [], lifecycle: [], logLines: [], attachments: [],
            metadata: [:], messageCounts: [:], damage: reader.damage.map { "\($0)" })
        do {
            for record in try reader.metadata() where record.name == "sinew" { run.metadata = record.values }
        } catch {
            throw LoadError(description: "\(path): \(error)")
        }
        // robot.yaml's order, as the writer keeps it in the metadata (JSON objects do not keep an order).
        if let order = run.metadata["joints"], !order.isEmpty {
            run.jointNames = order.split(separator: ",").map(String.init)
        }
        let decoder = JSONDecoder()
        var failure: String?
        var pending: Tick?
        func values(_ map: [String: Double?]?, _ names: [String]) -> [Double] {
            names.map { name in (map?[name] ?? nil) ?? .nan }
        }
        func finishTick() {
            guard let tick = pending else { return }
            if run.segments.isEmpty { run.segments.append(Segment()) }
            run.segments[run.segments.count - 1].ticks.append(tick)
            pending = nil
        }
        func ordered(_ map: [String: Double?]) -> [String] {
            // The writer keeps robot.yaml's order; a JSON object does not, so the first message's keys are
            // sorted only when no order is known yet (an /activation message carries none either).
            map.keys.sorted()
        }
        do {
            try reader.forEachMessage { message in
                guard failure == nil, let topic = topics[message.channelID] else { return }
                run.messageCounts[topic, default: 0] += 1
                let data = Data(message.data)
                do {
                    switch topic {
                    case "/joint_states":
                        finishTick()
                        var tick = Tick(
                            tick: 0, timeS: 0, state: "", loopTimeNs: 0, commandTimeNs: 0, positionRad: [],
                            velocityRadPerS: [], effortNm: [], commandRad: [], targetRad: [], velocityGoalRadPerS: [],
                            effortGoalNm: [], imu: nil, staleJoints: [], busErrors: 0, failingBus: -1,
                            busDisconnected: false, overrunsInARow: 0, shutdownRequested: false,
                            logTimeNs: message.logTimeNs)
                        if reader.channels[message.channelID]?.messageEncoding == "cdr" {
                            let state = try ROS2JointStateDecoder.decode(message.data)
                            if run.jointNames.isEmpty { run.jointNames = state.names }
                            func named(_ values: [Double]) -> [Double] {
                                guard state.names != run.jointNames, values.count == state.names.count else {
                                    return values
                                }
                                return run.jointNames.map { name in
                                    state.names.firstIndex(of: name).map { values[$0] } ?? .nan
                                }
                            }
                            tick.positionRad = named(state.positionRad)
                            tick.velocityRadPerS = named(state.velocityRadPerS)
                            tick.effortNm = named(state.effortNm)
                            tick.tick = -1
                        } else {
                            let state = try decoder.decode(JointStatesJSON.self, from: data)
                            if run.jointNames.isEmpty { run.jointNames = ordered(state.position) }
                            tick.tick = state.tick
                            tick.timeS = state.t
                            tick.positionRad = values(state.position, run.jointNames)
                            tick.velocityRadPerS = values(state.velocity, run.jointNames)
                            tick.effortNm = values(state.effort, run.jointNames)
                        }
                        pending = tick
                    case "/commands":
                        let commands = try decoder.decode(CommandsJSON.self, from: data)
                        if run.jointNames.isEmpty { run.jointNames = ordered(commands.command) }
                        guard var tick = pending else { return }
                        if tick.tick < 0 { tick.tick = commands.tick }
                        tick.loopTimeNs = commands.loop_time_ns ?? 0
                        tick.commandTimeNs = commands.command_time_ns ?? 0
                        tick.commandRad = values(commands.command, run.jointNames)
                        tick.targetRad = values(commands.target, run.jointNames)
                        tick.velocityGoalRadPerS = values(commands.velocity_goal, run.jointNames)
                        tick.effortGoalNm = values(commands.effort_goal, run.jointNames)
                        pending = tick
                    case "/estimates":
                        let estimates = try decoder.decode(EstimatesJSON.self, from: data)
                        pending?.imu = estimates.imu.map { [$0.w, $0.x, $0.y, $0.z] }
                    case "/timing":
                        let timing = try decoder.decode(TimingJSON.self, from: data)
                        guard var tick = pending else { return }
                        tick.state = timing.state
                        tick.overrunsInARow = timing.overruns_in_a_row ?? 0
                        tick.busErrors = timing.bus_errors ?? 0
                        tick.failingBus = timing.failing_bus ?? -1
                        tick.busDisconnected = timing.bus_disconnected ?? false
                        tick.shutdownRequested = timing.shutdown_requested ?? false
                        tick.staleJoints = timing.stale_joints ?? []
                        pending = tick
                    case "/activation":
                        finishTick()
                        let start = try decoder.decode(ActivationJSON.self, from: data)
                        if run.jointNames.isEmpty { run.jointNames = ordered(start.position) }
                        let names = run.jointNames
                        run.segments.append(
                            Segment(
                                start: Start(
                                    recovering: start.recovering, loopTimeNs: start.loop_time_ns,
                                    positionRad: values(start.position, names),
                                    velocityRadPerS: values(start.velocity, names),
                                    effortNm: values(start.effort, names), commandRad: values(start.command, names),
                                    targetRad: values(start.target, names),
                                    imu: start.imu.map { [$0.w, $0.x, $0.y, $0.z] })))
                    case "/safety":
                        let event = try decoder.decode(SafetyJSON.self, from: data)
                        run.safetyEvents.append(
                            SafetyEvent(
                                timeS: event.t, cause: event.cause, joint: event.joint, detail: event.detail,
                                description: event.description, logTimeNs: message.logTimeNs))
                    case "/lifecycle":
                        let change = try decoder.decode(LifecycleJSON.self, from: data)
                        run.lifecycle.append((change.t, change.from, change.to, change.cause))
                    case "/log":
                        let line = try decoder.decode(LogJSON.self, from: data)
                        run.logLines.append((line.t, line.message))
                    default: break
                    }
                } catch {
                    failure = "\(path): message \(message.sequence) on \(topic): \(error)"
                }
            }
        } catch {
            throw LoadError(description: "\(path): \(error)")
        }
        if let failure { throw LoadError(description: failure) }
        finishTick()
        do {
            run.attachments = try reader.attachments()
        } catch {
            throw LoadError(description: "\(path): \(error)")
        }
        return run
    }
}
