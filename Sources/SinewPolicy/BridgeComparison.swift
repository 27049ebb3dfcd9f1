import Foundation

/// A stand-in for a learned chunk policy: it predicts a smooth reference motion (from rest, two sines per
/// joint, about 1.3 rad/s at peak) with the errors a real model's successive predictions have — each chunk shifted by a
/// few mrad and drifting a few mrad/s from the last, at random (seeded). It answers at once; the schedule
/// that makes it slow and jittery is its caller's (``BridgeComparison``, or the adapter's simulated delay).
public final class SyntheticChunkPolicy: ChunkPolicy {
    public let typeName = "synthetic_chunks"
    public let joints: [String]
    public let rateHz: Double
    public let maxChunkSteps: Int
    public let stepDurationS: Double
    /// Largest shift of a chunk from the reference, rad, and largest drift along it, rad/s.
    public let offsetRad: Double
    public let driftRadPerS: Double
    private let seed: UInt64
    private var random: SplitMix64

    /// - Parameters:
    ///   - joints: the joints it commands (any number; each gets its own phase).
    ///   - rateHz: how often it is asked, Hz.
    ///   - chunkSteps: steps per chunk; `stepDurationS`: their spacing, s.
    ///   - offsetRad: each chunk is shifted by up to this from the reference (uniform, per joint), rad.
    ///   - driftRadPerS: and drifts away from it by up to this, rad/s.
    ///   - seed: the errors' generator seed; ``reset(from:)`` restarts the sequence.
    public init(
        joints: [String], rateHz: Double = 10, chunkSteps: Int = 50, stepDurationS: Double = 1.0 / 30,
        offsetRad: Double = 0.004, driftRadPerS: Double = 0.005, seed: UInt64 = 1
    ) {
        self.joints = joints
        self.rateHz = rateHz
        maxChunkSteps = chunkSteps
        self.stepDurationS = stepDurationS
        self.offsetRad = offsetRad
        self.driftRadPerS = driftRadPerS
        self.seed = seed
        random = SplitMix64(seed: seed)
    }

    /// The motion every chunk predicts, rad, at `timeS` (loop clock, s) for joint column `joint`: 0 rad at rest
    /// at 0 s, easing in (a quintic over the first second) to two sines per joint.
    public static func referenceRad(timeS: Double, joint: Int) -> Double {
        let phase = 1.3 * Double(joint)
        let x = min(1, max(0, timeS))
        let easeIn = x * x * x * (10 - 15 * x + 6 * x * x)
        let motion =
            0.5 * sin(2 * Double.pi * 0.25 * timeS + phase) + 0.1 * sin(2 * Double.pi * 0.9 * timeS + 2 * phase)
            - 0.5 * sin(phase) - 0.1 * sin(2 * phase)
        return easeIn * motion
    }

    public func reset(from observation: PolicyObservation) { random = SplitMix64(seed: seed) }

    public func computeChunk(_ observation: PolicyObservation, into chunk: ActionChunk) {
        for j in 0..<chunk.jointCount {
            let shift = random.uniform(-offsetRad...offsetRad)
            let drift = random.uniform(-driftRadPerS...driftRadPerS)
            for s in 0..<chunk.stepCount {
                let tS = Double(chunk.timeNs(ofStep: s)) * 1e-9
                let aheadS = Double(s * Int(chunk.stepNs)) * 1e-9
                chunk[s, j] = Self.referenceRad(timeS: tS, joint: j) + shift + drift * aheadS
            }
        }
    }
}

/// The bridge's modes against LeRobot-style sample-and-hold on one synthetic run: a slow, jittery chunk policy
/// (``SyntheticChunkPolicy``: chunks of 50 steps at 30 Hz, asked every 2–6 frames of 30 Hz, i.e. at 5–15 Hz,
/// each arriving 30–150 ms after its observation — the first at once — and a new request only after the last
/// chunk arrived), sampled at 500 Hz for 10 s. Everything is seeded: a seed gives the same figures on every machine.
///
/// `sample_and_hold_30hz` is LeRobot's asynchronous robot client as its source reads (lerobot
/// src/lerobot/async_inference/robot_client.py): a queue of 30 fps actions; a chunk arriving is aggregated
/// into it with the default `weighted_average` (0.3 · queued + 0.7 · new on the overlap, actions at or before
/// the last executed frame dropped, queued actions beyond the new chunk discarded); one action popped per
/// frame and held until the next (the last one held when the queue runs dry); no interpolation.
public enum BridgeComparison {
    /// One mode's figures: RMS jerk of the 500 Hz command (third finite difference, every joint), rad/s³, and
    /// the largest change of the command between two ticks, rad.
    public struct Row: Sendable, Equatable {
        public var mode: String
        public var rmsJerkRadPerS3: Double
        public var maxStepRad: Double
    }

