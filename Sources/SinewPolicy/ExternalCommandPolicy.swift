import Foundation
import Synchronization

/// A trajectory handed to an ``ExternalCommandPolicy`` by the thread that received it (a ROS 2
/// `trajectory_msgs/JointTrajectory`, resampled): a chunk in the robot's joint order whose times are relative to the
/// trajectory's start, which joints it moves, and when it starts.
public final class ExternalTrajectory: @unchecked Sendable {
    // @unchecked: filled by the producer thread in its triple-buffer slot, read by the tick in its own.
    /// Every robot joint a column, robot.yaml order; `startNs` is the first step's time after the trajectory's
    /// start (ns), `observationTimeNs` unused (the tick sets it).
    public let chunk: ActionChunk
    /// Per joint: whether the trajectory names it. Joints it leaves out keep their present command.
    public let moves: UnsafeMutableBufferPointer<Bool>
    /// The trajectory's start, ns since the Unix epoch (its header's stamp); 0: when the tick takes it.
    public var startWallNs: Int64 = 0
    /// When the sender wrote it, ns since the Unix epoch (the DDS source timestamp; 0: unknown): where the
    /// trajectory-to-tick latency is measured from.
    public var sentWallNs: Int64 = 0

    public init(jointCount: Int, maxSteps: Int) {
        chunk = ActionChunk(jointCount: jointCount, capacity: maxSteps)
        moves = .allocate(capacity: max(1, jointCount))
        moves.initialize(repeating: false)
    }

    deinit { moves.deallocate() }
}

/// Direct joint position targets handed to an ``ExternalCommandPolicy`` (a ROS 2 `cmd` sample).
public final class ExternalTarget: @unchecked Sendable {
    // @unchecked: as ExternalTrajectory.
    /// Per joint, rad, robot.yaml order (read only where `given`).
    public let positionRad: UnsafeMutableBufferPointer<Double>
    public let given: UnsafeMutableBufferPointer<Bool>
    /// When the sender wrote it, ns since the Unix epoch (0: unknown).
    public var sentWallNs: Int64 = 0

    public init(jointCount: Int) {
        positionRad = .allocate(capacity: max(1, jointCount))
        positionRad.initialize(repeating: 0)
        given = .allocate(capacity: max(1, jointCount))
        given.initialize(repeating: false)
    }

    deinit {
        positionRad.deallocate()
        given.deallocate()
    }
}

/// The policy of a robot driven from outside the process (robot.yaml `policy: {type: ros}`): it holds the pose it
/// was activated in until commands arrive, then follows
///
/// - **trajectories** (``submitTrajectory(_:)``) through the mixed-rate ``ChunkBridge``, the same path as learned
///   policies' action chunks: a new trajectory is blended in C1 from what the robot was doing, and the robot holds
///   a trajectory's last point once it is over (a finished plan is a deliberate hold: the command stays fresh);
/// - **direct targets** (``submitTarget(_:)``): each joint's newest target as its command, the command's time the
///   tick the target arrived in, so the watchdog (`safety.watchdog_ms`) brings the robot to its safe state when a
///   stream of targets stops.
///
/// The newest of the two kinds wins. Producers run on one thread of their own and hand commands over through
/// lock-free triple buffers; the tick never waits, and nothing in `compute` allocates or locks.
public final class ExternalCommandPolicy: Policy, @unchecked Sendable {
    // @unchecked: the tick side and the producer meet only in the triple buffers and atomics.
    public let typeName: String
    public let commands: [PolicyJointCommand]
    public let jointNames: [String]
    /// The tick side of trajectories (read its counters on the loop thread or after the loop stopped).
    public let bridge: ChunkBridge
    /// Resampling step of trajectories, s.
    public let trajectoryStepS: Double
    /// The longest trajectory a chunk holds, steps.
    public let maxTrajectorySteps: Int

    private let trajectories: TripleBuffer<ExternalTrajectory>
    private let targets: TripleBuffer<ExternalTarget>
    private enum Mode { case hold, trajectory, direct }
    private var mode = Mode.hold
    private var directTimeNs: Int64 = 0
    /// The command of the last tick, rad (what direct targets and trajectories start from).
    private let currentRad: UnsafeMutableBufferPointer<Double>
    private let takenTrajectories = Atomic<Int>(0)
    private let takenTargets = Atomic<Int>(0)
    /// Sent → taken by the tick, ns, of the last `latencyCapacity` trajectories and targets (a ring the tick writes).
    private let latencyNs: UnsafeMutableBufferPointer<Int64>
    private let latencyCount = Atomic<Int>(0)
    public static let latencyCapacity = 4096

    /// - Parameters:
    ///   - jointNames: the robot's joints, robot.yaml order; every one is commanded by position.
    ///   - trajectoryStepS: the step trajectories are resampled at, s (> 0).
    ///   - maxTrajectoryS: the longest trajectory accepted, s.
    ///   - settings: the bridge's blend (its mode is `latest`: a new trajectory replaces the one executing).
    public init(
        jointNames: [String], typeName: String = "ros", trajectoryStepS: Double = 0.01, maxTrajectoryS: Double = 60,
        settings: ChunkBridgeSettings = ChunkBridgeSettings(mode: .latest)
    ) {
        self.typeName = typeName
        self.jointNames = jointNames
        commands = jointNames.map { PolicyJointCommand(joint: $0, kind: .position) }
        self.trajectoryStepS = trajectoryStepS
        maxTrajectorySteps = max(2, Int((maxTrajectoryS / trajectoryStepS).rounded(.up)) + 1)
        let n = jointNames.count
        let steps = maxTrajectorySteps
        bridge = ChunkBridge(jointCount: n, maxChunkSteps: steps, settings: settings)
        trajectories = TripleBuffer { ExternalTrajectory(jointCount: n, maxSteps: steps) }
        targets = TripleBuffer { ExternalTarget(jointCount: n) }
        currentRad = .allocate(capacity: max(1, n))
        currentRad.initialize(repeating: 0)
        latencyNs = .allocate(capacity: Self.latencyCapacity)
        latencyNs.initialize(repeating: 0)
    }

