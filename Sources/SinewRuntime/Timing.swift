import CRealtime
import Histogram

/// The stages of one tick, in the order they run (docs/design.md, "One tick").
public enum TickStage: Int, CaseIterable, Sendable {
    case sense = 0
    case estimate
    case decide
    case `guard`
    case act
    case record

    /// Lower-case name as printed in reports and JSON keys.
    public var name: StaticString {
        switch self {
        case .sense: "sense"
        case .estimate: "estimate"
        case .decide: "decide"
        case .guard: "guard"
        case .act: "act"
        case .record: "record"
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds; the time base of the loop, its deadlines and its events.
@inline(__always)
public func monotonicNanoseconds() -> Int64 { sinew_rt_monotonic_ns() }

/// Percentiles of one latency histogram, in nanoseconds.
public struct LatencySummary: Sendable, Equatable {
    public var count: UInt64
    public var p50Ns: UInt64
    public var p99Ns: UInt64
    public var p999Ns: UInt64
    public var maxNs: UInt64
    public var meanNs: Double

    /// The same figures in microseconds (JSON output: `wake_p99_us` and the like).
    public var p50Us: Double { Double(p50Ns) / 1000 }
    public var p99Us: Double { Double(p99Ns) / 1000 }
    public var p999Us: Double { Double(p999Ns) / 1000 }
    public var maxUs: Double { Double(maxNs) / 1000 }

    public static let empty = LatencySummary(count: 0, p50Ns: 0, p99Ns: 0, p999Ns: 0, maxNs: 0, meanNs: 0)

    public init(count: UInt64, p50Ns: UInt64, p99Ns: UInt64, p999Ns: UInt64, maxNs: UInt64, meanNs: Double) {
        self.count = count
        self.p50Ns = p50Ns
        self.p99Ns = p99Ns
        self.p999Ns = p999Ns
        self.maxNs = maxNs
        self.meanNs = meanNs
    }

    /// Summarises a histogram of nanosecond values.
    public init(_ histogram: Histogram<UInt64>) {
        guard histogram.totalCount > 0 else {
            self = .empty
            return
        }
        count = histogram.totalCount
        p50Ns = histogram.valueAtPercentile(50)
        p99Ns = histogram.valueAtPercentile(99)
        p999Ns = histogram.valueAtPercentile(99.9)
        maxNs = histogram.max
        meanNs = histogram.mean
    }

    /// Summarises raw samples (used for the bare C baseline loop); sorts a copy.
    public init(samplesNs: [Int64]) {
        guard !samplesNs.isEmpty else {
            self = .empty
            return
        }
        var histogram = LoopHistograms.makeHistogram()
        for sample in samplesNs { _ = histogram.record(UInt64(max(sample, 0))) }
        self.init(histogram)
    }
}

/// Preallocated latency histograms of a loop: wake-up lateness, each stage, and the tick's compute time.
/// 1 ns to 10 s at 3 significant digits (about 209 KB each). The loop thread records into them in place
/// (never copies them); read them only when the loop is not running.
public final class LoopHistograms: @unchecked Sendable {
    /// Number of histograms: wake lateness, six stages, whole tick, compute.
    static let slotCount = TickStage.allCases.count + 3
    static let wakeSlot = TickStage.allCases.count
    static let tickSlot = TickStage.allCases.count + 1
    static let computeSlot = TickStage.allCases.count + 2

    /// Highest trackable value, ns (10 s); larger values are clamped to it when recorded.
    public static let highestTrackableNs: UInt64 = 10_000_000_000

    private let slots: UnsafeMutablePointer<Histogram<UInt64>>

    public init() {
        slots = .allocate(capacity: Self.slotCount)
        for i in 0..<Self.slotCount { (slots + i).initialize(to: Self.makeHistogram()) }
    }

    deinit {
        slots.deinitialize(count: Self.slotCount)
        slots.deallocate()
    }

    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableNs,
            numberOfSignificantValueDigits: .three)
    }

    @inline(__always)
    func record(slot: Int, _ nanoseconds: Int64) {
        let clamped = nanoseconds < 0 ? 0 : min(UInt64(nanoseconds), Self.highestTrackableNs)
        _ = slots[slot].record(clamped)
    }

    @inline(__always) func recordWakeLateness(_ ns: Int64) { record(slot: Self.wakeSlot, ns) }
    @inline(__always) func recordStage(_ stage: Int, _ ns: Int64) { record(slot: stage, ns) }
    @inline(__always) func recordTick(_ ns: Int64) { record(slot: Self.tickSlot, ns) }
    @inline(__always) func recordCompute(_ ns: Int64) { record(slot: Self.computeSlot, ns) }

    /// Wake-up lateness: wake time minus the tick's deadline.
    public var wakeLateness: Histogram<UInt64> { slots[Self.wakeSlot] }
    /// Time of one stage.
    public func stage(_ stage: TickStage) -> Histogram<UInt64> { slots[stage.rawValue] }
    /// Whole tick: wake-up to the end of `record`.
    public var tick: Histogram<UInt64> { slots[Self.tickSlot] }
    /// Tick compute time: the whole tick minus the time the body reported as waiting (on the bus).
    public var compute: Histogram<UInt64> { slots[Self.computeSlot] }

    /// Clears every histogram (allocation-free; not while the loop runs).
    public func reset() {
        for i in 0..<Self.slotCount { slots[i].reset() }
    }
}
