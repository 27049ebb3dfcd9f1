import Foundation
import SinewKinematics
import SinewRuntime
import Synchronization

/// Teleoperated episodes on a real arm, as `lerobot-record` records them: episode i runs for up to the episode
/// time; → ends it early and keeps it, ← discards it and records it again after a reset, Esc ends the session
/// (the episode in progress is discarded; those kept are written). Between episodes a reset period goes by with
/// teleoperation on and nothing recorded (→ skips it; ← during it discards the episode just kept and records it
/// again at once, as LeRobot does, since LeRobot saves an episode only after its reset).
///
/// Threads: the key-reading thread only counts key presses (atomics); the recorder's thread takes each tick's
/// snapshot, runs the episode state machine on the snapshot's loop time (so frame counts follow the loop, not
/// this thread's scheduling), takes frames at the dataset's rate and keeps the episodes; the monitor's thread
/// reads the phase through atomics and the events through a preallocated ring. The tick never sees any of it.
public final class ArmEpisodeRecorder: RecordingSink, @unchecked Sendable {
    // @unchecked: the fields below the atomics belong to one thread each, as marked.

    /// Phases, as the monitor sees them.
    enum Phase: Int {
        case waiting = 0, recording, reset, done
    }

    /// What happened, for the operator's lines (`Event.code`, the episode number in the high bits).
    enum Event: Int {
        case recordingStarted = 1, kept, discarded, resetStarted, discardedKept, robotNotActive, stoppedByEscape,
            allRecorded
    }

    public let episodesWanted: Int
    /// The longest episode and the reset between two, s.
    public let episodeTimeS: Double
    public let resetTimeS: Double
    /// Dataset frames per second.
    public let fps: Int
    /// The first episode's seed (episode i's goal is drawn from seed + i).
    public let seed: UInt64
    let configuration: RobotConfiguration
    let model: RobotModel
    let task: TaskConfiguration
    let conversion: LeRobotJointConversion

    // Key presses, counted by the key-reading thread; the recorder's thread takes them one at a time.
    private let rightPresses = Atomic<Int>(0)
    private let leftPresses = Atomic<Int>(0)
    private let escapePresses = Atomic<Int>(0)
    // The phase for the monitor.
    private let phaseCode = Atomic<Int>(Phase.waiting.rawValue)
    private let currentEpisode = Atomic<Int>(0)
    private let remainingMs = Atomic<Int>(0)
    private let keptCount = Atomic<Int>(0)
    private let discardedCount = Atomic<Int>(0)
    // Events: a ring the recorder's thread writes and the monitor reads (it may skip some if it falls far behind).
    private static let eventCapacity = 256
    private let events: UnsafeMutablePointer<Int>
    private let eventsWritten = Atomic<Int>(0)

    // The recorder's thread's own.
    private var phase = Phase.waiting
    /// After the robot leaves the active state mid-episode: the phase to go to once it is active again.
    private var resumeWithReset = false
    private var phaseStartS = 0.0
    private var seenRight = 0
    private var seenLeft = 0
    private var seenEscape = 0
    private var lastKeptBeforeReset = false
    private var taskEpisode: (any TaskEpisode)?
    private var nextFrame = 0
    private var state: [[Double]] = []
    private var action: [[Double]] = []
    private var environment: [[Double]] = []
    private var kept: [LeRobotEpisode] = []
    private let positions: UnsafeMutableBufferPointer<Double>

    // The key-reading thread's own: where it is in an arrow's escape sequence.
    private var keyDecoder = EpisodeKeyDecoder()

    // The monitor's own.
    private var eventsRead = 0

    private let stoppedByEscape = Atomic<Bool>(false)
    private let allRecorded = Atomic<Bool>(false)

    /// Whether the session ended on its own: Esc, or every episode recorded.
    public var endedByEscape: Bool { stoppedByEscape.load(ordering: .acquiring) }
    public var recordedAll: Bool { allRecorded.load(ordering: .acquiring) }

