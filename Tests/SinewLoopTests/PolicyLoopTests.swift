import CAllocCounter
import Foundation
import SinewPolicy
import SinewRuntime
import Synchronization
import Testing

/// Holds the activation pose, asynchronously at `rateHz`, and stops producing after `producingS` of loop time:
/// in a lockstep run it answers every later step for the observation it froze at; on its own thread it blocks
/// inside `compute` until deactivated, as a hung network call would.
final class StallingPolicy: Policy, @unchecked Sendable {
    let typeName = "stalling"
    let commands: [PolicyJointCommand]
    let execution: PolicyExecution
    let producingNs: Int64
    let released = Atomic<Bool>(false)
    let computations = Atomic<Int>(0)
    /// The observation time of the last command it produced (ns).
    let lastProducedNs = Atomic<Int64>(0)

    init(jointNames: [String], rateHz: Double, producingS: Double) {
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
        execution = .asynchronous(rateHz: rateHz)
        producingNs = Int64(producingS * 1e9)
    }

    func reset(from observation: PolicyObservation, into command: PolicyCommand) { command.hold(observation) }

    func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        computations.add(1, ordering: .relaxed)
        if observation.timeNs <= producingNs {
            lastProducedNs.store(observation.timeNs, ordering: .relaxed)
            return
        }
        if Thread.isMainThread == false && Thread.current.name == "sinew-policy" {
            while !released.load(ordering: .acquiring) { usleep(1000) }
        }
        command.computedForNs = lastProducedNs.load(ordering: .relaxed)
    }

    func deactivate() { released.store(true, ordering: .releasing) }
}

@Suite(.serialized) struct PolicyLoopTests {
    func events(_ rig: SimulatedRig) -> String {
        rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe).joined(separator: "; ")
    }

    /// Lockstep: an asynchronous policy that stops producing brings the robot to its safe state at the first
    /// tick its command is older than `watchdog_ms`, i.e. within watchdog_ms plus one tick, and the event
    /// names the policy.
    @Test func aPolicyThatStopsProducingTripsTheWatchdogWithinOneTick() throws {
        let joints = try SimulatedRig(lockstep: true).configuration.joints.map(\.name)
        let policy = StallingPolicy(jointNames: joints, rateHz: 50, producingS: 0.5)
        let rig = try SimulatedRig(wireTiming: true, lockstep: true, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = ProbeBody(loop: rig.loop)
        body.stopAtTick = 1000
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 1100), body: body)
            .run()
        let event = try #require(rig.loop.supervisor.events.events.first, "no safety event")
        let watchdogS = rig.configuration.safety.watchdogMs / 1000
        let periodS = 1 / rig.configuration.loop.rateHz
        let lastS = Double(policy.lastProducedNs.load(ordering: .relaxed)) * 1e-9
        print("stalled policy: last command for t=\(lastS) s, safe state at t=\(event.timeSeconds) s: \(events(rig))")
        #expect(event.cause == .staleCommand, "\(events(rig))")
        // Event times are simulated loop time in lockstep.
        #expect(event.timeSeconds - lastS > watchdogS)
        #expect(event.timeSeconds - lastS <= watchdogS + periodS + 1e-6)
        #expect(event.value <= (watchdogS + periodS) * 1e9 + 1)
        #expect(rig.loop.supervisor.describe(event).contains("policy \"stalling\""))
        #expect(rig.loop.lifecycle.state == .safe)
        try rig.loop.lifecycle.shutdown()
    }

    /// Real time: the same policy on its own thread hangs inside `compute`; the tick never waits for it, and
    /// the safe state comes at the first tick whose command is older than the watchdog (age at detection at
    /// most watchdog + one period + the loop's worst wake-up lateness). Shutdown releases it.
    @Test func aHungPolicyThreadTripsTheWatchdogAndTheLoopKeepsItsRate() throws {
        let joints = try SimulatedRig(lockstep: true).configuration.joints.map(\.name)
        let policy = StallingPolicy(jointNames: joints, rateHz: 50, producingS: 0.2)
        let rig = try SimulatedRig(runMarginNs: 200_000_000, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = ProbeBody(loop: rig.loop)
        body.stopWhenSafe = false
        let rate = rig.configuration.loop.rateHz
        let report = try Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: rate), maxTicks: Int64(0.6 * rate)), body: body
        ).run()
        let event = try #require(rig.loop.supervisor.events.events.first, "no safety event")
        let watchdogNs = rig.configuration.safety.watchdogMs * 1e6
        print(
            "hung policy thread: safe state at t=\(event.timeSeconds) s, command age \(event.value / 1e6) ms at detection "
                + "(watchdog \(watchdogNs / 1e6) ms), worst wake-up lateness \(report.wakeLateness.maxUs) µs, "
                + "\(report.ticks) ticks: \(events(rig))")
        #expect(event.cause == .staleCommand, "\(events(rig))")
        #expect(event.value > watchdogNs)
        #expect(event.value <= watchdogNs + 1e9 / rate + Double(report.wakeLateness.maxNs))
        #expect(report.ticks == Int64(0.6 * rate), "the loop ran every tick while the policy hung")
        try rig.loop.lifecycle.shutdown()
        let released = policy.released.load(ordering: .acquiring)
        #expect(released)
    }

    /// The tick allocates nothing with the hold policy inline, or with an asynchronous policy on its own
    /// thread (the tick only copies into and out of the triple buffers), over 10,000 ticks.
    @Test(arguments: ["hold", "asynchronous"])
    func tenThousandTicksWithoutAnAllocation(kind: String) throws {
        let joints = try SimulatedRig(lockstep: true).configuration.joints.map(\.name)
        let policy: any Policy =
            kind == "hold"
            ? HoldPolicy(jointNames: joints) : StallingPolicy(jointNames: joints, rateHz: 200, producingS: 1e6)
        let rig = try SimulatedRig(runMarginNs: 200_000_000, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let report = try Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body
        ).run()
        #expect(report.ticks >= 10_200)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread (\(kind))")
        if let stalling = policy as? StallingPolicy {
            let computations = stalling.computations.load(ordering: .relaxed)
            #expect(computations > 10)
        }
        try rig.loop.lifecycle.shutdown()
    }
}
