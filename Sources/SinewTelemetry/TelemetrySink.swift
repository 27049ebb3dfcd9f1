import Foundation
import SinewRuntime
import Synchronization

/// What the robot is, for the dashboard's first message and the metrics' labels: made once when the run starts.
public struct TelemetryRobot: Sendable {
    public struct Joint: Sendable {
        public var name: String
        public var positionMinRad: Double
        public var positionMaxRad: Double
        public var velocityLimitRadPerS: Double
        public var effortLimitNm: Double

        public init(
            name: String, positionMinRad: Double, positionMaxRad: Double, velocityLimitRadPerS: Double,
            effortLimitNm: Double
        ) {
            self.name = name
            self.positionMinRad = positionMinRad
            self.positionMaxRad = positionMaxRad
            self.velocityLimitRadPerS = velocityLimitRadPerS
            self.effortLimitNm = effortLimitNm
        }
    }
    public var name: String
    public var targetRateHz: Double
    public var joints: [Joint]
    public var buses: [String]
    public var servos: [ServoHealthTap.Servo]
    /// The URDF's visual geometry for the 3D view (``RobotVisualDescription``), as JSON.
    public var descriptionJSON: [UInt8]
    /// Mesh files the description refers to by index (`/mesh/INDEX`).
    public var meshFiles: [String]

    public init(
        name: String, targetRateHz: Double, joints: [Joint], buses: [String], servos: [ServoHealthTap.Servo],
        descriptionJSON: [UInt8] = Array("{}".utf8), meshFiles: [String] = []
    ) {
        self.name = name
        self.targetRateHz = targetRateHz
        self.joints = joints
        self.buses = buses
        self.servos = servos
        self.descriptionJSON = descriptionJSON
        self.meshFiles = meshFiles
    }
}

extension TelemetryRobot {
    /// The robot a loop runs: its joints' limits from the safety supervisor, its servos from the health tap.
    public init(loop: RobotLoop, tap: ServoHealthTap, description: RobotVisualDescription?) {
        let limits = loop.supervisor.configuration.joints
        self.init(
            name: loop.configuration.name, targetRateHz: loop.configuration.loop.rateHz,
            joints: loop.configuration.joints.indices.map { j in
                Joint(
                    name: loop.configuration.joints[j].name, positionMinRad: limits[j].positionMinRad,
                    positionMaxRad: limits[j].positionMaxRad, velocityLimitRadPerS: limits[j].velocityLimitRadPerS,
                    effortLimitNm: limits[j].effortLimitNm)
            },
            buses: loop.configuration.buses.map(\.name), servos: tap.servos,
            descriptionJSON: description?.json ?? Array("{}".utf8), meshFiles: description?.meshFiles ?? [])
    }
}

/// The latest messages for dashboard clients, each with a sequence number so a client's sender sends only what is
/// new. Written by the recorder's thread, read by the server's tasks.
final class DashboardFeed: Sendable {
    struct Message: Sendable {
        var sequence: Int
        var bytes: [UInt8]
    }
    let hello: [UInt8]
    private let frame = Mutex(Message(sequence: 0, bytes: []))
    private let health = Mutex(Message(sequence: 0, bytes: []))
    private let events = Mutex(Message(sequence: 0, bytes: []))

    init(hello: [UInt8]) { self.hello = hello }

    func publish(frame bytes: [UInt8]) { frame.withLock { $0 = Message(sequence: $0.sequence + 1, bytes: bytes) } }
    func publish(health bytes: [UInt8]) { health.withLock { $0 = Message(sequence: $0.sequence + 1, bytes: bytes) } }
    func publish(events bytes: [UInt8]) { events.withLock { $0 = Message(sequence: $0.sequence + 1, bytes: bytes) } }

    var latestFrame: Message { frame.withLock { $0 } }
    var latestHealth: Message { health.withLock { $0 } }
    var latestEvents: Message { events.withLock { $0 } }
}

/// A window of the most recent values of one quantity, for percentiles at the dashboard's pace.
struct RecentWindow {
    private var values: [Double]
    private var next = 0
    private var filled = 0

