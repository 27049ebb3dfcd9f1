import CAllocCounter
import Foundation
import SinewPolicy
import Testing

/// Builds chunks for the tests: `positions(step, joint)` at `stepS` spacing from `startS`.
func makeChunk(
    startS: Double, observationS: Double? = nil, steps: Int, stepS: Double = 1.0 / 30, joints: Int = 1,
    capacity: Int = 50, _ positions: (Int, Int) -> Double
) -> ActionChunk {
    let chunk = ActionChunk(jointCount: joints, capacity: capacity)
    chunk.startNs = Int64((startS * 1e9).rounded())
    chunk.observationTimeNs = Int64(((observationS ?? startS) * 1e9).rounded())
    chunk.stepNs = Int64((stepS * 1e9).rounded())
    chunk.stepCount = steps
    for s in 0..<steps {
        for j in 0..<joints { chunk[s, j] = positions(s, j) }
    }
    return chunk
}

func ns(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }

struct ChunkBridgeTests {
    static let stepLimitRad = 0.05  // the shipped robots' safety.max_step_rad

    /// The synthetic slow, jittery policy (50-step chunks at 30 Hz, produced at 5–15 Hz with 30–150 ms latency,
    /// successive chunks a few mrad apart) sampled at 500 Hz for 10 s: every bridge mode gives a continuous
    /// command with no step above the supervisor's limit, and far less jerk than LeRobot-style
    /// sample-and-hold at 30 Hz in the same run. The table is printed; the run is deterministic.
    @Test func bridgeModesAreSmoothBesideSampleAndHold() throws {
        let rows = BridgeComparison.run(seed: 1)
        print("bridge vs sample-and-hold, synthetic chunks (seed 1, 500 Hz, 10 s, 2 joints):")
        print("  mode                   rms jerk (rad/s³)   max step (rad)")
        for row in rows {
            let name = row.mode.padding(toLength: 22, withPad: " ", startingAt: 0)
            let jerk = String(format: "%17.1f", row.rmsJerkRadPerS3)
            print("  \(name) \(jerk)   \(String(format: "%14.5f", row.maxStepRad))")
        }
        #expect(rows.map(\.mode) == ChunkBlendMode.defaults.map(\.name) + [BridgeComparison.sampleAndHoldMode])
        let hold = try #require(rows.last)
        // The largest step the predicted motion itself takes in a tick.
        var referenceStepRad = 0.0
        for k in 1...5000 {
            for j in 0..<BridgeComparison.jointCount {
                let step =
                    SyntheticChunkPolicy.referenceRad(timeS: Double(k) * 0.002, joint: j)
                    - SyntheticChunkPolicy.referenceRad(timeS: Double(k - 1) * 0.002, joint: j)
                referenceStepRad = max(referenceStepRad, abs(step))
            }
        }
        print("  (the reference motion's largest step: \(String(format: "%.5f", referenceStepRad)) rad)")
        for row in rows.dropLast() {
            #expect(row.maxStepRad <= Self.stepLimitRad, "\(row.mode)")
            #expect(row.maxStepRad < 1.25 * referenceStepRad, "\(row.mode): a step larger than the motion needs")
            #expect(row.rmsJerkRadPerS3 * 100 < hold.rmsJerkRadPerS3, "\(row.mode) vs \(hold)")
        }
        #expect(BridgeComparison.run(seed: 1) == rows)
    }

    /// When the last chunk runs out the command comes to rest at its last action and stays there, and the
    /// command's time stops at that action's time: the watchdog sees it age from then on.
    @Test func aChunkThatRunsOutHoldsAndItsTimeStops() {
        let bridge = ChunkBridge(jointCount: 1, maxChunkSteps: 50, settings: .init(mode: .latest))
        bridge.reset(atNs: 0, holding: [0])
        #expect(bridge.commandTimeNs == 0 && bridge.isHolding)
        let chunk = makeChunk(startS: 0, steps: 10) { s, _ in 0.01 * Double(s) }
        bridge.receive(chunk, nowNs: 0)
        var lastPosition = 0.0
        for k in 0...500 {
            let t = Int64(k) * 2_000_000
            bridge.tick(nowNs: t)
            if t <= chunk.endNs {
                #expect(bridge.commandTimeNs == t)
                #expect(!bridge.isHolding || t == chunk.endNs)
            } else {
                #expect(bridge.commandTimeNs == chunk.endNs, "t = \(t)")
                #expect(bridge.isHolding)
                #expect(bridge.positionRad[0] == 0.09)
                #expect(bridge.velocityRadPerS[0] == 0)
            }
            #expect(abs(bridge.positionRad[0] - lastPosition) < 0.002)
            lastPosition = bridge.positionRad[0]
        }
        // One second after the end, the command is a second old: past any watchdog_ms.
        #expect(Int64(500) * 2_000_000 - bridge.commandTimeNs > ns(0.05))
    }

