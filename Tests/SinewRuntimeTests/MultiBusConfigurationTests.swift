import Foundation
import SinewRuntime
import Testing

private let so101Directory =
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path + "/Hardware/robots/so101"

/// Two buses; line numbers below refer to this text.
private let twoBusYAML = """
    name: two-buses
    model: so101.urdf
    buses:
      - {name: left, protocol: feetech, port: virtual}
      - {name: right, protocol: feetech, port: virtual}
    joints:
      - name: shoulder_pan
        bus: left
        id: 1
        servo: sts3215
        coupled: {id: 7, direction: -1, bus: left}
      - {name: shoulder_lift, bus: right, id: 1, servo: sts3215}
    loop:
      bus_io: threads
    """

private func parse(_ text: String) throws(ConfigurationError) -> RobotConfiguration {
    try RobotConfiguration.parse(text, file: "robot.yaml", baseDirectory: so101Directory)
}

@Suite struct MultiBusConfigurationTests {
    @Test func busIOAndACoupledServoOnTheJointsOwnBus() throws {
        let c = try parse(twoBusYAML)
        #expect(c.loop.busIO == .threads)
        #expect(c.joints[0].coupled == RobotConfiguration.CoupledServo(servoID: 7, direction: -1))
        #expect(
            try parse(twoBusYAML.replacingOccurrences(of: "  bus_io: threads", with: "  rate_hz: 100")).loop.busIO
                == .poll)
        #expect(c.replacingBusIO(.sequential).loop.busIO == .sequential)
        #expect(c.replacingBusIO(.sequential).loop.rateHz == c.loop.rateHz)
    }

    @Test func anUnknownBusIOIsRefusedWithTheChoices() throws {
        do {
            _ = try parse(twoBusYAML.replacingOccurrences(of: "bus_io: threads", with: "bus_io: parallel"))
            Issue.record("expected an error")
        } catch {
            #expect(error.location.line == 14 && error.keyPath == "loop.bus_io", "\(error)")
            #expect("\(error)".contains("'poll' or 'threads' or 'sequential'"), "\(error)")
        }
    }

    /// A joint driven by servos on two buses is refused when the file is read, before any servo is touched:
    /// the message names the file, line and column of the `bus:` and says why.
    @Test func aJointCoupledAcrossBusesIsRefused() throws {
        do {
            _ = try parse(
                twoBusYAML.replacingOccurrences(of: "direction: -1, bus: left}", with: "direction: -1, bus: right}"))
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .invalidValue)
            #expect(error.keyPath == "joints[0].coupled.bus")
            #expect(error.location.line == 11 && error.location.column == 42, "\(error.location)")
            let text = "\(error)"
            #expect(
                text.hasPrefix("robot.yaml:11:42: joints[0].coupled.bus: expected the joint's own bus 'left'"),
                "\(text)")
            #expect(text.contains("servos on two buses is not supported") && text.contains("found 'right'"), "\(text)")
        }
    }

    /// Each bus has its own bus-error budget: errors on two buses in turns never add up, a run of errors on
    /// one bus beyond the budget faults naming that bus, and errors given without a bus keep one budget of
    /// their own.
    @Test func theSupervisorBudgetsEachBusOnItsOwn() throws {
        let limits = JointSafetyLimits(
            positionMinRad: -1, positionMaxRad: 1, positionMarginRad: 0.1, velocityLimitRadPerS: 3, effortLimitNm: 2,
            maxStepRadPerTick: 0.05, stepFaultRadPerTick: 0.5, safeState: .hold)
        func supervisor() -> SafetySupervisor {
            let s = SafetySupervisor(
                configuration: SafetyConfiguration(
                    jointNames: ["a", "b"], joints: [limits, limits], busErrorBudget: 3, jointServoIDs: [1, 1],
                    jointBusIndices: [0, 1], busNames: ["left", "right"]))
            s.rearm()
            return s
        }
        func tick(_ s: SafetySupervisor, _ n: Int, left: Int = 0, right: Int = 0, unattributed: Int = 0)
            -> SafetyVerdict
        {
            s.busErrorsThisTickByBus[0] = left
            s.busErrorsThisTickByBus[1] = right
            return s.guardTick(
                SafetyTickInput(
                    nowNs: Int64(n) * 2_000_000, loopStartNs: 0, lastCommandTimeNs: Int64(n) * 2_000_000,
                    busErrorsThisTick: left + right + unattributed))
        }
        let turns = supervisor()
        for n in 0..<30 {
            let onLeft = (n / 3) % 2 == 0
            #expect(!tick(turns, n, left: onLeft ? 1 : 0, right: onLeft ? 0 : 1).isSafeState, "tick \(n)")
        }
        let oneBus = supervisor()
        for n in 0..<3 { #expect(!tick(oneBus, n, right: 1).isSafeState) }
        let verdict = tick(oneBus, 3, right: 1)
        #expect(verdict.enteredThisTick && verdict.cause == .busErrors)
        let event = try #require(oneBus.events.events.first)
        #expect(oneBus.busName(event.busIndex) == "right")
        #expect(
            oneBus.describe(event).contains("bus \"right\": busErrors (bus: 4 beyond 3)"), "\(oneBus.describe(event))")
        let legacy = supervisor()
        for n in 0..<3 { #expect(!tick(legacy, n, unattributed: 1).isSafeState) }
        #expect(tick(legacy, 3, unattributed: 1).enteredThisTick)
    }
}
