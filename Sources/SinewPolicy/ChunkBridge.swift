import Foundation

/// How the bridge folds a newly arrived chunk into the one it executes. Whatever the mode, the command moves
/// from what it was executing to the new target along a C1 blend (``ChunkBridgeSettings/switchBlendS``), so
/// neither its position nor its velocity jumps.
public enum ChunkBlendMode: Sendable, Equatable {
    /// The newest chunk replaces the executing one.
    case latest
    /// ACT's temporal ensembling (Zhao et al., "Learning Fine-Grained Bimanual Manipulation with Low-Cost
    /// Hardware", RSS 2023): the command at time t is the weighted mean of every stored chunk's prediction for
    /// t, with weights w_i = exp(-k·i) where i = 0 is the oldest chunk (as in the authors' imitate_episodes.py,
    /// `np.exp(-k * np.arange(n))` over predictions ordered oldest first, k = 0.01): older predictions weigh
    /// more, and k sets how much faster new ones are taken in. Here i counts chunks, not control steps.
    case temporalEnsemble(k: Double = 0.01)
    /// LeRobot's asynchronous inference with its default aggregate `weighted_average` (lerobot
    /// src/lerobot/async_inference/configs.py, `0.3 * old + 0.7 * new`, applied by the robot client's
    /// `_aggregate_action_queues` to each new action whose timestep the queue already holds; new actions
    /// beyond the queue are taken as they are, the queue's actions beyond the new chunk are discarded):
    /// here each step of the new chunk inside the executing chunk's span becomes
    /// `oldWeight · executing(t) + (1 − oldWeight) · new`.
    case weightedAverage(oldWeight: Double = 0.3)
    /// In the spirit of Real-Time Chunking (Black, Galliker, Levine, "Real-Time Execution of Action Chunking
    /// Flow Policies", 2025): the steps of the new chunk that fall inside the measured inference delay (from
    /// its start to start + arrival − observation time) are taken from the executing command, and the rest is
    /// blended in over `blendHorizonS` (s) with a C1 ramp, after which the new chunk is followed as predicted.
    /// RTC freezes the prefix while it samples; a bridge that sees only finished chunks freezes it afterwards.
    case prefixFreeze(blendHorizonS: Double = 0.2)

    /// Its robot.yaml / report name: `latest`, `temporal_ensemble`, `weighted_average`, `prefix_freeze`.
    public var name: String {
        switch self {
        case .latest: "latest"
        case .temporalEnsemble: "temporal_ensemble"
        case .weightedAverage: "weighted_average"
        case .prefixFreeze: "prefix_freeze"
        }
    }

    /// Every mode with its default settings, in the order reports list them.
    public static let defaults: [ChunkBlendMode] = [
        .latest, .temporalEnsemble(), .weightedAverage(), .prefixFreeze(),
    ]
}

/// The bridge's settings: plain values robot.yaml maps onto (see ``invalidReason`` for the accepted ranges).
public struct ChunkBridgeSettings: Sendable, Equatable {
    /// How a new chunk is folded into the executing one.
    public var mode: ChunkBlendMode
    /// How long the command takes to move from what it was executing to a new target, s (> 0): the
    /// difference between the two, in position and in velocity, is carried over at the switch and dies out
    /// along cubic Hermite curves (flat at their ends) within this time — the position gap within longer if
    /// ``catchUpRadPerS`` says so.
    public var switchBlendS: Double
    /// The most speed a blend may add to close a gap in position, rad/s (> 0): a blend over a gap wider than
    /// `catchUpRadPerS · switchBlendS / 1.5` (a cubic's peak speed is 1.5 gap/duration) takes longer than
    /// ``switchBlendS``, so a chunk that starts far from where the robot is does not yank it there.
    public var catchUpRadPerS: Double
    /// Chunks kept for `temporal_ensemble` (≥ 2); when full, the oldest is dropped. Other modes keep one.
    public var maxStoredChunks: Int