    /// Whether the run ended (a signal, a failure) with an episode in progress, which was not kept. Read after the
    /// recorder's thread has ended.
    public private(set) var episodeCutShort = false

    /// Episodes of `task` on the robot of `configuration` and `model`, frames converted by `conversion`.
    /// - Parameters:
    ///   - episodes: how many to keep before the session ends by itself.
    ///   - episodeTimeS: an episode's longest duration, s (> 0); `resetTimeS`: the reset between two, s (≥ 0).
    ///   - fps: dataset frames per second.
    public init(
        configuration: RobotConfiguration, model: RobotModel, task: TaskConfiguration,
        conversion: LeRobotJointConversion, episodes: Int, episodeTimeS: Double, resetTimeS: Double, fps: Int,
        seed: UInt64
    ) {
        self.configuration = configuration
        self.model = model
        self.task = task
        self.conversion = conversion
        episodesWanted = episodes
        self.episodeTimeS = episodeTimeS
        self.resetTimeS = resetTimeS
        self.fps = fps
        self.seed = seed
        events = .allocate(capacity: Self.eventCapacity)
        events.initialize(repeating: 0, count: Self.eventCapacity)
        positions = .allocate(capacity: max(1, configuration.joints.count))
        positions.initialize(repeating: 0)
    }

    deinit {
        events.deallocate()
        positions.deallocate()
    }

    /// The episodes kept, in order. Read after the recorder's thread has ended (`RunRecording.finish()`).
    public var keptEpisodes: [LeRobotEpisode] { kept }

    /// Episodes recorded and thrown away (←, the robot leaving the active state, the session ending mid-episode).
    public var discardedEpisodes: Int { discardedCount.load(ordering: .relaxed) }

    /// The seed of the episode with this index (0-based, among those kept): the task's goal is drawn from it.
    public func seed(ofEpisode index: Int) -> UInt64 { seed &+ UInt64(index) }

    // MARK: Key-reading thread

    /// A byte from the operator's terminal (on the key-reading thread only): → and ← arrive as ESC [ C and ESC [ D
    /// (or ESC O C/D), counted as presses.
    public func keyByte(_ byte: UInt8) {
        switch keyDecoder.feed(byte) {
        case .right: rightPresses.add(1, ordering: .releasing)
        case .left: leftPresses.add(1, ordering: .releasing)
        case nil: break
        }
    }

    /// The Esc key alone (the key reader told it from an arrow's ESC), on the key-reading thread only.
    public func escapeKey() {
        keyDecoder.reset()
        escapePresses.add(1, ordering: .releasing)
    }

    // MARK: Recorder's thread

