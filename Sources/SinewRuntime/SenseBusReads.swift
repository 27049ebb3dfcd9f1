import CRealtime
import SinewBus

#if canImport(Glibc)
    import Glibc
#endif

/// How the sense stage carries out its one sync read per bus (robot.yaml `loop.bus_io`). When ``readAll()``
/// returns, every bus's read has finished — all its replies arrived, or its own deadline passed after its own
/// retries — and each bus master holds the result (`transactionError`, `replyArrived(at:)`). Deadlines,
/// retries and what counts as a failure are the bus master's, the same whichever way the buses overlap.
/// Real-time: no allocation, no lock, no logging.
protocol SenseBusReads: AnyObject {
    func readAll()
    /// Starts what runs beside the loop (threads), before the loop does; not real-time. Idempotent.
    func start()
    /// Ends what runs beside the loop; not real-time.
    func stop()
}

extension RobotLoop.BusLink {
    /// Sends this bus's sync read of the loop's read block without waiting for its replies.
    @inline(__always) func beginRead() {
        master.beginSyncRead(
            ids: UnsafeBufferPointer(ids), address: readAddress, length: readLength, into: readBuffer)
    }
}

/// One bus after another: the stage takes the sum of the buses' times (``RobotConfiguration/BusIO/sequential``).
final class SequentialBusReads: SenseBusReads {
    let buses: [RobotLoop.BusLink]

    init(buses: [RobotLoop.BusLink]) { self.buses = buses }

    func readAll() {
        for b in 0..<buses.count {
            buses[b].beginRead()
            buses[b].master.finishTransaction()
        }
    }

    func start() {}
    func stop() {}
}

/// Every bus's request goes out first, then the loop thread waits for all the replies with non-blocking
/// I/O (``ConcurrentBusTransactions``): the stage takes the slowest bus's time (``RobotConfiguration/BusIO/poll``).
final class PolledBusReads: SenseBusReads {
    let buses: [RobotLoop.BusLink]
    let transactions: ConcurrentBusTransactions

    init(buses: [RobotLoop.BusLink]) {
        self.buses = buses
        transactions = ConcurrentBusTransactions(masters: buses.map(\.master))
    }

    func readAll() {
        for b in 0..<buses.count { buses[b].beginRead() }
        transactions.finishAll()
    }

    func start() {}
    func stop() {}
}

/// One I/O thread per bus, each pinned to a CPU and at the loop's SCHED_FIFO priority where the system allows
/// (``RobotConfiguration/BusIO/threads``). The loop thread raises each worker's futex word and sleeps on a
/// counter of busy workers; each worker does its bus's sync read (blocking, with the bus master's deadline)
/// and the last one to finish wakes the loop thread. Nothing allocates: the words live in memory allocated
/// at init, and the threads wait in the kernel on them.
final class ThreadedBusReads: SenseBusReads, @unchecked Sendable {
    // @unchecked: the loop thread writes a bus's state only while its worker waits, and the futex words'
    // release/acquire order hands it over.
    let buses: [RobotLoop.BusLink]
    /// [0]: workers still reading; [1]: stop; [2 + b]: bus b's request count.
    private let words: UnsafeMutablePointer<UInt32>
    private var threads: [pthread_t] = []
    /// Per worker: whether it got SCHED_FIFO and its CPU (for reports), written before it first waits.
    let fifoGranted: UnsafeMutableBufferPointer<Bool>
    let pinnedCPU: UnsafeMutableBufferPointer<Int32>
    /// Per bus: whether a worker thread reads it (else the loop thread does); written by `start` and `stop` only.
    private let hasWorker: UnsafeMutableBufferPointer<Bool>

    private let fifoPriority: Int?
    private let cpus: [Int]

    /// - Parameters:
    ///   - fifoPriority: the workers' SCHED_FIFO priority (the loop's), or nil for the default scheduler.
    ///   - cpus: the CPU each worker is pinned to (by bus); -1 for none.
    init(buses: [RobotLoop.BusLink], fifoPriority: Int?, cpus: [Int]) {
        self.buses = buses
        self.fifoPriority = fifoPriority
        self.cpus = cpus
        words = .allocate(capacity: 2 + buses.count)
        words.initialize(repeating: 0, count: 2 + buses.count)
        fifoGranted = .allocate(capacity: max(buses.count, 1))
        fifoGranted.initialize(repeating: false)
        pinnedCPU = .allocate(capacity: max(buses.count, 1))
        pinnedCPU.initialize(repeating: -1)
        hasWorker = .allocate(capacity: max(buses.count, 1))
        hasWorker.initialize(repeating: false)
    }

