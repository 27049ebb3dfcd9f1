import Foundation
import SinewBus
import SinewRuntime
import SinewSim
import Testing

/// Runs the robot loop and lets a test interfere at one tick: move the simulated robot, break a servo,
/// corrupt a measurement or a command, stall the loop. Records the tick at which the loop went safe.
final class ProvokedLoop: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    let provokeAt: Int64
    var beforeSense: ((Int64) -> Void)?
    var afterSense: ((Int64) -> Void)?
    var afterEstimate: ((Int64) -> Void)?
    var afterDecide: ((Int64) -> Void)?
    var skipDecideFromProvocation = false
    var stallNs: Int64 = 0
    var safeAtTick: Int64 = -1
    var provokedAtTimeS = 0.0
    /// The longest interval between two ticks' wake-ups, s (a stall of the test machine).
    var longestTickIntervalS = 0.0
    private var previousWakeNs: Int64?

    init(loop: RobotLoop, provokeAt: Int64) {
        self.loop = loop
        self.provokeAt = provokeAt
    }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) {
        if let previous = previousWakeNs {
            longestTickIntervalS = max(longestTickIntervalS, Double(tick.wakeNs - previous) * 1e-9)
        }
        previousWakeNs = tick.wakeNs
        if tick.index == provokeAt { provokedAtTimeS = Double(tick.wakeNs - tick.loopStartNs) * 1e-9 }
        if tick.index >= provokeAt { beforeSense?(tick.index) }
        loop.sense(&tick)
        if tick.index >= provokeAt { afterSense?(tick.index) }
    }
    func estimate(_ tick: inout TickInfo) {
        loop.estimate(&tick)
        if tick.index >= provokeAt { afterEstimate?(tick.index) }
    }
    func decide(_ tick: inout TickInfo) {
        if !(skipDecideFromProvocation && tick.index >= provokeAt) { loop.decide(&tick) }
        if tick.index >= provokeAt { afterDecide?(tick.index) }
        if stallNs > 0 && tick.index >= provokeAt {
            let until = MonotonicInstant.now().nanoseconds + UInt64(stallNs)
            while MonotonicInstant.now().nanoseconds < until {}
        }
    }
    func guardCommands(_ tick: inout TickInfo) {
        loop.guardCommands(&tick)
        if safeAtTick < 0 && loop.lifecycle.state == .safe {
            safeAtTick = tick.index
            tick.stopRequested = true
        }
    }
    func act(_ tick: inout TickInfo) { loop.act(&tick) }
    func record(_ tick: inout TickInfo) { loop.record(&tick) }
}

enum Provocation: String, CaseIterable, Sendable {
    case positionLimit, velocityLimit, effortLimit, stepLimit, workspaceLimit, staleCommand, busErrors
    case servoHardwareError, overrun, emergencyStop
}

@Suite(.serialized) struct SafetyInSimulationTests {
    static let provokeAt: Int64 = 100

    /// Each safety rule, triggered on the simulated SO-101 while it follows its trajectory: the loop reaches
    /// the safe state in the tick the rule fires (the watchdog, bus-error and overrun rules fire once their
    /// budget is spent), and the event is recorded with its time, cause and joint. Every rule but the overrun
    /// rule runs in lockstep on the simulation clock: deterministic, scored as it comes. The overrun rule is
    /// about real time: its run is repeated (at most three attempts, the last scored) only when the loop
    /// thread was measured stalled by the machine for over 20 ms, and says so.
    @Test(arguments: Provocation.allCases)
    func ruleBringsTheRobotToItsSafeState(_ provocation: Provocation) throws {
        if provocation == .overrun {
            try retryingDisturbedRuns { isLastAttempt in try provokedRun(provocation, isLastAttempt: isLastAttempt) }
        } else {
            _ = try provokedRun(provocation, isLastAttempt: true)
        }
    }

