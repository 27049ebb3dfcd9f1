import Foundation
import SinewKinematics
import SinewRuntime
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
private let so101Directory = "\(repositoryRoot)/Hardware/robots/so101"

/// A complete configuration using every section; line numbers below refer to this text.
private let fullYAML = """
    name: test-arm
    model: so101.urdf
    buses:
      - name: arm
        protocol: feetech
        port: /dev/ttyACM0
        baud: 500000
      - name: aux
        protocol: dynamixel
        port: virtual
    joints:
      - name: shoulder_pan
        bus: arm
        id: 1
        servo: sts3215
        reducer: {ratio: 2.5, backlash_rad: 0.01, efficiency: 0.9}
        direction: -1
        offset_rad: 0.1
        limits: {position_rad: [-1.5, 1.5], velocity_rad_s: 3, effort_nm: 1.5}
        safe_state: hold
        coupled: {id: 7, direction: -1}
      - name: shoulder_lift
        bus: aux
        id: 1
        servo: xm430-w350
      - name: elbow_flex
        bus: arm
        id: 3
        servo: sts3215
    loop:
      rate_hz: 250
      priority: 90
      cpu: 1
      overrun: catch_up
      catch_up_max: 2
    policy:
      type: trajectory
      loop: true
      waypoints:
        - {duration_s: 1.5, positions_rad: {shoulder_pan: 0.2, shoulder_lift: -0.5, elbow_flex: 0.4}}
        - {duration_s: 2, positions_rad: {elbow_flex: 0.8}}
        - {duration_s: 0.5, positions_rad: [0, 0, 0]}
    safety:
      position_margin_rad: 0.05
      velocity_limit_scale: 0.5
      max_step_rad: 0.02
      watchdog_ms: 20
      bus_error_budget: 3
      workspace:
        - {frame: gripper_frame_link, min: [-0.1, -0.2, 0], max: [0.4, 0.2, 0.5]}
      estop: {file: /tmp/stop, socket: /run/sinew.sock}
    recording:
      enabled: true
      path: out/run1
      decimation: 5
    imu:
      port: virtual
      protocol: mavlink
      link: base_link
      mounting: {xyz: [0.01, 0, 0.02], rpy: [0, 0, 1.5708]}
      rate_hz: 200
    """

private func parse(_ text: String) throws(ConfigurationError) -> RobotConfiguration {
    try RobotConfiguration.parse(text, file: "robot.yaml", baseDirectory: so101Directory)
}

