import CAllocCounter
import Foundation
import SinewBus
import SinewRuntime
import SinewSim
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Forwards to another transport and counts the calls (loop thread only), so a test can tell that
/// nothing touches a dead port; optionally fails every SYNC_WRITE (a bus that takes no commands).
final class ProbedTransport: ByteTransport, @unchecked Sendable {
    let inner: any ByteTransport
    private(set) var calls = 0
    /// When set, every SYNC_WRITE request (Feetech or Dynamixel) fails as a write that timed out.
    var failSyncWrites = false

    init(_ inner: any ByteTransport) { self.inner = inner }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        calls += 1
        if failSyncWrites && bytes.count > 7 {
            // Feetech: FF FF ID LEN INSTRUCTION …; Dynamixel 2.0: FF FF FD 00 ID LEN_L LEN_H INSTRUCTION ….
            let instruction = bytes[2] == 0xFD ? bytes[7] : bytes[4]
            if instruction == 0x83 { throw .writeTimeout(written: 0) }
        }
        try inner.write(bytes, deadline: deadline)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        calls += 1
        return try inner.read(into: buffer, deadline: deadline)
    }
    func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        calls += 1
        return try inner.readAvailable(into: buffer)
    }
    func flushInput() throws(TransportError) {
        calls += 1
        try inner.flushInput()
    }
    var baudRate: Int { inner.baudRate }
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { try inner.setBaudRate(bitsPerSecond) }
}

/// Runs the loop's stages and calls `beforeSense` / `afterSense` around the sense stage; stops at
/// `stopAtTick`, or in the tick the loop leaves the active state when `stopWhenSafe`.
final class ProbeBody: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    var beforeSense: ((Int64) -> Void)?
    var afterSense: ((Int64) -> Void)?
    var stopAtTick = Int64.max
    var stopWhenSafe = true
    /// The first tick whose guard stage found the loop in the safe state (-1: none).
    private(set) var safeTick: Int64 = -1

    init(loop: RobotLoop) { self.loop = loop }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) {
        beforeSense?(tick.index)
        loop.sense(&tick)
        afterSense?(tick.index)
    }
    func estimate(_ tick: inout TickInfo) { loop.estimate(&tick) }
    func decide(_ tick: inout TickInfo) { loop.decide(&tick) }
    func guardCommands(_ tick: inout TickInfo) {
        loop.guardCommands(&tick)
        if loop.lifecycle.state == .safe {
            if safeTick < 0 { safeTick = tick.index }
            if stopWhenSafe { tick.stopRequested = true }
        }
    }
    func act(_ tick: inout TickInfo) { loop.act(&tick) }
    func record(_ tick: inout TickInfo) {
        loop.record(&tick)
        if tick.index >= stopAtTick { tick.stopRequested = true }
    }
}

