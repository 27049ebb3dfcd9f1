import Foundation
import Synchronization

/// What a snapshot is: a tick, or the start of the policy (activation, recovery), whose observation a replay
/// needs to start the policy where the run did.
public enum TickSnapshotKind: UInt8, Sendable {
    case tick, activation, recovery
}

/// The fixed part of one tick's snapshot.
public struct TickSnapshotHeader: Sendable {
    public var kind: TickSnapshotKind = .tick
    public var tick: Int64
    /// Seconds since the loop started.
    public var timeSeconds: Double
    public var state: LifecycleState
    /// The cause of the safe state, if the robot is in it.
    public var safetyCause: SafetyCause?
    public var wakeLatenessNs: Int64
    /// Stage durations, ns (index: `TickStage.rawValue`; `record` is the previous tick's, since this one's
    /// is not over when the snapshot is taken).
    public var stageNs: (Int64, Int64, Int64, Int64, Int64, Int64)
    /// CLOCK_REALTIME when the snapshot was taken, ns since the Unix epoch (0: unknown): where a recording puts
    /// the tick on the calendar.
    public var wallTimeNs: UInt64 = 0
    /// The policy's clock (ns since activation, simulated in a lockstep run): the time of the observation the
    /// policy got this tick.
    public var loopTimeNs: Int64 = 0
    /// The time the policy's command was computed for (the watchdog's measure), on the same clock.
    public var commandTimeNs: Int64 = 0
    /// The IMU's estimate of its link's orientation (w, x, y, z), when `imuValid`.
    public var imuOrientation: (Double, Double, Double, Double) = (1, 0, 0, 0)
    public var imuValid = false
    /// The IMU's last sample in its link's frame (rotated through the mounting), when `imuRatesValid`: angular
    /// velocity (rad/s) and specific force (m/s², what an accelerometer reads: gravity included, as sensor_msgs/Imu
    /// wants its linear acceleration).
    public var imuAngularVelocityRadPerS: (Double, Double, Double) = (0, 0, 0)
    public var imuLinearAccelerationMPerS2: (Double, Double, Double) = (0, 0, 0)
    public var imuRatesValid = false
    /// Bit j set: joint j's servo gave a valid reading this tick (joints beyond 64 are not tracked).
    public var freshJoints: UInt64 = .max
    /// Failed bus transactions counted against this tick, and since the loop was made.
    public var busErrorsThisTick: Int32 = 0
    public var busErrorTotal: Int64 = 0
    /// The bus the last of them failed on (-1: none), and whether it was lost altogether.
    public var failingBusIndex: Int16 = -1
    public var busDisconnected = false
    /// Consecutive overrunning ticks before this one.
    public var overrunsInARow: Int32 = 0
    /// The SIGINT/SIGTERM/SIGHUP request the guard stage saw this tick (the safe state before shutdown).
    public var shutdownRequested = false
    /// Safety events recorded so far (the supervisor's log; a sink reads the new ones from it).
    public var safetyEventCount: Int32 = 0

    public init(
        tick: Int64 = 0, timeSeconds: Double = 0, state: LifecycleState = .unconfigured,
        safetyCause: SafetyCause? = nil, wakeLatenessNs: Int64 = 0,
        stageNs: (Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0)
    ) {
        self.tick = tick
        self.timeSeconds = timeSeconds
        self.state = state
        self.safetyCause = safetyCause
        self.wakeLatenessNs = wakeLatenessNs
        self.stageNs = stageNs
    }
}

/// Where the producer writes one snapshot in the ring: pointers into preallocated storage, valid until
/// `TickRecorder.commit()`.
public struct TickSnapshotSlot {
    public let header: UnsafeMutablePointer<TickSnapshotHeader>
    public let positionRad: UnsafeMutableBufferPointer<Double>
    public let velocityRadPerS: UnsafeMutableBufferPointer<Double>
    public let effortNm: UnsafeMutableBufferPointer<Double>
    public let commandRad: UnsafeMutableBufferPointer<Double>
    /// The policy's target before the safety supervisor (empty unless the recorder was made with
    /// `recordsTarget`).
    public let targetRad: UnsafeMutableBufferPointer<Double>
    /// The guarded velocity (rad/s) and effort (N·m) goals of joints driven that way (0 for the others; empty
    /// unless the recorder `recordsTarget`).
    public let velocityGoalRadPerS: UnsafeMutableBufferPointer<Double>
    public let effortGoalNm: UnsafeMutableBufferPointer<Double>
}