    /// One point of a time series: joint 0's command of a mode, or of a raw chunk's step (`chunk_<n>`), or the
    /// reference motion (`reference`).
    public struct Sample: Sendable, Equatable {
        public var timeS: Double
        public var mode: String
        public var positionRad: Double
    }

    public static let loopRateHz = 500.0
    public static let durationS = 10.0
    public static let jointCount = 2
    public static let chunkSteps = 50
    public static let frameRateHz = 30.0
    /// The sample-and-hold baseline's mode name.
    public static let sampleAndHoldMode = "sample_and_hold_30hz"

    /// The figures of every bridge mode (defaults, ``ChunkBlendMode/defaults``) and of sample-and-hold, in
    /// that order, for the run `seed` makes.
    public static func run(seed: UInt64 = 1) -> [Row] {
        let run = simulate(seed: seed)
        return run.commands.map { mode, positions in
            Row(mode: mode, rmsJerkRadPerS3: rmsJerk(positions), maxStepRad: maxStep(positions))
        }
    }

    /// Joint 0 over the run: every mode's 500 Hz command, the raw chunks' steps and the reference motion.
    public static func series(seed: UInt64 = 1) -> [Sample] {
        let run = simulate(seed: seed)
        var samples: [Sample] = []
        let periodS = 1 / loopRateHz
        for (mode, positions) in run.commands {
            for (k, p) in positions[0].enumerated() {
                samples.append(Sample(timeS: Double(k) * periodS, mode: mode, positionRad: p))
            }
        }
        for (n, chunk) in run.chunks.enumerated() {
            for s in 0..<chunk.stepCount {
                samples.append(
                    Sample(timeS: Double(chunk.timeNs(ofStep: s)) * 1e-9, mode: "chunk_\(n)", positionRad: chunk[s, 0]))
            }
        }
        for k in 0..<run.tickCount {
            let tS = Double(k) * periodS
            samples.append(
                Sample(
                    timeS: tS, mode: "reference", positionRad: SyntheticChunkPolicy.referenceRad(timeS: tS, joint: 0)))
        }
        return samples
    }

    /// ``series(seed:)`` as CSV with the header `t,mode,joint0` (s, name, rad): what Benchmarks/plot_bridge.py
    /// reads.
    public static func csv(seed: UInt64 = 1) -> String {
        var text = "t,mode,joint0\n"
        for sample in series(seed: seed) { text += "\(sample.timeS),\(sample.mode),\(sample.positionRad)\n" }
        return text
    }

    // MARK: - The run

    struct Delivery {
        var arrivalNs: Int64
        var chunk: ActionChunk
        var observationFrame: Int
    }

    struct Run {
        var tickCount: Int
        var chunks: [ActionChunk]
        /// Per mode, per joint, the command at every tick.
        var commands: [(String, [[Double]])]
    }