/// The serving side of a pseudo-terminal vanishing mid-run, as when the `sinew virtual-bus` process is
/// killed: counts, on the loop thread, what the ticks after it cost.
final class HangUpBody: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    let transport: ProbedTransport
    let hangUpTick: Int64
    let lastTick: Int64
    let hangUp: () -> Void
    private(set) var activeUntilHangUp = true
    private(set) var disconnectedTick: Int64 = -1
    private(set) var safeTick: Int64 = -1
    private(set) var callsAfterDisconnectedTick = 0
    private(set) var callsAtEnd = 0
    private(set) var allocationsAtHangUp: UInt64 = 0
    private(set) var allocationsAfterDisconnectedTick: UInt64 = 0
    private(set) var allocationsAtEnd: UInt64 = 0
    private(set) var cpuNsAtHangUp: UInt64 = 0
    private(set) var cpuNsAtEnd: UInt64 = 0
    private(set) var wallNsAtHangUp: UInt64 = 0
    private(set) var wallNsAtEnd: UInt64 = 0
    private(set) var longestTickIntervalS = 0.0
    private var previousWakeNs: Int64?

    init(loop: RobotLoop, transport: ProbedTransport, hangUpTick: Int64, lastTick: Int64, hangUp: @escaping () -> Void)
    {
        self.loop = loop
        self.transport = transport
        self.hangUpTick = hangUpTick
        self.lastTick = lastTick
        self.hangUp = hangUp
    }

    static func threadCPUNs() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) {
        if tick.index < hangUpTick, let previous = previousWakeNs {
            longestTickIntervalS = max(longestTickIntervalS, Double(tick.wakeNs - previous) * 1e-9)
        }
        previousWakeNs = tick.wakeNs
        if tick.index == hangUpTick {
            activeUntilHangUp = loop.lifecycle.state == .active
            hangUp()
            allocationsAtHangUp = sinew_thread_allocations()
            cpuNsAtHangUp = Self.threadCPUNs()
            wallNsAtHangUp = MonotonicInstant.now().nanoseconds
        }
        loop.sense(&tick)
        if disconnectedTick < 0 && loop.busDisconnected { disconnectedTick = tick.index }
    }
    func estimate(_ tick: inout TickInfo) { loop.estimate(&tick) }
    func decide(_ tick: inout TickInfo) { loop.decide(&tick) }
    func guardCommands(_ tick: inout TickInfo) {
        loop.guardCommands(&tick)
        if safeTick < 0 && loop.lifecycle.state == .safe { safeTick = tick.index }
    }
    func act(_ tick: inout TickInfo) {
        loop.act(&tick)
        if tick.index == disconnectedTick { callsAfterDisconnectedTick = transport.calls }
    }
    func record(_ tick: inout TickInfo) {
        loop.record(&tick)
        // From the end of the tick that found the port gone: that tick threw the bus error, and Swift Testing
        // counts a throw as an allocation (the loop allocates nothing either way).
        if tick.index == disconnectedTick { allocationsAfterDisconnectedTick = sinew_thread_allocations() }
        if tick.index == lastTick {
            allocationsAtEnd = sinew_thread_allocations()
            cpuNsAtEnd = Self.threadCPUNs()
            wallNsAtEnd = MonotonicInstant.now().nanoseconds
            callsAtEnd = transport.calls
            tick.stopRequested = true
        }
    }
}

/// Closes the serving side of the rig's pseudo-terminal as a killed `sinew virtual-bus` does: the server
/// stops, then its primary descriptor is replaced by /dev/null (dup2 closes the primary, so the loop's
/// secondary is hung up; the number stays taken until the transport's deinit, so no descriptor another
/// test opens meanwhile can be closed by it).
func hangUpPseudoTerminal(of rig: SimulatedRig) {
    rig.server.stop()
    guard let primary = rig.primary else { return }
    let null = open("/dev/null", O_RDWR | O_CLOEXEC)
    _ = dup2(null, primary.fileDescriptor)
    _ = fcntl(primary.fileDescriptor, F_SETFD, FD_CLOEXEC)
    close(null)
}

/// Every way a bus can fail the running arm — its port vanishing, a servo dying mid-run, commands that
/// do not get through — ends in the safe state within the bus-error budget, naming what failed; and
/// shutdown says which servo's torque it could not set.
@Suite(.serialized) struct BusLossTests {
    func torqueEnable(_ rig: SimulatedRig, id: Int) -> Int64? {
        rig.server.withBus { $0.servo(id: UInt8(id))?.registerValue(named: "Torque Enable") }
    }

