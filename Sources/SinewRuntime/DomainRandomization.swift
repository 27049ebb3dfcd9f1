import Foundation
import SinewCore
import SinewPolicy

/// The ranges a simulated episode's physical parameters are drawn from (`task.yaml`'s `randomization:`, or
/// `--range KEY=LOW:HIGH` on the command line): each knob uniform in its `[low, high]`, drawn per episode from
/// the episode's seed, so one seed gives one set of parameters on every machine. A knob not given stays at the
/// nominal robot (its neutral value). The simulator applies a ``DomainRandomization/Sample``; the controller
/// keeps the nominal model, as on a real arm whose parameters are only known approximately.
public struct DomainRandomization: Sendable, Equatable {
    /// One knob: its key in task.yaml, what it models, its unit, its neutral value and the widest range accepted.
    public struct Knob: Sendable, Equatable {
        public let key: String
        public let meaning: String
        public let unit: String
        public let neutral: Double
        public let bounds: ClosedRange<Double>
    }

    /// Every knob, in the order reports list them.
    public static let knobs: [Knob] = [
        Knob(
            key: "link_mass_scale",
            meaning: "each link's mass and inertia tensor times its own factor (payload, parts)",
            unit: "factor", neutral: 1, bounds: 0.1...10),
        Knob(
            key: "link_inertia_scale", meaning: "each link's inertia tensor (not its mass) times its own factor",
            unit: "factor", neutral: 1, bounds: 0.1...10),
        Knob(
            key: "joint_friction_scale",
            meaning: "each joint's Coulomb friction (the servo's gearbox and the URDF's) times its own factor",
            unit: "factor", neutral: 1, bounds: 0...20),
        Knob(
            key: "joint_damping_nms_rad", meaning: "viscous damping added at each joint (its own draw)",
            unit: "N·m·s/rad", neutral: 0, bounds: 0...10),
        Knob(
            key: "backlash_rad", meaning: "free play in each joint's reducer (its own draw)", unit: "rad", neutral: 0,
            bounds: 0...0.2),
        Knob(
            key: "servo_gain_scale", meaning: "each servo's position P, I and D gains times its own factor",
            unit: "factor", neutral: 1, bounds: 0.1...10),
        Knob(
            key: "bus_latency_us",
            meaning: "delay between the host's write and its bytes on the wire, once per transaction (a USB adapter)",
            unit: "µs", neutral: 0, bounds: 0...5000),
        Knob(
            key: "packet_loss", meaning: "probability that a reply packet is lost on the bus", unit: "probability",
            neutral: 0, bounds: 0...0.5),
        Knob(
            key: "encoder_noise_counts", meaning: "white noise on every encoder reading, standard deviation",
            unit: "encoder counts", neutral: 0, bounds: 0...50),
        Knob(
            key: "imu_noise_scale", meaning: "the IMU's noise densities and bias instability times a factor",
            unit: "factor", neutral: 1, bounds: 0...100),
        Knob(
            key: "loop_jitter_us",
            meaning: "how late each tick may wake (uniform from 0 to the draw): the control loop's timing jitter",
            unit: "µs", neutral: 0, bounds: 0...10_000),
    ]

    public static var keys: [String] { knobs.map(\.key) }

    /// The ranges given, by key.
    public private(set) var ranges: [String: ClosedRange<Double>] = [:]

    public init() {}

    /// Whether any knob is given.
    public var isEmpty: Bool { ranges.isEmpty }

    /// Sets one knob's range; nil when the key is unknown or the range lies outside the knob's bounds.
    public mutating func set(_ key: String, _ range: ClosedRange<Double>) -> Knob? {
        guard let knob = Self.knobs.first(where: { $0.key == key }), knob.bounds.contains(range.lowerBound),
            knob.bounds.contains(range.upperBound)
        else { return nil }
        ranges[key] = range
        return knob
    }

    /// These ranges with `other`'s laid over them (command-line ranges over task.yaml's).
    public func merging(_ other: DomainRandomization) -> DomainRandomization {
        var merged = self
        for (key, range) in other.ranges { merged.ranges[key] = range }
        return merged
    }