    /// - Parameters:
    ///   - mode: see ``ChunkBlendMode``.
    ///   - switchBlendS: the C1 blend to a new target, s.
    ///   - catchUpRadPerS: the most speed a blend adds to close a gap, rad/s.
    ///   - maxStoredChunks: chunks the temporal ensemble averages at most.
    public init(
        mode: ChunkBlendMode = .latest, switchBlendS: Double = 0.1, catchUpRadPerS: Double = 1.0,
        maxStoredChunks: Int = 32
    ) {
        self.mode = mode
        self.switchBlendS = switchBlendS
        self.catchUpRadPerS = catchUpRadPerS
        self.maxStoredChunks = maxStoredChunks
    }

    /// Why these settings cannot run, or nil: for a configuration error with the file's line.
    public var invalidReason: String? {
        if !(switchBlendS > 0 && switchBlendS.isFinite) {
            return "switch_blend_s must be a positive number of seconds, not \(switchBlendS)"
        }
        if !(catchUpRadPerS > 0) {
            return "catch_up_rad_per_s must be a positive speed in rad/s, not \(catchUpRadPerS)"
        }
        if maxStoredChunks < 2 { return "max_stored_chunks must be at least 2, not \(maxStoredChunks)" }
        switch mode {
        case .latest: return nil
        case .temporalEnsemble(let k):
            return k >= 0 && k.isFinite ? nil : "temporal_ensemble: k must be ≥ 0, not \(k)"
        case .weightedAverage(let oldWeight):
            return oldWeight >= 0 && oldWeight <= 1
                ? nil : "weighted_average: old_weight must be in 0...1, not \(oldWeight)"
        case .prefixFreeze(let horizonS):
            return horizonS >= 0 && horizonS.isFinite
                ? nil : "prefix_freeze: blend_horizon_s must be ≥ 0 s, not \(horizonS)"
        }
    }
}

/// The tick side of the mixed-rate bridge: takes action chunks as they arrive (at 10–50 Hz, late, each a bit
/// different from the last) and answers a position and velocity per joint at the loop's rate.
///
/// - Each chunk is a C1 curve: cubic Hermite through its steps with finite-difference tangents (central
///   inside, one-sided at the first step), and zero velocity at its last step, so a chunk that runs out
///   brings the command to rest at its last action.
/// - A new chunk is folded in by the mode (``ChunkBlendMode``) and the command moves to the new target along a
///   C1 blend: at the switch the difference in position and velocity between what was executing and the new
///   target is carried over and dies out within ``ChunkBridgeSettings/switchBlendS`` (cubic Hermite; a wide
///   position gap closes no faster than ``ChunkBridgeSettings/catchUpRadPerS``), so the command is continuous
///   in position and velocity across every boundary. The temporal ensemble drops a chunk when it reaches its
///   last step (unless it is the newest) with the same blend.
/// - Actions whose time has passed are never executed: a chunk is joined at the present time (its earlier
///   steps dropped, the one before the present segment kept for the tangent), and one whose last step is
///   already past, or computed from an older observation than the executing one, is dropped whole.
/// - When the last chunk runs out the command holds its last action and ``commandTimeNs`` stops at that
///   action's time, so the loop's watchdog (`safety.watchdog_ms` on the loop clock) brings the robot to its
///   safe state if no new chunk comes.
///
/// ``receive(_:nowNs:)`` and ``tick(nowNs:)`` run in the tick: they never allocate, lock or block.
/// Columns are the producing policy's joints, in its order.
public final class ChunkBridge {
    public let jointCount: Int
    /// The longest chunk it accepts, steps.
    public let maxChunkSteps: Int
    public let settings: ChunkBridgeSettings

    /// The command of the last ``tick(nowNs:)``: positions, rad, and velocities, rad/s.
    public let positionRad: UnsafeMutableBufferPointer<Double>
    public let velocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// The time of the action the last tick executed, ns on the loop clock: the tick's time while a chunk
    /// covers it, the last chunk's end once it has run out (it then stops, and the watchdog measures from
    /// it), the reset time before the first chunk.
    public private(set) var commandTimeNs: Int64 = 0
    /// Whether the last tick held a pose (no chunk yet, or past the end of every chunk).
    public private(set) var isHolding = true

