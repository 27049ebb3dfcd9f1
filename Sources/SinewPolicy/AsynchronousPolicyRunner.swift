import Foundation
import Synchronization

/// Runs an asynchronous policy (``PolicyExecution/asynchronous(rateHz:)``) beside the loop: on a thread of
/// its own at its rate in a real-time run, or stepped inside the tick at its rate on the simulation clock in
/// a lockstep run. The tick side (``exchange(_:_:)``) never waits and never allocates; the policy's
/// thread may do both.
public final class AsynchronousPolicyRunner: @unchecked Sendable {
    // @unchecked: the tick side and the policy thread meet only in the two triple buffers and the atomics.
    public let policy: any Policy
    public let rateHz: Double
    /// Lockstep: stepped in the tick every `ticksPerStep` ticks instead of on a thread.
    public let lockstep: Bool
    private let ticksPerStep: Int
    private var ticksUntilStep = 0
    private let observations: TripleBuffer<PolicyObservation>
    private let commands: TripleBuffer<PolicyCommand>
    /// The policy thread's own command: it keeps the entries of joints the policy does not command.
    private let working: PolicyCommand
    private let stopRequested = Atomic<Bool>(false)
    private let threadRunning = Atomic<Bool>(false)
    /// Commands the policy produced since the runner started (any thread may read it).
    private let produced = Atomic<Int>(0)

    /// - Parameters:
    ///   - loopRateHz: the loop's rate (Hz); the policy's rate must be positive and at most this.
    ///   - lockstep: step inside the tick on the simulation clock instead of on a thread.
    public init(
        policy: any Policy, rateHz: Double, loopRateHz: Double, jointNames: [String], frameNames: [String],
        lockstep: Bool
    ) {
        self.policy = policy
        self.rateHz = rateHz
        self.lockstep = lockstep
        ticksPerStep = max(1, Int((loopRateHz / rateHz).rounded()))
        observations = TripleBuffer { PolicyObservation(jointNames: jointNames, frameNames: frameNames) }
        commands = TripleBuffer { PolicyCommand(jointCount: jointNames.count) }
        working = PolicyCommand(jointCount: jointNames.count)
    }

    /// Commands produced since ``start(from:command:)``.
    public var commandsProduced: Int { produced.load(ordering: .relaxed) }

    /// Activation or recovery (not on the loop thread): the policy resets from `observation` into
    /// `command`, every buffer starts from that command, and the policy's thread starts. Returns false, and
    /// starts nothing, while the thread of an earlier start is still stuck in `compute` (two threads must
    /// never write the same hand-off).
    @discardableResult
    public func start(from observation: PolicyObservation, command: PolicyCommand, recovering: Bool = false) -> Bool {
        stopRequested.store(true, ordering: .releasing)
        guard waitForThread(timeoutS: 1.0) else { return false }
        if recovering {
            policy.recover(from: observation, into: command)
        } else {
            policy.reset(from: observation, into: command)
        }
        working.copy(from: command)
        commands.forEachSlot { $0.copy(from: command) }
        observations.forEachSlot { $0.copy(from: observation) }
        produced.store(0, ordering: .relaxed)
        ticksUntilStep = 0
        guard !lockstep else { return true }
        stopRequested.store(false, ordering: .relaxed)
        threadRunning.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            runThread()
            threadRunning.store(false, ordering: .releasing)
        }
        thread.name = "sinew-policy"
        thread.start()
        return true
    }

    /// Stops the policy: its thread is asked to end, the policy is told (``Policy/deactivate()``, which
    /// should release a computation that waits), and the thread is given up to `timeoutS` to end. Returns
    /// false when it did not (a policy stuck in `compute`); it is then left to end on its own and nothing it
    /// produces reaches the loop.
    @discardableResult
    public func stop(timeoutS: Double = 1.0) -> Bool {
        stopRequested.store(true, ordering: .releasing)
        policy.deactivate()
        return waitForThread(timeoutS: timeoutS)
    }

    private func waitForThread(timeoutS: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutS)
        while threadRunning.load(ordering: .acquiring) {
            if Date() > deadline { return false }
            usleep(1000)
        }
        return true
    }

    /// The tick's side: hands the policy `observation` and copies the newest command it produced into
    /// `command` (unchanged when there is none since the last tick; its `computedForNs` then ages).
    public func exchange(_ observation: PolicyObservation, _ command: PolicyCommand) {
        if lockstep {
            if ticksUntilStep == 0 {
                working.computedForNs = observation.timeNs
                policy.compute(observation, into: working)
                produced.add(1, ordering: .relaxed)
                command.copy(from: working)
                ticksUntilStep = ticksPerStep
            }
            ticksUntilStep -= 1
            return
        }
        observations.writeSlot.copy(from: observation)
        observations.publish()
        if commands.take() { command.copy(from: commands.readSlot) }
    }

    private func runThread() {
        let periodNs = Int64((1e9 / rateHz).rounded())
        var next = timespec()
        clock_gettime(CLOCK_MONOTONIC, &next)
        while !stopRequested.load(ordering: .acquiring) {
            observations.take()
            let observation = observations.readSlot
            working.computedForNs = observation.timeNs
            policy.compute(observation, into: working)
            if stopRequested.load(ordering: .acquiring) { break }
            commands.writeSlot.copy(from: working)
            commands.publish()
            produced.add(1, ordering: .relaxed)
            var ns = Int64(next.tv_nsec) + periodNs
            next.tv_sec += Int(ns / 1_000_000_000)
            ns %= 1_000_000_000
            next.tv_nsec = Int(ns)
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nil) == EINTR {}
        }
    }
}
