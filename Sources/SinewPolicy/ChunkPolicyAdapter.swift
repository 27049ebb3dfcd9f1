import Foundation
import Synchronization

/// Why a chunk policy cannot run on this robot, said before any motion.
public struct ChunkPolicyError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a ``ChunkPolicy`` as a ``Policy``: the policy predicts chunks beside the loop, and a ``ChunkBridge``
/// in the tick turns them into a smooth position command at the loop's rate.
///
/// - In a real-time run the policy runs on a thread of its own at ``ChunkPolicy/rateHz``: the tick hands it
///   the newest observation and takes the newest chunk through two lock-free triple buffers, and never waits
///   for it (the same pattern as ``AsynchronousPolicyRunner``). The inference delay the bridge sees is the
///   real one: the chunk's arrival tick − its observation's time.
/// - On the simulation clock (lockstep) the policy is asked inside the tick at its rate, and its chunk is
///   handed to the bridge `simulatedInferenceDelayS` later on the simulated clock; the next request waits
///   for the delivery, as a policy thread computing one chunk at a time would. A lockstep run is reproducible.
///
/// The adapter itself runs inline (``PolicyExecution/inline``): its `compute` is the bridge's tick, which
/// allocates nothing. The command's ``PolicyCommand/computedForNs`` is the time of the action being
/// executed (``ChunkBridge/commandTimeNs``): it follows the loop clock while chunks cover it and stops at the
/// last chunk's end, so the watchdog brings the robot to its safe state `watchdog_ms` after the policy's
/// predictions run out — and, before the first chunk, `watchdog_ms` after activation.
public final class ChunkPolicyAdapter: Policy, @unchecked Sendable {
    // @unchecked: the tick side and the policy thread meet only in the two triple buffers and the atomics;
    // the bridge and the lockstep state are the loop thread's.
    public let chunkPolicy: any ChunkPolicy
    /// The tick side (read its counters on the loop thread, or once the loop has stopped).
    public let bridge: ChunkBridge
    let firstChunkGraceNs: Int64
    var activatedNs: Int64 = 0
    var acceptedBeforeActivation = 0
    /// Stepped inside the tick on the simulation clock instead of on a thread.
    public let lockstep: Bool
    /// The lockstep run's inference delay, ns on the simulated clock.
    public let simulatedInferenceDelayNs: Int64
    public let commands: [PolicyJointCommand]
    public var typeName: String { chunkPolicy.typeName }
    public var observedFrames: [String] { chunkPolicy.observedFrames }
    public var notices: [String] { chunkPolicy.notices }

    /// Robot.yaml index of each chunk column.
    private let jointIndex: UnsafeMutableBufferPointer<Int>
    private let holdScratch: UnsafeMutableBufferPointer<Double>
    private let stepNs: Int64
    private let observations: TripleBuffer<PolicyObservation>
    private let chunks: TripleBuffer<ActionChunk>
    private let stopRequested = Atomic<Bool>(false)
    private let threadRunning = Atomic<Bool>(false)
    private let produced = Atomic<Int>(0)
    private let periodNs: Int64
    /// Lockstep: the chunk being "computed", handed over at `inFlightDueNs`.
    private let inFlightChunk: ActionChunk
    private var inFlight = false
    private var inFlightDueNs: Int64 = 0
    private let ticksPerRequest: Int
    private var ticksSinceRequest = 0
    /// A thread of an earlier activation is still inside `computeChunk`: nothing was started.
    public private(set) var threadStuck = false

