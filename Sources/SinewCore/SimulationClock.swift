/// A simulated world whose time the control loop advances itself (lockstep simulation): before each tick
/// the loop moves it to the tick's time, so a simulation can run faster (or slower) than real time and
/// still be deterministic. Implementations must not allocate in `advance`.
public protocol SimulationClock: AnyObject {
    /// Moves simulated time forward to `nanoseconds` since the simulation started (never backward).
    func advance(toNanoseconds nanoseconds: UInt64)
    /// Simulated time since the simulation started, ns.
    var nanoseconds: UInt64 { get }
}