    /// Each tick's snapshot, on the recorder's thread: the episode state machine and the frames.
    public func write(_ snapshot: TickSnapshotSlot) throws(RecordingError) {
        let header = snapshot.header.pointee
        guard header.kind == .tick, phase != .done else { return }
        let t = header.timeSeconds
        // A recovery restarts the loop's clock.
        if t < phaseStartS { phaseStartS = t }
        // SIGINT, SIGTERM, SIGHUP: the guard stage takes the robot to its safe state before the shutdown; the session
        // ends there, the episode in progress not kept.
        if header.shutdownRequested {
            try finish()
            setPhase(.done)
            return
        }
        let active = header.state == .active
        let key = takeKey()
        if key == .escape {
            // As lerobot-record (0.6.1) does: the episode Esc cuts short is kept, unless it has no frame yet.
            if phase == .recording {
                if state.isEmpty { discard() } else { keep() }
            }
            stoppedByEscape.store(true, ordering: .releasing)
            end(.stoppedByEscape)
            return
        }
        switch phase {
        case .waiting:
            guard active else { return }
            if resumeWithReset { startReset(at: t, afterKept: false) } else { startRecording(at: t) }
        case .recording:
            guard active else {
                discard()
                post(.robotNotActive, detail: 1 | Self.causeCode(header.safetyCause) << 1)
                enterWaiting(resetFirst: true)
                return
            }
            let elapsedS = t - phaseStartS
            if key == .left {
                discard()
                post(.discarded)
                startReset(at: t, afterKept: false)
                return
            }
            // → on an episode without a frame yet (a second → queued behind the one that skipped the reset) is
            // taken for a key bounce: an empty episode is no demonstration.
            if (key == .right && !state.isEmpty) || elapsedS >= episodeTimeS {
                keep()
                if kept.count == episodesWanted {
                    allRecorded.store(true, ordering: .releasing)
                    end(.allRecorded)
                } else {
                    startReset(at: t, afterKept: true)
                }
                return
            }
            takeFrame(snapshot, elapsedS: elapsedS)
            remainingMs.store(Int((episodeTimeS - elapsedS) * 1000), ordering: .relaxed)
        case .reset:
            guard active else {
                post(.robotNotActive, detail: Self.causeCode(header.safetyCause) << 1)
                enterWaiting(resetFirst: true)
                return
            }
            if key == .left && lastKeptBeforeReset {
                kept.removeLast()
                keptCount.store(kept.count, ordering: .releasing)
                discardedCount.add(1, ordering: .relaxed)
                currentEpisode.store(kept.count, ordering: .relaxed)
                post(.discardedKept)
                startRecording(at: t)
                return
            }
            let elapsedS = t - phaseStartS
            if key == .right || key == .left || elapsedS >= resetTimeS {
                startRecording(at: t)
                return
            }
            remainingMs.store(Int((resetTimeS - elapsedS) * 1000), ordering: .relaxed)
        case .done:
            return
        }
    }

    /// The end of the run, on the recorder's thread: an episode in progress is not kept.
    public func finish() throws(RecordingError) {
        // The run ended (Ctrl-C, SIGTERM, a failure) with an episode in progress: it is not kept.
        if phase == .recording {
            discard()
            episodeCutShort = true
            setPhase(.done)
        }
    }

    private enum Key { case right, left, escape }

    /// One key press at most per tick (queued presses are taken by the ticks after), Esc first, then ←, then →.
    private func takeKey() -> Key? {
        if escapePresses.load(ordering: .acquiring) > seenEscape {
            seenEscape += 1
            return .escape
        }
        if leftPresses.load(ordering: .acquiring) > seenLeft {
            seenLeft += 1
            return .left
        }
        if rightPresses.load(ordering: .acquiring) > seenRight {
            seenRight += 1
            return .right
        }
        return nil
    }

    private func setPhase(_ next: Phase) {
        phase = next
        phaseCode.store(next.rawValue, ordering: .releasing)
    }

    private func enterWaiting(resetFirst: Bool) {
        resumeWithReset = resetFirst
        currentEpisode.store(kept.count, ordering: .relaxed)
        setPhase(.waiting)
    }

    private func startRecording(at t: Double) {
        let index = kept.count
        let context = TaskEpisodeContext(
            configuration: configuration, model: model,
            startRad: task.startPose(
                configuration: configuration, model: model, seed: seed(ofEpisode: index)))
        var random = TaskConfiguration.random(seed: seed(ofEpisode: index), stream: .task)
        // The settings were checked against the robot when the task was loaded; an episode that still cannot be
        // made (none has been seen) records no environment state rather than stopping the arm mid-session.
        taskEpisode = try? task.settings.makeEpisode(context, random: &random)
        nextFrame = 0
        state.removeAll(keepingCapacity: true)
        action.removeAll(keepingCapacity: true)
        environment.removeAll(keepingCapacity: true)
        phaseStartS = t
        lastKeptBeforeReset = false
        currentEpisode.store(index, ordering: .relaxed)
        remainingMs.store(Int(episodeTimeS * 1000), ordering: .relaxed)
        setPhase(.recording)
        post(.recordingStarted)
    }

    private func startReset(at t: Double, afterKept: Bool) {
        phaseStartS = t
        lastKeptBeforeReset = afterKept
        resumeWithReset = false
        currentEpisode.store(kept.count, ordering: .relaxed)
        remainingMs.store(Int(resetTimeS * 1000), ordering: .relaxed)
        setPhase(.reset)
        post(.resetStarted)
    }

