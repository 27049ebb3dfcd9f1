import CSinewSystem

/// Transactions on several buses in flight together, waited for by one thread: each bus master's request
/// goes out when it is begun (``BusMaster/beginSyncRead(ids:address:length:into:)``), so the wires carry
/// them at the same time, and ``finishAll()`` returns when every bus has answered or reached its own
/// deadline (after its own retries). One `ppoll` covers every bus's ``ByteTransport/readinessDescriptor``;
/// the time spent is the slowest bus's, not the sum of them all.
///
/// A transport without a readiness descriptor (the in-process lockstep simulation, a wrapper that does not
/// forward it) is finished on its own with blocking reads, first: the lockstep simulation answers those at
/// once, in simulated time, so its buses still overlap on the simulated clock.
///
/// Busy polling (``BusTiming/busyPollNanoseconds``) is honoured: while any bus is inside its polling window,
/// the thread polls every bus without sleeping. Allocation-free after init; one thread uses it at a time.
public final class ConcurrentBusTransactions {
    public let masters: [BusMaster]
    /// The descriptors handed to `ppoll`, each pending bus's index, and what `ppoll` found on each.
    private let descriptors: UnsafeMutableBufferPointer<Int32>
    private let polledBus: UnsafeMutableBufferPointer<Int>
    private let events: UnsafeMutableBufferPointer<Int16>
    private let readinessSeen: UnsafeMutableBufferPointer<Bool>

    /// At most 64 buses (one `ppoll` set).
    public static let maximumBuses = 64

    public init(masters: [BusMaster]) {
        precondition(masters.count <= Self.maximumBuses, "at most \(Self.maximumBuses) buses")
        self.masters = masters
        let n = max(masters.count, 1)
        descriptors = .allocate(capacity: n)
        descriptors.initialize(repeating: -1)
        polledBus = .allocate(capacity: n)
        polledBus.initialize(repeating: 0)
        events = .allocate(capacity: n)
        events.initialize(repeating: 0)
        readinessSeen = .allocate(capacity: n)
        readinessSeen.initialize(repeating: false)
    }

    deinit {
        descriptors.deallocate()
        polledBus.deallocate()
        events.deallocate()
        readinessSeen.deallocate()
    }

    /// Waits until the transaction begun on every bus has finished; each master's ``BusMaster/transactionError``
    /// then holds its result. Buses with no transaction in progress are skipped.
    public func finishAll() {
        for b in 0..<masters.count {
            readinessSeen[b] = false
            let master = masters[b]
            if !master.isTransactionFinished && master.transport.readinessDescriptor < 0 {
                master.finishTransaction()
            }
        }
        while true {
            var pending = 0
            var wakeNs = UInt64.max
            var spinning = false
            let now = MonotonicInstant.now().nanoseconds
            for b in 0..<masters.count {
                let master = masters[b]
                if master.isTransactionFinished { continue }
                let seen = readinessSeen[b]
                readinessSeen[b] = false
                if master.continueTransaction(readinessSeen: seen) { continue }
                polledBus[pending] = b
                pending += 1
                wakeNs = min(wakeNs, master.transactionWakeNs)
                let window = master.transactionSpinWindow
                if window.fromNs < window.untilNs {
                    if now >= window.fromNs && now < window.untilNs {
                        spinning = true
                    } else if window.fromNs > now {
                        wakeNs = min(wakeNs, window.fromNs)
                    }
                }
            }
            if pending == 0 { return }
            if spinning { continue }
            // About to sleep: reset the descriptors that do not reset themselves, then look once more, so that
            // bytes that came between the pass above and the reset are not slept over.
            var waiting = 0
            for k in 0..<pending {
                let b = polledBus[k]
                let master = masters[b]
                master.transport.clearReadiness()
                if master.continueTransaction() { continue }
                // A step just taken may have moved the bus on (a failed attempt now quiets the line).
                wakeNs = min(wakeNs, master.transactionWakeNs)
                polledBus[waiting] = b
                descriptors[waiting] = master.transport.readinessDescriptor
                waiting += 1
            }
            if waiting < pending { continue }
            let r = sinew_wait_any_readable(descriptors.baseAddress, events.baseAddress, Int32(waiting), wakeNs)
            if r < 0 {
                // ppoll itself failed (it cannot for valid descriptors): finish the rest one by one.
                for b in 0..<masters.count where !masters[b].isTransactionFinished { masters[b].finishTransaction() }
                return
            }
            for k in 0..<waiting where events[k] != 0 { readinessSeen[polledBus[k]] = true }
        }
    }
}
