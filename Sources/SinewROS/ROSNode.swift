import CSinewDDS
import Foundation
import SinewKinematics
import SinewPolicy
import SinewRuntime
import Synchronization

/// What the node counted, for `sinew run --json` (`ros`), the diagnostics topic and the run's notices.
public struct ROSNodeReport: Sendable, Equatable {
    public var published: [String: Int] = [:]
    public var trajectoriesAccepted = 0
    public var trajectoriesRefused = 0
    public var commandsAccepted = 0
    public var commandsRefused = 0
    /// Samples that did not decode (any topic), also counted in the refusals of their topic.
    public var malformedSamples = 0
    public var estopsReceived = 0
    public var recoveriesRequested = 0
    /// The loop's tick when the first e-stop sample was taken, and the first tick the robot was in its safe state
    /// after it (the same loop segment's counting).
    public var estopReceivedTick: Int64?
    public var safeStateTick: Int64?
    public var lastRefusal: String?
    /// Sent → taken by the tick, for trajectories and targets, µs (nil: none measured).
    public var commandLatencyP50Us: Double?
    public var commandLatencyP99Us: Double?
    public init() {}
}

/// Sinew's robot on ROS 2's DDS wire (Cyclone DDS, ROS 2's topic and type conventions; docs/ros2.md): one participant
/// with the robot's publications (fed by ``ROSStatePublisher`` on the recorder's thread) and its subscriptions,
/// served by a thread of the node's own that hands commands to the policy (trajectories and targets into an
/// ``ExternalCommandPolicy``'s triple buffers) and e-stops to the e-stop sources. Nothing here runs in the tick.
public final class ROSNode: @unchecked Sendable {
    // @unchecked: the counters sit behind a Mutex; the rest is set in init, or the node thread's.
    public let network: ROSNetworkSettings
    public let participant: DDSParticipant
    public let jointNames: [String]
    let estop: EmergencyStopSources
    let policy: ExternalCommandPolicy?
    let intake: ROSCommandIntake
    let tickIndex: @Sendable () -> Int64
    let trajectoryStepNs: Int64

    // Writers (used by the publisher, on the recorder's thread).
    let jointStatesWriter: dds_entity_t
    let tfWriter: dds_entity_t
    let imuWriter: dds_entity_t?
    let diagnosticsWriter: dds_entity_t
    let descriptionWriter: dds_entity_t

    // Readers (the node thread's).
    let trajectoryReader: DDSRawTaker
    let commandReader: DDSRawTaker
    let estopReader: DDSRawTaker
    let recoverReader: DDSRawTaker
    private let waitset: dds_entity_t
    private var guardCondition: dds_entity_t = 0

