/// A time-stamped action chunk: the joint positions a learned policy (ACT, a diffusion policy, a VLA) predicts
/// for the next `stepCount` steps, `stepNs` apart, from `startNs` on, on the loop's clock (ns since activation,
/// simulated in a lockstep run; see ``PolicyObservation/timeNs``).
///
/// Storage is allocated once, for `capacity` steps; filling and copying a chunk never allocates. Values are
/// step-major: step `s` of column `c` is `positionRad[s * jointCount + c]`, columns in the order of the
/// producing policy's ``ChunkPolicy/joints``.
public final class ActionChunk: @unchecked Sendable {
    // @unchecked: each instance is written by one thread at a time; hand-offs go through a triple buffer.
    /// The most steps it can hold (fixed at construction).
    public let capacity: Int
    /// Joints per step (the producing policy's joint count).
    public let jointCount: Int
    /// Time of step 0, ns on the loop's clock.
    public var startNs: Int64 = 0
    /// Time between successive steps, ns (> 0): 33,333,333 for a 30 Hz policy.
    public var stepNs: Int64 = 0
    /// Steps in use, 1...capacity.
    public var stepCount = 0
    /// The time of the observation the chunk was computed from, ns on the loop's clock. The bridge measures
    /// the inference delay from it (arrival − observation) and refuses a chunk older than the one it executes.
    public var observationTimeNs: Int64 = 0
    /// Joint positions, rad, step-major (see the type's documentation).
    public let positionRad: UnsafeMutableBufferPointer<Double>

    public init(jointCount: Int, capacity: Int) {
        self.jointCount = max(1, jointCount)
        self.capacity = max(1, capacity)
        positionRad = .allocate(capacity: self.jointCount * self.capacity)
        positionRad.initialize(repeating: 0)
    }

    deinit { positionRad.deallocate() }

    /// The position of column `joint` at step `step`, rad.
    @inline(__always)
    public subscript(step: Int, joint: Int) -> Double {
        get { positionRad[step * jointCount + joint] }
        set { positionRad[step * jointCount + joint] = newValue }
    }

    /// Time of step `step`, ns on the loop's clock.
    @inline(__always)
    public func timeNs(ofStep step: Int) -> Int64 { startNs + Int64(step) * stepNs }

    /// Time of the last step, ns on the loop's clock.
    public var endNs: Int64 { timeNs(ofStep: max(0, stepCount - 1)) }

    /// Whether the bridge can execute it: 1...capacity steps, a positive step, finite positions.
    public var isWellFormed: Bool {
        guard stepCount >= 1 && stepCount <= capacity && stepNs > 0 else { return false }
        for i in 0..<stepCount * jointCount where !positionRad[i].isFinite { return false }
        return true
    }

    /// Copies every field of `other` (the first `min(jointCount, other.jointCount)` columns, at most
    /// ``capacity`` steps) without its first `droppedSteps` steps (the start moves on accordingly), without
    /// allocating.
    public func copy(from other: ActionChunk, droppingSteps droppedSteps: Int = 0) {
        let dropped = max(0, min(droppedSteps, other.stepCount - 1))
        startNs = other.timeNs(ofStep: dropped)
        stepNs = other.stepNs
        stepCount = min(other.stepCount - dropped, capacity)
        observationTimeNs = other.observationTimeNs
        if other.jointCount == jointCount {
            let first = dropped * jointCount
            for i in 0..<stepCount * jointCount { positionRad[i] = other.positionRad[first + i] }
        } else {
            let n = min(jointCount, other.jointCount)
            for s in 0..<stepCount {
                for j in 0..<n { self[s, j] = other[dropped + s, j] }
            }
        }
    }
}

/// A learned policy that predicts action chunks (joint positions over the next steps) at a low rate and with a
/// latency of its own: ACT, a diffusion policy, a VLA behind a socket. ``ChunkPolicyAdapter`` runs it beside
/// the loop and a ``ChunkBridge`` turns its chunks into a smooth command at the loop's rate.
///
/// `computeChunk` runs on a thread of its own in a real-time run (it may allocate, lock and take its time;
/// the tick never waits for it), or inside the tick at the policy's rate in a lockstep run.
public protocol ChunkPolicy: AnyObject {
    /// The policy's type, as robot.yaml's `policy.type` names it; reports and safety events use it.
    var typeName: String { get }
    /// The joints it commands (by position), by robot.yaml name: the columns of its chunks, in this order.
    var joints: [String] { get }
    /// How often it is asked for a chunk (Hz, below the loop rate). A computation longer than 1/rate delays
    /// the next request; it never queues.
    var rateHz: Double { get }
    /// The longest chunk it produces (steps): the capacity of every chunk buffer.
    var maxChunkSteps: Int { get }
    /// The time between the steps of its chunks (s), e.g. 1/30 for a policy trained on 30 fps data; each
    /// chunk is handed over with this step, which `computeChunk` may change.
    var stepDurationS: Double { get }
    /// URDF links whose pose it reads from ``PolicyObservation/framePositionM``, in this order.
    var observedFrames: [String] { get }
    /// Lines the run prints before it starts.
    var notices: [String] { get }

    /// Activation (or recovery): the robot is at `observation`'s measured pose and holds it until the first
    /// chunk arrives. Drop any state from an earlier run (queued observations, a warm-started sampler).
    func reset(from observation: PolicyObservation)
    /// One prediction for `observation`. The chunk arrives with ``ActionChunk/observationTimeNs`` and
    /// ``ActionChunk/startNs`` set to `observation.timeNs`, ``ActionChunk/stepNs`` to ``stepDurationS`` and
    /// ``ActionChunk/stepCount`` to ``maxChunkSteps``: fill the positions, and change the others when the
    /// prediction says otherwise (a shorter chunk, a start shifted by a known latency). A chunk that is not
    /// well formed (``ActionChunk/isWellFormed``) is refused by the bridge and counted.
    func computeChunk(_ observation: PolicyObservation, into chunk: ActionChunk)
    /// The loop stopped: stop producing and release a computation that waits (a socket, a queue).
    func deactivate()
}

extension ChunkPolicy {
    public var observedFrames: [String] { [] }
    public var notices: [String] { [] }
    public func deactivate() {}
}