    func provokedRun(_ provocation: Provocation, isLastAttempt: Bool) throws -> Bool {
        let realTime = provocation == .overrun
        let rig = try SimulatedRig(wireTiming: false, lockstep: !realTime)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = ProvokedLoop(loop: rig.loop, provokeAt: Self.provokeAt)
        let elbow = try #require(rig.configuration.jointIndex(named: "elbow_flex"))
        let elbowInModel = try #require(rig.model.jointIndex(named: "elbow_flex"))
        let elbowServo = rig.configuration.joints[elbow].servoID
        let supervisor = rig.loop.supervisor
        var expectedJoint: Int? = elbow
        var budgetTicks: Int64 = 0
        switch provocation {
        case .positionLimit:
            // Someone pushes the elbow past its range.
            let upper = supervisor.configuration.joints[elbow].positionMaxRad
            body.beforeSense = { tick in
                if tick == Self.provokeAt { rig.move(joint: elbowInModel, to: upper + 0.2) }
            }
        case .velocityLimit:
            body.beforeSense = { tick in
                if tick == Self.provokeAt { rig.move(joint: elbowInModel, velocityRadPerS: 40) }
            }
        case .effortLimit:
            // A servo reporting a load far beyond the joint's effort limit.
            body.afterSense = { _ in supervisor.measuredEffortNm[elbow] = 1e3 }
        case .stepLimit:
            // A policy glitch: the command jumps by a radian in one tick.
            body.afterDecide = { _ in supervisor.commandedPositionRad[elbow] += 1.0 }
        case .workspaceLimit:
            expectedJoint = nil
            try #require(supervisor.framePositionM.count >= 3, "robot.yaml declares a workspace box")
            body.afterEstimate = { _ in supervisor.framePositionM[2] = -0.5 }
        case .staleCommand:
            expectedJoint = nil
            body.skipDecideFromProvocation = true
            budgetTicks = Int64(rig.configuration.safety.watchdogMs / 1000 * rig.configuration.loop.rateHz) + 2
        case .busErrors:
            expectedJoint = nil
            // Every servo stops hearing the host (as after a baud-rate mismatch).
            body.beforeSense = { tick in
                if tick == Self.provokeAt { rig.server.withBus { $0.hostBaudRate = 57_600 } }
            }
            budgetTicks = Int64(rig.configuration.safety.busErrorBudget) + 1
        case .servoHardwareError:
            let elbowServoIsOnTheBus = rig.server.withBus { $0.servo(id: UInt8(elbowServo)) != nil }
            try #require(elbowServoIsOnTheBus, "servo \(elbowServo) is on the virtual bus")
            body.beforeSense = { tick in
                if tick == Self.provokeAt {
                    rig.server.withBus { bus in bus.servo(id: UInt8(elbowServo))?.injectFault(.overload) }
                }
            }
        case .overrun:
            expectedJoint = nil
            body.stallNs = 3_000_000
            budgetTicks = 12
        case .emergencyStop:
            expectedJoint = nil
            body.afterDecide = { tick in if tick == Self.provokeAt { supervisor.emergencyStop.pressKeyboardStop() } }
        }
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                rate: realTime ? .fixed(hertz: rig.configuration.loop.rateHz) : .asFastAsPossible,
                fifoPriority: realTime ? loopTestPriority : nil, maxTicks: 2000),
            body: body)
        _ = try scheduler.run()
        rig.server.stop()
        if !isLastAttempt && body.longestTickIntervalS > 0.02 {
            let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
            print(
                "\(provocation): run again, the machine stalled the loop thread for "
                    + "\(Int(1000 * body.longestTickIntervalS)) ms (safe at tick \(body.safeAtTick): \(events))")
            return false
        }

        #expect(rig.loop.lifecycle.state == .safe, "\(provocation): the loop did not go safe")
        #expect(body.safeAtTick >= Self.provokeAt)
        #expect(
            body.safeAtTick - Self.provokeAt <= budgetTicks,
            "\(provocation): safe \(body.safeAtTick - Self.provokeAt) ticks late")
        let events = supervisor.events.events
        let event = try #require(events.first, "\(provocation): no event recorded")
        #expect(event.cause.description == provocation.rawValue, "\(events.map(supervisor.describe))")
        #expect(event.timeSeconds >= body.provokedAtTimeS - 1e-6 && event.timeSeconds < body.provokedAtTimeS + 1)
        if let expectedJoint {
            #expect(Int(event.jointIndex) == expectedJoint, "\(supervisor.describe(event))")
        }
        // Torque follows each joint's safe-state behaviour: the hold joints keep it, the others drop it.
        for (j, joint) in rig.configuration.joints.enumerated() {
            #expect(supervisor.outputTorqueEnabled[j] == (joint.safeState == .hold))
        }
        return true
    }
}