/// A preallocated single-producer/single-consumer ring of fixed-size tick snapshots. The loop thread is
/// the producer (`reserve()`/`commit()` or `push(…)`: allocation-free, never blocks — a full ring drops
/// the snapshot and counts it); a `RecordingWriter` thread is the consumer.
public final class TickRecorder: @unchecked Sendable {
    public let jointNames: [String]
    public let jointCount: Int
    /// Snapshots the ring holds.
    public let capacity: Int
    /// Whether snapshots carry the policy's target next to the guarded command (`TickSnapshotSlot.targetRad`).
    public let recordsTarget: Bool
    /// Doubles per joint in a snapshot: position, velocity, effort, command, and target and the velocity and effort
    /// goals when recorded.
    let valuesPerJoint: Int
    private let headers: UnsafeMutablePointer<TickSnapshotHeader>
    private let jointValues: UnsafeMutablePointer<Double>  // capacity × valuesPerJoint × jointCount
    private let written = Atomic<Int>(0)  // producer's count
    private let consumed = Atomic<Int>(0)  // consumer's count
    private let droppedSnapshots = Atomic<Int>(0)

    public init(jointNames: [String], capacity: Int = 4096, recordsTarget: Bool = false) {
        self.jointNames = jointNames
        jointCount = jointNames.count
        self.capacity = max(capacity, 2)
        self.recordsTarget = recordsTarget
        valuesPerJoint = recordsTarget ? 7 : 4
        headers = .allocate(capacity: self.capacity)
        headers.initialize(repeating: TickSnapshotHeader(), count: self.capacity)
        let values = self.capacity * valuesPerJoint * max(jointCount, 1)
        jointValues = .allocate(capacity: values)
        jointValues.initialize(repeating: 0, count: values)
    }

    deinit {
        headers.deallocate()
        jointValues.deallocate()
    }

    /// Snapshots dropped because the ring was full.
    public var dropped: Int { droppedSnapshots.load(ordering: .relaxed) }
    /// Snapshots committed so far.
    public var committed: Int { written.load(ordering: .relaxed) }

    func slot(at index: Int) -> TickSnapshotSlot {
        let ring = index % capacity
        let base = jointValues + ring * valuesPerJoint * jointCount
        return TickSnapshotSlot(
            header: headers + ring,
            positionRad: UnsafeMutableBufferPointer(start: base, count: jointCount),
            velocityRadPerS: UnsafeMutableBufferPointer(start: base + jointCount, count: jointCount),
            effortNm: UnsafeMutableBufferPointer(start: base + 2 * jointCount, count: jointCount),
            commandRad: UnsafeMutableBufferPointer(start: base + 3 * jointCount, count: jointCount),
            targetRad: UnsafeMutableBufferPointer(start: base + 4 * jointCount, count: recordsTarget ? jointCount : 0),
            velocityGoalRadPerS: UnsafeMutableBufferPointer(
                start: base + 5 * jointCount, count: recordsTarget ? jointCount : 0),
            effortGoalNm: UnsafeMutableBufferPointer(
                start: base + 6 * jointCount, count: recordsTarget ? jointCount : 0))
    }

    /// Producer: the next free slot, or nil (and one more drop) when the ring is full.
    @inline(__always)
    public func reserve() -> TickSnapshotSlot? {
        let index = written.load(ordering: .relaxed)
        guard index - consumed.load(ordering: .acquiring) < capacity else {
            droppedSnapshots.add(1, ordering: .relaxed)
            return nil
        }
        return slot(at: index)
    }

    /// Producer: publishes the slot returned by the last `reserve()`.
    @inline(__always)
    public func commit() {
        written.add(1, ordering: .releasing)
    }