    init(capacity: Int) { values = Array(repeating: 0, count: max(capacity, 1)) }

    mutating func append(_ value: Double) {
        values[next] = value
        next = (next + 1) % values.count
        filled = min(filled + 1, values.count)
    }

    /// The `fraction` quantile (nearest rank) and the largest value of the window; NaN when it is empty.
    func percentiles(_ fractions: [Double]) -> [Double] {
        guard filled > 0 else { return fractions.map { _ in .nan } }
        let sorted = values[0..<filled].sorted()
        return fractions.map { f in sorted[min(filled - 1, max(0, Int((f * Double(filled)).rounded(.up)) - 1))] }
    }
}

/// The sink that turns the tick snapshots into metrics and the dashboard's messages, on the recorder's thread
/// (``RecordingWriter``), never on the tick. It also takes the loop's servo-health frames (``ServoHealthTap``).
public final class TelemetrySink: RecordingSink, @unchecked Sendable {
    // @unchecked: `write`, `record`, `idle` run on the recorder's one thread; what other threads read goes through
    // `feed` (locked) and the metrics (thread-safe).
    let robot: TelemetryRobot
    let metrics: RobotMetrics
    let feed: DashboardFeed
    let recorder: TickRecorder?
    let tap: ServoHealthTap?
    let describeJoint: (Int32) -> String?
    /// Seconds between two dashboard frames (and joint gauges), and two health messages.
    let frameIntervalNs: UInt64
    let healthIntervalNs: UInt64

