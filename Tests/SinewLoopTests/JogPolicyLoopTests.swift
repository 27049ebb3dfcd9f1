import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy
import SinewRuntime
import Testing

/// The `jog` policy on the simulated SO-101, in lockstep; its input set as a program would (the terminal's
/// keys and a joystick go through the same hand-off).
@Suite(.serialized) struct JogPolicyLoopTests {
    @Test func jogMovesTheFrameAlongTheAskedAxisAndStopsWhenLetGo() throws {
        let probe = try SimulatedRig(lockstep: true)
        let input = JogInput()
        let policy = try JogPolicy(
            model: probe.model, jointNames: probe.configuration.joints.map(\.name),
            settings: JogPolicy.Settings(frame: "gripper_frame_link"), input: input,
            limits: CartesianPolicyLoopTests.limits(probe), loopRateHz: 500, wallClockNs: { 0 })
        let rig = try SimulatedRig(lockstep: true, policy: policy)
        // Start from a pose with room to move: the arm reaching forward.
        for (name, q) in zip(rig.configuration.joints.map(\.name), [0.0, -0.7, 0.7, 1.1, 0.0, 0.5]) {
            rig.move(joint: try #require(rig.model.jointIndex(named: name)), to: q)
        }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let kinematics = try PolicyKinematics(model: rig.model, jointNames: rig.configuration.joints.map(\.name))
        let link = try #require(rig.model.linkIndex(named: "gripper_frame_link"))
        func frame() -> SIMD3<Double> {
            kinematics.setPositions(rig.loop.supervisor.measuredPositionRad)
            return kinematics.linkPose(link).translationVector
        }
        let start = frame()
        var atRelease = SIMD3<Double>.zero
        let body = ProbeBody(loop: rig.loop)
        body.beforeSense = { tick in
            if tick == 1 { input.set(.program, axes: (1, 0, 0, 0, 0, 0)) }
            if tick == 500 {
                atRelease = frame()
                input.set(.program, axes: (0, 0, 0, 0, 0, 0))
            }
        }
        body.stopAtTick = 1000
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 1010), body: body)
            .run()
        let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
        #expect(events.isEmpty, "\(events)")
        let end = frame()
        let moved = atRelease - start
        let drift = end - atRelease
        print("jog +x at 0.05 m/s for 1 s: moved \(moved * 1000) mm; after release \(drift * 1000) mm more")
        // 1 s at up to 0.05 m/s, ramping at 0.5 m/s² (0.1 s each way): about 45 mm along x, little elsewhere.
        #expect(moved.x > 0.035 && moved.x < 0.055)
        #expect(abs(moved.y) < 0.003 && abs(moved.z) < 0.006)
        // Let go: it decelerates within 0.1 s (≤ 2.5 mm) and stays.
        #expect(abs(drift.x) < 0.006 && abs(drift.y) < 0.003 && abs(drift.z) < 0.006)
        try rig.loop.lifecycle.shutdown()
    }

    /// 10,000 ticks of jogging (the input read from its hand-offs, the pose correction, the differential
    /// solution) allocate nothing, the command changing on the way.
    @Test func jogTicksAllocateNothing() throws {
        let probe = try SimulatedRig(lockstep: true)
        let input = JogInput()
        let policy = try JogPolicy(
            model: probe.model, jointNames: probe.configuration.joints.map(\.name),
            settings: JogPolicy.Settings(frame: "gripper_frame_link"), input: input,
            limits: CartesianPolicyLoopTests.limits(probe), loopRateHz: 500, wallClockNs: { 0 })
        let rig = try SimulatedRig(lockstep: true, policy: policy)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        input.set(.program, axes: (0.2, 0, 0, 0, 0, 0.3))
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        body.onTick = { tick in
            // Back and forth: a 2 s period, input published from the loop thread itself here.
            if tick % 1000 == 0 { input.set(.program, axes: (tick % 2000 == 0 ? 0.2 : -0.2, 0, 0, 0, 0, 0.3)) }
        }
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 10_300), body: body)
            .run()
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0)
        try rig.loop.lifecycle.shutdown()
    }

    /// A command that lapses (a key let go: its expiry passed) stops the arm like a zero command.
    @Test func aLapsedCommandCountsForNothing() {
        let input = JogInput()
        input.set(.keyboard, axes: (1, 0, 0, 0, 0, 0), expiresAtNs: 1_000)
        input.set(.joystick, axes: (0, 0.5, 0, 0, 0, 0))
        let before = input.read(nowNs: 999)
        let after = input.read(nowNs: 1_000)
        #expect(before.0 == 1 && before.1 == 0.5)
        #expect(after.0 == 0 && after.1 == 0.5)
        input.set(.program, axes: (.nan, 3, -3, 0, 0, 0))
        let clamped = input.read(nowNs: 0)
        #expect(clamped.0 == 0 && clamped.1 == 1 && clamped.2 == -1)
    }
}