/// The error `text` produces; fails the test when it parses.
private func parseError(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation)
    -> ConfigurationError?
{
    do {
        _ = try parse(text)
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// `fullYAML` with one line replaced (1-based line number).
private func fullYAML(
    replacingLine line: Int, with text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation
) -> String {
    fullYAML(replacing: [line: text], sourceLocation: sourceLocation)
}

/// `fullYAML` with lines replaced; records an issue for a line number the text does not have.
private func fullYAML(
    replacing replacements: [Int: String], sourceLocation: Testing.SourceLocation = #_sourceLocation
) -> String {
    var lines = fullYAML.components(separatedBy: "\n")
    for (line, text) in replacements {
        guard lines.indices.contains(line - 1) else {
            Issue.record("fullYAML has no line \(line) (it has \(lines.count))", sourceLocation: sourceLocation)
            continue
        }
        lines[line - 1] = text
    }
    return lines.joined(separator: "\n")
}

/// A waypoint that names no joints, for configurations that rename one.
private let waypointList = "    - {duration_s: 1.5, positions_rad: [0.2, -0.5, 0.4]}"

/// One line of `fullYAML` replaced by `text`, and the error that should produce.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    var line: Int
    var text: String
    var kind: ConfigurationError.Kind
    var errorLine: Int
    var errorColumn: Int
    var keyPath: String

    init(
        _ line: Int, _ text: String, _ kind: ConfigurationError.Kind, _ errorLine: Int, _ errorColumn: Int,
        _ keyPath: String
    ) {
        (self.line, self.text, self.kind, self.errorLine, self.errorColumn, self.keyPath) = (
            line, text, kind, errorLine, errorColumn, keyPath
        )
    }

    var testDescription: String { "line \(line): \(text.trimmingCharacters(in: .whitespaces))" }
}

@Suite struct ConfigurationParsingTests {
    @Test func fullConfigurationParsesToTheExpectedValues() throws {
        let c = try parse(fullYAML)
        #expect(c.name == "test-arm")
        #expect(c.file == "robot.yaml")
        #expect(c.modelPath == "\(so101Directory)/so101.urdf")
        #expect(
            c.buses.map { [$0.name, $0.busProtocol.rawValue, $0.port.description, "\($0.baudRate)"] } == [
                ["arm", "feetech", "/dev/ttyACM0", "500000"], ["aux", "dynamixel", "virtual", "1000000"],
            ])
        #expect(c.buses.first?.location.line == 4 && c.buses.first?.location.column == 5)

        try #require(c.joints.count == 3)
        let pan = c.joints[0]
        #expect(pan.name == "shoulder_pan" && pan.bus == "arm" && pan.servoID == 1 && pan.servoModel == "sts3215")
        #expect(pan.reducer == RobotConfiguration.Reducer(ratio: 2.5, backlashRad: 0.01, efficiency: 0.9))
        #expect(pan.direction == -1 && pan.offsetRad == 0.1)
        #expect(
            pan.limits == RobotConfiguration.JointLimits(positionRad: (-1.5, 1.5), velocityRadPerS: 3, effortNm: 1.5))
        #expect(pan.safeState == .hold)
        #expect(pan.coupled == RobotConfiguration.CoupledServo(servoID: 7, direction: -1))
        #expect(pan.location.line == 12)

        let lift = c.joints[1]
        #expect(lift.bus == "aux" && lift.servoID == 1 && lift.servoModel == "xm430-w350")
        #expect(lift.reducer == RobotConfiguration.Reducer() && lift.direction == 1 && lift.offsetRad == 0)
        #expect(lift.limits == RobotConfiguration.JointLimits() && lift.safeState == .torqueOff && lift.coupled == nil)
        #expect(c.joints(onBus: "arm").map(\.index) == [0, 2])

        #expect(c.loop == RobotConfiguration.Loop(rateHz: 250, priority: 90, cpu: 1, overrun: .catchUp, catchUpMax: 2))

        guard let trajectory = c.policy.settings as? RobotConfiguration.Trajectory else {
            Issue.record("expected a trajectory policy")
            return
        }
        #expect(trajectory.loop)
        #expect(trajectory.waypoints.map(\.positionsRad) == [[0.2, -0.5, 0.4], [0.2, -0.5, 0.8], [0, 0, 0]])
        #expect(trajectory.waypoints.map(\.durationS) == [1.5, 2, 0.5])
        #expect(trajectory.durationS == 4)

        #expect(c.safety.positionMarginRad == 0.05 && c.safety.velocityLimitScale == 0.5)
        // Commands stay half the reducer's play further inside the limits.
        #expect(abs(pan.commandMarginRad(c.safety) - 0.055) < 1e-15 && lift.commandMarginRad(c.safety) == 0.05)
        #expect(c.safety.maxStepRad == 0.02 && c.safety.watchdogMs == 20 && c.safety.busErrorBudget == 3)
        try #require(c.safety.workspace.count == 1)
        #expect(c.safety.workspace[0].frame == "gripper_frame_link")
        #expect(
            c.safety.workspace[0].minM == SIMD3(-0.1, -0.2, 0) && c.safety.workspace[0].maxM == SIMD3(0.4, 0.2, 0.5))
        #expect(c.safety.estop == RobotConfiguration.EmergencyStop(file: "/tmp/stop", socket: "/run/sinew.sock"))

        #expect(c.recording == RobotConfiguration.Recording(enabled: true, path: "out/run1", decimation: 5))

        let imu = try #require(c.imu)
        #expect(imu.port == .virtual && imu.imuProtocol == "mavlink" && imu.link == "base_link")
        #expect(imu.mountingXYZ == SIMD3(0.01, 0, 0.02) && imu.mountingRPY == SIMD3(0, 0, 1.5708) && imu.rateHz == 200)
    }

    @Test func everythingButModelBusesAndJointsHasDefaults() throws {
        let c = try RobotConfiguration.parse(
            """
            model: ../so101/so101.urdf
            buses: [{name: only, protocol: dynamixel, port: virtual}]
            joints:
              - {name: a, id: 0, servo: xl330-m288}
            """, file: "/robots/mine/robot.yaml", baseDirectory: "/robots/mine")
        #expect(c.name == "mine")
        #expect(c.modelPath == "/robots/mine/../so101/so101.urdf")
        #expect(c.buses.first?.baudRate == 1_000_000)
        #expect(c.joints.first?.bus == "only")
        #expect(c.joints.first?.safeState == .torqueOff)
        #expect(c.loop == RobotConfiguration.Loop())
        #expect(c.loop.rateHz == 500 && c.loop.priority == 80 && c.loop.cpu == nil && c.loop.overrun == .skip)
        #expect(c.policy == .hold)
        #expect(c.safety == RobotConfiguration.Safety())
        #expect(c.safety.workspace.isEmpty && c.safety.estop == RobotConfiguration.EmergencyStop())
        #expect(c.recording == RobotConfiguration.Recording())
        #expect(c.recording.enabled == false && c.recording.decimation == 1)
        #expect(c.imu == nil)
    }

    @Test func nullValuesMeanTheDefault() throws {
        let c = try parse(
            """
            model: so101.urdf
            buses: [{name: b, protocol: feetech, port: virtual}]
            joints: [{name: gripper, id: 6, servo: sts3215}]
            loop: {cpu: ~, rate_hz: }
            """)
        #expect(c.loop.cpu == nil && c.loop.rateHz == 500)
    }

    @Test func unknownKeySuggestsTheClosestValidKey() {
        let error = parseError(fullYAML(replacingLine: 16, with: "    reducer: {ratoi: 2.5, backlash_rad: 0.01}"))
        #expect(error?.kind == .unknownKey)
        #expect(error?.suggestion == "ratio")
        #expect(error?.keyPath == "joints[0].reducer")
        #expect(error?.location.line == 16 && error?.location.column == 15)
        #expect(
            error?.description == "robot.yaml:16:15: unknown key 'ratoi' in joints[0].reducer; did you mean 'ratio'?")
    }

    @Test func unknownKeyWithoutACloseMatchListsTheValidKeys() {
        let error = parseError(fullYAML(replacingLine: 33, with: "  frobnicate: 3"))
        #expect(error?.kind == .unknownKey && error?.suggestion == nil && error?.keyPath == "loop")
        #expect(
            error?.description.contains("expected one of rate_hz, priority, cpu, overrun, catch_up_max, busy_poll_us")
                == true)
    }

    @Test func unknownJointInAWaypointMapSuggestsAJointName() {
        let error = parseError(
            fullYAML(replacingLine: 41, with: "    - {duration_s: 2, positions_rad: {elbow_flx: 0.8}}"))
        #expect(error?.kind == .unknownKey && error?.suggestion == "elbow_flex")
        #expect(error?.keyPath == "policy.waypoints[1].positions_rad")
    }

    /// One broken line at a time: each error names the kind, file:line:column and key path.
    @Test(arguments: [
        ErrorCase(6, "    port: ttyACM0", .invalidValue, 6, 11, "buses[0].port"),
        ErrorCase(7, "    baud: 1234", .invalidValue, 7, 11, "buses[0].baud"),
        ErrorCase(9, "    protocol: canopen", .invalidValue, 9, 15, "buses[1].protocol"),
        ErrorCase(8, "  - name: arm", .duplicateName, 8, 11, "buses[1].name"),
        ErrorCase(13, "    bus: can0", .unknownBus, 13, 10, "joints[0].bus"),
        ErrorCase(14, "    id: 254", .servoIDOutOfRange, 14, 9, "joints[0].id"),
        ErrorCase(14, "    id: one", .wrongType, 14, 9, "joints[0].id"),
        ErrorCase(15, "    servo: sts3299", .unknownServoModel, 15, 12, "joints[0].servo"),
        ErrorCase(15, "    servo: xl330-m288", .servoProtocolMismatch, 15, 12, "joints[0].servo"),
        ErrorCase(16, "    reducer: {ratio: 0}", .invalidValue, 16, 22, "joints[0].reducer.ratio"),
        ErrorCase(16, "    reducer: {ratio: [2]}", .wrongType, 16, 22, "joints[0].reducer.ratio"),
        ErrorCase(16, "    reducer: 2", .wrongType, 16, 14, "joints[0].reducer"),
        ErrorCase(17, "    direction: 2", .invalidValue, 17, 16, "joints[0].direction"),
        ErrorCase(
            19, "    limits: {position_rad: [1.5, -1.5]}", .invalidLimits, 19, 28, "joints[0].limits.position_rad"),
        ErrorCase(19, "    limits: {position_rad: [1.5]}", .invalidValue, 19, 28, "joints[0].limits.position_rad"),
        ErrorCase(19, "    limits: {velocity_rad_s: -1}", .invalidValue, 19, 30, "joints[0].limits.velocity_rad_s"),
        ErrorCase(20, "    safe_state: brake", .invalidValue, 20, 17, "joints[0].safe_state"),
        ErrorCase(21, "    coupled: {id: 1, direction: -1}", .duplicateServoID, 21, 19, "joints[0].coupled.id"),
        ErrorCase(22, "  - name: shoulder_pan", .duplicateName, 22, 11, "joints[1].name"),
        ErrorCase(28, "    id: 7", .duplicateServoID, 28, 9, "joints[2].id"),
        ErrorCase(31, "  rate_hz: 0", .invalidValue, 31, 12, "loop.rate_hz"),
        ErrorCase(32, "  priority: 100", .invalidValue, 32, 13, "loop.priority"),
        ErrorCase(34, "  overrun: wait", .invalidValue, 34, 12, "loop.overrun"),
        ErrorCase(37, "  type: learned", .invalidValue, 37, 9, "policy.type"),
        ErrorCase(
            40, "    - {duration_s: 0, positions_rad: {shoulder_pan: 0.2}}", .invalidValue, 40, 20,
            "policy.waypoints[0].duration_s"),
        ErrorCase(
            40, "    - {duration_s: 1, positions_rad: {shoulder_pan: 0.2}}", .missingKey, 40, 38,
            "policy.waypoints[0].positions_rad"),
        ErrorCase(40, "    - {positions_rad: [0, 0, 0]}", .missingKey, 40, 7, "policy.waypoints[0].duration_s"),
        ErrorCase(
            42, "    - {duration_s: 0.5, positions_rad: [0, 0]}", .invalidValue, 42, 40,
            "policy.waypoints[2].positions_rad"),
        ErrorCase(
            42, "    - {duration_s: 0.5, positions_rad: [2, 0, 0]}", .invalidValue, 42, 41,
            "policy.waypoints[2].positions_rad[0]"),
        ErrorCase(44, "  position_margin_rad: -0.1", .invalidValue, 44, 24, "safety.position_margin_rad"),
        ErrorCase(45, "  velocity_limit_scale: 1.5", .invalidValue, 45, 25, "safety.velocity_limit_scale"),
        ErrorCase(48, "  bus_error_budget: 0", .invalidValue, 48, 21, "safety.bus_error_budget"),
        ErrorCase(
            50, "    - {frame: gripper_frame_link, min: [-0.1, -0.2, 0], max: [0.4, 0.2, -0.5]}", .invalidLimits, 50,
            62, "safety.workspace[0].max"),
        ErrorCase(
            50, "    - {frame: gripper_frame_link, min: [-0.1, -0.2], max: [0.4, 0.2, 0.5]}", .invalidValue, 50, 40,
            "safety.workspace[0].min"),
        ErrorCase(55, "  decimation: 0", .invalidValue, 55, 15, "recording.decimation"),
        ErrorCase(57, "  port: COM3", .invalidValue, 57, 9, "imu.port"),
        ErrorCase(58, "  protocol: bno055", .invalidValue, 58, 13, "imu.protocol"),
        ErrorCase(61, "  baud: 12345", .invalidValue, 61, 9, "imu.baud"),
    ])
    func errorNamesFileLineColumnAndKeyPath(_ c: ErrorCase) {
        let (kind, errorLine, errorColumn, keyPath) = (c.kind, c.errorLine, c.errorColumn, c.keyPath)
        let error = parseError(fullYAML(replacingLine: c.line, with: c.text))
        #expect(error?.kind == kind)
        #expect(error?.location.file == "robot.yaml")
        #expect(error?.location.line == errorLine)
        #expect(error?.location.column == errorColumn)
        #expect(error?.keyPath == keyPath)
        #expect(error?.description.hasPrefix("robot.yaml:\(errorLine):\(errorColumn): \(keyPath): expected ") == true)
    }

    @Test func missingRequiredKeysPointAtTheEnclosingMapping() {
        let noModel = parseError("buses: [{name: b, protocol: feetech, port: virtual}]\njoints: []\n")
        #expect(noModel?.kind == .missingKey && noModel?.keyPath == "model" && noModel?.location.line == 1)
        #expect(noModel?.found == "nothing")

        // Two buses are configured, so a joint must say which.
        let noBus = parseError(fullYAML(replacingLine: 13, with: "    # no bus"))
        #expect(noBus?.kind == .missingKey && noBus?.keyPath == "joints[0].bus")
        #expect(noBus?.location.line == 12 && noBus?.location.column == 5)
        let missingServo = parseError(
            """
            model: so101.urdf
            buses: [{name: b, protocol: feetech, port: virtual}]
            joints:
              - name: gripper
                id: 6
            """)
        #expect(missingServo?.kind == .missingKey && missingServo?.keyPath == "joints[0].servo")
        #expect(missingServo?.location.line == 4 && missingServo?.location.column == 5)
    }

    @Test func malformedYAMLNamesTheLine() {
        let error = parseError("model: so101.urdf\nbuses: [unclosed\njoints: []\n")
        #expect(error?.kind == .malformedYAML)
        #expect(error?.location.file == "robot.yaml")
        #expect((error?.location.line ?? 0) >= 2)
        #expect(error?.description.hasPrefix("robot.yaml:\(error?.location.line ?? 0):") == true)
        #expect(error?.description.contains("not valid YAML: ") == true)

        let duplicate = parseError("model: a.urdf\nmodel: b.urdf\n")
        #expect(duplicate?.kind == .malformedYAML)
        #expect(duplicate?.found.contains("'model'") == true)

        let empty = parseError("")
        #expect(empty?.kind == .malformedYAML)

        let list = parseError("- model\n")
        #expect(list?.kind == .wrongType && list?.location.line == 1)
    }

    @Test func mergeKeysShareSettingsWrittenOnce() throws {
        let c = try parse(
            """
            model: so101.urdf
            buses: [{name: b, protocol: feetech, port: virtual}]
            joints:
              - &first
                name: shoulder_pan
                id: 1
                servo: sts3215
                limits: {velocity_rad_s: 4}
                safe_state: hold
              - {<<: *first, name: gripper, id: 6, safe_state: torque_off}
            """)
        try #require(c.joints.map(\.name) == ["shoulder_pan", "gripper"])
        #expect(c.joints[1].servoID == 6 && c.joints[1].servoModel == "sts3215")
        #expect(c.joints[1].limits.velocityRadPerS == 4 && c.joints[1].safeState == .torqueOff)

        let typo = parseError(
            """
            model: so101.urdf
            buses: [{name: b, protocol: feetech, port: virtual}]
            joints:
              - &first {name: shoulder_pan, id: 1, servo: sts3215}
              - {<<: [*first, {saf_state: hold}], name: gripper, id: 6}
            """)
        #expect(typo?.kind == .unknownKey && typo?.suggestion == "safe_state" && typo?.keyPath == "joints[1]")
        #expect(typo?.location.line == 5)
    }

    @Test func unreadableFile() {
        #expect(throws: ConfigurationError.self) { try RobotConfiguration.load(contentsOf: "/nonexistent/robot.yaml") }
        do {
            _ = try RobotConfiguration.load(contentsOf: "/nonexistent/robot.yaml")
        } catch {
            #expect(error.kind == .unreadableFile && error.found == "no such file")
        }
    }

    /// `loop.busy_poll_us` (line 35 holds `catch_up_max` in the full example): µs, ≥ 0, default 0.
    @Test func imuSerialRateAndProtocol() throws {
        #expect(try parse(fullYAML).imu?.baudRate == 921_600)
        #expect(try parse(fullYAML(replacingLine: 61, with: "  baud: 115200")).imu?.baudRate == 115_200)
        #expect(try parse(fullYAML(replacingLine: 58, with: "  protocol: MAVLink2")).imu?.imuProtocol == "mavlink")
        let unknown = parseError(fullYAML(replacingLine: 58, with: "  protocol: bno055"))
        #expect(unknown?.description.contains("one of mavlink, virtual") == true, "\(String(describing: unknown))")
    }

    @Test func busyPollingIsALoopSetting() throws {
        #expect(try parse(fullYAML).loop.busyPollUs == 0)
        #expect(try parse(fullYAML(replacingLine: 35, with: "  busy_poll_us: 40")).loop.busyPollUs == 40)
        let negative = parseError(fullYAML(replacingLine: 35, with: "  busy_poll_us: -5"))
        #expect(negative?.keyPath == "loop.busy_poll_us" || negative?.description.contains("busy_poll_us") == true)
    }

    @Test func suggestionDistance() {
        // Through the public surface: the closest key wins, far-off words get no suggestion.
        let close = parseError(fullYAML(replacingLine: 31, with: "  rate_hx: 250"))
        #expect(close?.suggestion == "rate_hz")
        let transposed = parseError(fullYAML(replacingLine: 32, with: "  prioirty: 90"))
        #expect(transposed?.suggestion == "priority")
        let far = parseError(fullYAML(replacingLine: 32, with: "  xyz: 90"))
        #expect(far?.kind == .unknownKey && far?.suggestion == nil)
    }
}

