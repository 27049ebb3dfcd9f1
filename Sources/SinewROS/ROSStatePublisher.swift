import CSinewDDS
import Foundation
import SinewCore
import SinewKinematics
import SinewRuntime
import Synchronization

/// The robot's state on ROS 2: a ``RecordingSink`` the recorder's thread feeds with the tick snapshots (so DDS never
/// runs in the tick), publishing from them `joint_states` (every snapshot up to `ros.joint_states_rate_hz`), `tf`
/// (every link in its parent's frame from forward kinematics of the measured joints), `imu` (the IMU's orientation
/// estimate, with its last angular velocity and specific force) and `diagnostics` (the loop's rate and lateness, bus
/// errors, lifecycle and safety state, what the node counted; then one status per servo with its temperature and
/// voltage from the loop's ``ServoHealthTap``, taken here on the recorder's thread). Messages are the idlc-generated
/// C structs, filled in place from buffers made once.
public final class ROSStatePublisher: RecordingSink {
    let node: ROSNode
    let configuration: RobotConfiguration
    let model: RobotModel
    let jointCount: Int
    let policyName: String
    /// The loop's servo-health frames (nil: diagnostics say no servo was looked at). Read on this thread only.
    let healthTap: ServoHealthTap?

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

    /// - Parameter healthTap: the loop's tap (``RobotLoop/attachHealthTap(decimation:)``; telemetry may share it, being
    ///   a sink of the same recorder's thread), for the servos' temperatures and voltages in `diagnostics`.
    public init(
        node: ROSNode, configuration: RobotConfiguration, model: RobotModel, policyName: String,
        healthTap: ServoHealthTap? = nil
    ) {
        self.node = node
        self.healthTap = healthTap
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
        // No covariance is computed: all zero, which sensor_msgs/Imu reads as "unknown". A field without data gets
        // -1 in element 0 of its covariance ("no estimate", sensor_msgs/Imu's convention) and zeros.
        if h.imuRatesValid {
            let w = h.imuAngularVelocityRadPerS
            let a = h.imuLinearAccelerationMPerS2
            message.angular_velocity = geometry_msgs_msg_dds__Vector3_(x: w.0, y: w.1, z: w.2)
            message.linear_acceleration = geometry_msgs_msg_dds__Vector3_(x: a.0, y: a.1, z: a.2)
        } else {
            message.angular_velocity_covariance.0 = -1
            message.linear_acceleration_covariance.0 = -1
        }
        if dds_write(writer, &message) >= 0 { imuCount.add(1, ordering: .relaxed) }
    }