    static func simulate(seed: UInt64) -> Run {
        let frameNs = 1e9 / frameRateHz
        let periodNs = Int64((1e9 / loopRateHz).rounded())
        let tickCount = Int(durationS * loopRateHz) + 1
        let names = (0..<jointCount).map { "joint\($0)" }
        let policy = SyntheticChunkPolicy(
            joints: names, chunkSteps: chunkSteps, stepDurationS: 1 / frameRateHz, seed: seed &+ 1)
        let observation = PolicyObservation(jointNames: names)
        policy.reset(from: observation)

        // The schedule: observations on the 30 Hz frame grid (as LeRobot's client takes them), one request
        // at a time.
        var random = SplitMix64(seed: seed)
        var deliveries: [Delivery] = []
        var frame = 0
        while Double(frame) * frameNs < durationS * 1e9 {
            let observationNs = Int64((Double(frame) * frameNs).rounded())
            // The first chunk is ready at activation (computed before the loop starts), so that neither side
            // begins by waiting: LeRobot's client pops actions in order, and a wait at the start would leave it
            // that many frames behind for the whole run.
            let drawnNs = Int64((random.uniform(0.030...0.150) * 1e9).rounded())
            let latencyNs = frame == 0 ? 0 : drawnNs
            let chunk = ActionChunk(jointCount: jointCount, capacity: chunkSteps)
            observation.timeNs = observationNs
            chunk.observationTimeNs = observationNs
            chunk.startNs = observationNs
            chunk.stepNs = Int64(frameNs.rounded())
            chunk.stepCount = chunkSteps
            policy.computeChunk(observation, into: chunk)
            let arrivalNs = observationNs + latencyNs
            deliveries.append(Delivery(arrivalNs: arrivalNs, chunk: chunk, observationFrame: frame))
            let interval = 2 + Int(random.next() % 5)
            frame = max(frame + interval, Int((Double(arrivalNs) / frameNs).rounded(.up)))
        }

        let start = (0..<jointCount).map { SyntheticChunkPolicy.referenceRad(timeS: 0, joint: $0) }
        var commands: [(String, [[Double]])] = []
        for mode in ChunkBlendMode.defaults {
            let bridge = ChunkBridge(
                jointCount: jointCount, maxChunkSteps: chunkSteps, settings: ChunkBridgeSettings(mode: mode))
            bridge.reset(atNs: 0, holding: start)
            var positions = Array(repeating: [Double](repeating: 0, count: tickCount), count: jointCount)
            var next = 0
            for k in 0..<tickCount {
                let t = Int64(k) * periodNs
                while next < deliveries.count && deliveries[next].arrivalNs <= t {
                    bridge.receive(deliveries[next].chunk, nowNs: t)
                    next += 1
                }
                bridge.tick(nowNs: t)
                for j in 0..<jointCount { positions[j][k] = bridge.positionRad[j] }
            }
            commands.append((mode.name, positions))
        }
        commands.append((sampleAndHoldMode, sampleAndHold(deliveries, start: start, tickCount: tickCount)))
        return Run(tickCount: tickCount, chunks: deliveries.map(\.chunk), commands: commands)
    }

    static func sampleAndHold(_ deliveries: [Delivery], start: [Double], tickCount: Int) -> [[Double]] {
        let frameNs = 1e9 / frameRateHz
        let periodNs = Int64((1e9 / loopRateHz).rounded())
        var queueFrames: [Int] = []
        var queueActions: [[Double]] = []
        var latestExecuted = -1
        var held = start
        var nextFrame = 0
        var next = 0
        var positions = Array(repeating: [Double](repeating: 0, count: tickCount), count: jointCount)
        for k in 0..<tickCount {
            let t = Int64(k) * periodNs
            while next < deliveries.count && deliveries[next].arrivalNs <= t {
                let delivery = deliveries[next]
                var frames: [Int] = []
                var actions: [[Double]] = []
                for s in 0..<delivery.chunk.stepCount {
                    let f = delivery.observationFrame + s
                    guard f > latestExecuted else { continue }
                    var action = (0..<jointCount).map { delivery.chunk[s, $0] }
                    if let q = queueFrames.firstIndex(of: f) {
                        action = (0..<jointCount).map { 0.3 * queueActions[q][$0] + 0.7 * action[$0] }
                    }
                    frames.append(f)
                    actions.append(action)
                }
                queueFrames = frames
                queueActions = actions
                next += 1
            }
            if Double(t) >= Double(nextFrame) * frameNs {
                if !queueFrames.isEmpty {
                    held = queueActions.removeFirst()
                    latestExecuted = queueFrames.removeFirst()
                }
                nextFrame += 1
            }
            for j in 0..<jointCount { positions[j][k] = held[j] }
        }
        return positions
    }

    static func rmsJerk(_ positions: [[Double]]) -> Double {
        let h = 1 / loopRateHz
        var sum = 0.0
        var count = 0
        for x in positions where x.count > 3 {
            for k in 0..<x.count - 3 {
                let jerk = (x[k + 3] - 3 * x[k + 2] + 3 * x[k + 1] - x[k]) / (h * h * h)
                sum += jerk * jerk
                count += 1
            }
        }
        return count > 0 ? (sum / Double(count)).squareRoot() : 0
    }

    static func maxStep(_ positions: [[Double]]) -> Double {
        var largest = 0.0
        for x in positions where x.count > 1 {
            for k in 1..<x.count { largest = max(largest, abs(x[k] - x[k - 1])) }
        }
        return largest
    }
}
