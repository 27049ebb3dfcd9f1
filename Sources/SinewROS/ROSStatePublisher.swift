import CSinewDDS
import Foundation
import SinewCore
import SinewKinematics
import SinewRuntime
import Synchronization

/// The robot's state on ROS 2: a ``RecordingSink`` the recorder's thread feeds with the tick snapshots (so DDS never
/// runs in the tick), publishing from them `joint_states` (every snapshot up to `ros.joint_states_rate_hz`), `tf`
/// (every link in its parent's frame from forward kinematics of the measured joints), `imu` (the IMU's orientation
/// estimate) and `diagnostics` (the loop's rate and lateness, bus errors, lifecycle and safety state, what the node
/// counted). Messages are the idlc-generated C structs, filled in place from buffers made once.
public final class ROSStatePublisher: RecordingSink {
    let node: ROSNode
    let configuration: RobotConfiguration
    let model: RobotModel
    let jointCount: Int
    let policyName: String

    // joint_states
    private let names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let position: UnsafeMutablePointer<Double>
    private let velocity: UnsafeMutablePointer<Double>
    private let effort: UnsafeMutablePointer<Double>
    private let emptyText: UnsafeMutablePointer<CChar>

    // tf
    private let workspace: KinematicsWorkspace
    private let urdfIndex: [Int]
    private let urdfPositions: UnsafeMutableBufferPointer<Double>
    /// Each published transform: its link, its parent link, their names as C strings.
    private let frames: [(link: Int, parent: Int)]
    private let transforms: UnsafeMutablePointer<geometry_msgs_msg_dds__TransformStamped_>

    // imu
    private let imuFrame: UnsafeMutablePointer<CChar>?

    // Rates (ns between messages) and when each is due next (wall clock).
    private let jointStatesPeriodNs: Int64
    private let tfPeriodNs: Int64
    private let imuPeriodNs: Int64
    private let diagnosticsPeriodNs: Int64
    private var nextJointStatesNs: Int64 = 0
    private var nextTFNs: Int64 = 0
    private var nextIMUNs: Int64 = 0
    private var nextDiagnosticsNs: Int64 = 0

    // The diagnostics window.
    private var windowStartNs: Int64 = 0
    private var windowTicks = 0
    private var windowLatenessNs: [Int64] = []
    private var last = TickSnapshotHeader()
    private var wasSafe = false
    /// The lifecycle state the last diagnostics message gave: a change is published at once, not at the next period.
    private var diagnosedState: LifecycleState?

    let jointStatesCount = Atomic<Int>(0)
    let tfCount = Atomic<Int>(0)
    let imuCount = Atomic<Int>(0)
    let diagnosticsCount = Atomic<Int>(0)

    public init(node: ROSNode, configuration: RobotConfiguration, model: RobotModel, policyName: String) {
        self.node = node
        self.configuration = configuration
        self.model = model
        self.policyName = policyName
        let settings = configuration.ros
        jointCount = configuration.joints.count
        let n = max(1, jointCount)
        names = .allocate(capacity: n)
        for (j, joint) in configuration.joints.enumerated() { names[j] = strdup(joint.name) }
        position = .allocate(capacity: n)
        position.initialize(repeating: 0, count: n)
        velocity = .allocate(capacity: n)
        velocity.initialize(repeating: 0, count: n)
        effort = .allocate(capacity: n)
        effort.initialize(repeating: 0, count: n)
        emptyText = strdup("")
        workspace = KinematicsWorkspace(model: model)
        urdfIndex = configuration.joints.map { model.jointIndex(named: $0.name) ?? -1 }
        urdfPositions = .allocate(capacity: max(1, model.dofCount))
        urdfPositions.initialize(repeating: 0)
        var frames: [(Int, Int)] = []
        for (index, link) in model.links.enumerated() where index != model.rootLink {
            let parentName =
                link.joint.map { model.joints[$0].parentLink }
                ?? model.fixedJoints.first { $0.child == link.name }?.parent
            guard let parentName, let parent = model.linkIndex(named: parentName) else { continue }
            frames.append((index, parent))
        }
        self.frames = frames
        transforms = .allocate(capacity: max(1, frames.count))
        for (i, frame) in frames.enumerated() {
            var t = geometry_msgs_msg_dds__TransformStamped_()
            t.header.frame_id = strdup(model.links[frame.1].name)
            t.child_frame_id = strdup(model.links[frame.0].name)
            t.transform.rotation.w = 1
            (transforms + i).initialize(to: t)
        }
        imuFrame = configuration.imu.map { strdup($0.link) }
        func period(_ hz: Double) -> Int64 { Int64((1e9 / hz).rounded()) }
        jointStatesPeriodNs = period(settings.jointStatesRateHz)
        tfPeriodNs = period(settings.tfRateHz)
        imuPeriodNs = period(settings.imuRateHz)
        diagnosticsPeriodNs = period(settings.diagnosticsRateHz)
        windowLatenessNs.reserveCapacity(Int(configuration.loop.rateHz / settings.diagnosticsRateHz) + 64)
    }