@Suite struct ConfigurationModelCheckTests {
    private func model() throws -> RobotModel { try RobotModel(urdf: "\(so101Directory)/so101.urdf") }

    @Test func fullConfigurationChecksAgainstTheURDF() throws {
        let warnings = try parse(fullYAML).check(against: try model())
        // Nothing reaches beyond the URDF, but waypoint 2 (all zeros) is fine and nothing sits on a margin.
        #expect(warnings.isEmpty, "\(warnings)")
    }

    @Test func unknownJointIsAnError() throws {
        let c = try parse(fullYAML(replacing: [26: "  - name: elbow", 40: waypointList, 41: waypointList]))
        #expect {
            try c.check(against: try model())
        } throws: { error in
            guard let e = error as? ConfigurationError else { return false }
            return e.kind == .unknownModelJoint && e.keyPath == "joints[2].name" && e.location.line == 26
        }
    }

    @Test func fixedJointIsAnError() throws {
        let c = try parse(
            fullYAML(replacing: [26: "  - name: gripper_frame_joint", 40: waypointList, 41: waypointList]))
        #expect {
            try c.check(against: try model())
        } throws: { error in
            (error as? ConfigurationError)?.kind == .notAMovingJoint
        }
    }

    @Test func unknownFramesAreErrors() throws {
        let box = try parse(
            fullYAML(
                replacingLine: 50, with: "    - {frame: gripper_frame_lnk, min: [-0.1, -0.2, 0], max: [0.4, 0.2, 0.5]}")
        )
        #expect {
            try box.check(against: try model())
        } throws: { error in
            guard let e = error as? ConfigurationError else { return false }
            return e.kind == .unknownFrame && e.keyPath == "safety.workspace[0].frame" && e.location.line == 50
                && e.expected.contains("did you mean 'gripper_frame_link'?")
        }
        let imu = try parse(fullYAML(replacingLine: 59, with: "  link: base"))
        #expect {
            try imu.check(against: try model())
        } throws: { error in
            (error as? ConfigurationError)?.keyPath == "imu.link"
        }
    }

    @Test func trajectorySegmentsTooFastForAJointAreWarnings() throws {
        // elbow_flex 0.4 → 0.8 rad in 0.05 s peaks near 15 rad/s: above the URDF's 10 rad/s × 0.5.
        let c = try parse(
            fullYAML(replacingLine: 41, with: "    - {duration_s: 0.05, positions_rad: {elbow_flex: 0.8}}"))
        let warnings = try c.check(against: try model())
        #expect(warnings.map(\.keyPath) == ["policy.waypoints[1].duration_s"])
        #expect(warnings.first?.description.contains("elbow_flex would peak near") == true)
        #expect(warnings.first?.location.line == 41)
    }

    @Test func servoThatCannotRunAtTheBusBaudRateIsAnError() {
        let error = parseError(
            """
            model: so101.urdf
            buses: [{name: b, protocol: dynamixel, port: virtual, baud: 4500000}]
            joints: [{name: gripper, id: 6, servo: xl330-m288}]
            """)
        #expect(error?.kind == .invalidValue && error?.keyPath == "joints[0].servo" && error?.location.line == 3)
    }

    @Test func waypointOutsideTheURDFLimitsIsAnError() throws {
        // elbow_flex has no configured limits here; the URDF allows ±1.69 rad.
        let c = try parse(fullYAML(replacingLine: 41, with: "    - {duration_s: 2, positions_rad: {elbow_flex: 2.0}}"))
        #expect {
            try c.check(against: try model())
        } throws: { error in
            guard let e = error as? ConfigurationError else { return false }
            return e.kind == .outsideModelLimits && e.keyPath == "policy.waypoints[1].positions_rad.elbow_flex"
                && e.location.line == 41
        }
    }

    @Test func limitsWiderThanTheURDFAreWarnings() throws {
        let c = try parse(
            fullYAML(
                replacingLine: 19, with: "    limits: {position_rad: [-2.5, 1.5], velocity_rad_s: 30, effort_nm: 20}"))
        let warnings = try c.check(against: try model())
        #expect(
            warnings.map(\.keyPath) == [
                "joints[0].limits.position_rad", "joints[0].limits.velocity_rad_s", "joints[0].limits.effort_nm",
            ])
        #expect(
            warnings.first?.description.hasPrefix("robot.yaml:12:5: warning: joints[0].limits.position_rad") == true)

        // The narrower limit applies; velocity is scaled by safety.velocity_limit_scale (0.5 here).
        let resolved = c.resolvedJointLimits(against: try model())
        try #require(resolved.count == 3)
        #expect(
            resolved[0]
                == RobotConfiguration.ResolvedJointLimits(
                    lowerRad: -1.91986, upperRad: 1.5, velocityRadPerS: 5, effortNm: 10))
        #expect(
            resolved[2]
                == RobotConfiguration.ResolvedJointLimits(
                    lowerRad: -1.69, upperRad: 1.69, velocityRadPerS: 5, effortNm: 10))
    }
}