    func start() {
        guard threads.isEmpty else { return }
        sinew_rt_atomic_store_release(stopWord, 0)
        for b in 0..<buses.count {
            let worker = BusReadWorker(
                owner: self, bus: b, fifoPriority: fifoPriority, cpu: b < cpus.count ? cpus[b] : -1)
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 256 << 10)
            let context = Unmanaged.passRetained(worker).toOpaque()
            var handle = pthread_t()
            let rc = pthread_create(
                &handle, &attributes,
                { raw in
                    Unmanaged<BusReadWorker>.fromOpaque(raw!).takeRetainedValue().run()
                    return nil
                }, context)
            pthread_attr_destroy(&attributes)
            if rc == 0 {
                threads.append(handle)
                hasWorker[b] = true
            } else {
                // No thread for this bus: the loop thread reads it.
                Unmanaged<BusReadWorker>.fromOpaque(context).release()
            }
        }
    }

    // The workers hold this object while they run: `stop()` (the loop's deinit calls it) ends them first.
    deinit {
        words.deallocate()
        fifoGranted.deallocate()
        pinnedCPU.deallocate()
        hasWorker.deallocate()
    }

    @inline(__always) var busyWord: UnsafeMutablePointer<UInt32> { words }
    @inline(__always) var stopWord: UnsafeMutablePointer<UInt32> { words + 1 }
    @inline(__always) func requestWord(_ b: Int) -> UnsafeMutablePointer<UInt32> { words + 2 + b }

    func readAll() {
        var threaded: UInt32 = 0
        for b in 0..<buses.count where hasWorker[b] { threaded += 1 }
        sinew_rt_atomic_store_release(busyWord, threaded)
        for b in 0..<buses.count where hasWorker[b] {
            sinew_rt_atomic_add(requestWord(b), 1)
            _ = sinew_rt_futex_wake(requestWord(b), 1)
        }
        for b in 0..<buses.count where !hasWorker[b] {
            buses[b].beginRead()
            buses[b].master.finishTransaction()
        }
        while true {
            let busy = sinew_rt_atomic_load_acquire(busyWord)
            if busy == 0 { return }
            _ = sinew_rt_futex_wait(busyWord, busy, 0)
        }
    }

    func stop() {
        if threads.isEmpty { return }
        sinew_rt_atomic_store_release(stopWord, 1)
        for b in 0..<buses.count {
            sinew_rt_atomic_add(requestWord(b), 1)
            _ = sinew_rt_futex_wake(requestWord(b), 1)
        }
        for thread in threads { pthread_join(thread, nil) }
        threads.removeAll()
        for b in 0..<buses.count { hasWorker[b] = false }
    }

    /// A worker's loop: wait for a request, read the bus, report, until told to stop.
    fileprivate func serve(bus b: Int) {
        var seen = sinew_rt_atomic_load_acquire(requestWord(b))
        while true {
            let now = sinew_rt_atomic_load_acquire(requestWord(b))
            if now == seen {
                _ = sinew_rt_futex_wait(requestWord(b), seen, 0)
                continue
            }
            seen = now
            if sinew_rt_atomic_load_acquire(stopWord) != 0 { return }
            buses[b].beginRead()
            buses[b].master.finishTransaction()
            if sinew_rt_atomic_subtract(busyWord, 1) == 0 { _ = sinew_rt_futex_wake(busyWord, 1) }
        }
    }
}

/// What a worker thread starts with.
private final class BusReadWorker: @unchecked Sendable {
    let owner: ThreadedBusReads
    let bus: Int
    let fifoPriority: Int?
    let cpu: Int

    init(owner: ThreadedBusReads, bus: Int, fifoPriority: Int?, cpu: Int) {
        self.owner = owner
        self.bus = bus
        self.fifoPriority = fifoPriority
        self.cpu = cpu
    }

    func run() {
        if let fifoPriority { owner.fifoGranted[bus] = sinew_rt_set_fifo_priority(Int32(fifoPriority)) == 0 }
        if cpu >= 0 && sinew_rt_set_affinity(Int32(cpu)) == 0 { owner.pinnedCPU[bus] = Int32(cpu) }
        _ = sinew_rt_set_timer_slack_ns(1)
        owner.serve(bus: bus)
    }
}