    deinit {
        for j in 0..<jointCount { free(names[j]) }
        names.deallocate()
        position.deallocate()
        velocity.deallocate()
        effort.deallocate()
        free(emptyText)
        urdfPositions.deallocate()
        for i in 0..<frames.count {
            free(transforms[i].header.frame_id)
            free(transforms[i].child_frame_id)
        }
        transforms.deallocate()
        if let imuFrame { free(imuFrame) }
    }

    /// Messages published so far, per topic (any thread).
    public var publishedCounts: [String: Int] {
        [
            "joint_states": jointStatesCount.load(ordering: .relaxed), "tf": tfCount.load(ordering: .relaxed),
            "imu": imuCount.load(ordering: .relaxed), "diagnostics": diagnosticsCount.load(ordering: .relaxed),
        ]
    }

    /// Whether a message of `periodNs` is due at `nowNs` (a snapshot within half a period of its time counts, so a
    /// rate equal to the loop's publishes every tick despite jitter), moving `next` on.
    private static func due(_ next: inout Int64, periodNs: Int64, nowNs: Int64) -> Bool {
        guard nowNs + periodNs / 2 >= next else { return false }
        next = next == 0 || nowNs - next > periodNs ? nowNs + periodNs : next + periodNs
        return true
    }

    public func write(_ slot: TickSnapshotSlot) throws(RecordingError) {
        let h = slot.header.pointee
        guard h.kind == .tick else { return }
        let nowNs = Int64(h.wallTimeNs)
        let safe = h.state == .safe
        if safe && !wasSafe {
            node.count { if $0.estopReceivedTick != nil && $0.safeStateTick == nil { $0.safeStateTick = h.tick } }
        }
        wasSafe = safe
        if windowStartNs == 0 { windowStartNs = nowNs }
        windowTicks += 1
        windowLatenessNs.append(h.wakeLatenessNs)
        last = h
        let stamp = ROSTime(nanoseconds: nowNs)
        if Self.due(&nextJointStatesNs, periodNs: jointStatesPeriodNs, nowNs: nowNs) {
            publishJointStates(slot, stamp: stamp)
        }
        if !frames.isEmpty && Self.due(&nextTFNs, periodNs: tfPeriodNs, nowNs: nowNs) {
            publishTransforms(slot, stamp: stamp)
        }
        if let imuWriter = node.imuWriter, h.imuValid, Self.due(&nextIMUNs, periodNs: imuPeriodNs, nowNs: nowNs) {
            publishIMU(h, stamp: stamp, writer: imuWriter)
        }
        if h.state != diagnosedState {
            diagnosedState = h.state
            nextDiagnosticsNs = nowNs + diagnosticsPeriodNs
            publishDiagnostics(nowNs: nowNs, stamp: stamp)
        } else if Self.due(&nextDiagnosticsNs, periodNs: diagnosticsPeriodNs, nowNs: nowNs) {
            publishDiagnostics(nowNs: nowNs, stamp: stamp)
        }
    }

