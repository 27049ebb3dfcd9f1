import Synchronization

/// A single-writer, single-reader hand-off of the latest value between two threads, lock-free and
/// allocation-free once built: the writer fills its own slot and swaps it with the middle one; the reader
/// swaps the middle one with its own when something new is there. Neither ever waits for the other; the
/// reader always holds a complete value (the newest published, or the one it had).
///
/// Slots are reference types the two sides fill in place (``PolicyObservation``, ``PolicyCommand``).
public final class TripleBuffer<Slot: AnyObject>: @unchecked Sendable {
    // @unchecked: a slot is touched only by the side whose index names it; the atomic middle index is the
    // only shared state.
    private let slots: [Slot]
    /// Index of the middle slot, with `freshBit` set when the writer put something there the reader has not
    /// taken yet.
    private let middle: Atomic<Int>
    private var writeIndex = 0
    private var readIndex = 2
    private static var freshBit: Int { 4 }

    /// - Parameter make: builds one slot; called three times, here.
    public init(_ make: () -> Slot) {
        slots = [make(), make(), make()]
        middle = Atomic(1)
    }

    /// The writer's slot, to fill before ``publish()``.
    public var writeSlot: Slot { slots[writeIndex] }

    /// Publishes the writer's slot (writer thread).
    public func publish() {
        let old = middle.exchange(writeIndex | Self.freshBit, ordering: .acquiringAndReleasing)
        writeIndex = old & 3
    }

    /// Takes the newest published slot if there is one since the last call (reader thread). Returns whether
    /// ``readSlot`` changed.
    @discardableResult
    public func take() -> Bool {
        guard middle.load(ordering: .acquiring) & Self.freshBit != 0 else { return false }
        let old = middle.exchange(readIndex, ordering: .acquiringAndReleasing)
        readIndex = old & 3
        return true
    }

    /// The reader's slot: the value last taken.
    public var readSlot: Slot { slots[readIndex] }

    /// Visits every slot (for set-up before the two threads start).
    public func forEachSlot(_ body: (Slot) -> Void) { slots.forEach(body) }
}
