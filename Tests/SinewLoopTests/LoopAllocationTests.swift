import CAllocCounter
import Foundation
import SinewPolicy
import SinewROS
import SinewRuntime
import Synchronization
import Testing

/// Runs the robot loop's stages and counts the loop thread's heap allocations between two ticks.
final class CountingBody: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    let countFrom: Int64
    let countTo: Int64
    var allocationsAtStart: UInt64 = 0
    var allocationsAtEnd: UInt64 = 0
    /// Called at the start of each tick with its index (inside the counted region: it must not allocate).
    var onTick: ((Int64) -> Void)?

    init(loop: RobotLoop, countFrom: Int64, countTo: Int64) {
        self.loop = loop
        self.countFrom = countFrom
        self.countTo = countTo
    }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) {
        if tick.index == countFrom { allocationsAtStart = sinew_thread_allocations() }
        onTick?(tick.index)
        loop.sense(&tick)
    }
    func estimate(_ tick: inout TickInfo) { loop.estimate(&tick) }
    func decide(_ tick: inout TickInfo) { loop.decide(&tick) }
    func guardCommands(_ tick: inout TickInfo) { loop.guardCommands(&tick) }
    func act(_ tick: inout TickInfo) { loop.act(&tick) }
    func record(_ tick: inout TickInfo) {
        loop.record(&tick)
        if tick.index == countTo {
            allocationsAtEnd = sinew_thread_allocations()
            tick.stopRequested = true
        }
    }
}

@Suite(.serialized) struct LoopAllocationTests {
    /// The whole tick — sync read over the pipe to the simulated servos, joint layer, policy, safety
    /// supervisor, sync write, record — allocates nothing once active, over 10,000 ticks.
    @Test func tenThousandTicksWithoutAHeapAllocation() throws {
        // A patient deadline: a reply the busy machine delays would cost a retry, and Swift Testing counts every
        // throw as an allocation (the loop itself allocates nothing either way).
        let rig = try SimulatedRig(wireTiming: false, runMarginNs: 200_000_000)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body)
        let report = try scheduler.run()
        #expect(report.ticks >= 10_200)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread")
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
        #expect(rig.loop.busErrorCount == 0)
    }

    /// The same with the IMU robot.yaml declares: the estimate stage reads its MAVLink bytes off the pipe,
    /// decodes them and runs the AHRS every tick, still without a heap allocation.
    @Test func tenThousandTicksWithTheIMUWithoutAHeapAllocation() throws {
        let rig = try SimulatedRig(wireTiming: false, runMarginNs: 200_000_000, withIMU: true)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body)
        let report = try scheduler.run()
        let imu = try #require(rig.loop.imu)
        print("IMU in the allocation run: \(imu.samplesReceived) samples over \(report.ticks) ticks")
        #expect(report.ticks >= 10_200)
        #expect(imu.samplesReceived > 20, "the IMU was read (the run lasts well under a second)")
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread")
        #expect(rig.loop.lifecycle.state == .active)
    }

    /// The humanoid's four buses, read together from the loop thread, by an I/O thread per bus, or one after
    /// another: 10,000 ticks without a heap allocation on the loop thread.
    @Test(arguments: [RobotConfiguration.BusIO.poll, .threads, .sequential])
    func tenThousandMultiBusTicksWithoutAHeapAllocation(busIO: RobotConfiguration.BusIO) throws {
        let rig = try MultiBusRig(robot: "humanoid-upper", busIO: busIO, runMarginNs: 200_000_000)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        #expect(rig.loop.busIO == busIO)
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body)
        let report = try scheduler.run()
        #expect(report.ticks >= 10_200)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread (\(busIO))")
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
        #expect(rig.loop.busErrorCount == 0)
    }

    /// The error and safe-state paths with several buses: every servo of one bus falls silent (a timeout, a
    /// quiet line and a retry in every tick), the robot goes to its safe state naming that bus and holds, the
    /// other bus read in every tick — without a heap allocation on the loop thread, from before the silence
    /// to a thousand ticks after it.
    @Test(arguments: [RobotConfiguration.BusIO.poll, .threads, .sequential])
    func multiBusErrorAndSafeStatePathsWithoutAHeapAllocation(busIO: RobotConfiguration.BusIO) throws {
        let rig = try MultiBusRig(robot: "so101-bimanual", busIO: busIO, runMarginNs: 500_000)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 1_300)
        body.onTick = { tick in if tick == 300 { rig.silence(bus: 1) } }
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 5_000), body: body)
        _ = try scheduler.run()
        let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
        print("\(busIO): \(rig.loop.busErrorCount) bus errors; \(events.prefix(3))")
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread (\(busIO))")
        #expect(rig.loop.lifecycle.state == .safe)
        #expect(rig.loop.busErrorCount > 1_000)
        #expect(events.first?.contains("bus \"right\"") == true, "\(events)")
    }

    /// With telemetry on — the snapshot ring drained by the recorder's thread and the servo-health tap published every
    /// tick (telemetry asks for it five times a second) and taken by another thread — the tick still allocates
    /// nothing, and the tap carries the STS3215's voltage and temperature from the tick's own sync read.
    @Test func tenThousandTicksWithTelemetryTapsWithoutAHeapAllocation() throws {
        let rig = try SimulatedRig(wireTiming: false, runMarginNs: 200_000_000)
        let recorder = rig.loop.attachRecorder(decimation: 1, capacity: 4096)
        let writer = RecordingWriter(recorder: recorder, path: nil, sinks: [])
        let tap = rig.loop.attachHealthTap(decimation: 1)
        let reading = Atomic<Bool>(true)
        let taken = Atomic<Int>(0)
        let reader = Thread {
            while reading.load(ordering: .relaxed) {
                if tap.frames.take() { taken.add(1, ordering: .relaxed) }
                usleep(200)
            }
        }
        reader.start()
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body)
        let report = try scheduler.run()
        reading.store(false, ordering: .relaxed)
        try writer.close()
        #expect(report.ticks >= 10_200)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread")
        #expect(taken.load(ordering: .relaxed) > 10)
        tap.frames.take()
        let frame = tap.frames.readSlot
        #expect(frame.tick > 10_000)
        #expect(tap.servos.count == 6 && tap.servos.allSatisfy { $0.readsVoltage && $0.readsTemperature })
        for i in 0..<frame.servoCount {
            #expect(frame.voltageV[i] > 5 && frame.voltageV[i] < 15, "servo \(i): \(frame.voltageV[i]) V")
            #expect(frame.temperatureC[i] > 0 && frame.temperatureC[i] < 80, "servo \(i): \(frame.temperatureC[i]) °C")
            #expect(frame.transactions[i] > 10_000)
        }
    }
}