    private let counters = Mutex(ROSNodeReport())
    private let stopFlag = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)

    /// - Parameters:
    ///   - configuration, model: the robot (joints, limits, the URDF for `robot_description`).
    ///   - estop: where an `estop` sample stops the robot and a `recover` sample asks for recovery.
    ///   - policy: the loop's policy when it follows ROS 2 (`type: ros`); otherwise `joint_trajectory` and `cmd`
    ///     samples are refused (counted, and said once).
    ///   - tickIndex: the loop's tick now (``RobotLoop/currentTickIndex``).
    public init(
        configuration: RobotConfiguration, model: RobotModel, network: ROSNetworkSettings,
        estop: EmergencyStopSources, policy: ExternalCommandPolicy?, tickIndex: @escaping @Sendable () -> Int64
    ) throws(ROSError) {
        self.network = network
        jointNames = configuration.joints.map(\.name)
        self.estop = estop
        self.policy = policy
        self.tickIndex = tickIndex
        trajectoryStepNs = Int64(((policy?.trajectoryStepS ?? 0.01) * 1e9).rounded())
        let limits = configuration.jointSafetyLimits(against: model)
        intake = ROSCommandIntake(
            jointNames: jointNames, positionMinRad: limits.map(\.positionMinRad),
            positionMaxRad: limits.map(\.positionMaxRad))
        participant = try DDSParticipant(domainID: network.domainID, configuration: network.cycloneConfiguration)
        let p = participant
        jointStatesWriter = try p.typedWriter(
            topic: network.topic("joint_states"), type: SINEW_ROS_JOINT_STATE,
            qos: .rosDefault)
        tfWriter = try p.typedWriter(
            topic: network.topic("tf"), type: SINEW_ROS_TF_MESSAGE,
            qos: DDSQoS(reliable: true, depth: 100))
        imuWriter =
            configuration.imu == nil
            ? nil
            : try p.typedWriter(
                topic: network.topic("imu"), type: SINEW_ROS_IMU, qos: .sensorData)
        diagnosticsWriter = try p.typedWriter(
            topic: network.topic("diagnostics"),
            type: SINEW_ROS_DIAGNOSTIC_ARRAY, qos: .rosDefault)
        descriptionWriter = try p.typedWriter(
            topic: network.topic("robot_description"), type: SINEW_ROS_STRING,
            qos: .latched)
        trajectoryReader = DDSRawTaker(
            reader: try p.rawReader(
                topic: network.topic("joint_trajectory"), typeName: ROSType.jointTrajectory, qos: .rosDefault))
        // Best effort matches both reliable and best-effort senders of a stream of targets.
        commandReader = DDSRawTaker(
            reader: try p.rawReader(topic: network.topic("cmd"), typeName: ROSType.jointState, qos: .sensorData),
            capacity: 64 << 10)
        estopReader = DDSRawTaker(
            reader: try p.rawReader(topic: network.topic("estop"), typeName: ROSType.empty, qos: .rosDefault),
            capacity: 4096)
        recoverReader = DDSRawTaker(
            reader: try p.rawReader(topic: network.topic("recover"), typeName: ROSType.empty, qos: .rosDefault),
            capacity: 4096)
        var guardHandle: dds_entity_t = 0
        waitset = sinew_dds_waitset(p.handle, &guardHandle)
        guard waitset > 0 else { throw ROSError("cannot make a DDS waitset: \(DDSParticipant.text(waitset))") }
        guardCondition = guardHandle
        for (token, taker) in [trajectoryReader, commandReader, estopReader, recoverReader].enumerated() {
            let rc = sinew_dds_waitset_attach_reader(waitset, taker.reader, Int64(token + 1))
            guard rc >= 0 else { throw ROSError("cannot wait on a DDS reader: \(DDSParticipant.text(rc))") }
        }
        if let text = try? String(contentsOfFile: configuration.modelPath, encoding: .utf8) {
            publishDescription(text)
        }
    }

    deinit { stop() }

    /// Starts the thread that takes what arrives (call once, before the loop starts).
    public func start() {
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            self.serve()
            self.running.store(false, ordering: .releasing)
        }
        thread.name = "sinew-ros"
        thread.start()
    }

    /// Ends the thread (the participant lives until the node goes).
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        if guardCondition > 0 { sinew_dds_wake(guardCondition) }
        while running.load(ordering: .acquiring) { usleep(1000) }
    }

    /// What was counted so far (any thread).
    public var report: ROSNodeReport {
        var report = counters.withLock { $0 }
        if let latencies = policy?.latenciesNs(), !latencies.isEmpty {
            let sorted = latencies.sorted()
            report.commandLatencyP50Us = Double(sorted[sorted.count / 2]) * 1e-3
            report.commandLatencyP99Us = Double(sorted[min(sorted.count - 1, sorted.count * 99 / 100)]) * 1e-3
        }
        return report
    }

    func count(_ body: (inout ROSNodeReport) -> Void) { counters.withLock { body(&$0) } }

    // MARK: The node thread

    private func serve() {
        while !stopFlag.load(ordering: .acquiring) {
            _ = sinew_dds_wait(waitset, 100_000_000)
            sinew_dds_reset_guard(guardCondition)
            // E-stops first: they must reach the guard stage at once.
            while estopReader.take({ bytes, _, _ in self.takeEstop(bytes) }) {}
            while recoverReader.take({ bytes, _, _ in self.takeRecover(bytes) }) {}
            while commandReader.take({ bytes, sent, truncated in self.takeCommand(bytes, sent, truncated) }) {}
            while trajectoryReader.take({ bytes, sent, truncated in self.takeTrajectory(bytes, sent, truncated) }) {}
        }
    }

    /// Any sample on `estop` stops the robot, even one that does not decode: a stop is never refused.
    private func takeEstop(_ bytes: UnsafeRawBufferPointer) {
        estop.trigger(.ros)
        let tick = tickIndex()
        var malformed = false
        do { try EmptyMessage.decode(bytes) } catch { malformed = true }
        count {
            $0.estopsReceived += 1
            if malformed { $0.malformedSamples += 1 }
            if $0.estopReceivedTick == nil { $0.estopReceivedTick = tick }
        }
    }

    private func takeRecover(_ bytes: UnsafeRawBufferPointer) {
        do {
            try EmptyMessage.decode(bytes)
        } catch {
            count {
                $0.malformedSamples += 1
                $0.lastRefusal = "recover: \(error)"
            }
            return
        }
        estop.requestRecovery()
        count { $0.recoveriesRequested += 1 }
    }

    private func refuse(_ reason: String, malformed: Bool, trajectory: Bool) {
        count {
            if trajectory { $0.trajectoriesRefused += 1 } else { $0.commandsRefused += 1 }
            if malformed { $0.malformedSamples += 1 }
            $0.lastRefusal = reason
        }
    }

    private func takeCommand(_ bytes: UnsafeRawBufferPointer, _ sentNs: Int64, _ truncated: Bool) {
        guard !truncated else { return refuse("cmd: a sample too large", malformed: true, trajectory: false) }
        let message: JointStateMessage
        do {
            message = try JointStateMessage.decode(bytes)
        } catch {
            return refuse("cmd: \(error)", malformed: true, trajectory: false)
        }
        guard let policy else {
            return refuse(
                "cmd: the robot's policy does not follow ROS 2 (policy: {type: ros})", malformed: false,
                trajectory: false)
        }
        var refusal: ROSCommandRefusal?
        policy.submitTarget { target in
            do throws(ROSCommandRefusal) {
                try intake.fill(target, from: message)
                target.sentWallNs = sentNs
                return true
            } catch {
                refusal = error
                return false
            }
        }
        if let refusal { return refuse(refusal.description, malformed: false, trajectory: false) }
        count { $0.commandsAccepted += 1 }
    }

    private func takeTrajectory(_ bytes: UnsafeRawBufferPointer, _ sentNs: Int64, _ truncated: Bool) {
        guard !truncated else {
            return refuse("joint_trajectory: a sample too large", malformed: true, trajectory: true)
        }
        let message: JointTrajectoryMessage
        do {
            message = try JointTrajectoryMessage.decode(bytes)
        } catch {
            return refuse("joint_trajectory: \(error)", malformed: true, trajectory: true)
        }
        guard let policy else {
            return refuse(
                "joint_trajectory: the robot's policy does not follow ROS 2 (policy: {type: ros})", malformed: false,
                trajectory: true)
        }
        var refusal: ROSCommandRefusal?
        let now = ExternalCommandPolicyClock.wallNs()
        policy.submitTrajectory { slot in
            do throws(ROSCommandRefusal) {
                try intake.fill(slot, from: message, stepNs: trajectoryStepNs, nowWallNs: now)
                slot.sentWallNs = sentNs
                return true
            } catch {
                refusal = error
                return false
            }
        }
        if let refusal { return refuse(refusal.description, malformed: false, trajectory: true) }
        count { $0.trajectoriesAccepted += 1 }
    }

    // MARK: robot_description

    private func publishDescription(_ urdf: String) {
        urdf.withCString { text in
            var message = std_msgs_msg_dds__String_(data: UnsafeMutablePointer(mutating: text))
            _ = dds_write(descriptionWriter, &message)
        }
        count { $0.published["robot_description", default: 0] += 1 }
    }
}

/// The wall clock, ns since the epoch.
enum ExternalCommandPolicyClock {
    static func wallNs() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}
