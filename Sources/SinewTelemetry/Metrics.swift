import CoreMetrics
import Foundation
import Prometheus
import SinewRuntime

/// One metric Sinew exports: its Prometheus name (unit in the name), kind and HELP text. The catalogue is the list
/// in README.md's metrics table; `/metrics` prints the HELP lines from here.
public struct MetricDescription: Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }
    public let name: String
    public let kind: Kind
    public let labels: [String]
    public let help: String
}

extension MetricDescription {
    /// Every metric, in the order `/metrics` groups them.
    public static let catalogue: [MetricDescription] = [
        .init(name: "sinew_ticks_total", kind: .counter, labels: [], help: "Ticks the control loop ran."),
        .init(
            name: "sinew_loop_rate_hertz", kind: .gauge, labels: [],
            help: "Ticks per second over the last second (loop time)."),
        .init(name: "sinew_loop_target_rate_hertz", kind: .gauge, labels: [], help: "loop.rate_hz of robot.yaml."),
        .init(
            name: "sinew_wake_lateness_seconds", kind: .histogram, labels: [],
            help: "How long after its deadline the loop thread woke for a tick."),
        .init(
            name: "sinew_stage_duration_seconds", kind: .histogram, labels: ["stage"],
            help: "Time of each tick stage (sense, estimate, decide, guard, act, record), bus waits included."),
        .init(
            name: "sinew_overruns_total", kind: .counter, labels: [],
            help: "Ticks that ended after the deadline of the tick after them."),
        .init(
            name: "sinew_bus_transactions_total", kind: .counter, labels: ["bus"],
            help: "Exchanges addressed to the bus's servos, counted once per servo per exchange."),
        .init(
            name: "sinew_bus_errors_total", kind: .counter, labels: ["bus"],
            help: "Failed attempts on the bus: timeouts, checksum errors, truncated, foreign or garbage replies."),
        .init(
            name: "sinew_bus_timeouts_total", kind: .counter, labels: ["bus"],
            help: "Attempts that reached their deadline with nothing received."),
        .init(
            name: "sinew_bus_checksum_errors_total", kind: .counter, labels: ["bus"],
            help: "Attempts ended by a packet whose checksum or CRC was wrong."),
        .init(
            name: "sinew_bus_retries_total", kind: .counter, labels: ["bus"],
            help: "Attempts made again after a failure that may be transient."),
        .init(
            name: "sinew_servo_temperature_celsius", kind: .gauge, labels: ["bus", "servo_id", "joint"],
            help: "Present Temperature of the servo (only servos whose tick reads it: see README)."),
        .init(
            name: "sinew_servo_voltage_volts", kind: .gauge, labels: ["bus", "servo_id", "joint"],
            help: "Present supply voltage of the servo (only servos whose tick reads it: see README)."),
        .init(
            name: "sinew_servo_current_amperes", kind: .gauge, labels: ["bus", "servo_id", "joint"],
            help: "Present Current of the servo, signed."),
        .init(
            name: "sinew_servo_hardware_error_flags", kind: .gauge, labels: ["bus", "servo_id", "joint"],
            help: "Hardware-error bits of the servo's last status (0: none; the vendor's bit layout)."),
        .init(
            name: "sinew_servo_hardware_error_replies_total", kind: .counter, labels: ["bus", "servo_id", "joint"],
            help: "Replies of the servo that flagged a hardware error."),
        .init(
            name: "sinew_joint_position_radians", kind: .gauge, labels: ["joint"],
            help: "Measured joint position (m for a prismatic joint)."),
        .init(
            name: "sinew_joint_velocity_radians_per_second", kind: .gauge, labels: ["joint"],
            help: "Measured joint velocity."),
        .init(
            name: "sinew_joint_effort_newton_meters", kind: .gauge, labels: ["joint"], help: "Measured joint effort."),
        .init(
            name: "sinew_joint_command_radians", kind: .gauge, labels: ["joint"],
            help: "Guarded position command sent to the joint's servo."),
        .init(
            name: "sinew_lifecycle_state", kind: .gauge, labels: ["state"],
            help: "1 for the lifecycle state the robot is in, 0 for the others."),
        .init(
            name: "sinew_safe_state_cause", kind: .gauge, labels: ["cause"],
            help: "1 for the cause of the safe state the robot is latched in, 0 for the others (all 0: not safe)."),
        .init(
            name: "sinew_safety_events_total", kind: .counter, labels: ["cause"],
            help: "Safety events the supervisor recorded, by cause."),
        .init(
            name: "sinew_recording_dropped_snapshots_total", kind: .counter, labels: [],
            help: "Tick snapshots dropped because the recorder's ring was full (telemetry and recording fell behind)."),
        .init(
            name: "sinew_dashboard_clients", kind: .gauge, labels: [],
            help: "Dashboard WebSocket clients connected."),
        .init(
            name: "sinew_telemetry_refused_requests_total", kind: .counter, labels: [],
            help: "HTTP requests and WebSocket upgrades refused for a missing or wrong token."),
    ]

