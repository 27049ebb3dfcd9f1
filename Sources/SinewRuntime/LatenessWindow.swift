import Synchronization

/// The most recent wake-up lateness values of a loop, for live percentiles on a status line while the
/// scheduler's histograms belong to the loop thread alone.
///
/// The loop thread appends with relaxed atomic stores (allocation-free, never blocks); any other thread
/// copies the window and sorts the copy. Each value is one atomic word, so a reader never sees a torn
/// value; a copy taken while the loop writes may mix values of two neighbouring ticks, which does not
/// matter for percentiles over hundreds of ticks.
public final class LatenessWindow: @unchecked Sendable {
    // @unchecked: every shared word is an Atomic; the storage is allocated once and never moves.

    /// How many recent values the window holds.
    public let capacity: Int
    private let values: UnsafeMutablePointer<Atomic<Int64>>
    private let appended = Atomic<Int>(0)

    /// - Parameter capacity: recent values kept (1024 ≈ 2 s at 500 Hz).
    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, 1)
        values = .allocate(capacity: self.capacity)
        for i in 0..<self.capacity { (values + i).initialize(to: Atomic<Int64>(0)) }
    }

    deinit {
        values.deinitialize(count: capacity)
        values.deallocate()
    }

    /// Loop thread only: adds one wake-up lateness (ns), replacing the oldest.
    @inline(__always)
    public func append(_ latenessNs: Int64) {
        let index = appended.load(ordering: .relaxed)
        values[index % capacity].store(latenessNs, ordering: .relaxed)
        appended.store(index &+ 1, ordering: .releasing)
    }

    /// Values appended since the loop started.
    public var count: Int { appended.load(ordering: .acquiring) }

    /// Any thread: a copy of the values in the window (at most `capacity`, in no particular order).
    public func copyValues() -> [Int64] {
        let n = min(appended.load(ordering: .acquiring), capacity)
        var copy = [Int64](repeating: 0, count: n)
        for i in 0..<n { copy[i] = values[i].load(ordering: .relaxed) }
        return copy
    }

    /// Percentiles of the window: p50 and p99 in µs, and how many values they are over (0: no value yet).
    public func percentiles() -> (p50Us: Double, p99Us: Double, count: Int) {
        let sorted = copyValues().sorted()
        guard !sorted.isEmpty else { return (0, 0, 0) }
        func at(_ q: Double) -> Double {
            let rank = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[rank]) / 1000
        }
        return (at(0.50), at(0.99), sorted.count)
    }
}