    /// Actions whose time has passed are never executed: a late chunk is joined at the present (its earlier
    /// steps counted as dropped, the command continuing from where it was), and a chunk wholly in the past or
    /// older than the one executing is dropped.
    @Test func pastActionsAreDropped() {
        let bridge = ChunkBridge(jointCount: 1, maxChunkSteps: 50, settings: .init(mode: .latest, switchBlendS: 0.1))
        bridge.reset(atNs: 0, holding: [0])
        for k in 0..<100 { bridge.tick(nowNs: Int64(k) * 2_000_000) }
        // Computed for t = 0.0 s, steps 40 ms apart, arriving at 0.2 s: steps 0...4 lie in the past. Their values
        // are far from the rest so that executing any of them would show.
        let late = makeChunk(startS: 0, steps: 30, stepS: 0.04) { s, _ in s <= 4 ? 1.0 : 0.5 }
        let arrivalNs = ns(0.2)
        bridge.receive(late, nowNs: arrivalNs)
        #expect(bridge.lastInferenceDelayNs == arrivalNs)
        bridge.tick(nowNs: arrivalNs)
        #expect(bridge.stepsDropped == 5)
        #expect(bridge.positionRad[0] == 0, "the command continues from where it was")
        var peak = 0.0
        var t = arrivalNs
        while t < ns(1.2) {
            t += 2_000_000
            bridge.tick(nowNs: t)
            peak = max(peak, bridge.positionRad[0])
        }
        #expect(abs(bridge.positionRad[0] - 0.5) < 1e-12)
        // A blend from 0 to 0.5 rad (over 0.75 s: at most 1 rad/s of catching up), never toward the 1.0 of the
        // past steps; the last of them only tilts the tangent where the command joins the chunk.
        print("late chunk: the command peaks at \(peak) rad on its way from 0 to 0.5 rad")
        #expect(peak < 0.6, "peak \(peak)")

        let stale = makeChunk(startS: 0.3, steps: 10) { _, _ in 2.0 }
        bridge.receive(stale, nowNs: t)  // ends at 0.6 s, before now
        let older = makeChunk(startS: 1.15, observationS: -0.1, steps: 10) { _, _ in 2.0 }
        bridge.receive(older, nowNs: t)  // computed before the chunk executing
        bridge.tick(nowNs: t + 2_000_000)
        #expect(bridge.chunksDropped == 2)
        #expect(bridge.chunksInstalled == 1)
        #expect(abs(bridge.positionRad[0] - 0.5) < 1e-12)
    }

