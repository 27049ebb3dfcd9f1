import Foundation
import SinewDrivers

/// Per-tick facts the supervisor needs besides the joint arrays. Times are CLOCK_MONOTONIC ns.
public struct SafetyTickInput: Sendable {
    public var nowNs: Int64
    public var loopStartNs: Int64
    /// When the policy last produced a command (for the watchdog); start it at the activation time, or
    /// the first tick is already stale.
    public var lastCommandTimeNs: Int64
    /// Bus transactions that failed this tick (all buses). Those also counted per bus in
    /// ``SafetySupervisor/busErrorsThisTickByBus`` are budgeted per bus; the rest against one budget of their own.
    public var busErrorsThisTick: Int
    /// Consecutive overrunning ticks before this one (`TickInfo.overrunsInARow`).
    public var overrunsInARow: Int
    /// The bus (index into `SafetyConfiguration.busNames`) of the last failed transaction counted in
    /// `busErrorsThisTick`, named by a `busErrors` event; -1 when none or not known.
    public var failingBusIndex: Int
    /// Whether that failure was the port disconnecting (the event's detail says so).
    public var busDisconnected: Bool

    public init(
        nowNs: Int64, loopStartNs: Int64, lastCommandTimeNs: Int64, busErrorsThisTick: Int = 0,
        overrunsInARow: Int = 0, failingBusIndex: Int = -1, busDisconnected: Bool = false
    ) {
        self.failingBusIndex = failingBusIndex
        self.busDisconnected = busDisconnected
        self.nowNs = nowNs
        self.loopStartNs = loopStartNs
        self.lastCommandTimeNs = lastCommandTimeNs
        self.busErrorsThisTick = busErrorsThisTick
        self.overrunsInARow = overrunsInARow
    }

    /// From the scheduler's tick facts.
    public init(
        tick: TickInfo, lastCommandTimeNs: Int64, busErrorsThisTick: Int = 0, failingBusIndex: Int = -1,
        busDisconnected: Bool = false
    ) {
        self.init(
            nowNs: tick.wakeNs, loopStartNs: tick.loopStartNs, lastCommandTimeNs: lastCommandTimeNs,
            busErrorsThisTick: busErrorsThisTick, overrunsInARow: tick.overrunsInARow,
            failingBusIndex: failingBusIndex, busDisconnected: busDisconnected)
    }
}

/// The supervisor's decision for one tick.
public struct SafetyVerdict: Sendable, Equatable {
    /// The robot must be (or stay) in its safe state.
    public var isSafeState: Bool
    /// The safe state was decided in this tick (call `Lifecycle.enterSafeState` now).
    public var enteredThisTick: Bool
    /// The first rule that fired (the one that latched the safe state), or nil.
    public var cause: SafetyCause?
    /// The joint of that rule, or nil.
    public var jointIndex: Int?
}

/// The safety supervisor: always on, allocation-free per tick. The caller fills the input arrays (sense,
/// estimate and decide stages), calls `guardTick` in the guard stage, and sends `outputPositionRad` /
/// `outputTorqueEnabled` in the act stage. A fault latches the safe state until `rearm(…)`.
///
/// All arrays are preallocated, one element per joint (joint space: rad, rad/s, N·m), except
/// `framePositionM`: 3 per workspace box (x, y, z of the box's frame origin in the base frame, m, from
/// forward kinematics this tick).
public final class SafetySupervisor: @unchecked Sendable {
    public let configuration: SafetyConfiguration
    public let jointCount: Int
    public let events: SafetyEventLog
    public let emergencyStop: EmergencyStopSources