    /// Producer: copies one snapshot in. Returns false when it was dropped. The arrays hold `jointCount`
    /// values each; `targetRad` is stored only when the recorder `recordsTarget`.
    @discardableResult
    public func push(
        _ header: TickSnapshotHeader, positionRad: UnsafePointer<Double>, velocityRadPerS: UnsafePointer<Double>,
        effortNm: UnsafePointer<Double>, commandRad: UnsafePointer<Double>, targetRad: UnsafePointer<Double>? = nil
    ) -> Bool {
        guard let slot = reserve() else { return false }
        slot.header.pointee = header
        for i in 0..<jointCount {
            slot.positionRad[i] = positionRad[i]
            slot.velocityRadPerS[i] = velocityRadPerS[i]
            slot.effortNm[i] = effortNm[i]
            slot.commandRad[i] = commandRad[i]
        }
        if recordsTarget {
            for i in 0..<jointCount {
                slot.targetRad[i] = targetRad?[i] ?? 0
                slot.velocityGoalRadPerS[i] = 0
                slot.effortGoalNm[i] = 0
            }
        }
        commit()
        return true
    }

    /// Consumer: hands every available snapshot, oldest first, to `body`, then frees their slots. Returns
    /// how many there were.
    @discardableResult
    func drain(_ body: (TickSnapshotSlot) -> Void) -> Int {
        let start = consumed.load(ordering: .relaxed)
        let end = written.load(ordering: .acquiring)
        guard end > start else { return 0 }
        for index in start..<end { body(slot(at: index)) }
        consumed.store(end, ordering: .releasing)
        return end - start
    }
}

/// File formats of a recording.
public enum RecordingFormat: Sendable {
    /// One header line, then one line per tick: `tick,t_s,state,safety_cause,wake_lateness_ns,sense_ns,…,
    /// record_ns`, then per joint `<name>.position_rad,<name>.velocity_rad_s,<name>.effort_nm,
    /// <name>.command_rad` (and `<name>.target_rad` when the recorder `recordsTarget`).
    case csv
    /// MCAP (mcap.dev): the channels, schemas and attachments of ``MCAPRecordingSink``.
    case mcap(MCAPRecordingContext)
}

/// Errors of the recording writer.
public enum RecordingError: Error, Sendable, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case writeFailed(path: String, errno: Int32)
    /// The file could not be written, for another reason (said).
    case failed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let code): "cannot open \(path): \(String(cString: strerror(code))) (errno \(code))"
        case .writeFailed(let path, let code):
            "cannot write \(path): \(String(cString: strerror(code))) (errno \(code))"
        case .failed(let path, let reason): "\(path): \(reason)"
        }
    }
}

/// Called on the writer thread for every snapshot, before it is written (telemetry: live latency
/// percentiles, tracking error, the status line). Not real-time: it may allocate and lock, but while it
/// runs the ring is not drained.
public typealias TickSnapshotObserver = (TickSnapshotSlot) -> Void

/// What takes the tick snapshots on the recorder's thread: a file (CSV, MCAP), and later metrics, a dashboard,
/// DDS. Not real-time — it may allocate — but the ring fills while it works, so it must keep up.
public protocol RecordingSink: AnyObject {
    /// Each snapshot, oldest first.
    func write(_ snapshot: TickSnapshotSlot) throws(RecordingError)
    /// A safety event, as the supervisor recorded it, with its description.
    func record(event: SafetyEvent, description: String) throws(RecordingError)
    /// A line the run printed (a notice, a warning), at `timeSeconds` since the loop started.
    func log(_ line: String, timeSeconds: Double) throws(RecordingError)
    /// A file or a fact to keep with the recording (the real-time set-up, known once the loop runs).
    func attach(name: String, mediaType: String, data: [UInt8]) throws(RecordingError)
    /// Nothing new arrived: a chance to close what is due (an MCAP chunk, for crash safety).
    func idle() throws(RecordingError)
    /// The end: write what is left and close.
    func finish() throws(RecordingError)
}

extension RecordingSink {
    public func record(event: SafetyEvent, description: String) throws(RecordingError) {}
    public func log(_ line: String, timeSeconds: Double) throws(RecordingError) {}
    public func attach(name: String, mediaType: String, data: [UInt8]) throws(RecordingError) {}
    public func idle() throws(RecordingError) {}
}