    /// - Parameters:
    ///   - policy: the chunk policy; its joints must be among `jointNames`, each once.
    ///   - jointNames: the robot's joints, robot.yaml order (the loop's observation and command).
    ///   - loopRateHz: the loop's rate, Hz; the policy's rate must be positive and at most this.
    ///   - settings: the bridge's mode and blend.
    ///   - lockstep: the loop runs on a simulation clock: step the policy inside the tick.
    ///   - simulatedInferenceDelayS: lockstep only: how long after its observation a chunk arrives, s (≥ 0).
    ///   - firstChunkGraceS: after activation, how long (s) the robot may hold its pose waiting for the first chunk
    ///     before the command ages toward the watchdog (a remote model's first inference, or its connection, can
    ///     take longer than `watchdog_ms`; holding still meanwhile is safe). 0: no grace.
    public init(
        policy: any ChunkPolicy, jointNames: [String], loopRateHz: Double, settings: ChunkBridgeSettings = .init(),
        lockstep: Bool, simulatedInferenceDelayS: Double = 0.03, firstChunkGraceS: Double = 0
    ) throws(ChunkPolicyError) {
        firstChunkGraceNs = Int64(max(0, firstChunkGraceS) * 1e9)
        let name = policy.typeName
        if let reason = settings.invalidReason { throw ChunkPolicyError("policy \"\(name)\": \(reason)") }
        guard policy.rateHz > 0 && policy.rateHz <= loopRateHz else {
            throw ChunkPolicyError(
                "policy \"\(name)\": rate \(policy.rateHz) Hz must be positive and at most the loop's \(loopRateHz) Hz")
        }
        guard policy.maxChunkSteps >= 1 else {
            throw ChunkPolicyError(
                "policy \"\(name)\": max chunk steps must be at least 1, not \(policy.maxChunkSteps)")
        }
        guard policy.stepDurationS > 0 && policy.stepDurationS.isFinite else {
            throw ChunkPolicyError("policy \"\(name)\": step duration must be positive, not \(policy.stepDurationS) s")
        }
        guard simulatedInferenceDelayS >= 0 && simulatedInferenceDelayS.isFinite else {
            throw ChunkPolicyError(
                "policy \"\(name)\": simulated inference delay must be ≥ 0 s, not \(simulatedInferenceDelayS)")
        }
        let joints = policy.joints
        guard !joints.isEmpty else { throw ChunkPolicyError("policy \"\(name)\" commands no joint") }
        var indices: [Int] = []
        for joint in joints {
            guard let index = jointNames.firstIndex(of: joint) else {
                throw ChunkPolicyError(
                    "policy \"\(name)\": joint \"\(joint)\" is not one of the robot's joints "
                        + "(\(jointNames.joined(separator: ", ")))")
            }
            guard !indices.contains(index) else {
                throw ChunkPolicyError("policy \"\(name)\": joint \"\(joint)\" is listed twice")
            }
            indices.append(index)
        }
        chunkPolicy = policy
        self.lockstep = lockstep
        commands = joints.map { PolicyJointCommand(joint: $0, kind: .position) }
        bridge = ChunkBridge(jointCount: joints.count, maxChunkSteps: policy.maxChunkSteps, settings: settings)
        jointIndex = .allocate(capacity: joints.count)
        _ = jointIndex.initialize(from: indices)
        holdScratch = .allocate(capacity: joints.count)
        holdScratch.initialize(repeating: 0)
        stepNs = max(1, Int64((policy.stepDurationS * 1e9).rounded()))
        simulatedInferenceDelayNs = Int64((simulatedInferenceDelayS * 1e9).rounded())
        periodNs = Int64((1e9 / policy.rateHz).rounded())
        ticksPerRequest = max(1, Int((loopRateHz / policy.rateHz).rounded()))
        let frames = policy.observedFrames
        observations = TripleBuffer { PolicyObservation(jointNames: jointNames, frameNames: frames) }
        let steps = policy.maxChunkSteps
        chunks = TripleBuffer { ActionChunk(jointCount: joints.count, capacity: steps) }
        inFlightChunk = ActionChunk(jointCount: joints.count, capacity: steps)
    }

    deinit {
        jointIndex.deallocate()
        holdScratch.deallocate()
    }

    /// Chunks the policy produced since the last activation (any thread may read it).
    public var chunksProduced: Int { produced.load(ordering: .relaxed) }