    // Inputs.
    /// Joint positions from the sense stage, rad. NaN fails the position check.
    public let measuredPositionRad: UnsafeMutableBufferPointer<Double>
    /// Joint velocities (servo reading or the estimate), rad/s. NaN fails the velocity check.
    public let measuredVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// Joint efforts, N·m; write 0 for a servo that does not report load (NaN fails the effort check).
    public let measuredEffortNm: UnsafeMutableBufferPointer<Double>
    /// The policy's position targets this tick (joints driven by position; for the others the loop writes
    /// the measured position, which the safe state holds).
    public let commandedPositionRad: UnsafeMutableBufferPointer<Double>
    /// How each joint's servo is driven now (``ServoControlMode`` raw values; position by default): the loop
    /// sets it at activation and when the safe state switches a joint back to position.
    public let jointControlMode: UnsafeMutableBufferPointer<UInt8>
    /// The policy's velocity goals this tick, rad/s (joints driven by velocity).
    public let commandedVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// The policy's effort goals this tick, N·m (joints driven by current).
    public let commandedEffortNm: UnsafeMutableBufferPointer<Double>
    /// The servo's hardware-error byte per joint (0: none).
    public let hardwareErrorFlags: UnsafeMutableBufferPointer<UInt8>
    /// False for a joint whose servo gave no valid reading this tick.
    public let readingFresh: UnsafeMutableBufferPointer<Bool>
    public let framePositionM: UnsafeMutableBufferPointer<Double>
    /// Failed transactions this tick per bus (index into `configuration.busNames`), and whether one of them
    /// was the port disconnecting: written by the loop before ``guardTick(_:)``, which reads and clears them.
    /// Each bus has its own bus-error budget, so errors on one bus never use up another's.
    public let busErrorsThisTickByBus: UnsafeMutableBufferPointer<Int>
    public let busDisconnectedThisTick: UnsafeMutableBufferPointer<Bool>

    // Outputs.
    /// Validated position commands: clamped inside the limits' margins, rate-limited; in the safe state,
    /// the hold position.
    public let outputPositionRad: UnsafeMutableBufferPointer<Double>
    /// False for joints whose torque must be off (safe state with `torqueOff`).
    public let outputTorqueEnabled: UnsafeMutableBufferPointer<Bool>
    /// Validated velocity goals (rad/s): within 90 % of the velocity limit, changing by at most
    /// `maxVelocityStepRadPerSPerTick` a tick, none that pushes further past a position limit's margin; 0 in the
    /// safe state.
    public let outputVelocityRadPerS: UnsafeMutableBufferPointer<Double>
    /// Validated effort goals (N·m): within the effort limit, none that pushes further past a position
    /// limit's margin; 0 in the safe state.
    public let outputEffortNm: UnsafeMutableBufferPointer<Double>

    // Workspaces.
    private let limits: UnsafeMutableBufferPointer<JointSafetyLimits>
    private let boxes: UnsafeMutableBufferPointer<(Double, Double, Double, Double, Double, Double)>
    private let missedReadings: UnsafeMutableBufferPointer<Int>
    private let holdPositionRad: UnsafeMutableBufferPointer<Double>
    /// Each joint's servo ID and bus index for events (-1: unknown).
    private let jointServoIDs: UnsafeMutableBufferPointer<Int32>
    private let jointBusIndices: UnsafeMutableBufferPointer<Int32>
    private var consecutiveBusErrors = 0
    private let consecutiveBusErrorsByBus: UnsafeMutableBufferPointer<Int>
    private var latched = false
    private var latchedCause: SafetyCause? = nil
    private var latchedJoint = -1
    private var faultsThisTick = 0
    private var tickTimeSeconds = 0.0