@Suite struct ShippedRobotTests {
    /// Every `Hardware/robots/*/robot.yaml` loads and agrees with its URDF.
    @Test func everyShippedRobotLoadsAndChecksAgainstItsURDF() throws {
        let robots = "\(repositoryRoot)/Hardware/robots"
        let names = try FileManager.default.contentsOfDirectory(atPath: robots).sorted()
        var checked: [String] = []
        for name in names where FileManager.default.fileExists(atPath: "\(robots)/\(name)/robot.yaml") {
            let result = try RobotConfiguration.loadChecked(contentsOf: "\(robots)/\(name)/robot.yaml")
            #expect(result.warnings.isEmpty, "\(name): \(result.warnings)")
            let c = result.configuration
            #expect(c.joints.count >= 6, "\(name)")
            // Each bus's servos are IDs 1…n.
            for bus in c.buses {
                let ids = c.joints.filter { $0.bus == bus.name }.map(\.servoID)
                #expect(Set(ids) == Set(1...max(ids.count, 1)), "\(name), bus \(bus.name)")
            }
            #expect(c.buses.allSatisfy { $0.port == .virtual && $0.baudRate >= 1_000_000 })
            checked.append(name)
        }
        #expect(Set(["so101", "dxl6", "so101-bimanual", "humanoid-upper"]).isSubset(of: checked), "\(checked)")
        let bimanual = try RobotConfiguration.load(contentsOf: "\(robots)/so101-bimanual/robot.yaml")
        #expect(bimanual.buses.map(\.name) == ["left", "right"] && bimanual.joints.count == 12)
        let humanoid = try RobotConfiguration.load(contentsOf: "\(robots)/humanoid-upper/robot.yaml")
        #expect(humanoid.buses.count == 4 && humanoid.joints.count >= 24)
        #expect(humanoid.buses.allSatisfy { bus in humanoid.joints.contains { $0.bus == bus.name } })
    }

