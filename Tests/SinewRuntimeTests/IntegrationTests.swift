import CAllocCounter
import Foundation
import SinewRuntime
import Testing

final class QuietNode: LifecycleNode {
    var safeEntries = 0
    func onConfigure() throws(HookFailure) {}
    func onCleanup() throws(HookFailure) {}
    func onActivate() throws(HookFailure) {}
    func onDeactivate() throws(HookFailure) {}
    func onEnterSafeState(cause: SafetyCause?, jointIndex: Int?) { safeEntries += 1 }
    func onRecover() throws(HookFailure) {}
    func onShutdown() throws(HookFailure) {}
}

/// The runtime pieces wired the way the lead's tick will be: a simulated first-order joint response,
/// a sine policy, the supervisor in the guard stage, the lifecycle entering the safe state and recovering,
/// and a snapshot per tick into the recorder.
final class FullStackBody: ControlTickBody, @unchecked Sendable {
    let supervisor: SafetySupervisor
    let lifecycle: Lifecycle<QuietNode>
    let recorder: TickRecorder
    let joints: Int
    var lastCommandTimeNs: Int64 = 0
    var allocationsAtStart: UInt64 = 0
    var allocationsAtEnd: UInt64 = 0
    var safeTicks = 0
    let countFrom: Int64 = 100
    let countTo: Int64 = 10_100

    init(supervisor: SafetySupervisor, lifecycle: Lifecycle<QuietNode>, recorder: TickRecorder) {
        self.supervisor = supervisor
        self.lifecycle = lifecycle
        self.recorder = recorder
        joints = supervisor.jointCount
    }

    func sense(_ tick: inout TickInfo) {
        if tick.index == countFrom { allocationsAtStart = sinew_thread_allocations() }
        for i in 0..<joints {
            let target = supervisor.outputPositionRad[i]
            let previous = supervisor.measuredPositionRad[i]
            supervisor.measuredPositionRad[i] = previous + 0.5 * (target - previous)
            supervisor.measuredVelocityRadPerS[i] = (supervisor.measuredPositionRad[i] - previous) * 5_000
        }
    }

    func estimate(_ tick: inout TickInfo) {
        supervisor.framePositionM[0] = 0.1 * supervisor.measuredPositionRad[0]
        supervisor.framePositionM[1] = 0
        supervisor.framePositionM[2] = 0.3
    }

    func decide(_ tick: inout TickInfo) {
        let t = tick.secondsSinceStart
        for i in 0..<joints { supervisor.commandedPositionRad[i] = 0.3 * sin(2 * Double.pi * t + Double(i)) }
        lastCommandTimeNs = tick.wakeNs
        // An operator's e-stop, then a recovery a while later.
        if tick.index == 4_000 { supervisor.emergencyStop.pressKeyboardStop() }
        if tick.index == 4_500 {
            try? lifecycle.recover()
            supervisor.rearm()
        }
    }

    func guardCommands(_ tick: inout TickInfo) {
        let verdict = supervisor.guardTick(SafetyTickInput(tick: tick, lastCommandTimeNs: lastCommandTimeNs))
        if verdict.enteredThisTick {
            lifecycle.enterSafeState(cause: verdict.cause, jointIndex: verdict.jointIndex)
        }
        if verdict.isSafeState { safeTicks += 1 }
    }

    func act(_ tick: inout TickInfo) {}

    func record(_ tick: inout TickInfo) {
        if let slot = recorder.reserve() {
            slot.header.pointee = TickSnapshotHeader(
                tick: tick.index, timeSeconds: tick.secondsSinceStart, state: lifecycle.state,
                safetyCause: supervisor.safeStateCause, wakeLatenessNs: tick.latenessNs, stageNs: tick.stageNs)
            for i in 0..<joints {
                slot.positionRad[i] = supervisor.measuredPositionRad[i]
                slot.velocityRadPerS[i] = supervisor.measuredVelocityRadPerS[i]
                slot.effortNm[i] = supervisor.measuredEffortNm[i]
                slot.commandRad[i] = supervisor.outputPositionRad[i]
            }
            recorder.commit()
        }
        if tick.index == countTo { allocationsAtEnd = sinew_thread_allocations() }
    }
}

@Suite("Runtime integration") struct IntegrationTests {
    @Test("scheduler + supervisor + lifecycle + recorder: zero allocations on the loop thread over 10,000 ticks")
    func fullStackZeroAllocations() throws {
        let names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
        let limits = JointSafetyLimits(
            positionMinRad: -2, positionMaxRad: 2, positionMarginRad: 0.05, velocityLimitRadPerS: 50,
            effortLimitNm: 5, maxStepRadPerTick: 0.01, stepFaultRadPerTick: 0.5, safeState: .hold)
        let supervisor = SafetySupervisor(
            configuration: SafetyConfiguration(
                jointNames: names, joints: Array(repeating: limits, count: names.count),
                workspaceBoxes: [WorkspaceBox(frameName: "gripper_frame", minM: (-1, -1, 0), maxM: (1, 1, 1))],
                commandTimeoutNs: 100_000_000, busErrorBudget: 3, overrunBudget: 1_000))
        supervisor.rearm()
        let lifecycle = Lifecycle(node: QuietNode())
        try lifecycle.configure()
        try lifecycle.activate()
        let recorder = TickRecorder(jointNames: names, capacity: 16_384)
        let path = temporaryPath("integration.csv")
        defer { unlink(path) }
        let writer = try RecordingWriter(recorder: recorder, path: path)
        let body = FullStackBody(supervisor: supervisor, lifecycle: lifecycle, recorder: recorder)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 5_000), maxTicks: 10_101), body: body)
        let report = try scheduler.run()
        try writer.close()

        #expect(report.ticks == 10_101)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0)
        #expect(lifecycle.state == .active)
        #expect(lifecycle.node.safeEntries == 1)
        #expect(body.safeTicks == 500)
        #expect(supervisor.events.count == 1)
        #expect(supervisor.events.events.first?.cause == .emergencyStop)
        #expect(writer.snapshotsWritten + recorder.dropped == 10_101)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == writer.snapshotsWritten + 1)
        #expect(lines.contains { $0.contains(",safe,emergencyStop,") })
    }
}