    public static func named(_ name: String) -> MetricDescription? { catalogue.first { $0.name == name } }

    /// Wake-up lateness buckets, s: 5 µs to 0.1 s.
    static let latenessBucketsS: [Double] = [
        5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1,
    ]
    /// Stage-time buckets, s: 1 µs to 20 ms.
    static let stageBucketsS: [Double] = [
        1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3,
    ]
}

/// A swift-metrics factory over a Prometheus registry that gives every metric its HELP text and buckets from
/// ``MetricDescription/catalogue`` (swift-metrics carries neither). Labels not in the catalogue are refused
/// (`preconditionFailure`): they are programming errors, never input.
public struct SinewMetricsFactory: MetricsFactory {
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The registry's name-and-help descriptor of `label`, from the catalogue (the name carries its unit already).
    private func describe(_ label: String) -> MetricNameDescriptor {
        guard let description = MetricDescription.named(label) else {
            preconditionFailure("metric \(label) is not in MetricDescription.catalogue")
        }
        return MetricNameDescriptor(metricName: description.name, unitName: "", helpText: description.help)
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: describe(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
        -> any FloatingPointCounterHandler
    {
        registry.makeCounter(descriptor: describe(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: describe(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: describe(label), labels: dimensions, buckets: [1, 10, 100])
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: describe(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets =
            label == "sinew_wake_lateness_seconds"
            ? MetricDescription.latenessBucketsS : MetricDescription.stageBucketsS
        return registry.makeDurationHistogram(
            descriptor: describe(label), labels: dimensions,
            buckets: buckets.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) })
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
}

/// The robot's metrics as swift-metrics handles (Counter, CoreMetrics.Gauge, Timer) on a ``SinewMetricsFactory``: made once
/// when the run starts, updated from the recorder's thread (tick snapshots, servo health) and the session's
/// monitor (overruns), read by the `/metrics` endpoint through the registry.
final class RobotMetrics: @unchecked Sendable {
    // @unchecked: the handles are thread-safe (the Prometheus backend locks); the counters' last totals are
    // touched by the recorder's thread only (`lastBus`, `lastServoHardware`) or under `overrunLock`.
    let factory: SinewMetricsFactory
    let ticks: CoreMetrics.Counter
    let loopRate: CoreMetrics.Gauge
    let wakeLateness: CoreMetrics.Timer
    let stages: [CoreMetrics.Timer]
    let overruns: CoreMetrics.Counter
    let busTransactions: [CoreMetrics.Counter]
    let busErrors: [CoreMetrics.Counter]
    let busTimeouts: [CoreMetrics.Counter]
    let busChecksumErrors: [CoreMetrics.Counter]
    let busRetries: [CoreMetrics.Counter]
    let servoTemperature: [CoreMetrics.Gauge?]
    let servoVoltage: [CoreMetrics.Gauge?]
    let servoCurrent: [CoreMetrics.Gauge?]
    let servoErrorFlags: [CoreMetrics.Gauge]
    let servoHardwareReplies: [CoreMetrics.Counter]
    let jointPosition: [CoreMetrics.Gauge]
    let jointVelocity: [CoreMetrics.Gauge]
    let jointEffort: [CoreMetrics.Gauge]
    let jointCommand: [CoreMetrics.Gauge]
    let lifecycle: [CoreMetrics.Gauge]
    let safeCause: [CoreMetrics.Gauge]
    let safetyEvents: [CoreMetrics.Counter]
    let droppedSnapshots: CoreMetrics.Counter
    let dashboardClients: CoreMetrics.Gauge
    let refusedRequests: CoreMetrics.Counter
    /// Per bus: the servo indexes (into the health tap's servos) on it.
    let busServos: [[Int]]
    var lastBus: [[UInt64]]
    var lastServoHardware: [UInt64]
    var lastDropped = 0
    private let overrunLock = NSLock()
    private var lastOverruns: Int64 = 0

    init(
        jointNames: [String], busNames: [String], servos: [ServoHealthTap.Servo], targetRateHz: Double,
        factory: SinewMetricsFactory = SinewMetricsFactory()
    ) {
        self.factory = factory
        ticks = CoreMetrics.Counter(label: "sinew_ticks_total", factory: factory)
        loopRate = CoreMetrics.Gauge(label: "sinew_loop_rate_hertz", factory: factory)
        CoreMetrics.Gauge(label: "sinew_loop_target_rate_hertz", factory: factory).record(targetRateHz)
        wakeLateness = CoreMetrics.Timer(label: "sinew_wake_lateness_seconds", factory: factory)
        stages = TickStage.allCases.map {
            CoreMetrics.Timer(
                label: "sinew_stage_duration_seconds", dimensions: [("stage", "\($0.name)")], factory: factory)
        }
        overruns = CoreMetrics.Counter(label: "sinew_overruns_total", factory: factory)
        func perBus(_ name: String) -> [CoreMetrics.Counter] {
            busNames.map { CoreMetrics.Counter(label: name, dimensions: [("bus", $0)], factory: factory) }
        }
        busTransactions = perBus("sinew_bus_transactions_total")
        busErrors = perBus("sinew_bus_errors_total")
        busTimeouts = perBus("sinew_bus_timeouts_total")
        busChecksumErrors = perBus("sinew_bus_checksum_errors_total")
        busRetries = perBus("sinew_bus_retries_total")
        func servoLabels(_ s: ServoHealthTap.Servo) -> [(String, String)] {
            [("bus", s.bus), ("servo_id", "\(s.id)"), ("joint", s.joint)]
        }
        servoTemperature = servos.map {
            $0.readsTemperature
                ? CoreMetrics.Gauge(
                    label: "sinew_servo_temperature_celsius", dimensions: servoLabels($0), factory: factory) : nil
        }
        servoVoltage = servos.map {
            $0.readsVoltage
                ? CoreMetrics.Gauge(label: "sinew_servo_voltage_volts", dimensions: servoLabels($0), factory: factory)
                : nil
        }
        servoCurrent = servos.map {
            $0.readsCurrent
                ? CoreMetrics.Gauge(label: "sinew_servo_current_amperes", dimensions: servoLabels($0), factory: factory)
                : nil
        }
        servoErrorFlags = servos.map {
            CoreMetrics.Gauge(label: "sinew_servo_hardware_error_flags", dimensions: servoLabels($0), factory: factory)
        }
        servoHardwareReplies = servos.map {
            CoreMetrics.Counter(
                label: "sinew_servo_hardware_error_replies_total", dimensions: servoLabels($0), factory: factory)
        }
        func perJoint(_ name: String) -> [CoreMetrics.Gauge] {
            jointNames.map { CoreMetrics.Gauge(label: name, dimensions: [("joint", $0)], factory: factory) }
        }
        jointPosition = perJoint("sinew_joint_position_radians")
        jointVelocity = perJoint("sinew_joint_velocity_radians_per_second")
        jointEffort = perJoint("sinew_joint_effort_newton_meters")
        jointCommand = perJoint("sinew_joint_command_radians")
        lifecycle = LifecycleState.allCases.map {
            CoreMetrics.Gauge(label: "sinew_lifecycle_state", dimensions: [("state", "\($0.name)")], factory: factory)
        }
        safeCause = SafetyCause.allCases.map {
            CoreMetrics.Gauge(label: "sinew_safe_state_cause", dimensions: [("cause", "\($0.name)")], factory: factory)
        }
        safetyEvents = SafetyCause.allCases.map {
            CoreMetrics.Counter(
                label: "sinew_safety_events_total", dimensions: [("cause", "\($0.name)")], factory: factory)
        }
        droppedSnapshots = CoreMetrics.Counter(label: "sinew_recording_dropped_snapshots_total", factory: factory)
        dashboardClients = CoreMetrics.Gauge(label: "sinew_dashboard_clients", factory: factory)
        dashboardClients.record(0)
        refusedRequests = CoreMetrics.Counter(label: "sinew_telemetry_refused_requests_total", factory: factory)
        busServos = busNames.map { bus in servos.indices.filter { servos[$0].bus == bus } }
        lastBus = Array(repeating: Array(repeating: 0, count: 5), count: busNames.count)
        lastServoHardware = Array(repeating: 0, count: servos.count)
        for gauge in lifecycle { gauge.record(0) }
        for gauge in safeCause { gauge.record(0) }
        for gauge in servoErrorFlags { gauge.record(0) }
    }

    /// The lifecycle and safe-state gauges for `state` and `cause`.
    func show(state: LifecycleState, cause: SafetyCause?) {
        for (i, s) in LifecycleState.allCases.enumerated() { lifecycle[i].record(s == state ? 1 : 0) }
        for (i, c) in SafetyCause.allCases.enumerated() { safeCause[i].record(c == cause ? 1 : 0) }
    }

    /// The session's overrun count so far (any thread).
    func overrunsSoFar(_ total: Int64) {
        overrunLock.lock()
        defer { overrunLock.unlock() }
        if total > lastOverruns { overruns.increment(by: total - lastOverruns) }
        lastOverruns = max(lastOverruns, total)
    }

    /// The bus and servo counters and readings of one health frame (recorder's thread).
    func show(health frame: ServoHealthFrame) {
        for (b, servos) in busServos.enumerated() {
            var totals: [UInt64] = [0, 0, 0, 0, 0]
            for i in servos {
                totals[0] &+= frame.transactions[i]
                totals[1] &+= frame.timeouts[i] &+ frame.checksumErrors[i] &+ frame.otherErrors[i]
                totals[2] &+= frame.timeouts[i]
                totals[3] &+= frame.checksumErrors[i]
                totals[4] &+= frame.retries[i]
            }
            let counters = [busTransactions[b], busErrors[b], busTimeouts[b], busChecksumErrors[b], busRetries[b]]
            for k in 0..<5 where totals[k] > lastBus[b][k] {
                counters[k].increment(by: Int64(totals[k] - lastBus[b][k]))
                lastBus[b][k] = totals[k]
            }
        }
        for i in 0..<frame.servoCount {
            if let gauge = servoTemperature[i], frame.temperatureC[i].isFinite { gauge.record(frame.temperatureC[i]) }
            if let gauge = servoVoltage[i], frame.voltageV[i].isFinite { gauge.record(frame.voltageV[i]) }
            if let gauge = servoCurrent[i], frame.currentA[i].isFinite { gauge.record(frame.currentA[i]) }
            servoErrorFlags[i].record(Int64(frame.hardwareErrorFlags[i]))
            if frame.hardwareErrorReplies[i] > lastServoHardware[i] {
                servoHardwareReplies[i].increment(by: Int64(frame.hardwareErrorReplies[i] - lastServoHardware[i]))
                lastServoHardware[i] = frame.hardwareErrorReplies[i]
            }
        }
    }

    /// The text exposition of every metric (`/metrics`).
    func exposition() -> [UInt8] { factory.registry.emitToBuffer() }
}