    private func end(_ event: Event) {
        setPhase(.done)
        post(event)
    }

    private func takeFrame(_ snapshot: TickSnapshotSlot, elapsedS: Double) {
        let n = conversion.jointNames.count
        for j in 0..<n { positions[j] = snapshot.positionRad[j] }
        _ = taskEpisode?.update(timeS: elapsedS, positionsRad: UnsafeBufferPointer(positions))
        // Half a loop period early at most, so that a frame due exactly at a tick is taken at that tick.
        let halfPeriodS = 0.5 / configuration.loop.rateHz
        guard elapsedS + halfPeriodS >= Double(nextFrame) / Double(fps) else { return }
        state.append((0..<n).map { conversion.toDataset(snapshot.positionRad[$0], joint: $0) })
        action.append((0..<n).map { conversion.toDataset(snapshot.targetRad[$0], joint: $0) })
        environment.append(taskEpisode.map { Array($0.observation) } ?? [])
        nextFrame += 1
    }

    private func keep() {
        kept.append(
            LeRobotEpisode(task: task.instruction, state: state, action: action, environment: environment))
        keptCount.store(kept.count, ordering: .releasing)
        post(.kept)
    }

    private func discard() {
        discardedCount.add(1, ordering: .relaxed)
        state.removeAll(keepingCapacity: true)
        action.removeAll(keepingCapacity: true)
        environment.removeAll(keepingCapacity: true)
    }

    /// - Parameter detail: rides along with the episodes kept so far: for `kept`, its frame count; for
    ///   `robotNotActive`, bit 0 set when an episode in progress was discarded, above it ``causeCode(_:)``.
    /// A safety cause as a small number (0: none) for an event's detail.
    static func causeCode(_ cause: SafetyCause?) -> Int { cause.map { Int($0.rawValue) + 1 } ?? 0 }

    private func post(_ event: Event, detail: Int = 0) {
        let index = eventsWritten.load(ordering: .relaxed)
        let value = event == .kept ? state.count : detail
        events[index % Self.eventCapacity] = event.rawValue | kept.count << 8 | value << 32
        eventsWritten.store(index + 1, ordering: .releasing)
    }

    // MARK: Monitor's thread

    /// What happened since the last call, one line per event (the monitor's thread only).
    public func newLines() -> [String] {
        var lines: [String] = []
        let written = eventsWritten.load(ordering: .acquiring)
        if written - eventsRead > Self.eventCapacity { eventsRead = written - Self.eventCapacity }
        while eventsRead < written {
            let code = events[eventsRead % Self.eventCapacity]
            eventsRead += 1
            if let line = describe(code) { lines.append(line) }
        }
        return lines
    }

    /// Whether the session has ended by itself (every episode recorded, or Esc): the run may stop.
    public var isDone: Bool { phaseCode.load(ordering: .acquiring) == Phase.done.rawValue }

    /// The head of the status line: the phase, episode i/N, the seconds left and the keys (any thread).
    public var statusText: String {
        let episode = currentEpisode.load(ordering: .relaxed) + 1
        let left = String(format: "%4.1f s left", Double(max(0, remainingMs.load(ordering: .relaxed))) / 1000)
        switch Phase(rawValue: phaseCode.load(ordering: .acquiring)) ?? .waiting {
        case .waiting: return "WAIT episode \(episode)/\(episodesWanted) (robot not active)"
        case .recording: return "REC episode \(episode)/\(episodesWanted) \(left) (→ keep, ← redo, Esc stop)"
        case .reset:
            return "RESET before episode \(episode)/\(episodesWanted) \(left) (→ skip, ← redo last, Esc stop)"
        case .done: return "DONE \(keptCount.load(ordering: .relaxed)) kept"
        }
    }