    /// The diagnostics of the window since the last message: one status for the robot (first: what `sinew fleet`
    /// reads), then one per servo; values as text.
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
        let servos = servoStatuses()
        let values: [(String, String)] = [
            ("state", state), ("safety_cause", h.safetyCause.map { "\($0)" } ?? ""),
            ("policy", policyName),
            ("loop_rate_hz", String(format: "%.1f", windowTicks > 1 ? Double(windowTicks) / spanS : 0)),
            ("target_rate_hz", String(format: "%.1f", configuration.loop.rateHz)),
            ("wake_lateness_p50_us", String(format: "%.1f", percentile(0.5))),
            ("wake_lateness_p99_us", String(format: "%.1f", percentile(0.99))),
            ("wake_lateness_max_us", String(format: "%.1f", (sorted.last.map { Double($0) } ?? 0) * 1e-3)),
            ("overruns_in_a_row", "\(h.overrunsInARow)"), ("bus_errors_total", "\(h.busErrorTotal)"),
            ("servo_temperature_max_c", servos.hottest),
            ("trajectories_accepted", "\(report.trajectoriesAccepted)"),
            ("trajectories_refused", "\(report.trajectoriesRefused)"),
            ("commands_accepted", "\(report.commandsAccepted)"), ("commands_refused", "\(report.commandsRefused)"),
            ("malformed_samples", "\(report.malformedSamples)"), ("estops_received", "\(report.estopsReceived)"),
            ("last_refusal", report.lastRefusal ?? ""), ("namespace", node.network.namespace),
        ]
        windowStartNs = nowNs
        windowTicks = 0
        windowLatenessNs.removeAll(keepingCapacity: true)
        let all: [DiagnosticStatusText] =
            [
                DiagnosticStatusText(
                    level: level, name: "sinew: \(configuration.name)", message: message,
                    hardwareID: configuration.name, values: values)
            ] + servos.statuses
        var strings: [UnsafeMutablePointer<CChar>?] = []
        defer { for s in strings { free(s) } }
        func c(_ text: String) -> UnsafeMutablePointer<CChar> {
            let s = strdup(text)!
            strings.append(s)
            return s
        }
        var keyValueBuffers: [UnsafeMutablePointer<diagnostic_msgs_msg_dds__KeyValue_>] = []
        defer { for b in keyValueBuffers { b.deallocate() } }
        let statuses = UnsafeMutablePointer<diagnostic_msgs_msg_dds__DiagnosticStatus_>.allocate(capacity: all.count)
        defer { statuses.deallocate() }
        for (k, status) in all.enumerated() {
            let keyValues = UnsafeMutablePointer<diagnostic_msgs_msg_dds__KeyValue_>.allocate(
                capacity: max(1, status.values.count))
            keyValueBuffers.append(keyValues)
            for (i, kv) in status.values.enumerated() {
                (keyValues + i).initialize(to: diagnostic_msgs_msg_dds__KeyValue_(key: c(kv.0), value: c(kv.1)))
            }
            let n = UInt32(status.values.count)
            (statuses + k).initialize(
                to: diagnostic_msgs_msg_dds__DiagnosticStatus_(
                    level: status.level, name: c(status.name), message: c(status.message),
                    hardware_id: c(status.hardwareID),
                    values: dds_sequence_diagnostic_msgs_msg_dds__KeyValue_(
                        _maximum: n, _length: n, _buffer: keyValues, _release: false)))
        }
        let n = UInt32(all.count)
        var array = diagnostic_msgs_msg_dds__DiagnosticArray_(
            header: header(stamp, frame: emptyText),
            status: dds_sequence_diagnostic_msgs_msg_dds__DiagnosticStatus_(
                _maximum: n, _length: n, _buffer: statuses, _release: false))
        if dds_write(node.diagnosticsWriter, &array) >= 0 { diagnosticsCount.add(1, ordering: .relaxed) }
    }

    /// Degrees below the servo table's temperature limit (where the firmware cuts torque) at which a servo's status
    /// turns WARN: early enough to rest the arm before the firmware stops it.
    public static let temperatureWarningMarginC = 10.0

    /// One status per servo from the tap's newest frame (taken here, on the recorder's thread), and the hottest
    /// temperature read (text for the robot's status).
    private func servoStatuses() -> (statuses: [DiagnosticStatusText], hottest: String) {
        guard let healthTap else { return ([], "not taken (no servo-health tap on the loop)") }
        let frames = healthTap.frames
        _ = frames.take()
        let frame = frames.readSlot
        var statuses: [DiagnosticStatusText] = []
        var hottest = -Double.infinity
        for (i, servo) in healthTap.servos.enumerated() {
            let warnAboveC = servo.temperatureLimitC - Self.temperatureWarningMarginC
            var level: UInt8 = 0
            var message = "ok"
            let temperature: String
            let voltage: String
            if frame.tick < 0 {
                (temperature, voltage) = ("no reading yet", "no reading yet")
                message = "no reading yet"
            } else {
                let t = frame.temperatureC[i]
                if servo.readsTemperature && t.isFinite {
                    temperature = String(format: "%.0f", t)
                    hottest = max(hottest, t)
                    if t >= servo.temperatureLimitC {
                        level = 2
                        message = String(
                            format: "%.0f °C: at the firmware's limit (%.0f °C)", t, servo.temperatureLimitC)
                    } else if t >= warnAboveC {
                        level = 1
                        message = String(format: "%.0f °C: hot (warning above %.0f °C)", t, warnAboveC)
                    }
                } else {
                    temperature = "not in the tick's read"
                }
                let v = frame.voltageV[i]
                voltage = servo.readsVoltage && v.isFinite ? String(format: "%.1f", v) : "not in the tick's read"
            }
            let errors =
                frame.timeouts[i] &+ frame.checksumErrors[i] &+ frame.otherErrors[i]
            let values: [(String, String)] = [
                ("bus", servo.bus), ("id", "\(servo.id)"), ("joint", servo.joint), ("model", servo.model),
                ("temperature_c", temperature), ("temperature_warn_above_c", String(format: "%.0f", warnAboveC)),
                ("temperature_limit_c", String(format: "%.0f", servo.temperatureLimitC)), ("voltage_v", voltage),
                ("transactions", "\(frame.transactions[i])"), ("errors", "\(errors)"),
                ("hardware_error_flags", "\(frame.hardwareErrorFlags[i])"), ("tick", "\(frame.tick)"),
            ]
            statuses.append(
                DiagnosticStatusText(
                    level: level, name: "sinew: \(configuration.name)/\(servo.bus)/\(servo.id) (\(servo.joint))",
                    message: message, hardwareID: "\(configuration.name)/\(servo.bus)/\(servo.id)", values: values))
        }
        let summary =
            hottest.isFinite
            ? String(format: "%.0f", hottest)
            : frame.tick < 0 ? "no reading yet" : "not in the tick's read"
        return (statuses, summary)
    }
}

/// One diagnostic_msgs/DiagnosticStatus as Swift text, before it becomes C strings for one write.
struct DiagnosticStatusText {
    var level: UInt8
    var name: String
    var message: String
    var hardwareID: String
    var values: [(String, String)]
}