    @Test func so101TrajectoryIsAPickAndPlaceOfAboutTenSeconds() throws {
        let c = try RobotConfiguration.load(contentsOf: "\(so101Directory)/robot.yaml")
        #expect(
            c.joints.map(\.name) == [
                "shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper",
            ])
        #expect(c.joints.allSatisfy { $0.servoModel == "sts3215" && $0.bus == "arm" })
        #expect(c.buses.map(\.busProtocol) == [.feetech])
        guard let trajectory = c.policy.settings as? RobotConfiguration.Trajectory else {
            Issue.record("expected a trajectory policy")
            return
        }
        #expect(abs(trajectory.durationS - 10) <= 1)
        #expect(trajectory.waypoints.first?.positionsRad == trajectory.waypoints.last?.positionsRad)
    }

    @Test func dxl6UsesXM430ForTheFirstThreeJointsAndXL330ForTheRest() throws {
        let checked = try RobotConfiguration.loadChecked(
            contentsOf: "\(repositoryRoot)/Hardware/robots/dxl6/robot.yaml")
        let c = checked.configuration
        #expect(c.buses.map(\.busProtocol) == [.dynamixel])
        #expect(
            c.joints.map(\.servoModel) == [
                "xm430-w350", "xm430-w350", "xm430-w350", "xl330-m288", "xl330-m288", "xl330-m288",
            ])
        #expect(c.joints.map(\.name) == checked.model.joints.map(\.name))
        let mass = checked.model.links.compactMap(\.inertial?.mass).reduce(0, +)
        #expect(mass > 0.5 && mass < 1.0)
        guard let trajectory = c.policy.settings as? RobotConfiguration.Trajectory else {
            Issue.record("expected a trajectory policy")
            return
        }
        #expect(abs(trajectory.durationS - 10) <= 1)
    }

    /// The annotated example in Hardware/README.md is a valid configuration.
    @Test func readmeReferenceExampleParses() throws {
        let readme = try String(contentsOfFile: "\(repositoryRoot)/Hardware/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: "```yaml\n"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let c = try RobotConfiguration.parse(
            String(readme[start.upperBound..<end.lowerBound]), file: "README.md", baseDirectory: "/robots/my_arm")
        #expect(c.name == "my_arm" && c.joints.count == 1 && c.joints.first?.coupled?.servoID == 7)
        #expect(c.loop == RobotConfiguration.Loop() && c.recording == RobotConfiguration.Recording())
        #expect(c.safety.workspace.count == 1 && c.imu?.link == "base_link")
    }
}