    /// Activation or recovery (not in a tick): stops an earlier thread, resets the policy and the bridge to
    /// the measured pose (held until the first chunk), and starts the policy's thread. A thread still stuck in
    /// `computeChunk` from an earlier activation is left alone and nothing is started (``threadStuck``): the
    /// robot holds, and the watchdog stops it.
    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        activatedNs = observation.timeNs
        acceptedBeforeActivation = bridge.chunksReceived - bridge.chunksRefused
        stopRequested.store(true, ordering: .releasing)
        guard waitForThread(timeoutS: 1.0) else {
            threadStuck = true
            bridge.reset(atNs: observation.timeNs, holding: UnsafeBufferPointer(gatherPose(observation)))
            return
        }
        threadStuck = false
        chunkPolicy.reset(from: observation)
        bridge.reset(atNs: observation.timeNs, holding: UnsafeBufferPointer(gatherPose(observation)))
        observations.forEachSlot { $0.copy(from: observation) }
        produced.store(0, ordering: .relaxed)
        inFlight = false
        ticksSinceRequest = ticksPerRequest
        guard !lockstep else { return }
        stopRequested.store(false, ordering: .relaxed)
        threadRunning.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            runThread()
            threadRunning.store(false, ordering: .releasing)
        }
        thread.name = "sinew-chunk-policy"
        thread.start()
    }

    /// The loop stopped: the thread is asked to end and the policy told (``ChunkPolicy/deactivate()``).
    public func deactivate() { stop(timeoutS: 1.0) }

    /// Stops the policy's thread and tells the policy (``ChunkPolicy/deactivate()``, which should release a
    /// computation that waits), giving the thread up to `timeoutS` to end. Returns false when it did not (a policy
    /// stuck in `computeChunk`): it is then left to end on its own, and nothing it produces reaches the loop.
    @discardableResult
    public func stop(timeoutS: Double) -> Bool {
        stopRequested.store(true, ordering: .releasing)
        chunkPolicy.deactivate()
        return waitForThread(timeoutS: timeoutS)
    }

    private func waitForThread(timeoutS: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutS)
        while threadRunning.load(ordering: .acquiring) {
            if Date() > deadline { return false }
            usleep(1000)
        }
        return true
    }

    /// The tick: hands the policy the observation (or, in lockstep, asks it at its rate and delivers its chunk
    /// after the simulated delay), runs the bridge, and writes the commanded joints' positions (rad) and
    /// velocities (rad/s). Allocation-free apart from the lockstep policy's own computation.
    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        let nowNs = observation.timeNs
        if lockstep {
            if inFlight && nowNs >= inFlightDueNs {
                bridge.receive(inFlightChunk, nowNs: nowNs)
                inFlight = false
            }
            ticksSinceRequest += 1
            if !inFlight && ticksSinceRequest >= ticksPerRequest {
                ticksSinceRequest = 0
                prepare(inFlightChunk, for: observation)
                chunkPolicy.computeChunk(observation, into: inFlightChunk)
                produced.add(1, ordering: .relaxed)
                inFlight = true
                inFlightDueNs = nowNs + simulatedInferenceDelayNs
                if simulatedInferenceDelayNs == 0 {
                    bridge.receive(inFlightChunk, nowNs: nowNs)
                    inFlight = false
                }
            }
        } else if !threadStuck {
            observations.writeSlot.copy(from: observation)
            observations.publish()
            if chunks.take() { bridge.receive(chunks.readSlot, nowNs: nowNs) }
        }
        bridge.tick(nowNs: nowNs)
        for c in 0..<jointIndex.count {
            command.positionRad[jointIndex[c]] = bridge.positionRad[c]
            command.velocityRadPerS[jointIndex[c]] = bridge.velocityRadPerS[c]
        }
        command.computedForNs = bridge.commandTimeNs
        // Waiting for the first chunk, within the grace: holding the activation pose is a fresh command.
        if firstChunkGraceNs > 0 && bridge.chunksReceived - bridge.chunksRefused <= acceptedBeforeActivation
            && nowNs - activatedNs <= firstChunkGraceNs
        {
            command.computedForNs = nowNs
        }
    }

    private func gatherPose(_ observation: PolicyObservation) -> UnsafeMutableBufferPointer<Double> {
        for c in 0..<jointIndex.count { holdScratch[c] = observation.positionRad[jointIndex[c]] }
        return holdScratch
    }

    private func prepare(_ chunk: ActionChunk, for observation: PolicyObservation) {
        chunk.observationTimeNs = observation.timeNs
        chunk.startNs = observation.timeNs
        chunk.stepNs = stepNs
        chunk.stepCount = chunk.capacity
    }

    private func runThread() {
        var next = timespec()
        clock_gettime(CLOCK_MONOTONIC, &next)
        while !stopRequested.load(ordering: .acquiring) {
            observations.take()
            let observation = observations.readSlot
            let chunk = chunks.writeSlot
            prepare(chunk, for: observation)
            chunkPolicy.computeChunk(observation, into: chunk)
            if stopRequested.load(ordering: .acquiring) { break }
            chunks.publish()
            produced.add(1, ordering: .relaxed)
            // The next request one period after this one's; after a computation longer than that, at once
            // (one request at a time, never a backlog).
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            var ns = Int64(next.tv_nsec) + periodNs
            next.tv_sec += Int(ns / 1_000_000_000)
            ns %= 1_000_000_000
            next.tv_nsec = Int(ns)
            if next.tv_sec < now.tv_sec || (next.tv_sec == now.tv_sec && next.tv_nsec < now.tv_nsec) { next = now }
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nil) == EINTR {}
        }
    }
}