    /// Chunks handed to ``receive(_:nowNs:)`` since the reset.
    public private(set) var chunksReceived = 0
    /// Chunks that became the executing one (or joined the ensemble).
    public private(set) var chunksInstalled = 0
    /// Chunks dropped unexecuted: every step already past, older than the executing one, or replaced by a
    /// newer one before their start.
    public private(set) var chunksDropped = 0
    /// Chunks refused as malformed (see ``ActionChunk/isWellFormed``) or of the wrong joint count.
    public private(set) var chunksRefused = 0
    /// Steps of installed chunks that were already past when they were folded in (before the step that starts
    /// the present segment): never executed; the last of them still sets the tangent where the command joins.
    public private(set) var stepsDropped = 0
    /// Arrival − observation time of the last chunk received, ns (the measured inference delay).
    public private(set) var lastInferenceDelayNs: Int64 = 0

    private let slots: [ActionChunk]
    /// Slot indices by age: the first `storedCount` are stored chunks, oldest first; the rest are free.
    private let order: UnsafeMutableBufferPointer<Int>
    private var storedCount = 0
    /// A chunk received but not yet started (its start is in the future) or not yet installed (this tick).
    private let pending: ActionChunk
    private var pendingValid = false
    private var pendingArrivalNs: Int64 = 0
    private let holdRad: UnsafeMutableBufferPointer<Double>
    /// The carried-over difference from `blendStartNs` on: in position, decaying over `gapBlendNs`, and in
    /// velocity, decaying over `switchBlendNs`.
    private let blendPositionRad: UnsafeMutableBufferPointer<Double>
    private let blendVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    private var blendStartNs: Int64 = 0
    private var blendActive = false
    /// The position blend's duration, ns: ``ChunkBridgeSettings/switchBlendS``, or longer for a wide gap.
    private var gapBlendNs: Int64 = 0
    private let switchBlendNs: Int64
    private let catchUpRadPerS: Double
    /// What was executing at a switch; and any evaluation's workspace.
    private let scratchPositionRad: UnsafeMutableBufferPointer<Double>
    private let scratchVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    private let evaluationPositionRad: UnsafeMutableBufferPointer<Double>
    private let evaluationVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// exp(-k·i) for the temporal ensemble, i = 0 the oldest stored chunk.
    private let ensembleWeights: UnsafeMutableBufferPointer<Double>
    private let ensemble: Bool
    private var resetNs: Int64 = 0

    /// - Parameters:
    ///   - jointCount: columns of the chunks (the policy's joints).
    ///   - maxChunkSteps: the longest chunk accepted, steps.
    ///   - settings: the mode and blend; values out of range (``ChunkBridgeSettings/invalidReason``) are
    ///     clamped into it here.
    public init(jointCount: Int, maxChunkSteps: Int, settings: ChunkBridgeSettings) {
        self.jointCount = max(1, jointCount)
        self.maxChunkSteps = max(1, maxChunkSteps)
        self.settings = settings
        if case .temporalEnsemble = settings.mode { ensemble = true } else { ensemble = false }
        let slotCount = ensemble ? max(2, settings.maxStoredChunks) : 2
        slots = (0..<slotCount).map { _ in ActionChunk(jointCount: jointCount, capacity: maxChunkSteps) }
        order = .allocate(capacity: slotCount)
        for i in 0..<slotCount { order[i] = i }
        pending = ActionChunk(jointCount: jointCount, capacity: maxChunkSteps)
        let n = self.jointCount
        func buffer() -> UnsafeMutableBufferPointer<Double> {
            let b = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
            b.initialize(repeating: 0)
            return b
        }
        positionRad = buffer()
        velocityRadPerS = buffer()
        holdRad = buffer()
        blendPositionRad = buffer()
        blendVelocityRadPerS = buffer()
        scratchPositionRad = buffer()
        scratchVelocityRadPerS = buffer()
        evaluationPositionRad = buffer()
        evaluationVelocityRadPerS = buffer()
        ensembleWeights = .allocate(capacity: slotCount)
        var k = 0.0
        if case .temporalEnsemble(let coefficient) = settings.mode {
            k = max(0, coefficient.isFinite ? coefficient : 0)
        }
        for i in 0..<slotCount { ensembleWeights[i] = exp(-k * Double(i)) }
        let blendS = settings.switchBlendS.isFinite ? max(0, settings.switchBlendS) : 0
        switchBlendNs = Int64((blendS * 1e9).rounded())
        catchUpRadPerS = settings.catchUpRadPerS > 0 ? settings.catchUpRadPerS : .infinity
    }