    func describeEvents(_ rig: SimulatedRig) -> String {
        rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe).joined(separator: "; ")
    }

    /// The virtual bus served on a pseudo-terminal vanishes mid-run (what a USB unplug does to a tty):
    /// the loop sees a disconnection in the very tick, counts bus errors, goes to the safe state within the
    /// bus-error budget with an event naming the bus, publishes `busDisconnected`, and keeps ticking at
    /// its rate without a system call on the dead descriptor, without a heap allocation and without
    /// burning its CPU. Shutdown then fails at once, naming every servo it could not reach.
    @Test func aVanishedPtyBusGoesSafeWithinTheBudgetWithoutSpinning() throws {
        try retryingDisturbedRuns { isLastAttempt in try vanishedBusRun(isLastAttempt: isLastAttempt) }
    }

    func vanishedBusRun(isLastAttempt: Bool) throws -> Bool {
        var probe: ProbedTransport?
        // Patient deadlines before the hang-up: a machine busy with other tests must not end the run early.
        let rig = try SimulatedRig(
            wireTiming: true, runMarginNs: 50_000_000, pseudoTerminal: true,
            wrapTransport: { inner in
                let p = ProbedTransport(inner)
                probe = p
                return p
            })
        defer { rig.server.stop() }
        let transport = try #require(probe)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let rate = rig.configuration.loop.rateHz
        let budget = rig.configuration.safety.busErrorBudget
        let hangUpTick = Int64(0.5 * rate)
        let lastTick = hangUpTick + Int64(1.0 * rate)
        let body = HangUpBody(
            loop: rig.loop, transport: transport, hangUpTick: hangUpTick, lastTick: lastTick,
            hangUp: { hangUpPseudoTerminal(of: rig) })
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                rate: .fixed(hertz: rate), fifoPriority: loopTestPriority, maxTicks: lastTick + 100),
            body: body)
        let report = try scheduler.run()
        if !body.activeUntilHangUp && !isLastAttempt && body.longestTickIntervalS > 0.02 {
            print(
                "vanished bus: run again, the machine stalled the loop thread for "
                    + "\(Int(1000 * body.longestTickIntervalS)) ms before the hang-up (safe then: \(describeEvents(rig)))"
            )
            return false
        }
        #expect(body.activeUntilHangUp, "safe before the hang-up: \(describeEvents(rig))")
        let cpuS = Double(body.cpuNsAtEnd - body.cpuNsAtHangUp) * 1e-9
        let wallS = Double(body.wallNsAtEnd - body.wallNsAtHangUp) * 1e-9
        let ticksAfter = lastTick - hangUpTick
        print(
            "vanished bus: disconnected in tick \(body.disconnectedTick) (hang-up before tick \(hangUpTick)), "
                + "safe in tick \(body.safeTick); \(rig.loop.busErrorCount) bus errors; after the hang-up "
                + "\(ticksAfter) ticks in \(String(format: "%.3f", wallS)) s took "
                + "\(String(format: "%.1f", 1000 * cpuS)) ms of loop-thread CPU, "
                + "\(body.callsAtEnd - body.callsAfterDisconnectedTick) transport calls and "
                + "\(body.allocationsAtEnd - body.allocationsAfterDisconnectedTick) allocations after that tick "
                + "(\(body.allocationsAfterDisconnectedTick - body.allocationsAtHangUp) counted in it, Swift Testing's "
                + "throw hook included); \(report.overruns) overruns")
        print("vanished bus: events: \(describeEvents(rig))")
        #expect(body.activeUntilHangUp)
        #expect(body.disconnectedTick == hangUpTick, "the tick right after the hang-up sees it")
        #expect(body.safeTick >= hangUpTick && body.safeTick - hangUpTick <= Int64(budget), "within the budget")
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(rig.loop.supervisor.safeStateCause == .busErrors)
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("bus \"arm\"") && text.contains("busErrors") && text.contains("disconnected"), "\(text)")
        #expect(rig.loop.supervisor.busName(event.busIndex) == "arm")
        #expect(rig.loop.busDisconnected)
        #expect(rig.loop.disconnectedBusName == "arm")
        #expect(rig.loop.disconnectedBusErrno != nil)
        #expect(rig.loop.busErrorCount > budget)
        if let error = rig.loop.lastBusError { #expect(error.isDisconnection, "\(error)") }
        #expect(body.callsAtEnd == body.callsAfterDisconnectedTick, "no call on the dead port after its tick")
        #expect(body.allocationsAtEnd - body.allocationsAfterDisconnectedTick == 0, "allocations on the loop thread")
        #expect(cpuS < 0.25 * wallS, "the loop does not spin on the dead descriptor")
        #expect(wallS < 2.0 * Double(ticksAfter) / rate, "the loop kept its rate")

        let start = MonotonicInstant.now()
        var shutdownError = ""
        do {
            try rig.loop.lifecycle.shutdown()
        } catch {
            shutdownError = "\(error)"
        }
        let shutdownS = Double(MonotonicInstant.now().nanoseconds(since: start)) * 1e-9
        print("vanished bus: shutdown in \(String(format: "%.3f", shutdownS)) s: \(shutdownError)")
        #expect(rig.loop.lifecycle.state == .shutdown)
        #expect(shutdownS < 0.5, "no retry waits on a dead port")
        for joint in rig.configuration.joints {
            #expect(
                shutdownError.contains("servo \(joint.servoID) (joint \"\(joint.name)\")"),
                "\(shutdownError)")
        }
        #expect(shutdownError.contains("bus \"arm\": port disconnected"), "\(shutdownError)")
        return true
    }

    /// A normal shutdown leaves every torque_off joint's servo with Torque Enable 0 and every hold joint's
    /// with 1, as read back from the virtual servos.
    @Test func shutdownLeavesTorqueAsEachJointIsConfigured() throws {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = ProbeBody(loop: rig.loop)
        body.stopAtTick = 200
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 300), body: body)
            .run()
        #expect(rig.loop.lifecycle.state == .active, "\(describeEvents(rig))")
        for joint in rig.configuration.joints { #expect(torqueEnable(rig, id: joint.servoID) == 1) }
        try rig.loop.lifecycle.shutdown()
        #expect(rig.loop.lifecycle.state == .shutdown)
        var seen: [String] = []
        for joint in rig.configuration.joints {
            let expected: Int64 = joint.safeState == .hold ? 1 : 0
            let value = torqueEnable(rig, id: joint.servoID)
            seen.append("\(joint.name)=\(value.map(String.init) ?? "?")")
            #expect(value == expected, "\(joint.name) (servo \(joint.servoID), \(joint.safeState))")
        }
        print("after shutdown, Torque Enable: \(seen.joined(separator: " "))")
        #expect(rig.configuration.joints.contains { $0.safeState == .hold })
        #expect(rig.configuration.joints.contains { $0.safeState != .hold })
    }

    /// A servo that stops answering before shutdown: shutdown tries it three times (sync write, then
    /// individual writes, each read back), then fails naming its joint, servo ID and bus; every other
    /// servo still gets its torque as configured.
    @Test func shutdownNamesAServoWhoseTorqueItCannotSet() throws {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = ProbeBody(loop: rig.loop)
        body.stopAtTick = 100
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 200), body: body)
            .run()
        #expect(rig.loop.lifecycle.state == .active, "\(describeEvents(rig))")
        let silent = try #require(rig.configuration.joints.first { $0.safeState != .hold })
        rig.server.withBus { $0.servo(id: UInt8(silent.servoID))?.isSilent = true }
        func transactions() -> [ServoID: UInt64] {
            Dictionary(
                uniqueKeysWithValues: rig.loop.busStatistics()[0].servos.map { ($0.id, $0.statistics.transactions) })
        }
        let before = transactions()
        var message = ""
        do {
            try rig.loop.lifecycle.shutdown()
            Issue.record("shutdown did not report the silent servo")
        } catch {
            message = "\(error)"
        }
        print("shutdown with servo \(silent.servoID) silent: \(message)")
        #expect(rig.loop.lifecycle.state == .shutdown)
        let named =
            "servo \(silent.servoID) (joint \"\(silent.name)\") on bus \"arm\": torque off not confirmed after 3 attempts"
        #expect(message.contains(named), "\(message)")
        for joint in rig.configuration.joints where joint.name != silent.name {
            #expect(!message.contains("joint \"\(joint.name)\""), "\(message)")
            #expect(torqueEnable(rig, id: joint.servoID) == (joint.safeState == .hold ? 1 : 0), "\(joint.name)")
        }
        // Each servo: the sync write and one read-back; the silent one also two individual writes, each read
        // back (3 attempts).
        let after = transactions()
        for joint in rig.configuration.joints {
            let id = UInt8(joint.servoID)
            let expected: UInt64 = joint.name == silent.name ? 6 : 2
            #expect((after[id] ?? 0) - (before[id] ?? 0) == expected, "servo \(id)")
        }
    }

    /// `silent=ID@SECONDS`: a servo that dies mid-run. The loop reaches the safe state within the
    /// bus-error budget, the event naming the joint, its servo and its bus.
    @Test func aServoFallingSilentMidRunIsNamedWithinTheBudget() throws {
        var faults = FaultInjection()
        faults.silences = [.init(id: 3, afterSeconds: 1.0)]
        let rig = try SimulatedRig(wireTiming: true, faults: faults, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let clock = try #require(rig.loop.simulationClock)
        let rate = rig.configuration.loop.rateHz
        let budget = rig.configuration.safety.busErrorBudget
        let body = ProbeBody(loop: rig.loop)
        var silentFromTick: Int64 = -1
        var silentFromS = 0.0
        body.afterSense = { tick in
            if silentFromTick < 0 && !rig.loop.supervisor.readingFresh[2] {
                silentFromTick = tick
                silentFromS = Double(clock.nanoseconds) * 1e-9
            }
        }
        _ = try Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: Int64(3 * rate)), body: body
        ).run()
        print(
            "servo 3 silent from 1.0 s: first unread in tick \(silentFromTick) (simulated "
                + "\(String(format: "%.4f", silentFromS)) s), safe in tick \(body.safeTick): \(describeEvents(rig))")
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(silentFromTick > 0)
        #expect(body.safeTick - silentFromTick == Int64(budget), "safe in the tick the budget is spent")
        #expect(silentFromS >= 1.0 && silentFromS < 1.0 + 2 / rate, "the first tick after its time misses it")
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("elbow_flex (servo 3, bus \"arm\"): busErrors"), "\(text)")
        #expect(event.servoID == 3)
    }

    /// A sync read that fails on one servo (here a servo that just died) still delivers the others'
    /// replies: their joints are decoded this tick, not left fresh with the previous tick's values.
    @Test func theOtherServosOfAFailedReadAreDecoded() throws {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let pan = try #require(rig.model.jointIndex(named: "shoulder_pan"))
        let panJoint = try #require(rig.configuration.joints.firstIndex { $0.name == "shoulder_pan" })
        let elbowJoint = try #require(rig.configuration.joints.firstIndex { $0.name == "elbow_flex" })
        let probeTick: Int64 = 100
        var movedTo = 0.0
        var before = 0.0
        var measured = 0.0
        var fresh: [Bool] = []
        let body = ProbeBody(loop: rig.loop)
        body.stopAtTick = probeTick
        body.beforeSense = { tick in
            guard tick == probeTick else { return }
            before = rig.loop.supervisor.measuredPositionRad[panJoint]
            // In the same tick: elbow_flex's servo dies, and a hand moves shoulder_pan by 0.2 rad.
            rig.server.withBus { $0.servo(id: 3)?.isSilent = true }
            movedTo = rig.robot.positions[pan] + 0.2
            rig.move(joint: pan, to: movedTo)
        }
        body.afterSense = { tick in
            guard tick == probeTick else { return }
            measured = rig.loop.supervisor.measuredPositionRad[panJoint]
            fresh = (0..<rig.configuration.joints.count).map { rig.loop.supervisor.readingFresh[$0] }
        }
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 200), body: body)
            .run()
        print(
            "read with servo 3 silent: shoulder_pan measured \(measured) rad (was \(before), moved to \(movedTo)); "
                + "fresh \(fresh)")
        #expect(fresh.count == rig.configuration.joints.count)
        for (j, isFresh) in fresh.enumerated() { #expect(isFresh == (j != elbowJoint), "joint \(j)") }
        #expect(abs(measured - movedTo) < 0.02, "shoulder_pan decoded from this tick's reply")
        #expect(rig.loop.busErrorCount > 0)
        #expect(rig.loop.lastBusError?.servoID == 3)
    }

    /// Commands that do not get through count against the bus-error budget like failed reads: every sync
    /// write failing (reads still fine) puts the robot in the safe state within the budget, the event
    /// naming the bus.
    @Test func failedSyncWritesCountAgainstTheBudget() throws {
        var probe: ProbedTransport?
        let rig = try SimulatedRig(
            wireTiming: true, lockstep: true,
            wrapTransport: { inner in
                let p = ProbedTransport(inner)
                probe = p
                return p
            })
        let transport = try #require(probe)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let budget = rig.configuration.safety.busErrorBudget
        let failFrom: Int64 = 100
        let body = ProbeBody(loop: rig.loop)
        body.beforeSense = { tick in if tick == failFrom { transport.failSyncWrites = true } }
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 400), body: body)
            .run()
        print(
            "sync writes failing from tick \(failFrom): safe in tick \(body.safeTick), "
                + "\(rig.loop.busErrorCount) bus errors: \(describeEvents(rig))")
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(rig.loop.supervisor.safeStateCause == .busErrors)
        // The write of tick N counts in tick N + 1's guard: the budget + 1st failed write, in tick N + budget + 1.
        #expect(body.safeTick == failFrom + Int64(budget) + 1)
        let event = try #require(rig.loop.supervisor.events.events.first)
        let text = rig.loop.supervisor.describe(event)
        #expect(text.contains("bus \"arm\": busErrors (bus:"), "\(text)")
        #expect(rig.loop.lastBusError?.instruction == .syncWrite)
        #expect(!rig.loop.busDisconnected)
    }

    /// Recovery reports what it could not clear instead of swallowing it: on Dynamixel a servo that does
    /// not answer its REBOOT, on Feetech a Torque Enable sync write that does not go out. The robot stays
    /// in the safe state; once the bus works again the recovery succeeds.
    @Test(arguments: ["dxl6", "so101"])
    func aFailedRecoveryNamesWhatItCouldNotClear(robot: String) throws {
        var probe: ProbedTransport?
        let rig = try SimulatedRig(
            robot: robot, wireTiming: true, lockstep: true,
            wrapTransport: { inner in
                let p = ProbedTransport(inner)
                probe = p
                return p
            })
        let transport = try #require(probe)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        #expect(rig.loop.lifecycle.enterSafeState(cause: nil, jointIndex: nil))
        let joint = rig.configuration.joints[2]
        if robot == "dxl6" {
            rig.server.withBus { $0.servo(id: UInt8(joint.servoID))?.isSilent = true }
        } else {
            transport.failSyncWrites = true
        }
        var message = ""
        do {
            try rig.loop.lifecycle.recover()
            Issue.record("the recovery did not fail")
        } catch {
            message = "\(error)"
        }
        print("\(robot): failed recovery: \(message)")
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(message.contains("cannot clear the servos for recovery"), "\(message)")
        if robot == "dxl6" {
            #expect(
                message.contains("servo \(joint.servoID) (joint \"\(joint.name)\") on bus \"arm\": REBOOT failed"),
                "\(message)")
            rig.server.withBus { $0.servo(id: UInt8(joint.servoID))?.isSilent = false }
        } else {
            #expect(message.contains("bus \"arm\": clearing torque of servo 1 (joint"), "\(message)")
            #expect(message.contains("servo \(joint.servoID) (joint \"\(joint.name)\")"), "\(message)")
            transport.failSyncWrites = false
        }
        try rig.loop.lifecycle.recover()
        #expect(rig.loop.lifecycle.state == .active)
    }
}