    /// Parses `KEY=LOW:HIGH[,KEY=LOW:HIGH…]` (the command line's `--range`); a single value means LOW = HIGH.
    public static func parse(_ text: String) throws(DomainRandomizationError) -> DomainRandomization {
        var result = DomainRandomization()
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw DomainRandomizationError(item: String(item), problem: "not KEY=LOW:HIGH")
            }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            let bounds = parts[1].split(separator: ":", omittingEmptySubsequences: false).map {
                Double($0.trimmingCharacters(in: .whitespaces))
            }
            guard let knob = knobs.first(where: { $0.key == key }) else {
                let suggestion = KeySuggestion.closest(to: key, among: keys).map { " (did you mean \($0)?)" } ?? ""
                throw DomainRandomizationError(
                    item: String(item), problem: "unknown knob\(suggestion); knobs: \(keys.joined(separator: ", "))")
            }
            guard bounds.count == 1 || bounds.count == 2, let low = bounds[0], let high = bounds.last ?? nil,
                low.isFinite, high.isFinite, low <= high
            else {
                throw DomainRandomizationError(
                    item: String(item), problem: "expected LOW:HIGH with LOW ≤ HIGH (\(knob.unit))")
            }
            guard result.set(key, low...high) != nil else {
                throw DomainRandomizationError(
                    item: String(item),
                    problem: "\(key) must lie in [\(knob.bounds.lowerBound), \(knob.bounds.upperBound)] (\(knob.unit))")
            }
        }
        return result
    }

    /// One episode's draw: per link and per joint factors, per episode values. With no range given every value
    /// is neutral and the simulated robot is the nominal one.
    public struct Sample: Sendable, Equatable {
        /// Per URDF link (the model's link order).
        public var linkMassScale: [Double]
        public var linkInertiaScale: [Double]
        /// Per robot.yaml joint.
        public var jointFrictionScale: [Double]
        public var jointDampingNmsPerRad: [Double]
        public var backlashRad: [Double]
        public var servoGainScale: [Double]
        /// Per episode.
        public var busLatencyNs: UInt64
        public var packetLoss: Double
        public var encoderNoiseCounts: Double
        public var imuNoiseScale: Double
        public var loopJitterNs: UInt64
        /// Seeds for the simulator's own random processes (lost packets, encoder and IMU noise, tick lateness).
        public var busSeed: UInt64
        public var sensorSeed: UInt64
        public var loopSeed: UInt64

        /// Whether this sample changes anything of the nominal robot.
        public var isNeutral: Bool {
            linkMassScale.allSatisfy { $0 == 1 } && linkInertiaScale.allSatisfy { $0 == 1 }
                && jointFrictionScale.allSatisfy { $0 == 1 } && jointDampingNmsPerRad.allSatisfy { $0 == 0 }
                && backlashRad.allSatisfy { $0 == 0 } && servoGainScale.allSatisfy { $0 == 1 } && busLatencyNs == 0
                && packetLoss == 0 && encoderNoiseCounts == 0 && imuNoiseScale == 1 && loopJitterNs == 0
        }
    }

    /// The draw of episode `seed` for a robot of `linkCount` URDF links and `jointCount` joints. Every knob
    /// draws from its own stream, so adding a knob to the ranges leaves the others' draws as they were.
    public func sample(seed: UInt64, linkCount: Int, jointCount: Int) -> Sample {
        func draws(_ key: String, _ count: Int) -> [Double] {
            let neutral = Self.knobs.first { $0.key == key }?.neutral ?? 0
            guard let range = ranges[key] else { return [Double](repeating: neutral, count: count) }
            var random = Self.stream(seed: seed, key: key)
            return (0..<count).map { _ in random.uniform(range) }
        }
        var sensors = TaskConfiguration.random(seed: seed, stream: .sensors)
        var bus = TaskConfiguration.random(seed: seed, stream: .bus)
        var loop = TaskConfiguration.random(seed: seed, stream: .loop)
        return Sample(
            linkMassScale: draws("link_mass_scale", linkCount),
            linkInertiaScale: draws("link_inertia_scale", linkCount),
            jointFrictionScale: draws("joint_friction_scale", jointCount),
            jointDampingNmsPerRad: draws("joint_damping_nms_rad", jointCount),
            backlashRad: draws("backlash_rad", jointCount),
            servoGainScale: draws("servo_gain_scale", jointCount),
            busLatencyNs: UInt64((draws("bus_latency_us", 1)[0] * 1000).rounded()),
            packetLoss: draws("packet_loss", 1)[0],
            encoderNoiseCounts: draws("encoder_noise_counts", 1)[0],
            imuNoiseScale: draws("imu_noise_scale", 1)[0],
            loopJitterNs: UInt64((draws("loop_jitter_us", 1)[0] * 1000).rounded()),
            busSeed: bus.next() | 1, sensorSeed: sensors.next() | 1, loopSeed: loop.next() | 1)
    }

    private static func stream(seed: UInt64, key: String) -> SplitMix64 {
        // FNV-1a of the key: a stable stream number per knob.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var physics = TaskConfiguration.random(seed: seed, stream: .physics)
        return SplitMix64(seed: physics.next() ^ hash)
    }
}

/// A `--range` item that could not be read.
public struct DomainRandomizationError: Error, Sendable, CustomStringConvertible {
    public var item: String
    public var problem: String
    public var description: String { "invalid randomisation range '\(item)': \(problem)" }
}