    deinit {
        order.deallocate()
        for b in [
            positionRad, velocityRadPerS, holdRad, blendPositionRad, blendVelocityRadPerS, scratchPositionRad,
            scratchVelocityRadPerS, evaluationPositionRad, evaluationVelocityRadPerS, ensembleWeights,
        ] {
            b.deallocate()
        }
    }

    /// Activation or recovery: forget every chunk and hold `positionRad` (rad, one per column) from `atNs`.
    public func reset(atNs: Int64, holding positionRad: UnsafeBufferPointer<Double>) {
        for j in 0..<jointCount {
            let p = j < positionRad.count ? positionRad[j] : 0
            holdRad[j] = p
            self.positionRad[j] = p
            velocityRadPerS[j] = 0
        }
        storedCount = 0
        pendingValid = false
        blendActive = false
        resetNs = atNs
        commandTimeNs = atNs
        isHolding = true
        chunksReceived = 0
        chunksInstalled = 0
        chunksDropped = 0
        chunksRefused = 0
        stepsDropped = 0
        lastInferenceDelayNs = 0
    }

    /// ``reset(atNs:holding:)`` from an array (not for the tick).
    public func reset(atNs: Int64, holding positionRad: [Double]) {
        positionRad.withUnsafeBufferPointer { reset(atNs: atNs, holding: $0) }
    }

    /// A chunk arrived at `nowNs` (loop clock): copied in (the caller may reuse it at once) and folded in at
    /// the first ``tick(nowNs:)`` at or after its start. Allocation-free.
    public func receive(_ chunk: ActionChunk, nowNs: Int64) {
        chunksReceived += 1
        guard chunk.jointCount == jointCount && chunk.stepCount <= maxChunkSteps && chunk.isWellFormed else {
            chunksRefused += 1
            return
        }
        lastInferenceDelayNs = nowNs - chunk.observationTimeNs
        let newestObservationNs =
            pendingValid
            ? pending.observationTimeNs : storedCount > 0 ? newest.observationTimeNs : Int64.min
        if chunk.endNs < nowNs || chunk.observationTimeNs < newestObservationNs {
            chunksDropped += 1
            return
        }
        if pendingValid { chunksDropped += 1 }
        pending.copy(from: chunk)
        pendingValid = true
        pendingArrivalNs = nowNs
    }

    /// One tick at `nowNs` (loop clock, not earlier than the last): folds in a chunk that has started, drops
    /// the ensemble's chunks that reached their last step, and writes ``positionRad``, ``velocityRadPerS``
    /// and ``commandTimeNs``. Allocation-free.
    public func tick(nowNs t: Int64) {
        let installing = pendingValid && pending.startNs <= t
        var expiring = false
        if ensemble && storedCount > 1 {
            for r in 0..<storedCount - 1 where liveEndNs(slots[order[r]]) < t {
                expiring = true
                break
            }
        }
        if installing || expiring {
            // What was executing, at this instant: the blend carries its position and velocity over.
            output(atNs: t, position: scratchPositionRad, velocity: scratchVelocityRadPerS)
            if expiring {
                var r = 0
                while r < storedCount - 1 {
                    if liveEndNs(slots[order[r]]) < t { remove(rank: r) } else { r += 1 }
                }
            }
            if installing { install(atNs: t) }
            target(atNs: t, position: evaluationPositionRad, velocity: evaluationVelocityRadPerS)
            var gapRad = 0.0
            for j in 0..<jointCount {
                blendPositionRad[j] = scratchPositionRad[j] - evaluationPositionRad[j]
                blendVelocityRadPerS[j] = scratchVelocityRadPerS[j] - evaluationVelocityRadPerS[j]
                gapRad = max(gapRad, abs(blendPositionRad[j]))
            }
            blendStartNs = t
            gapBlendNs = max(switchBlendNs, Int64(min(1e12, 1.5 * gapRad / catchUpRadPerS * 1e9)))
            blendActive = switchBlendNs > 0
        }
        if blendActive && t >= blendStartNs + gapBlendNs { blendActive = false }
        output(atNs: t, position: positionRad, velocity: velocityRadPerS)
        if storedCount == 0 {
            commandTimeNs = resetNs
            isHolding = true
        } else {
            var endNs = Int64.min
            for r in 0..<storedCount { endNs = max(endNs, slots[order[r]].endNs) }
            commandTimeNs = min(t, endNs)
            isHolding = t >= endNs
        }
    }