    public func finish() throws(RecordingError) {}

    private func header(_ stamp: ROSTime, frame: UnsafeMutablePointer<CChar>) -> std_msgs_msg_dds__Header_ {
        std_msgs_msg_dds__Header_(
            stamp: builtin_interfaces_msg_dds__Time_(sec: stamp.sec, nanosec: stamp.nanosec), frame_id: frame)
    }

    private func publishJointStates(_ slot: TickSnapshotSlot, stamp: ROSTime) {
        for j in 0..<jointCount {
            position[j] = slot.positionRad[j]
            velocity[j] = slot.velocityRadPerS[j]
            effort[j] = slot.effortNm[j]
        }
        let n = UInt32(jointCount)
        var message = sensor_msgs_msg_dds__JointState_(
            header: header(stamp, frame: emptyText),
            name: dds_sequence_string(_maximum: n, _length: n, _buffer: names, _release: false),
            position: dds_sequence_double(_maximum: n, _length: n, _buffer: position, _release: false),
            velocity: dds_sequence_double(_maximum: n, _length: n, _buffer: velocity, _release: false),
            effort: dds_sequence_double(_maximum: n, _length: n, _buffer: effort, _release: false))
        if dds_write(node.jointStatesWriter, &message) >= 0 { jointStatesCount.add(1, ordering: .relaxed) }
    }

    private func publishTransforms(_ slot: TickSnapshotSlot, stamp: ROSTime) {
        for i in 0..<model.dofCount { urdfPositions[i] = 0 }
        for (j, index) in urdfIndex.enumerated() where index >= 0 { urdfPositions[index] = slot.positionRad[j] }
        for (i, joint) in model.joints.enumerated() {
            if let mimic = joint.mimic {
                urdfPositions[i] = mimic.multiplier * urdfPositions[mimic.master] + mimic.offset
            }
        }
        workspace.forwardKinematics(UnsafeBufferPointer(urdfPositions))
        for (i, frame) in frames.enumerated() {
            let relative = workspace.linkPose(frame.parent).inverse * workspace.linkPose(frame.link)
            let q = relative.quaternion
            transforms[i].header.stamp = builtin_interfaces_msg_dds__Time_(sec: stamp.sec, nanosec: stamp.nanosec)
            transforms[i].transform.translation = geometry_msgs_msg_dds__Vector3_(
                x: relative.translation.0, y: relative.translation.1, z: relative.translation.2)
            transforms[i].transform.rotation = geometry_msgs_msg_dds__Quaternion_(x: q.x, y: q.y, z: q.z, w: q.w)
        }
        let n = UInt32(frames.count)
        var message = tf2_msgs_msg_dds__TFMessage_(
            transforms: dds_sequence_geometry_msgs_msg_dds__TransformStamped_(
                _maximum: n, _length: n, _buffer: transforms, _release: false))
        if dds_write(node.tfWriter, &message) >= 0 { tfCount.add(1, ordering: .relaxed) }
    }

    private func publishIMU(_ h: TickSnapshotHeader, stamp: ROSTime, writer: dds_entity_t) {
        guard let imuFrame else { return }
        var message = sensor_msgs_msg_dds__Imu_()
        message.header = header(stamp, frame: imuFrame)
        let q = h.imuOrientation
        message.orientation = geometry_msgs_msg_dds__Quaternion_(x: q.1, y: q.2, z: q.3, w: q.0)
        // The estimate's covariance is not computed (all zero: "unknown"); angular velocity and acceleration are not
        // in the tick's snapshot: element 0 of their covariance at -1 says "no estimate", as sensor_msgs/Imu asks.
        message.angular_velocity_covariance.0 = -1
        message.linear_acceleration_covariance.0 = -1
        if dds_write(writer, &message) >= 0 { imuCount.add(1, ordering: .relaxed) }
    }