/// The tick with ROS 2 on: the `ros` policy in the decide stage, the recorder's thread publishing every tick's
/// joint_states (and tf, diagnostics with the servo-health tap's temperatures) over DDS, and trajectories and direct targets arriving from another
/// participant the whole time, taken by the tick from the policy's triple buffers — still no heap allocation on the
/// loop thread.
@Suite(.serialized) struct LoopAllocationWithROSTests {
    @Test func tenThousandTicksWithDDSOnWithoutAHeapAllocation() throws {
        let configuration =
            "<CycloneDDS><Domain id=\"any\"><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
            + "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
            + "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers><Peer address=\"127.0.0.1\"/></Peers>"
            + "</Discovery></Domain></CycloneDDS>"
        let domain = 100 + Int(getpid() % 30) * 4 + 3
        let names = try SimulatedRig().configuration.joints.map(\.name)
        let policy = ExternalCommandPolicy(jointNames: names)
        let rig = try SimulatedRig(wireTiming: false, runMarginNs: 200_000_000, policy: policy)
        var settings = rig.configuration.ros
        settings.enabled = true
        settings.jointStatesRateHz = 500
        let robot = rig.configuration.replacingROS(settings)
        let network = ROSNetworkSettings(domainID: domain, namespace: "alloc")
        var networkWithConfiguration = network
        networkWithConfiguration.interface = "lo"
        networkWithConfiguration.peers = ["127.0.0.1"]
        networkWithConfiguration.multicast = false
        #expect(networkWithConfiguration.cycloneConfiguration != nil)
        let node = try ROSNode(
            configuration: robot, model: rig.model, network: networkWithConfiguration,
            estop: rig.loop.supervisor.emergencyStop, policy: policy,
            tickIndex: { [loop = rig.loop] in loop.currentTickIndex })
        // The servo-health tap too, every 10 ticks, taken by the publisher for its diagnostics.
        let tap = rig.loop.attachHealthTap(decimation: 10)
        let publisher = ROSStatePublisher(
            node: node, configuration: robot, model: rig.model, policyName: "ros", healthTap: tap)
        let recorder = rig.loop.attachRecorder()
        let writer = RecordingWriter(recorder: recorder, path: nil, sinks: [publisher], pollIntervalSeconds: 0.001)
        node.start()
        defer { node.stop() }
        // The other side: a participant that streams trajectories and targets at the robot.
        let peer = try DDSParticipant(domainID: domain, configuration: configuration)
        let trajectoryWriter = try peer.rawWriter(
            topic: network.topic("joint_trajectory"), typeName: ROSType.jointTrajectory, qos: .rosDefault)
        let commandWriter = try peer.rawWriter(
            topic: network.topic("cmd"), typeName: ROSType.jointState, qos: .rosDefault)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let stop = StopFlag()
        // Near where the arm is, so no target is a step the guard refuses.
        let base = rig.loop.supervisor.measuredPositionRad[0]
        let sender = Thread {
            var k = 0
            while !stop.flag.load(ordering: .relaxed) {
                k += 1
                if k % 5 == 0 {
                    peer.writeRaw(commandWriter, JointStateMessage(name: [names[0]], position: [base + 0.01]).encode())
                } else {
                    let message = JointTrajectoryMessage(
                        jointNames: [names[0]],
                        points: [
                            JointTrajectoryPointMessage(positions: [base]),
                            JointTrajectoryPointMessage(
                                positions: [base + 0.02], timeFromStart: ROSTime(sec: 0, nanosec: 50_000_000)),
                        ])
                    peer.writeRaw(trajectoryWriter, message.encode())
                }
                usleep(2_000)
            }
        }
        sender.start()
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body)
        let report = try scheduler.run()
        stop.flag.store(true, ordering: .relaxed)
        try writer.close()
        let ros = node.report
        print(
            "DDS on: \(report.ticks) ticks, \(policy.trajectoriesTaken) trajectories and \(policy.targetsTaken) targets "
                + "taken by the tick, \(publisher.publishedCounts["joint_states"] ?? 0) joint_states published; node \(ros)"
        )
        #expect(report.ticks >= 10_200)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread")
        #expect(policy.trajectoriesTaken > 10 && policy.targetsTaken > 2)
        // joint_states goes out at its rate on the wall clock (500 Hz), and the ticks run as fast as they can.
        #expect((publisher.publishedCounts["joint_states"] ?? 0) > 20)
        #expect((publisher.publishedCounts["diagnostics"] ?? 0) >= 1)
        #expect(
            rig.loop.lifecycle.state == .active,
            "\(rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe))")
    }
}

final class StopFlag: @unchecked Sendable {
    let flag = Atomic<Bool>(false)
}