    deinit {
        currentRad.deallocate()
        latencyNs.deallocate()
    }

    // MARK: Producer side (one thread)

    /// Fills the producer's trajectory slot in `fill` (return false to drop it) and hands it to the tick, which
    /// takes the newest at its next tick; an older one not yet taken is replaced.
    public func submitTrajectory(_ fill: (ExternalTrajectory) -> Bool) {
        guard fill(trajectories.writeSlot) else { return }
        trajectories.publish()
    }

    /// Fills the producer's target slot in `fill` (return false to drop it) and hands it to the tick.
    public func submitTarget(_ fill: (ExternalTarget) -> Bool) {
        guard fill(targets.writeSlot) else { return }
        targets.publish()
    }

    /// Trajectories and targets the tick took (any thread).
    public var trajectoriesTaken: Int { takenTrajectories.load(ordering: .relaxed) }
    public var targetsTaken: Int { takenTargets.load(ordering: .relaxed) }

    /// The sent-to-tick latencies measured so far (ns; the most recent ``latencyCapacity``). Read after the loop
    /// stopped, or accept a value being written.
    public func latenciesNs() -> [Int64] {
        let count = latencyCount.load(ordering: .acquiring)
        let n = min(count, Self.latencyCapacity)
        return (0..<n).map { latencyNs[($0 + count - n) % Self.latencyCapacity] }
    }

    // MARK: Tick side

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        for j in 0..<jointNames.count { currentRad[j] = observation.positionRad[j] }
        bridge.reset(atNs: observation.timeNs, holding: UnsafeBufferPointer(currentRad))
        mode = .hold
        // What arrived while the robot was not active is not executed now.
        trajectories.take()
        targets.take()
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let nowNs = observation.timeNs
        var wallNs: Int64 = -1
        if targets.take() {
            let target = targets.readSlot
            for j in 0..<jointNames.count where target.given[j] { currentRad[j] = target.positionRad[j] }
            mode = .direct
            directTimeNs = nowNs
            takenTargets.add(1, ordering: .relaxed)
            wallNs = Self.wallClockNs()
            noteLatency(sentWallNs: target.sentWallNs, wallNs: wallNs)
        }
        if trajectories.take() {
            let trajectory = trajectories.readSlot
            let chunk = trajectory.chunk
            if wallNs < 0 { wallNs = Self.wallClockNs() }
            // A stamped trajectory starts at its stamp, put on the loop's clock through the wall clock; an unstamped
            // one now.
            let startNs = trajectory.startWallNs == 0 ? nowNs : nowNs &+ (trajectory.startWallNs &- wallNs)
            chunk.startNs = startNs &+ chunk.startNs
            chunk.observationTimeNs = nowNs
            for j in 0..<jointNames.count where !trajectory.moves[j] {
                for s in 0..<chunk.stepCount { chunk[s, j] = currentRad[j] }
            }
            if mode != .trajectory {
                // The bridge blends from what it was executing: make that the command the robot has now.
                bridge.reset(atNs: nowNs, holding: UnsafeBufferPointer(currentRad))
            }
            bridge.receive(chunk, nowNs: nowNs)
            mode = .trajectory
            takenTrajectories.add(1, ordering: .relaxed)
            noteLatency(sentWallNs: trajectory.sentWallNs, wallNs: wallNs)
        }
        switch mode {
        case .hold:
            for j in 0..<jointNames.count {
                command.positionRad[j] = currentRad[j]
                command.velocityRadPerS[j] = 0
            }
            command.computedForNs = nowNs
        case .trajectory:
            bridge.tick(nowNs: nowNs)
            for j in 0..<jointNames.count {
                command.positionRad[j] = bridge.positionRad[j]
                command.velocityRadPerS[j] = bridge.velocityRadPerS[j]
                currentRad[j] = bridge.positionRad[j]
            }
            command.computedForNs = nowNs
        case .direct:
            for j in 0..<jointNames.count {
                command.positionRad[j] = currentRad[j]
                command.velocityRadPerS[j] = 0
            }
            command.computedForNs = directTimeNs
        }
    }

    @inline(__always)
    private func noteLatency(sentWallNs: Int64, wallNs: Int64) {
        guard sentWallNs > 0 else { return }
        let count = latencyCount.load(ordering: .relaxed)
        latencyNs[count % Self.latencyCapacity] = wallNs &- sentWallNs
        latencyCount.store(count + 1, ordering: .releasing)
    }

    /// CLOCK_REALTIME, ns (a vDSO call: no system call, no allocation).
    @inline(__always)
    static func wallClockNs() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) &* 1_000_000_000 &+ Int64(t.tv_nsec)
    }
}