    // MARK: - Chunks

    private var newest: ActionChunk { slots[order[storedCount - 1]] }

    /// Until when a stored chunk takes part in the ensemble: its last segment only brings it to rest, which
    /// only the newest chunk (the one the robot holds after) needs.
    @inline(__always)
    private func liveEndNs(_ chunk: ActionChunk) -> Int64 {
        chunk.stepCount >= 2 ? chunk.endNs - chunk.stepNs : chunk.endNs
    }

    private func remove(rank: Int) {
        let slot = order[rank]
        for r in rank..<storedCount - 1 { order[r] = order[r + 1] }
        order[storedCount - 1] = slot
        storedCount -= 1
    }

    private func install(atNs t: Int64) {
        pendingValid = false
        chunksInstalled += 1
        // Steps before the one that starts the present segment are past and never executed; all but the last
        // of them are dropped, and that one only sets the tangent (a central difference) where the command
        // joins the chunk.
        let past = min(pending.stepCount - 1, Int((t - pending.startNs) / pending.stepNs))
        stepsDropped += past
        if storedCount == slots.count { remove(rank: 0) }
        let chunk = slots[order[storedCount]]
        chunk.copy(from: pending, droppingSteps: past - 1)
        let executing = storedCount > 0
        switch settings.mode {
        case .latest, .temporalEnsemble:
            break
        case .weightedAverage(let weight) where executing:
            let oldWeight = min(1, max(0, weight))
            let old = newest
            for s in 0..<chunk.stepCount {
                let ts = chunk.timeNs(ofStep: s)
                guard ts >= old.startNs && ts <= old.endNs else { continue }
                output(atNs: ts, position: evaluationPositionRad, velocity: evaluationVelocityRadPerS)
                for j in 0..<jointCount {
                    chunk[s, j] = oldWeight * evaluationPositionRad[j] + (1 - oldWeight) * chunk[s, j]
                }
            }
        case .prefixFreeze(let horizonS) where executing:
            // From the chunk's own start (`pending` still holds it whole), not from its first kept step.
            let delayNs = max(0, pendingArrivalNs - pending.observationTimeNs)
            let freezeEndNs = pending.startNs + delayNs
            let horizonNs = max(0, horizonS * 1e9)
            for s in 0..<chunk.stepCount {
                let ts = chunk.timeNs(ofStep: s)
                var w = 1.0
                if ts <= freezeEndNs {
                    w = 0
                } else if Double(ts - freezeEndNs) < horizonNs {
                    let x = Double(ts - freezeEndNs) / horizonNs
                    w = x * x * (3 - 2 * x)
                }
                guard w < 1 else { continue }
                output(atNs: ts, position: evaluationPositionRad, velocity: evaluationVelocityRadPerS)
                for j in 0..<jointCount {
                    chunk[s, j] = (1 - w) * evaluationPositionRad[j] + w * chunk[s, j]
                }
            }
        case .weightedAverage, .prefixFreeze:
            break
        }
        storedCount += 1
        if !ensemble {
            while storedCount > 1 { remove(rank: 0) }
        }
    }

    // MARK: - Evaluation

    /// The target at `t` before the switch blend, every column: the executing chunk's curve, or the ensemble's
    /// weighted mean, or the held pose. (rad, rad/s)
    private func target(
        atNs t: Int64, position p: UnsafeMutableBufferPointer<Double>, velocity v: UnsafeMutableBufferPointer<Double>
    ) {
        if storedCount == 0 {
            for j in 0..<jointCount {
                p[j] = holdRad[j]
                v[j] = 0
            }
            return
        }
        for j in 0..<jointCount {
            p[j] = 0
            v[j] = 0
        }
        if !ensemble {
            Self.accumulate(newest, atNs: t, weight: 1, position: p, velocity: v)
            return
        }
        var total = 0.0
        for r in 0..<storedCount {
            let w = ensembleWeights[r]
            Self.accumulate(slots[order[r]], atNs: t, weight: w, position: p, velocity: v)
            total += w
        }
        for j in 0..<jointCount {
            p[j] /= total
            v[j] /= total
        }
    }