/// The non-real-time thread that drains a `TickRecorder` every few milliseconds into its sinks, hands each
/// snapshot to an optional observer, and passes on the supervisor's new safety events and the run's log lines.
/// One thread for every sink: a slow sink makes the ring fill and drop (counted), never the tick wait.
public final class RecordingWriter: @unchecked Sendable {
    /// The file, or nil when only the observer consumes the snapshots.
    public let path: String?
    public let recorder: TickRecorder
    private let observer: TickSnapshotObserver?
    private let sinks: [any RecordingSink]
    private let events: SafetyEventLog?
    private let describe: ((SafetyEvent) -> String)?
    private var eventsSeen = 0
    private var lastTimeSeconds = 0.0
    private let logLines = Mutex<[String]>([])
    private let pendingAttachments = Mutex<[(name: String, mediaType: String, data: [UInt8])]>([])
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let writtenSnapshots = Atomic<Int>(0)
    private let writtenStarts = Atomic<Int>(0)
    private let failureText = Mutex<String?>(nil)
    private let pollMicroseconds: UInt32

    /// A writer of one file in `format` at `path` (nil: no file, only the observer); starts the thread.
    public convenience init(
        recorder: TickRecorder, path: String?, format: RecordingFormat = .csv, pollIntervalSeconds: Double = 0.005,
        observer: TickSnapshotObserver? = nil, events: SafetyEventLog? = nil,
        describe: ((SafetyEvent) -> String)? = nil
    ) throws(RecordingError) {
        var sinks: [any RecordingSink] = []
        if let path {
            switch format {
            case .csv: sinks.append(try CSVRecordingSink(path: path, recorder: recorder))
            case .mcap(let context):
                sinks.append(try MCAPRecordingSink(path: path, recorder: recorder, context: context))
            }
        }
        self.init(
            recorder: recorder, path: path, sinks: sinks, pollIntervalSeconds: pollIntervalSeconds, observer: observer,
            events: events, describe: describe)
    }

    /// A writer into `sinks`; starts the thread. `events` (the supervisor's log) and `describe` make each new
    /// safety event reach the sinks.
    public init(
        recorder: TickRecorder, path: String?, sinks: [any RecordingSink], pollIntervalSeconds: Double = 0.005,
        observer: TickSnapshotObserver? = nil, events: SafetyEventLog? = nil,
        describe: ((SafetyEvent) -> String)? = nil
    ) {
        self.recorder = recorder
        self.path = path
        self.sinks = sinks
        self.observer = observer
        self.events = events
        self.describe = describe
        pollMicroseconds = UInt32(max(pollIntervalSeconds, 0.0005) * 1e6)
        let thread = Thread { [self] in self.run() }
        thread.name = "sinew-recorder"
        thread.start()
    }

    /// Snapshots written so far.
    public var snapshotsWritten: Int { writtenSnapshots.load(ordering: .relaxed) }
    /// Of those, the ticks (the others are the policy's starts: activation, recoveries).
    public var ticksWritten: Int { snapshotsWritten - writtenStarts.load(ordering: .relaxed) }

    /// Why writing failed, as soon as it did (any thread; the writer goes on draining the ring so the loop is
    /// never held up, but what comes after the failure is lost).
    public var failure: String? { failureText.withLock { $0 } }

    /// A line for the recording's log channel (any thread but the loop's).
    public func log(_ line: String) { logLines.withLock { $0.append(line) } }

    /// A file or a fact to attach to the recording (any thread but the loop's).
    public func attach(name: String, mediaType: String, data: [UInt8]) {
        pendingAttachments.withLock { $0.append((name, mediaType, data)) }
    }

