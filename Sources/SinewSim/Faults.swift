/// Faults the virtual bus injects, as given on the command line:
/// `corrupt=P,drop=P,silent=ID,silent=ID@SECONDS,overload=ID@SECONDS,seed=N` (any subset, comma-separated;
/// `silent` and `overload` may repeat). Probabilities are per reply packet; `seed` picks another repeatable
/// sequence of dropped and corrupted replies (each run with the same seed loses the same replies).
public struct FaultInjection: Sendable, Equatable {
    /// Probability that a reply packet has one byte flipped.
    public var corruptProbability: Double = 0
    /// Probability that a reply packet is never sent.
    public var dropProbability: Double = 0
    /// Servos that are on the bus but never answer (a dead servo or a broken cable).
    public var silentIDs: [UInt8] = []
    /// Servos that answer until this many seconds after the bus starts, then never again (a servo that
    /// dies or whose cable breaks mid-run): `silent=ID@SECONDS`.
    public var silences: [Silence] = []
    /// Servos that report an overload (and drop torque) from this many seconds after the bus starts.
    public var overloads: [Overload] = []
    /// Seed of the drop and corrupt decisions (`seed=N`); nil: the bus options' seed.
    public var seed: UInt64?

    /// A fault of servo `id` from `afterSeconds` after the bus starts.
    public struct TimedFault: Sendable, Equatable {
        public var id: UInt8
        public var afterSeconds: Double
        public init(id: UInt8, afterSeconds: Double) {
            self.id = id
            self.afterSeconds = afterSeconds
        }
    }
    public typealias Overload = TimedFault
    public typealias Silence = TimedFault

    public init() {}

    public static let none = FaultInjection()

    /// Every servo ID a fault names.
    public var servoIDs: [UInt8] { silentIDs + silences.map(\.id) + overloads.map(\.id) }

    /// The faults for one bus of a robot whose servos are `ids`: the probabilities, and the faults of the servos
    /// among `ids`.
    public func restricted(to ids: [UInt8]) -> FaultInjection {
        var faults = self
        faults.silentIDs = silentIDs.filter(ids.contains)
        faults.silences = silences.filter { ids.contains($0.id) }
        faults.overloads = overloads.filter { ids.contains($0.id) }
        return faults
    }

    /// The latest a timed fault (`overload=ID@SECONDS`, `silent=ID@SECONDS`) may be scheduled, seconds after
    /// the bus starts: 11.6 days, longer than any run, and small enough that its time in nanoseconds fits.
    public static let maximumFaultSeconds = 1_000_000.0

    /// Whether `seconds` can be a timed fault's time: finite, from 0 to ``maximumFaultSeconds``.
    public static func isValidFaultTime(_ seconds: Double) -> Bool {
        seconds.isFinite && seconds >= 0 && seconds <= maximumFaultSeconds
    }

    /// Parses the command-line form; errors name the offending item.
    public static func parse(_ text: String) throws(FaultSpecError) -> FaultInjection {
        var faults = FaultInjection()
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw FaultSpecError(item: String(item), expected: "KEY=VALUE") }
            let key = parts[0].trimmingSpaces
            let value = parts[1].trimmingSpaces
            switch key {
            case "corrupt", "drop":
                guard let probability = Double(value), probability.isFinite, probability >= 0, probability <= 1
                else {
                    throw FaultSpecError(item: String(item), expected: "a probability between 0 and 1")
                }
                if key == "corrupt" {
                    faults.corruptProbability = probability
                } else {
                    faults.dropProbability = probability
                }
            case "silent" where value.contains("@"):
                let halves = value.split(separator: "@", maxSplits: 1).map(String.init)
                guard halves.count == 2, let id = UInt8(halves[0]), id <= 0xFD, let seconds = Double(halves[1]),
                    Self.isValidFaultTime(seconds)
                else {
                    throw FaultSpecError(
                        item: String(item), expected: "ID or ID@SECONDS (SECONDS from 0 to 1000000), e.g. silent=3@2.5")
                }
                faults.silences.append(Silence(id: id, afterSeconds: seconds))
            case "silent":
                guard let id = UInt8(value), id <= 0xFD else {
                    throw FaultSpecError(item: String(item), expected: "a servo ID 0…253, or ID@SECONDS")
                }
                faults.silentIDs.append(id)
            case "overload":
                let halves = value.split(separator: "@", maxSplits: 1).map(String.init)
                guard halves.count == 2, let id = UInt8(halves[0]), id <= 0xFD else {
                    throw FaultSpecError(item: String(item), expected: "ID@SECONDS, e.g. overload=3@2.5")
                }
                guard let seconds = Double(halves[1]), Self.isValidFaultTime(seconds) else {
                    throw FaultSpecError(
                        item: String(item),
                        expected: "ID@SECONDS with SECONDS a time from 0 to \(Int(Self.maximumFaultSeconds)) s, "
                            + "e.g. overload=3@2.5")
                }
                faults.overloads.append(Overload(id: id, afterSeconds: seconds))
            case "seed":
                guard let seed = UInt64(value) else {
                    throw FaultSpecError(item: String(item), expected: "a whole number 0…18446744073709551615")
                }
                faults.seed = seed
            default:
                throw FaultSpecError(
                    item: String(item),
                    expected: "one of corrupt=P, drop=P, silent=ID, silent=ID@SECONDS, overload=ID@SECONDS, seed=N")
            }
        }
        return faults
    }
}

/// A `--fault` item that could not be parsed.
public struct FaultSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var item: String
    public var expected: String
    public var description: String { "invalid fault '\(item)': expected \(expected)" }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// Deterministic xorshift64* generator for fault decisions (no allocation, reproducible from a seed).
struct FaultRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