    /// What the bridge commands at `t`, every column: the target plus what is left of the switch blend.
    /// (rad, rad/s)
    private func output(
        atNs t: Int64, position p: UnsafeMutableBufferPointer<Double>, velocity v: UnsafeMutableBufferPointer<Double>
    ) {
        target(atNs: t, position: p, velocity: v)
        guard blendActive else { return }
        // Two cubic Hermite pieces, each C1 and flat at its end: the position gap closes over `gapBlendNs`,
        // the velocity difference dies out over `switchBlendNs` (so a long catch-up does not carry it far).
        let elapsedNs = max(0, t - blendStartNs)
        if elapsedNs < gapBlendNs {
            let durationS = Double(gapBlendNs) * 1e-9
            let s = Double(elapsedNs) / Double(gapBlendNs)
            let s2 = s * s
            let h00 = 2 * s2 * s - 3 * s2 + 1
            let dh00 = (6 * s2 - 6 * s) / durationS
            for j in 0..<jointCount {
                p[j] += h00 * blendPositionRad[j]
                v[j] += dh00 * blendPositionRad[j]
            }
        }
        if elapsedNs < switchBlendNs {
            let durationS = Double(switchBlendNs) * 1e-9
            let s = Double(elapsedNs) / Double(switchBlendNs)
            let s2 = s * s
            let h10 = (s2 * s - 2 * s2 + s) * durationS
            let dh10 = 3 * s2 - 4 * s + 1
            for j in 0..<jointCount {
                p[j] += h10 * blendVelocityRadPerS[j]
                v[j] += dh10 * blendVelocityRadPerS[j]
            }
        }
    }

    /// Adds `weight` × a chunk's curve at `t` to `p` and `v`, every column: cubic Hermite through its steps,
    /// tangents by finite differences (one-sided at the first step, zero at the last); its first action before
    /// its start, its last after its end. (rad, rad/s)
    static func accumulate(
        _ c: ActionChunk, atNs t: Int64, weight: Double, position p: UnsafeMutableBufferPointer<Double>,
        velocity v: UnsafeMutableBufferPointer<Double>
    ) {
        let n = c.stepCount
        let columns = min(c.jointCount, p.count)
        guard n >= 2 && t >= c.startNs else {
            for j in 0..<columns { p[j] += weight * c[0, j] }
            return
        }
        let u = Double(t - c.startNs) / Double(c.stepNs)
        if u >= Double(n - 1) {
            for j in 0..<columns { p[j] += weight * c[n - 1, j] }
            return
        }
        let k = min(Int(u), n - 2)
        let s = u - Double(k)
        let dtS = Double(c.stepNs) * 1e-9
        let s2 = s * s
        let s3 = s2 * s
        // Basis weights of p0, p1 and of the tangents m0, m1 (the latter times dt), and their derivatives.
        let h00 = 2 * s3 - 3 * s2 + 1
        let h01 = -2 * s3 + 3 * s2
        let h10 = (s3 - 2 * s2 + s) * dtS
        let h11 = (s3 - s2) * dtS
        let d00 = (6 * s2 - 6 * s) / dtS
        let d10 = 3 * s2 - 4 * s + 1
        let d11 = 3 * s2 - 2 * s
        let last = k + 1 == n - 1
        for j in 0..<columns {
            let p0 = c[k, j]
            let p1 = c[k + 1, j]
            let m0 = k == 0 ? (p1 - p0) / dtS : (p1 - c[k - 1, j]) / (2 * dtS)
            let m1 = last ? 0 : (c[k + 2, j] - p0) / (2 * dtS)
            p[j] += weight * (h00 * p0 + h01 * p1 + h10 * m0 + h11 * m1)
            v[j] += weight * (d00 * (p0 - p1) + d10 * m0 + d11 * m1)
        }
    }
}