    /// At a switch between two chunks that disagree in position (5 mrad) and velocity (+1 vs −0.5 rad/s), and
    /// across a chunk's own steps, the command is C1 in every mode: sampled at 10 kHz, position moves by no
    /// more than its velocity allows and velocity by no more than a bounded acceleration, and the velocity
    /// the bridge reports is the position's derivative.
    @Test(arguments: ChunkBlendMode.defaults)
    func theCommandIsC1AcrossAChunkBoundary(mode: ChunkBlendMode) {
        let bridge = ChunkBridge(jointCount: 1, maxChunkSteps: 50, settings: .init(mode: mode, switchBlendS: 0.1))
        bridge.reset(atNs: 0, holding: [0])
        let stepS = 1.0 / 30
        let first = makeChunk(startS: 0, steps: 50) { s, _ in 0.5 * sin(2 * Double(s) * stepS) }
        bridge.receive(first, nowNs: 0)  // starting where the robot is, at rest: 0 rad
        // Computed for 0.4 s, arriving at 0.5 s: 5 mrad from the first at 0.5 s, moving at −0.5 rad/s where the
        // first moves at +0.54 rad/s.
        let second = makeChunk(startS: 0.4, steps: 50) { s, _ in
            0.5 * sin(1.0) + 0.005 - 0.5 * (0.4 + Double(s) * stepS - 0.5)
        }
        let dtNs: Int64 = 100_000
        let dtS = 1e-4
        var previous: (p: Double, v: Double)?
        var worstPositionJump = 0.0
        var worstVelocityJump = 0.0
        var worstDerivativeMismatch = 0.0
        var t: Int64 = 0
        while t <= ns(1.0) {
            if t == ns(0.5) { bridge.receive(second, nowNs: t) }
            bridge.tick(nowNs: t)
            let p = bridge.positionRad[0]
            let v = bridge.velocityRadPerS[0]
            if let previous, t >= ns(0.3) {
                worstPositionJump = max(worstPositionJump, abs(p - previous.p))
                worstVelocityJump = max(worstVelocityJump, abs(v - previous.v))
                worstDerivativeMismatch = max(
                    worstDerivativeMismatch, abs((p - previous.p) / dtS - (v + previous.v) / 2))
            }
            previous = (p, v)
            t += dtNs
        }
        print(
            "\(mode.name): at 10 kHz from 0.3 to 1 s, across the switch at 0.5 s, worst position step \(worstPositionJump) rad, velocity step "
                + "\(worstVelocityJump) rad/s, |dp/dt − v| \(worstDerivativeMismatch) rad/s")
        // |v| stays near 1 rad/s: 0.1 mrad per 0.1 ms.
        #expect(worstPositionJump < 2e-4)
        // The blend's acceleration stays below 100 rad/s²: 0.01 rad/s per 0.1 ms.
        #expect(worstVelocityJump < 0.01)
        #expect(worstDerivativeMismatch < 0.01)
        #expect(bridge.chunksInstalled == 2)
    }

    /// The tick side allocates nothing: 10,000 ticks at 500 Hz per mode, with chunks arriving (one refused as
    /// malformed, one too old), blends, the ensemble dropping chunks, and the last chunk running out into a
    /// hold.
    @Test(arguments: ChunkBlendMode.defaults)
    func theTickSideDoesNotAllocate(mode: ChunkBlendMode) {
        let joints = 6
        var chunks: [ActionChunk] = []
        for n in 0..<40 {
            let startS = Double(n) * 0.1
            let shiftRad = 0.003 * Double(n % 3)
            chunks.append(
                makeChunk(startS: startS, steps: 50, joints: joints) { s, j in
                    let phase: Double = startS + Double(s) / 30 + Double(j)
                    return sin(phase) + shiftRad
                })
        }
        let malformed = makeChunk(startS: 1, steps: 50, joints: joints) { _, _ in .nan }
        let wrongJoints = makeChunk(startS: 1, steps: 50, joints: 2) { _, _ in 0 }
        let bridge = ChunkBridge(jointCount: joints, maxChunkSteps: 50, settings: .init(mode: mode))
        let pose = [Double](repeating: 0, count: joints)
        func scenario() -> Int {
            bridge.reset(atNs: 0, holding: pose)
            var next = 0
            for k in 0..<10_000 {
                let t = Int64(k) * 2_000_000
                // Each chunk arrives 60 ms after its observation; none after 4 s (the last one ends at 5.6 s).
                if next < chunks.count && chunks[next].observationTimeNs + 60_000_000 <= t {
                    bridge.receive(chunks[next], nowNs: t)
                    next += 1
                    if next == 10 {
                        bridge.receive(malformed, nowNs: t)
                        bridge.receive(wrongJoints, nowNs: t)
                        bridge.receive(chunks[2], nowNs: t)
                    }
                }
                bridge.tick(nowNs: t)
            }
            return next
        }
        _ = scenario()  // warm-up
        let before = sinew_thread_allocations()
        let delivered = scenario()
        let allocations = sinew_thread_allocations() - before
        #expect(allocations == 0, "\(mode.name)")
        #expect(delivered == 40)
        #expect(bridge.chunksRefused == 2 && bridge.chunksDropped == 1)
        #expect(bridge.isHolding && bridge.commandTimeNs == chunks[39].endNs)
    }