    /// Drains what is left, closes the files and ends the thread. Call once, after the loop stopped.
    public func close() throws(RecordingError) {
        stopFlag.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring) { usleep(500) }
        if let failure { throw .failed(path: path ?? "the recording", reason: failure) }
    }

    private func keepFirst(_ error: RecordingError) {
        failureText.withLock { if $0 == nil { $0 = error.description } }
    }

    private func forEachSink(_ body: (any RecordingSink) throws(RecordingError) -> Void) {
        for sink in sinks {
            do throws(RecordingError) {
                try body(sink)
            } catch {
                keepFirst(error)
            }
        }
    }

    private func run() {
        while true {
            let stopping = stopFlag.load(ordering: .acquiring)
            let count = recorder.drain { slot in
                self.observer?(slot)
                self.lastTimeSeconds = slot.header.pointee.timeSeconds
                if slot.header.pointee.kind != .tick { self.writtenStarts.add(1, ordering: .relaxed) }
                forEachSink { sink throws(RecordingError) in try sink.write(slot) }
            }
            writtenSnapshots.add(count, ordering: .relaxed)
            if let events, let describe, events.count > eventsSeen {
                for index in eventsSeen..<events.count {
                    let event = events[index]
                    forEachSink { sink throws(RecordingError) in
                        try sink.record(event: event, description: describe(event))
                    }
                }
                eventsSeen = events.count
            }
            let lines = logLines.withLock { lines in
                defer { lines.removeAll() }
                return lines
            }
            for line in lines {
                forEachSink { sink throws(RecordingError) in try sink.log(line, timeSeconds: lastTimeSeconds) }
            }
            let attachments = pendingAttachments.withLock { pending in
                defer { pending.removeAll() }
                return pending
            }
            for a in attachments {
                forEachSink { sink throws(RecordingError) in
                    try sink.attach(name: a.name, mediaType: a.mediaType, data: a.data)
                }
            }
            if stopping && count == 0 { break }
            if count == 0 {
                forEachSink { sink throws(RecordingError) in try sink.idle() }
                usleep(pollMicroseconds)
            }
        }
        forEachSink { sink throws(RecordingError) in try sink.finish() }
        finished.store(true, ordering: .releasing)
    }
}

/// The CSV format (``RecordingFormat/csv``), one line per tick; also `sinew recording export --csv`.
public final class CSVRecordingSink: RecordingSink {
    public let path: String
    let jointNames: [String]
    let recordsTarget: Bool
    private let fd: Int32
    private var buffer: [UInt8] = []

    public init(path: String, recorder: TickRecorder) throws(RecordingError) {
        self.path = path
        jointNames = recorder.jointNames
        recordsTarget = recorder.recordsTarget
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        buffer.reserveCapacity(1 << 16)
        var columns = ["tick", "t_s", "state", "safety_cause", "wake_lateness_ns"]
        columns += TickStage.allCases.map { "\($0.name)_ns" }
        for name in jointNames {
            columns += ["\(name).position_rad", "\(name).velocity_rad_s", "\(name).effort_nm", "\(name).command_rad"]
            if recordsTarget { columns.append("\(name).target_rad") }
        }
        buffer.append(contentsOf: (columns.joined(separator: ",") + "\n").utf8)
        try flush()
    }

    public func write(_ slot: TickSnapshotSlot) throws(RecordingError) {
        let h = slot.header.pointee
        guard h.kind == .tick else { return }
        var line = "\(h.tick),\(h.timeSeconds),\(h.state),\(h.safetyCause.map { "\($0)" } ?? ""),\(h.wakeLatenessNs)"
        for value in [h.stageNs.0, h.stageNs.1, h.stageNs.2, h.stageNs.3, h.stageNs.4, h.stageNs.5] {
            line += ",\(value)"
        }
        for i in 0..<jointNames.count {
            line += ",\(slot.positionRad[i]),\(slot.velocityRadPerS[i]),\(slot.effortNm[i]),\(slot.commandRad[i])"
            if recordsTarget { line += ",\(slot.targetRad[i])" }
        }
        buffer.append(contentsOf: (line + "\n").utf8)
        if buffer.count > 1 << 16 { try flush() }
    }

    public func idle() throws(RecordingError) { try flush() }

    public func finish() throws(RecordingError) {
        defer { Glibc.close(fd) }
        try flush()
        // A full disk or a failing device may show only here; EINVAL (a pipe, /dev/null) is no error.
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS { throw .writeFailed(path: path, errno: errno) }
    }

    private func flush() throws(RecordingError) {
        var offset = 0
        defer { buffer.removeAll(keepingCapacity: true) }
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, errno: errno)
            }
            offset += n
        }
    }
}
