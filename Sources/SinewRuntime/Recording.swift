import Foundation
import Synchronization

/// The fixed part of one tick's snapshot.
public struct TickSnapshotHeader: Sendable {
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
    /// Doubles per joint in a snapshot: position, velocity, effort, command, and target when recorded.
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
        valuesPerJoint = recordsTarget ? 5 : 4
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
            targetRad: UnsafeMutableBufferPointer(start: base + 4 * jointCount, count: recordsTarget ? jointCount : 0))
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
        if recordsTarget, let targetRad {
            for i in 0..<jointCount { slot.targetRad[i] = targetRad[i] }
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
public enum RecordingFormat: Sendable, Equatable {
    /// One header line, then one line per tick: `tick,t_s,state,safety_cause,wake_lateness_ns,sense_ns,…,
    /// record_ns`, then per joint `<name>.position_rad,<name>.velocity_rad_s,<name>.effort_nm,
    /// <name>.command_rad` (and `<name>.target_rad` when the recorder `recordsTarget`).
    case csv
    /// "SINEWREC", UInt32 version (1), UInt32 joint count, per joint UInt16 name length + UTF-8 name; then
    /// fixed-size records, little-endian: Int64 tick, Float64 t_s, UInt8 state, UInt8 cause (255: none),
    /// 6 bytes padding, Int64 wake lateness ns, 6 × Int64 stage ns, then per joint 4 × Float64
    /// (position rad, velocity rad/s, effort N·m, command rad). Version 2 is the same with a fifth Float64
    /// per joint, the target rad (recorders that `recordsTarget`).
    case binary
}

/// Errors of the recording writer.
public enum RecordingError: Error, Sendable, Equatable {
    case cannotOpen(path: String, errno: Int32)
    case writeFailed(path: String, errno: Int32)
}

/// Called on the writer thread for every snapshot, before it is written (telemetry: live latency
/// percentiles, tracking error, the status line). Not real-time: it may allocate and lock, but while it
/// runs the ring is not drained.
public typealias TickSnapshotObserver = (TickSnapshotSlot) -> Void

/// A non-real-time thread that drains a `TickRecorder` into a file every few milliseconds, and hands each
/// snapshot to an optional observer.
public final class RecordingWriter: @unchecked Sendable {
    /// The file, or nil when only the observer consumes the snapshots.
    public let path: String?
    public let format: RecordingFormat
    public let recorder: TickRecorder
    private let observer: TickSnapshotObserver?
    private let fd: Int32
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let writtenSnapshots = Atomic<Int>(0)
    private let writeErrno = Atomic<Int32>(0)
    private let pollMicroseconds: UInt32
    private var buffer: [UInt8] = []

    /// Creates (truncates) the file at `path` (nil: no file), writes the header and starts the writer thread.
    public init(
        recorder: TickRecorder, path: String?, format: RecordingFormat = .csv, pollIntervalSeconds: Double = 0.005,
        observer: TickSnapshotObserver? = nil
    ) throws(RecordingError) {
        self.recorder = recorder
        self.path = path
        self.format = format
        self.observer = observer
        pollMicroseconds = UInt32(max(pollIntervalSeconds, 0.0005) * 1e6)
        if let path {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
            buffer.reserveCapacity(1 << 16)
            writeHeader()
            flushBuffer()
        } else {
            fd = -1
        }
        let thread = Thread { [self] in self.run() }
        thread.name = "sinew-recorder"
        thread.start()
    }

    /// Snapshots written to the file so far.
    public var snapshotsWritten: Int { writtenSnapshots.load(ordering: .relaxed) }

    /// Why writing the file failed, as soon as a write failed (any thread; the writer goes on draining the
    /// ring so the loop is never held up, but what comes after the failure is lost).
    public var failure: String? {
        let code = writeErrno.load(ordering: .relaxed)
        guard code != 0 else { return nil }
        return "cannot write \(path ?? "the recording"): \(String(cString: strerror(code))) (errno \(code))"
    }

    /// Drains what is left, closes the file and ends the thread. Call once, after the loop stopped.
    public func close() throws(RecordingError) {
        stopFlag.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring) { usleep(500) }
        let code = writeErrno.load(ordering: .relaxed)
        guard code == 0 else { throw .writeFailed(path: path ?? "", errno: code) }
    }

    private func run() {
        while true {
            let stopping = stopFlag.load(ordering: .acquiring)
            let count = recorder.drain { slot in
                self.observer?(slot)
                if self.fd >= 0 { self.append(slot) }
            }
            if count > 0 {
                writtenSnapshots.add(count, ordering: .relaxed)
                flushBuffer()
            }
            if stopping && count == 0 { break }
            if count == 0 { usleep(pollMicroseconds) }
        }
        if fd >= 0 {
            flushBuffer()
            // A full disk or a failing device may show only here; EINVAL (a pipe, /dev/null) is no error.
            if fsync(fd) != 0 && errno != EINVAL && errno != EROFS { keepFirstError(errno) }
            if Glibc.close(fd) != 0 { keepFirstError(errno) }
        }
        finished.store(true, ordering: .releasing)
    }

    private func flushBuffer() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { raw in write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                keepFirstError(errno)
                break
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func keepFirstError(_ code: Int32) {
        _ = writeErrno.compareExchange(expected: 0, desired: code, ordering: .relaxed)
    }

    private func appendText(_ text: String) { buffer.append(contentsOf: text.utf8) }

    private func appendRaw<T>(_ value: T) {
        withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) }
    }

    private func writeHeader() {
        switch format {
        case .csv:
            var columns = [
                "tick", "t_s", "state", "safety_cause", "wake_lateness_ns",
            ]
            columns += TickStage.allCases.map { "\($0.name)_ns" }
            for name in recorder.jointNames {
                columns += [
                    "\(name).position_rad", "\(name).velocity_rad_s", "\(name).effort_nm", "\(name).command_rad",
                ]
                if recorder.recordsTarget { columns.append("\(name).target_rad") }
            }
            appendText(columns.joined(separator: ",") + "\n")
        case .binary:
            appendText("SINEWREC")
            appendRaw(UInt32(recorder.recordsTarget ? 2 : 1).littleEndian)
            appendRaw(UInt32(recorder.jointCount).littleEndian)
            for name in recorder.jointNames {
                let bytes = Array(name.utf8)
                appendRaw(UInt16(bytes.count).littleEndian)
                buffer.append(contentsOf: bytes)
            }
        }
    }

    private func append(_ slot: TickSnapshotSlot) {
        let h = slot.header.pointee
        let stages = [h.stageNs.0, h.stageNs.1, h.stageNs.2, h.stageNs.3, h.stageNs.4, h.stageNs.5]
        switch format {
        case .csv:
            var line =
                "\(h.tick),\(h.timeSeconds),\(h.state),\(h.safetyCause.map { "\($0)" } ?? ""),\(h.wakeLatenessNs)"
            for value in stages { line += ",\(value)" }
            for i in 0..<recorder.jointCount {
                line +=
                    ",\(slot.positionRad[i]),\(slot.velocityRadPerS[i]),\(slot.effortNm[i]),\(slot.commandRad[i])"
                if recorder.recordsTarget { line += ",\(slot.targetRad[i])" }
            }
            appendText(line + "\n")
        case .binary:
            appendRaw(h.tick.littleEndian)
            appendRaw(h.timeSeconds.bitPattern.littleEndian)
            buffer.append(h.state.rawValue)
            buffer.append(h.safetyCause?.rawValue ?? 255)
            buffer.append(contentsOf: [0, 0, 0, 0, 0, 0])
            appendRaw(h.wakeLatenessNs.littleEndian)
            for value in stages { appendRaw(value.littleEndian) }
            for i in 0..<recorder.jointCount {
                for value in [slot.positionRad[i], slot.velocityRadPerS[i], slot.effortNm[i], slot.commandRad[i]] {
                    appendRaw(value.bitPattern.littleEndian)
                }
                if recorder.recordsTarget { appendRaw(slot.targetRad[i].bitPattern.littleEndian) }
            }
        }
    }
}