    /// Out-of-range settings are named, for a configuration error.
    @Test func settingsOutOfRangeAreNamed() {
        #expect(ChunkBridgeSettings().invalidReason == nil)
        #expect(ChunkBridgeSettings(switchBlendS: 0).invalidReason?.contains("switch_blend_s") == true)
        #expect(ChunkBridgeSettings(maxStoredChunks: 1).invalidReason?.contains("max_stored_chunks") == true)
        #expect(ChunkBridgeSettings(mode: .temporalEnsemble(k: -1)).invalidReason?.contains("k must") == true)
        #expect(ChunkBridgeSettings(mode: .weightedAverage(oldWeight: 1.5)).invalidReason != nil)
        #expect(ChunkBridgeSettings(mode: .prefixFreeze(blendHorizonS: -0.1)).invalidReason != nil)
    }
}

struct ChunkPolicyAdapterTests {
    static let robotJoints = ["base", "shoulder", "elbow", "wrist"]

    static func observation(at timeNs: Int64 = 0) -> PolicyObservation {
        let o = PolicyObservation(jointNames: robotJoints)
        for j in 0..<robotJoints.count { o.positionRad[j] = 0.1 * Double(j) }
        o.timeNs = timeNs
        return o
    }

    /// A policy's joints that the robot lacks, or listed twice, are refused before any motion, by name.
    @Test func unknownJointsAreRefused() {
        let policy = SyntheticChunkPolicy(joints: ["elbow", "gripper"])
        #expect(throws: ChunkPolicyError.self) {
            try ChunkPolicyAdapter(policy: policy, jointNames: Self.robotJoints, loopRateHz: 500, lockstep: true)
        }
        do {
            _ = try ChunkPolicyAdapter(policy: policy, jointNames: Self.robotJoints, loopRateHz: 500, lockstep: true)
        } catch {
            #expect(error.description.contains("joint \"gripper\" is not one of the robot's joints"))
        }
        let twice = SyntheticChunkPolicy(joints: ["elbow", "elbow"])
        #expect(throws: ChunkPolicyError("policy \"synthetic_chunks\": joint \"elbow\" is listed twice")) {
            try ChunkPolicyAdapter(policy: twice, jointNames: Self.robotJoints, loopRateHz: 500, lockstep: true)
        }
    }

    /// Lockstep: the policy is asked at its rate inside the tick, its chunk reaches the bridge the simulated
    /// delay later, the joints it commands (in its own order) get the bridge's command and the others keep the
    /// activation pose; two runs give the same commands, tick for tick, without allocating.
    @Test func lockstepRunsAreReproducible() throws {
        func run() throws -> (positions: [[Double]], adapter: ChunkPolicyAdapter, allocations: UInt64) {
            let policy = SyntheticChunkPolicy(joints: ["elbow", "base"], rateHz: 10, seed: 7)
            let adapter = try ChunkPolicyAdapter(
                policy: policy, jointNames: Self.robotJoints, loopRateHz: 500,
                settings: ChunkBridgeSettings(mode: .prefixFreeze()), lockstep: true, simulatedInferenceDelayS: 0.05)
            let observation = Self.observation()
            let command = PolicyCommand(jointCount: Self.robotJoints.count)
            adapter.reset(from: observation, into: command)
            var positions: [[Double]] = []
            positions.reserveCapacity(1000)
            var allocations: UInt64 = 0
            for k in 0..<1000 {
                observation.timeNs = Int64(k) * 2_000_000
                command.computedForNs = observation.timeNs
                let before = sinew_thread_allocations()
                adapter.compute(observation, into: command)
                allocations += sinew_thread_allocations() - before
                if k == 24 { #expect(adapter.bridge.chunksReceived == 0) }
                if k == 25 { #expect(adapter.bridge.chunksReceived == 1, "the first chunk arrives at 50 ms") }
                positions.append(Array(command.positionRad))
            }
            return (positions, adapter, allocations)
        }
        let a = try run()
        let b = try run()
        #expect(a.positions == b.positions)
        // Asked at 10 Hz, each arriving 50 ms later: 20 chunks in 2 s.
        #expect(a.adapter.chunksProduced == 20)
        #expect(a.adapter.bridge.chunksReceived == 20)
        #expect(a.allocations == 0)
        let last = try #require(a.positions.last)
        let pose = Self.observation()
        #expect(last[1] == pose.positionRad[1] && last[3] == pose.positionRad[3], "the others keep their pose")
        let t = 999 * 0.002
        #expect(abs(last[2] - SyntheticChunkPolicy.referenceRad(timeS: t, joint: 0)) < 0.02)
        #expect(abs(last[0] - SyntheticChunkPolicy.referenceRad(timeS: t, joint: 1)) < 0.02)
    }

    /// Lockstep: a policy that stops producing leaves the command's time at its last chunk's end, so the
    /// watchdog applies; before that the time follows the loop clock.
    @Test func theCommandTimeStopsWhenChunksRunOut() throws {
        final class StoppingPolicy: ChunkPolicy {
            let typeName = "stopping"
            let joints = ["elbow"]
            let rateHz = 10.0
            let maxChunkSteps = 10
            let stepDurationS = 1.0 / 30
            var calls = 0
            func reset(from observation: PolicyObservation) { calls = 0 }
            func computeChunk(_ observation: PolicyObservation, into chunk: ActionChunk) {
                calls += 1
                // After two chunks it answers with a chunk wholly in the past, which the bridge drops.
                if calls > 2 { chunk.startNs -= 1_000_000_000 }
                for s in 0..<chunk.stepCount { chunk[s, 0] = 0.2 }
            }
        }
        let adapter = try ChunkPolicyAdapter(
            policy: StoppingPolicy(), jointNames: Self.robotJoints, loopRateHz: 500, lockstep: true,
            simulatedInferenceDelayS: 0.02)
        let observation = Self.observation()
        let command = PolicyCommand(jointCount: Self.robotJoints.count)
        adapter.reset(from: observation, into: command)
        var times: [Int64] = []
        for k in 0..<500 {
            observation.timeNs = Int64(k) * 2_000_000
            adapter.compute(observation, into: command)
            times.append(command.computedForNs)
        }
        // The second chunk: computed at 0.1 s, 10 steps of 1/30 s: it ends at 0.4 s.
        let endNs = ns(0.1) + 9 * ns(1.0 / 30)
        #expect(times[5] == 0, "before the first chunk, the activation time")
        #expect(times[100] == 100 * 2_000_000)
        #expect(times.last == endNs)
        #expect(command.positionRad[2] == 0.2)
        #expect(adapter.bridge.chunksDropped > 0)
    }

    /// Real time: the policy runs on its own thread and its chunks reach the command while the tick keeps its
    /// pace (it never waits); deactivation stops the thread.
    @Test func onItsOwnThreadChunksArriveWithoutTheTickWaiting() throws {
        final class SlowPolicy: ChunkPolicy, @unchecked Sendable {
            let typeName = "slow"
            let joints = ["shoulder"]
            let rateHz = 50.0
            let maxChunkSteps = 50
            let stepDurationS = 1.0 / 30
            func reset(from observation: PolicyObservation) {}
            func computeChunk(_ observation: PolicyObservation, into chunk: ActionChunk) {
                usleep(20_000)  // a 20 ms inference
                for s in 0..<chunk.stepCount { chunk[s, 0] = 0.3 + 0.001 * Double(s) }
            }
        }
        let adapter = try ChunkPolicyAdapter(
            policy: SlowPolicy(), jointNames: Self.robotJoints, loopRateHz: 500, lockstep: false)
        let observation = Self.observation()
        let command = PolicyCommand(jointCount: Self.robotJoints.count)
        adapter.reset(from: observation, into: command)
        let startNs = Int64(Date().timeIntervalSince1970 * 1e9)
        var ticks = 0
        // Not a timed test: ticks run until three chunks have arrived (or 1,500 ticks, about 3 s, pass).
        while adapter.bridge.chunksReceived < 3 && ticks < 1500 {
            observation.timeNs = Int64(Date().timeIntervalSince1970 * 1e9) - startNs
            adapter.compute(observation, into: command)
            ticks += 1
            usleep(2000)
        }
        #expect(adapter.bridge.chunksReceived >= 3, "after \(ticks) ticks")
        #expect(adapter.bridge.chunksRefused == 0)
        #expect(adapter.bridge.chunksInstalled >= 1)
        #expect(command.positionRad[1] > 0.1, "the command moves from the activation pose toward the chunks")
        #expect(adapter.stop(timeoutS: 1.0))
        #expect(!adapter.threadStuck)
    }
}