    private var lastState: LifecycleState?
    private var lastCause: SafetyCause?
    private var lastFrameNs: UInt64 = 0
    private var lastHealthNs: UInt64 = 0
    private var rateWindow: [(tick: Int64, wallNs: UInt64)] = []
    private var rateHz = 0.0
    private var lastTick: Int64 = -1
    private var wake = RecentWindow(capacity: 2048)
    private var stages: [RecentWindow] = TickStage.allCases.map { _ in RecentWindow(capacity: 2048) }
    /// Wake-up lateness histogram of the whole run for the dashboard: upper edges in µs, counts (last: beyond).
    static let latenessEdgesUs: [Double] = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000]
    private var latenessCounts = [Int](repeating: 0, count: TelemetrySink.latenessEdgesUs.count + 1)
    private var events: [(t: Double, cause: String, joint: String?, detail: String, description: String)] = []
    private var eventCount = 0
    private var latest:
        (
            t: Double, tick: Int64, state: LifecycleState, cause: SafetyCause?, busErrors: Int64, overrunsInARow: Int32
        ) = (0, 0, .unconfigured, nil, 0, 0)
    private var position: [Double]
    private var velocity: [Double]
    private var effort: [Double]
    private var command: [Double]
    private var target: [Double]
    private var overruns: Int64 = 0
    /// Snapshots taken in, for tests.
    public private(set) var snapshotsSeen = 0

    init(
        robot: TelemetryRobot, metrics: RobotMetrics, feed: DashboardFeed, recorder: TickRecorder?,
        tap: ServoHealthTap?, frameRateHz: Double = 30, healthRateHz: Double = 2,
        describeJoint: @escaping (Int32) -> String? = { _ in nil }
    ) {
        self.robot = robot
        self.metrics = metrics
        self.feed = feed
        self.recorder = recorder
        self.tap = tap
        self.describeJoint = describeJoint
        frameIntervalNs = UInt64(1e9 / frameRateHz)
        healthIntervalNs = UInt64(1e9 / healthRateHz)
        let n = robot.joints.count
        position = Array(repeating: .nan, count: n)
        velocity = Array(repeating: .nan, count: n)
        effort = Array(repeating: .nan, count: n)
        command = Array(repeating: .nan, count: n)
        target = Array(repeating: .nan, count: n)
        publishEvents()
    }

    static func monotonicNs() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    public func write(_ snapshot: TickSnapshotSlot) throws(RecordingError) {
        let h = snapshot.header.pointee
        guard h.kind == .tick else { return }
        snapshotsSeen += 1
        let ticksDone = lastTick >= 0 && h.tick > lastTick ? h.tick - lastTick : 1
        metrics.ticks.increment(by: ticksDone)
        lastTick = h.tick
        metrics.wakeLateness.recordNanoseconds(max(h.wakeLatenessNs, 0))
        let stageNs = [h.stageNs.0, h.stageNs.1, h.stageNs.2, h.stageNs.3, h.stageNs.4, h.stageNs.5]
        for (i, ns) in stageNs.enumerated() {
            metrics.stages[i].recordNanoseconds(max(ns, 0))
            stages[i].append(Double(ns) / 1000)
        }
        let wakeUs = Double(h.wakeLatenessNs) / 1000
        wake.append(wakeUs)
        latenessCounts[Self.latenessEdgesUs.firstIndex { wakeUs <= $0 } ?? Self.latenessEdgesUs.count] += 1
        let cause = h.state == .safe ? h.safetyCause : nil
        if h.state != lastState || cause != lastCause {
            metrics.show(state: h.state, cause: cause)
            lastState = h.state
            lastCause = cause
        }
        // The loop's rate over the last second of wall time (a restarted loop after recovery counts anew).
        if let first = rateWindow.first, h.tick < first.tick { rateWindow.removeAll() }
        rateWindow.append((h.tick, h.wallTimeNs))
        while let first = rateWindow.first, h.wallTimeNs > first.wallNs + 1_000_000_000 { rateWindow.removeFirst() }
        if let first = rateWindow.first, h.wallTimeNs > first.wallNs {
            rateHz = Double(h.tick - first.tick) / (Double(h.wallTimeNs - first.wallNs) * 1e-9)
        }
        latest = (h.timeSeconds, h.tick, h.state, cause, h.busErrorTotal, h.overrunsInARow)
        for j in 0..<min(robot.joints.count, snapshot.positionRad.count) {
            position[j] = snapshot.positionRad[j]
            velocity[j] = snapshot.velocityRadPerS[j]
            effort[j] = snapshot.effortNm[j]
            command[j] = snapshot.commandRad[j]
            target[j] = j < snapshot.targetRad.count ? snapshot.targetRad[j] : .nan
        }
        periodic(now: Self.monotonicNs())
    }

    public func record(event: SafetyEvent, description: String) throws(RecordingError) {
        metrics.safetyEvents[Int(event.cause.rawValue)].increment()
        events.append(
            (
                event.timeSeconds, "\(event.cause)", describeJoint(event.jointIndex), "\(event.detail)",
                description
            ))
        if events.count > 200 { events.removeFirst(events.count - 200) }
        eventCount += 1
        publishEvents()
    }

    public func idle() throws(RecordingError) { periodic(now: Self.monotonicNs()) }

    public func finish() throws(RecordingError) {
        periodic(now: Self.monotonicNs(), force: true)
    }

    /// The session's overrun count so far (the monitor's thread).
    public func overrunsSoFar(_ total: Int64) {
        metrics.overrunsSoFar(total)
        overrunsTotal.store(total, ordering: .relaxed)
    }
    private let overrunsTotal = Atomic<Int64>(0)

    private func periodic(now: UInt64, force: Bool = false) {
        if force || now >= lastFrameNs + frameIntervalNs {
            lastFrameNs = now
            if snapshotsSeen > 0 { publishFrame() }
        }
        if force || now >= lastHealthNs + healthIntervalNs {
            lastHealthNs = now
            publishHealth()
        }
    }

    private func publishFrame() {
        metrics.loopRate.record(rateHz)
        for j in 0..<robot.joints.count {
            metrics.jointPosition[j].record(position[j])
            metrics.jointVelocity[j].record(velocity[j])
            metrics.jointEffort[j].record(effort[j])
            metrics.jointCommand[j].record(command[j])
        }
        var json = TelemetryJSON()
        json.beginObject()
        json.key("type")
        json.string("frame")
        json.key("t")
        json.number(latest.t)
        json.key("tick")
        json.integer(latest.tick)
        json.key("state")
        json.string("\(latest.state)")
        json.key("cause")
        if let cause = latest.cause { json.string("\(cause)") } else { json.null() }
        json.key("rate_hz")
        json.number(rateHz)
        json.key("bus_errors")
        json.integer(latest.busErrors)
        json.key("overruns_in_a_row")
        json.integer(Int64(latest.overrunsInARow))
        json.key("events")
        json.integer(Int64(eventCount))
        json.key("position")
        json.numbers(position)
        json.key("velocity")
        json.numbers(velocity)
        json.key("effort")
        json.numbers(effort)
        json.key("command")
        json.numbers(command)
        json.key("target")
        json.numbers(target)
        json.endObject()
        feed.publish(frame: json.bytes)
    }

    private func publishHealth() {
        var frame: ServoHealthFrame?
        if let tap {
            tap.frames.take()
            if tap.frames.readSlot.tick >= 0 {
                frame = tap.frames.readSlot
                metrics.show(health: tap.frames.readSlot)
            }
        }
        if let recorder {
            let dropped = recorder.dropped
            if dropped > metrics.lastDropped {
                metrics.droppedSnapshots.increment(by: Int64(dropped - metrics.lastDropped))
                metrics.lastDropped = dropped
            }
        }
        var json = TelemetryJSON(capacity: 8192)
        json.beginObject()
        json.key("type")
        json.string("health")
        json.key("overruns")
        json.integer(overrunsTotal.load(ordering: .relaxed))
        json.key("dropped")
        json.integer(Int64(recorder?.dropped ?? 0))
        json.key("wake_us")
        json.numbers(wake.percentiles([0.5, 0.99, 1.0]))
        json.key("stage_p99_us")
        json.beginArray()
        for window in stages { json.number(window.percentiles([0.99])[0]) }
        json.endArray()
        json.key("latency_edges_us")
        json.numbers(Self.latenessEdgesUs)
        json.key("latency_counts")
        json.beginArray()
        for c in latenessCounts { json.integer(Int64(c)) }
        json.endArray()
        json.key("buses")
        json.beginArray()
        for (b, name) in robot.buses.enumerated() {
            json.beginObject()
            json.key("name")
            json.string(name)
            for (key, index) in [
                ("transactions", 0), ("errors", 1), ("timeouts", 2), ("checksum_errors", 3), ("retries", 4),
            ] {
                json.key(key)
                json.integer(Int64(truncatingIfNeeded: b < metrics.lastBus.count ? metrics.lastBus[b][index] : 0))
            }
            json.endObject()
        }
        json.endArray()
        json.key("servos")
        json.beginArray()
        for (i, servo) in robot.servos.enumerated() {
            json.beginObject()
            json.key("bus")
            json.string(servo.bus)
            json.key("id")
            json.integer(Int64(servo.id))
            json.key("joint")
            json.string(servo.joint)
            json.key("temperature_c")
            json.number(frame?.temperatureC[i] ?? .nan)
            json.key("voltage_v")
            json.number(frame?.voltageV[i] ?? .nan)
            json.key("current_a")
            json.number(frame?.currentA[i] ?? .nan)
            json.key("error_flags")
            json.integer(Int64(frame?.hardwareErrorFlags[i] ?? 0))
            json.key("transactions")
            json.integer(Int64(truncatingIfNeeded: frame?.transactions[i] ?? 0))
            json.key("errors")
            json.integer(
                Int64(
                    truncatingIfNeeded: (frame?.timeouts[i] ?? 0) &+ (frame?.checksumErrors[i] ?? 0)
                        &+ (frame?.otherErrors[i] ?? 0)))
            json.endObject()
        }
        json.endArray()
        json.endObject()
        feed.publish(health: json.bytes)
    }

    private func publishEvents() {
        var json = TelemetryJSON()
        json.beginObject()
        json.key("type")
        json.string("events")
        json.key("count")
        json.integer(Int64(eventCount))
        json.key("events")
        json.beginArray()
        for e in events {
            json.beginObject()
            json.key("t")
            json.number(e.t)
            json.key("cause")
            json.string(e.cause)
            json.key("joint")
            if let joint = e.joint { json.string(joint) } else { json.null() }
            json.key("detail")
            json.string(e.detail)
            json.key("description")
            json.string(e.description)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        feed.publish(events: json.bytes)
    }
}