    /// The diagnostics of the window since the last message: one status for the robot, its values as text.
    private func publishDiagnostics(nowNs: Int64, stamp: ROSTime) {
        let h = last
        let spanS = Double(max(1, nowNs - windowStartNs)) * 1e-9
        let sorted = windowLatenessNs.sorted()
        func percentile(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) * 1e-3
        }
        let report = node.report
        let state = "\(h.state)"
        let level: UInt8 = h.state == .active ? 0 : h.state == .safe ? 2 : 1
        var message = state
        if let cause = h.safetyCause { message += ": \(cause)" }
        let values: [(String, String)] = [
            ("state", state), ("safety_cause", h.safetyCause.map { "\($0)" } ?? ""),
            ("policy", policyName),
            ("loop_rate_hz", String(format: "%.1f", windowTicks > 1 ? Double(windowTicks) / spanS : 0)),
            ("target_rate_hz", String(format: "%.1f", configuration.loop.rateHz)),
            ("wake_lateness_p50_us", String(format: "%.1f", percentile(0.5))),
            ("wake_lateness_p99_us", String(format: "%.1f", percentile(0.99))),
            ("wake_lateness_max_us", String(format: "%.1f", (sorted.last.map { Double($0) } ?? 0) * 1e-3)),
            ("overruns_in_a_row", "\(h.overrunsInARow)"), ("bus_errors_total", "\(h.busErrorTotal)"),
            ("servo_temperatures", "not read (the loop's sync read covers position, velocity and current)"),
            ("trajectories_accepted", "\(report.trajectoriesAccepted)"),
            ("trajectories_refused", "\(report.trajectoriesRefused)"),
            ("commands_accepted", "\(report.commandsAccepted)"), ("commands_refused", "\(report.commandsRefused)"),
            ("malformed_samples", "\(report.malformedSamples)"), ("estops_received", "\(report.estopsReceived)"),
            ("last_refusal", report.lastRefusal ?? ""), ("namespace", node.network.namespace),
        ]
        windowStartNs = nowNs
        windowTicks = 0
        windowLatenessNs.removeAll(keepingCapacity: true)
        var strings: [UnsafeMutablePointer<CChar>?] = []
        defer { for s in strings { free(s) } }
        func c(_ text: String) -> UnsafeMutablePointer<CChar> {
            let s = strdup(text)!
            strings.append(s)
            return s
        }
        let keyValues = UnsafeMutablePointer<diagnostic_msgs_msg_dds__KeyValue_>.allocate(capacity: values.count)
        defer { keyValues.deallocate() }
        for (i, kv) in values.enumerated() {
            (keyValues + i).initialize(to: diagnostic_msgs_msg_dds__KeyValue_(key: c(kv.0), value: c(kv.1)))
        }
        var status = diagnostic_msgs_msg_dds__DiagnosticStatus_(
            level: level, name: c("sinew: \(configuration.name)"), message: c(message),
            hardware_id: c(configuration.name),
            values: dds_sequence_diagnostic_msgs_msg_dds__KeyValue_(
                _maximum: UInt32(values.count), _length: UInt32(values.count), _buffer: keyValues, _release: false))
        withUnsafeMutablePointer(to: &status) { statusPointer in
            var array = diagnostic_msgs_msg_dds__DiagnosticArray_(
                header: header(stamp, frame: emptyText),
                status: dds_sequence_diagnostic_msgs_msg_dds__DiagnosticStatus_(
                    _maximum: 1, _length: 1, _buffer: statusPointer, _release: false))
            if dds_write(node.diagnosticsWriter, &array) >= 0 { diagnosticsCount.add(1, ordering: .relaxed) }
        }
    }
}