    public init(configuration: SafetyConfiguration, emergencyStop: EmergencyStopSources = EmergencyStopSources()) {
        self.configuration = configuration
        self.emergencyStop = emergencyStop
        let n = configuration.joints.count
        jointCount = n
        events = SafetyEventLog(capacity: configuration.eventCapacity)
        func doubles(_ count: Int, _ value: Double = 0) -> UnsafeMutableBufferPointer<Double> {
            let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: count)
            buffer.initialize(repeating: value)
            return buffer
        }
        measuredPositionRad = doubles(n)
        measuredVelocityRadPerS = doubles(n)
        measuredEffortNm = doubles(n)
        commandedPositionRad = doubles(n)
        commandedVelocityRadPerS = doubles(n)
        commandedEffortNm = doubles(n)
        outputVelocityRadPerS = doubles(n)
        outputEffortNm = doubles(n)
        jointControlMode = .allocate(capacity: max(n, 1))
        jointControlMode.initialize(repeating: ServoControlMode.position.rawValue)
        outputPositionRad = doubles(n)
        holdPositionRad = doubles(n)
        framePositionM = doubles(3 * configuration.workspaceBoxes.count)
        hardwareErrorFlags = .allocate(capacity: n)
        hardwareErrorFlags.initialize(repeating: 0)
        readingFresh = .allocate(capacity: n)
        readingFresh.initialize(repeating: true)
        outputTorqueEnabled = .allocate(capacity: n)
        outputTorqueEnabled.initialize(repeating: false)
        missedReadings = .allocate(capacity: n)
        missedReadings.initialize(repeating: 0)
        limits = .allocate(capacity: n)
        _ = limits.initialize(from: configuration.joints)
        jointServoIDs = .allocate(capacity: max(n, 1))
        jointServoIDs.initialize(repeating: -1)
        jointBusIndices = .allocate(capacity: max(n, 1))
        jointBusIndices.initialize(repeating: -1)
        for (i, id) in configuration.jointServoIDs.enumerated() { jointServoIDs[i] = Int32(truncatingIfNeeded: id) }
        for (i, bus) in configuration.jointBusIndices.enumerated() {
            jointBusIndices[i] = Int32(truncatingIfNeeded: bus)
        }
        let busCount = max(configuration.busNames.count, 1)
        busErrorsThisTickByBus = .allocate(capacity: busCount)
        busErrorsThisTickByBus.initialize(repeating: 0)
        busDisconnectedThisTick = .allocate(capacity: busCount)
        busDisconnectedThisTick.initialize(repeating: false)
        consecutiveBusErrorsByBus = .allocate(capacity: busCount)
        consecutiveBusErrorsByBus.initialize(repeating: 0)
        boxes = .allocate(capacity: configuration.workspaceBoxes.count)
        for (i, box) in configuration.workspaceBoxes.enumerated() {
            boxes[i] = (box.minM.x, box.minM.y, box.minM.z, box.maxM.x, box.maxM.y, box.maxM.z)
        }
    }

    deinit {
        for buffer in [
            measuredPositionRad, measuredVelocityRadPerS, measuredEffortNm, commandedPositionRad,
            outputPositionRad, holdPositionRad, framePositionM, commandedVelocityRadPerS, commandedEffortNm,
            outputVelocityRadPerS, outputEffortNm,
        ] {
            buffer.deallocate()
        }
        jointControlMode.deallocate()
        hardwareErrorFlags.deallocate()
        readingFresh.deallocate()
        outputTorqueEnabled.deallocate()
        missedReadings.deallocate()
        jointServoIDs.deallocate()
        jointBusIndices.deallocate()
        busErrorsThisTickByBus.deallocate()
        busDisconnectedThisTick.deallocate()
        consecutiveBusErrorsByBus.deallocate()
        limits.deallocate()
        boxes.deallocate()
    }

    /// Whether the safe state is latched.
    public var isSafeStateLatched: Bool { latched }
    /// The rule that latched the safe state.
    public var safeStateCause: SafetyCause? { latchedCause }
    /// The joint of that rule, or nil.
    public var safeStateJointIndex: Int? { latchedJoint >= 0 ? latchedJoint : nil }

    /// Name of a joint for reports.
    public func jointName(_ index: Int32) -> String? {
        index >= 0 && Int(index) < jointCount ? configuration.jointNames[Int(index)] : nil
    }

    /// Name of a bus for reports.
    public func busName(_ index: Int32) -> String? {
        index >= 0 && Int(index) < configuration.busNames.count ? configuration.busNames[Int(index)] : nil
    }

    /// One line for the terminal and logs (allocates; not in the tick), e.g.
    /// `t=1.250 s shoulder_pan: positionLimit (above max: 2.01 beyond 2)`, with the servo and bus when the
    /// configuration names them: `t=2.004 s elbow_flex (servo 3, bus "so101"): busErrors (no reading: 6 beyond 5)`,
    /// `t=0.512 s bus "so101": busErrors (disconnected: 6 beyond 5)`.
    public func describe(_ event: SafetyEvent) -> String {
        var text = "t=" + String(format: "%.3f", event.timeSeconds) + " s "
        var place: [String] = []
        if event.servoID >= 0 { place.append("servo \(event.servoID)") }
        if let bus = busName(event.busIndex) { place.append("bus \"\(bus)\"") }
        if let name = jointName(event.jointIndex) {
            text += name + (place.isEmpty ? "" : " (" + place.joined(separator: ", ") + ")") + ": "
        } else if !place.isEmpty && event.workspaceBoxIndex < 0 {
            text += place.joined(separator: ", ") + ": "
        } else if event.workspaceBoxIndex >= 0 && Int(event.workspaceBoxIndex) < configuration.workspaceBoxes.count {
            text += configuration.workspaceBoxes[Int(event.workspaceBoxIndex)].frameName + ": "
        }
        if event.cause == .staleCommand, let source = configuration.commandSourceName { text += source + ": " }
        text += "\(event.cause)"
        var parts: [String] = []
        if event.detail.utf8CodeUnitCount > 0 { parts.append("\(event.detail)") }
        if !event.value.isNaN || !event.limit.isNaN {
            parts.append("\(event.value.formatted6) beyond \(event.limit.formatted6)")
        }
        if !parts.isEmpty { text += " (" + parts.joined(separator: ": ") + ")" }
        return text
    }

    /// Starts supervising from the present pose (at activation and recovery): clears the latch, the
    /// counters and the e-stop latch, and makes the measured positions the previous output, so that the
    /// first commands are rate-limited from where the robot is. Fill `measuredPositionRad` first.
    public func rearm() {
        latched = false
        latchedCause = nil
        latchedJoint = -1
        consecutiveBusErrors = 0
        for b in 0..<consecutiveBusErrorsByBus.count {
            consecutiveBusErrorsByBus[b] = 0
            busErrorsThisTickByBus[b] = 0
            busDisconnectedThisTick[b] = false
        }
        emergencyStop.clear()
        for i in 0..<jointCount {
            missedReadings[i] = 0
            outputPositionRad[i] = measuredPositionRad[i]
            outputVelocityRadPerS[i] = 0
            outputEffortNm[i] = 0
            outputTorqueEnabled[i] = true
        }
    }

    /// Enters the safe state without a fault (shutdown requested, deactivation): no event, no cause; the
    /// next `guardTick` outputs hold or torque off per joint. Allocation-free.
    public func enterSafeStateWithoutFault() {
        if !latched { latchSafeState() }
    }

    /// Forces the safe state (e.g. after a failed transition) with a cause, recording the event.
    public func forceSafeState(cause: SafetyCause, jointIndex: Int = -1, input: SafetyTickInput) {
        tickTimeSeconds = Double(input.nowNs - input.loopStartNs) * 1e-9
        faultsThisTick = 0
        fault(cause, joint: jointIndex, value: .nan, limit: .nan, detail: "forced")
        if !latched { latchSafeState() }
    }

    /// Checks every rule and writes the validated outputs. Allocation-free.
    public func guardTick(_ input: SafetyTickInput) -> SafetyVerdict {
        tickTimeSeconds = Double(input.nowNs - input.loopStartNs) * 1e-9
        faultsThisTick = 0
        let wasLatched = latched

        if let source = emergencyStop.poll() {
            fault(.emergencyStop, joint: -1, value: .nan, limit: .nan, detail: source.detail)
        }
        if let timeout = configuration.commandTimeoutNs {
            let age = input.nowNs - input.lastCommandTimeNs
            if age > timeout {
                fault(.staleCommand, joint: -1, value: Double(age), limit: Double(timeout), detail: "ns")
            }
        }
        let budget = configuration.busErrorBudget
        // Each bus against its own budget: errors on one bus say nothing about another.
        var attributed = 0
        for b in 0..<configuration.busNames.count {
            let errors = busErrorsThisTickByBus[b]
            attributed += errors
            consecutiveBusErrorsByBus[b] = errors > 0 ? consecutiveBusErrorsByBus[b] + errors : 0
            if consecutiveBusErrorsByBus[b] > budget {
                fault(
                    .busErrors, joint: -1, value: Double(consecutiveBusErrorsByBus[b]), limit: Double(budget),
                    detail: busDisconnectedThisTick[b] ? "disconnected" : "bus", bus: b)
            }
            busErrorsThisTickByBus[b] = 0
            busDisconnectedThisTick[b] = false
        }
        // Errors given only as a count (no bus said): one budget of their own, named by `failingBusIndex`.
        let unattributed = max(0, input.busErrorsThisTick - attributed)
        consecutiveBusErrors = unattributed > 0 ? consecutiveBusErrors + unattributed : 0
        if consecutiveBusErrors > budget {
            fault(
                .busErrors, joint: -1, value: Double(consecutiveBusErrors), limit: Double(budget),
                detail: input.busDisconnected ? "disconnected" : "bus", bus: input.failingBusIndex)
        }
        if let overrunBudget = configuration.overrunBudget, input.overrunsInARow > overrunBudget {
            fault(.overrun, joint: -1, value: Double(input.overrunsInARow), limit: Double(overrunBudget), detail: "")
        }
        checkJoints()
        checkWorkspace()

        if faultsThisTick > 0 && !wasLatched { latchSafeState() }
        if latched {
            for i in 0..<jointCount {
                outputPositionRad[i] = holdPositionRad[i]
                outputVelocityRadPerS[i] = 0
                outputEffortNm[i] = 0
                outputTorqueEnabled[i] = limits[i].safeState == .hold
            }
        } else {
            limitCommands()
        }
        return SafetyVerdict(
            isSafeState: latched, enteredThisTick: latched && !wasLatched, cause: latchedCause,
            jointIndex: latchedJoint >= 0 ? latchedJoint : nil)
    }

    private func checkJoints() {
        for i in 0..<jointCount {
            let limit = limits[i]
            let flags = hardwareErrorFlags[i]
            if flags != 0 { fault(.servoHardwareError, joint: i, value: Double(flags), limit: 0, detail: "flags") }
            if readingFresh[i] {
                missedReadings[i] = 0
            } else {
                missedReadings[i] += 1
                if missedReadings[i] > configuration.busErrorBudget {
                    fault(
                        .busErrors, joint: i, value: Double(missedReadings[i]),
                        limit: Double(configuration.busErrorBudget), detail: "no reading")
                }
            }
            // Written so that NaN readings fail the checks.
            let position = measuredPositionRad[i]
            if !(position >= limit.positionMinRad) {
                fault(.positionLimit, joint: i, value: position, limit: limit.positionMinRad, detail: "below min")
            } else if !(position <= limit.positionMaxRad) {
                fault(.positionLimit, joint: i, value: position, limit: limit.positionMaxRad, detail: "above max")
            }
            let velocity = measuredVelocityRadPerS[i]
            if !(abs(velocity) <= limit.velocityLimitRadPerS) {
                fault(.velocityLimit, joint: i, value: velocity, limit: limit.velocityLimitRadPerS, detail: "")
            }
            let effort = measuredEffortNm[i]
            if !(abs(effort) <= limit.effortLimitNm) {
                fault(.effortLimit, joint: i, value: effort, limit: limit.effortLimitNm, detail: "")
            }
            let mode = jointControlMode[i]
            if mode == ServoControlMode.velocity.rawValue && !commandedVelocityRadPerS[i].isFinite {
                fault(
                    .stepLimit, joint: i, value: commandedVelocityRadPerS[i], limit: limit.velocityLimitRadPerS,
                    detail: "non-finite velocity")
            } else if mode == ServoControlMode.current.rawValue && !commandedEffortNm[i].isFinite {
                fault(
                    .stepLimit, joint: i, value: commandedEffortNm[i], limit: limit.effortLimitNm,
                    detail: "non-finite effort")
            }
            let command = commandedPositionRad[i]
            if !command.isFinite {
                fault(.stepLimit, joint: i, value: command, limit: limit.stepFaultRadPerTick, detail: "non-finite")
            } else if !latched && abs(command - outputPositionRad[i]) > limit.stepFaultRadPerTick {
                fault(
                    .stepLimit, joint: i, value: command - outputPositionRad[i], limit: limit.stepFaultRadPerTick,
                    detail: "jump")
            }
        }
    }

    private func checkWorkspace() {
        for b in 0..<boxes.count {
            let box = boxes[b]
            let x = framePositionM[3 * b]
            let y = framePositionM[3 * b + 1]
            let z = framePositionM[3 * b + 2]
            if !(x >= box.0 && x <= box.3) {
                fault(.workspaceLimit, box: b, value: x, limit: x < box.0 ? box.0 : box.3, detail: "x")
            } else if !(y >= box.1 && y <= box.4) {
                fault(.workspaceLimit, box: b, value: y, limit: y < box.1 ? box.1 : box.4, detail: "y")
            } else if !(z >= box.2 && z <= box.5) {
                fault(.workspaceLimit, box: b, value: z, limit: z < box.2 ? box.2 : box.5, detail: "z")
            }
        }
    }

    private func limitCommands() {
        for i in 0..<jointCount {
            let limit = limits[i]
            var target = commandedPositionRad[i]
            let previous = outputPositionRad[i]
            if !target.isFinite { target = previous }
            let low = limit.positionMinRad + limit.positionMarginRad
            let high = limit.positionMaxRad - limit.positionMarginRad
            target = low <= high ? min(max(target, low), high) : (low + high) / 2
            let step = limit.maxStepRadPerTick
            target = min(max(target, previous - step), previous + step)
            outputPositionRad[i] = target
            outputTorqueEnabled[i] = true
            let previousVelocity = outputVelocityRadPerS[i]
            outputVelocityRadPerS[i] = 0
            outputEffortNm[i] = 0
            let mode = jointControlMode[i]
            guard mode != ServoControlMode.position.rawValue else { continue }
            // Velocity and effort goals: within their limits, and none that drives the joint further past
            // the margin inside a position limit (the position fault stays at the limit itself).
            let q = measuredPositionRad[i]
            let beyondHigh = q >= high
            let beyondLow = q <= low
            if mode == ServoControlMode.velocity.rawValue {
                var v = commandedVelocityRadPerS[i]
                if !v.isFinite { v = 0 }
                // Within 90 % of the limit: a servo's speed overshoots its goal a little, and the limit is a fault.
                let speed = 0.9 * limit.velocityLimitRadPerS
                v = min(max(v, -speed), speed)
                if (beyondHigh && v > 0) || (beyondLow && v < 0) { v = 0 }
                let dv = limit.maxVelocityStepRadPerSPerTick
                v = min(max(v, previousVelocity - dv), previousVelocity + dv)
                outputVelocityRadPerS[i] = v
            } else {
                var e = commandedEffortNm[i]
                if !e.isFinite { e = 0 }
                e = min(max(e, -limit.effortLimitNm), limit.effortLimitNm)
                if (beyondHigh && e > 0) || (beyondLow && e < 0) { e = 0 }
                outputEffortNm[i] = e
            }
        }
    }

    private func latchSafeState() {
        latched = true
        for i in 0..<jointCount {
            // Hold where the joint is; if its reading is unusable, where it was last commanded.
            let position = measuredPositionRad[i]
            holdPositionRad[i] = position.isFinite ? position : outputPositionRad[i]
        }
    }

    /// Records a fault. Events are recorded until the safe state is latched, including every rule that
    /// fired in the latching tick; later faults are not logged again until `rearm()`.
    private func fault(
        _ cause: SafetyCause, joint: Int, value: Double, limit: Double, detail: StaticString, bus: Int = -1
    ) {
        guard !latched else { return }
        if faultsThisTick == 0 {
            latchedCause = cause
            latchedJoint = joint
        }
        faultsThisTick += 1
        let known = joint >= 0 && joint < jointCount
        events.append(
            SafetyEvent(
                timeSeconds: tickTimeSeconds, cause: cause, jointIndex: Int32(joint), value: value, limit: limit,
                detail: detail, servoID: known ? jointServoIDs[joint] : -1,
                busIndex: known ? jointBusIndices[joint] : Int32(truncatingIfNeeded: bus)))
    }

    private func fault(_ cause: SafetyCause, box: Int, value: Double, limit: Double, detail: StaticString) {
        guard !latched else { return }
        if faultsThisTick == 0 {
            latchedCause = cause
            latchedJoint = -1
        }
        faultsThisTick += 1
        events.append(
            SafetyEvent(
                timeSeconds: tickTimeSeconds, cause: cause, workspaceBoxIndex: Int32(box), value: value,
                limit: limit, detail: detail))
    }
}

extension Double {
    fileprivate var formatted6: String { String(format: "%.6g", self) }
}
