/// A simulated world whose time the control loop advances itself (lockstep simulation): before each tick
/// the loop moves it to the tick's time, so a simulation can run faster (or slower) than real time and
/// still be deterministic. Implementations must not allocate in `advance`.
public protocol SimulationClock: AnyObject {
    /// Moves simulated time forward to `nanoseconds` since the simulation started (never backward).
    func advance(toNanoseconds nanoseconds: UInt64)
    /// Simulated time since the simulation started, ns.
    var nanoseconds: UInt64 { get }
}

/// Several simulated worlds that the loop advances as one (a follower arm and a leader arm simulated in
/// lockstep, each behind its own bus): ``advance(toNanoseconds:)`` moves every clock to the same time, and
/// ``nanoseconds`` is the first clock's. Allocation-free.
public final class SimulationClockGroup: SimulationClock {
    /// The clocks, in the order they are advanced; the first one tells the time.
    public let clocks: [any SimulationClock]
    /// The time reached, for a group without clocks.
    private var reachedNs: UInt64 = 0

    public init(_ clocks: [any SimulationClock]) {
        self.clocks = clocks
    }

    public func advance(toNanoseconds nanoseconds: UInt64) {
        if nanoseconds > reachedNs { reachedNs = nanoseconds }
        for clock in clocks { clock.advance(toNanoseconds: nanoseconds) }
    }

    public var nanoseconds: UInt64 { clocks.first?.nanoseconds ?? reachedNs }
}