    private func describe(_ code: Int) -> String? {
        guard let event = Event(rawValue: code & 0xFF) else { return nil }
        let keptSoFar = (code >> 8) & 0xFF_FFFF
        let frames = code >> 32  // or the detail of another event
        let of = "/\(episodesWanted)"
        switch event {
        case .recordingStarted:
            return "episode \(keptSoFar + 1)\(of): recording for up to \(seconds(episodeTimeS)) "
                + "(→ ends it and keeps it, ← records it again, Esc ends the session)" + goal(ofEpisode: keptSoFar)
        case .kept:
            return "episode \(keptSoFar)\(of): kept, \(frames) frames (\(seconds(Double(frames) / Double(fps))))"
        case .discarded:
            return "episode \(keptSoFar + 1)\(of): discarded; it is recorded again after the reset"
        case .discardedKept:
            return "episode \(keptSoFar + 1)\(of): the episode before this reset is discarded; recording it again"
        case .resetStarted:
            return "reset: \(seconds(resetTimeS)) to set the scene up again (teleoperation goes on, nothing is "
                + "recorded; → skips it), then episode \(keptSoFar + 1)\(of)"
        case .robotNotActive:
            let cause = (frames >> 1) > 0 ? SafetyCause(rawValue: UInt8(truncatingIfNeeded: (frames >> 1) - 1)) : nil
            return "the robot left the active state (\(cause.map { "\($0)" } ?? "e-stop or safety event"))"
                + (frames & 1 == 1 ? ": episode \(keptSoFar + 1)\(of) in progress is discarded" : "")
                + "; r recovers, then a reset and episode \(keptSoFar + 1)\(of)"
        case .stoppedByEscape: return "Esc: the recording session ends with \(keptSoFar) episode(s) kept"
        case .allRecorded: return "all \(episodesWanted) episodes recorded"
        }
    }

    private func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }

    /// The episode's goal for the operator (a reach target), drawn from its seed as the recorder's thread draws
    /// it.
    private func goal(ofEpisode index: Int) -> String {
        let context = TaskEpisodeContext(
            configuration: configuration, model: model,
            startRad: task.startPose(
                configuration: configuration, model: model, seed: seed(ofEpisode: index)))
        var random = TaskConfiguration.random(seed: seed(ofEpisode: index), stream: .task)
        guard let episode = try? task.settings.makeEpisode(context, random: &random) else { return "" }
        let shown = episode.report.goal.filter { $0.1.count <= 6 }
        guard !shown.isEmpty else { return "" }
        return "\n  seed \(seed(ofEpisode: index)): "
            + shown.map { name, values in
                "\(name) [" + values.map { String(format: "%.3f", $0) }.joined(separator: ", ") + "]"
            }.joined(separator: ", ")
    }
}

/// The arrow keys of a terminal, byte by byte: → and ← arrive as ESC [ C and ESC [ D (ESC O C/D in application
/// cursor mode); the bytes of longer sequences (Page Up: ESC [ 5 ~) and everything else press nothing. Its input
/// is whatever the terminal sends, so it is fuzzed (`sinew-fuzz` selector 12).
public struct EpisodeKeyDecoder: Sendable {
    public enum Arrow: Sendable, Equatable { case right, left }

    // 0: plain bytes; 1: after ESC; 2: after ESC [ or ESC O.
    private var state = 0

    public init() {}

    /// Feeds one byte; returns the arrow it completes, if any.
    public mutating func feed(_ byte: UInt8) -> Arrow? {
        switch (state, byte) {
        case (_, 0x1B): state = 1
        case (1, UInt8(ascii: "[")), (1, UInt8(ascii: "O")): state = 2
        case (2, UInt8(ascii: "C")):
            state = 0
            return .right
        case (2, UInt8(ascii: "D")):
            state = 0
            return .left
        case (2, _) where (0x30...0x3F).contains(byte):
            break  // parameters of a longer sequence (Page Up: ESC [ 5 ~)
        default: state = 0
        }
        return nil
    }

    /// Forgets a sequence in progress (the Esc key alone was told apart from it).
    public mutating func reset() { state = 0 }
}
