import Foundation
import SinewKinematics
import SinewRuntime
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
private let so101Directory = "\(repositoryRoot)/Hardware/robots/so101"

/// A configuration with every numeric key; `BoundCase` lines refer to this text.
private let boundsYAML = """
    name: bounds-arm
    model: so101.urdf
    buses:
      - {name: arm, protocol: feetech, port: virtual, baud: 1000000}
    joints:
      - name: shoulder_pan
        id: 1
        servo: sts3215
        reducer: {ratio: 2, backlash_rad: 0.01, efficiency: 0.9}
        offset_rad: 0.1
        limits: {position_rad: [-1.5, 1.5], velocity_rad_s: 3, effort_nm: 1.5}
      - {name: shoulder_lift, id: 2, servo: sts3215}
    loop:
      rate_hz: 250
      priority: 90
      cpu: 1
      catch_up_max: 2
      busy_poll_us: 0
    policy:
      type: trajectory
      waypoints:
        - {duration_s: 1.5, positions_rad: [0.2, -0.5]}
    safety:
      position_margin_rad: 0.05
      max_step_rad: 0.02
      watchdog_ms: 20
      bus_error_budget: 3
      workspace:
        - {frame: gripper_frame_link, min: [-0.1, -0.2, 0], max: [0.4, 0.2, 0.5]}
    recording:
      decimation: 5
    imu:
      port: virtual
      link: base_link
      mounting: {xyz: [0.01, 0, 0.02], rpy: [0, 0, 1.5708]}
      rate_hz: 200
    """

private func parse(_ text: String, file: String = "robot.yaml") throws(ConfigurationError) -> RobotConfiguration {
    try RobotConfiguration.parse(text, file: file, baseDirectory: so101Directory)
}

/// `boundsYAML` with one line (1-based) replaced.
private func boundsYAML(replacingLine line: Int, with text: String) -> String {
    var lines = boundsYAML.components(separatedBy: "\n")
    lines[line - 1] = text
    return lines.joined(separator: "\n")
}

/// One line of `boundsYAML` replaced by `prefix + value + suffix`: the error must point at `value`, name the
/// key path and say the allowed range.
struct BoundCase: Sendable, CustomTestStringConvertible {
    var line: Int
    var prefix: String
    var value: String
    var suffix: String
    var keyPath: String
    var range: String
    var kind: ConfigurationError.Kind

    init(
        _ line: Int, _ prefix: String, _ value: String, _ suffix: String, _ keyPath: String, _ range: String,
        _ kind: ConfigurationError.Kind = .invalidValue
    ) {
        (self.line, self.prefix, self.value, self.suffix, self.keyPath, self.range, self.kind) = (
            line, prefix, value, suffix, keyPath, range, kind
        )
    }

    /// A case whose value ends its line.
    init(
        _ line: Int, _ prefix: String, _ value: String, _ keyPath: String, _ range: String,
        _ kind: ConfigurationError.Kind = .invalidValue
    ) {
        self.init(line, prefix, value, "", keyPath, range, kind)
    }

    var testDescription: String { "\(keyPath): \(value)" }
}

@Suite struct ConfigurationBoundsTests {
    /// Every number robot.yaml takes has a physically meaningful range. The extremes users reported
    /// (`loop.rate_hz: 1e-11`, `safety.watchdog_ms: 1e13`, `reducer.ratio: 1e17`, `imu.rate_hz: 1e19`) once
    /// passed and then trapped the loop; they are refused where they are written, with the range.
    @Test(arguments: [
        BoundCase(14, "  rate_hz: ", "1e-11", "loop.rate_hz", "in [1, 10000]"),
        // Yams would multiply these sexagesimal digits into an overflow trap.
        BoundCase(7, "    id: ", "1:1:1:1:1:1:1:1:1:1:1:1", "joints[0].id", "in 0–253", .wrongType),
        BoundCase(15, "  priority: ", "9223372036854775807:59", "loop.priority", "in 1–99", .wrongType),
        BoundCase(14, "  rate_hz: ", "1e19", "loop.rate_hz", "in [1, 10000]"),
        BoundCase(14, "  rate_hz: ", "20000", "loop.rate_hz", "in [1, 10000]"),
        BoundCase(14, "  rate_hz: ", ".inf", "loop.rate_hz", "in [1, 10000]", .wrongType),
        BoundCase(14, "  rate_hz: ", ".nan", "loop.rate_hz", "in [1, 10000]", .wrongType),
        BoundCase(26, "  watchdog_ms: ", "1e13", "safety.watchdog_ms", "in [1, 60000]"),
        BoundCase(26, "  watchdog_ms: ", "0.001", "safety.watchdog_ms", "in [1, 60000]"),
        BoundCase(9, "    reducer: {ratio: ", "1e17", "}", "joints[0].reducer.ratio", "in [0.001, 10000]"),
        BoundCase(9, "    reducer: {ratio: ", "1e-9", "}", "joints[0].reducer.ratio", "in [0.001, 10000]"),
        BoundCase(9, "    reducer: {backlash_rad: ", "5", "}", "joints[0].reducer.backlash_rad", "in [0, 1]"),
        BoundCase(9, "    reducer: {efficiency: ", "1e300", "}", "joints[0].reducer.efficiency", "in (0, 1]"),
        BoundCase(10, "    offset_rad: ", "1e300", "joints[0].offset_rad", "within ±2π"),
        BoundCase(
            11, "    limits: {position_rad: [", "-1e10", ", 1.5]}", "joints[0].limits.position_rad[0]",
            "in [-100, 100]"),
        BoundCase(
            11, "    limits: {position_rad: [-1.5, ", "1e308", "]}", "joints[0].limits.position_rad[1]",
            "in [-100, 100]"),
        BoundCase(11, "    limits: {velocity_rad_s: ", "1e300", "}", "joints[0].limits.velocity_rad_s", "in (0, 1000]"),
        BoundCase(11, "    limits: {effort_nm: ", "1e300", "}", "joints[0].limits.effort_nm", "in (0, 10000]"),
        BoundCase(16, "  cpu: ", "99999999999", "loop.cpu", "in 0–1023"),
        BoundCase(16, "  cpu: ", "-1", "loop.cpu", "in 0–1023"),
        BoundCase(17, "  catch_up_max: ", "1000000000", "loop.catch_up_max", "in 1–1000"),
        BoundCase(18, "  busy_poll_us: ", "1e12", "loop.busy_poll_us", "in [0, 1000000]"),
        BoundCase(
            22, "    - {duration_s: ", "1e300", ", positions_rad: [0.2, -0.5]}", "policy.waypoints[0].duration_s",
            "in (0, 1000000]"),
        BoundCase(
            22, "    - {duration_s: 1.5, positions_rad: [", "1e200", ", -0.5]}", "policy.waypoints[0].positions_rad[0]",
            "in [-100, 100]"),
        BoundCase(24, "  position_margin_rad: ", "1e9", "safety.position_margin_rad", "in [0, 1]"),
        BoundCase(25, "  max_step_rad: ", "1e9", "safety.max_step_rad", "in (0, 10]"),
        BoundCase(27, "  bus_error_budget: ", "9223372036854775807", "safety.bus_error_budget", "in 1–10000"),
        BoundCase(
            29, "    - {frame: gripper_frame_link, min: [", "-1e300", ", -0.2, 0], max: [0.4, 0.2, 0.5]}",
            "safety.workspace[0].min[0]", "in [-100, 100]"),
        BoundCase(31, "  decimation: ", "1000000000000", "recording.decimation", "in 1–1000000"),
        BoundCase(
            35, "  mounting: {xyz: [", "1e6", ", 0, 0.02], rpy: [0, 0, 1.5708]}", "imu.mounting.xyz[0]",
            "in [-100, 100]"),
        BoundCase(
            35, "  mounting: {xyz: [0.01, 0, 0.02], rpy: [0, 0, ", "100", "]}", "imu.mounting.rpy[2]", "in [-2π, 2π]"),
        BoundCase(36, "  rate_hz: ", "1e19", "imu.rate_hz", "in [1, 10000]"),
        BoundCase(36, "  rate_hz: ", "0.5", "imu.rate_hz", "in [1, 10000]"),
    ])
    func extremeNumbersAreRefusedWithTheirRange(_ c: BoundCase) throws {
        // The case replaces the line of its own key.
        let original = boundsYAML.components(separatedBy: "\n")[c.line - 1]
        #expect(original.split(separator: ":").first == c.prefix.split(separator: ":").first, "\(original)")
        let text = boundsYAML(replacingLine: c.line, with: c.prefix + c.value + c.suffix)
        let column = c.prefix.count + 1
        do {
            _ = try parse(text)
            Issue.record("\(c.keyPath): \(c.value) was accepted")
        } catch {
            #expect(error.kind == c.kind, "\(error)")
            #expect(error.keyPath == c.keyPath, "\(error)")
            #expect(error.location.line == c.line && error.location.column == column, "\(error)")
            #expect(error.description.hasPrefix("robot.yaml:\(c.line):\(column): \(c.keyPath): expected "), "\(error)")
            #expect(error.description.contains(c.range), "\(error)")
        }
    }

    /// The largest and smallest values allowed load, and everything computed from them stays finite.
    @Test func valuesAtTheEndsOfTheirRangesLoadAndCheck() throws {
        let text = boundsYAML.replacingOccurrences(of: "rate_hz: 250", with: "rate_hz: 10000")
            .replacingOccurrences(of: "watchdog_ms: 20", with: "watchdog_ms: 60000")
            .replacingOccurrences(of: "ratio: 2,", with: "ratio: 10000,")
            .replacingOccurrences(of: "rate_hz: 200", with: "rate_hz: 1")
            .replacingOccurrences(of: "busy_poll_us: 0", with: "busy_poll_us: 1000000")
        let c = try parse(text)
        #expect(c.loop.rateHz == 10_000 && c.safety.watchdogMs == 60_000 && c.joints[0].reducer.ratio == 10_000)
        #expect(c.imu?.rateHz == 1)
        #expect(c.loop.busyPollNanoseconds == 1_000_000_000)
        let model = try RobotModel(urdf: c.modelPath)
        _ = try c.check(against: model)
        #expect(c.resolvedJointLimits(against: model).allSatisfy { !$0.lowerRad.isNaN && !$0.upperRad.isNaN })
    }

    // MARK: Hostile documents

    /// A 1.5 KB document of merge keys nested 7 deep, each level merging a list of aliases to the level
    /// below, expands to billions of nodes: it is refused in bounded time with a clear error.
    @Test func mergeKeyBombIsRefused() throws {
        var text = "l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n"
        for level in 1...7 {
            let aliases = Array(repeating: "*l\(level - 1)", count: 20).joined(separator: ", ")
            text += "l\(level): &l\(level) {<<: [\(aliases)], k\(level): 0}\n"
        }
        text += """
            name: bomb
            model: so101.urdf
            buses: [{name: arm, protocol: feetech, port: virtual}]
            joints:
              - {<<: *l7, name: shoulder_pan, id: 1, servo: sts3215}

            """
        #expect(text.utf8.count < 2_000)
        let start = Date()
        do {
            _ = try parse(text)
            Issue.record("the merge-key bomb was accepted")
        } catch {
            #expect(error.kind == .tooLarge, "\(error)")
            #expect(error.description.contains("100000 nodes"), "\(error)")
            #expect(error.description.hasPrefix("robot.yaml:"), "\(error)")
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    /// Aliases, not only merges, count where they are used.
    @Test func aliasBombIsRefused() throws {
        var text = "x0: &x0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        for level in 1...9 {
            let aliases = Array(repeating: "*x\(level - 1)", count: 10).joined(separator: ", ")
            text += "x\(level): &x\(level) [\(aliases)]\n"
        }
        text += "model: so101.urdf\nbuses: *x9\njoints: []\n"
        do {
            _ = try parse(text)
            Issue.record("the alias bomb was accepted")
        } catch {
            #expect(error.kind == .tooLarge, "\(error)")
        }
    }

    /// A key that is an alias of an alias bomb costs the YAML library hours while it checks for duplicate
    /// keys, before any limit on the expanded document applies: keys that are not words are refused first.
    @Test(arguments: [
        ("? *x9\n: 1\n", 11, 1, "an explicit key"),
        ("*x9 : 1\n", 11, 1, "an alias used as a key"),
        ("joints: {*x9: 1}\n", 11, 10, "an alias used as a key"),
        ("[*x9, 1]: 1\n", 11, 8, "a list or mapping used as a key"),
        ("model: {a: *x9}: 1\n", 11, 15, "a list or mapping used as a key"),
    ])
    func keysThatAreNotWordsAreRefusedBeforeComposing(key: String, line: Int, column: Int, what: String) throws {
        var text = "x0: &x0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        for level in 1...9 {
            let aliases = Array(repeating: "*x\(level - 1)", count: 10).joined(separator: ", ")
            text += "x\(level): &x\(level) [\(aliases)]\n"
        }
        text += key
        let start = Date()
        do {
            _ = try parse(text)
            Issue.record("\(key) was accepted")
        } catch {
            #expect(error.kind == .wrongType, "\(error)")
            #expect(error.location.line == line && error.location.column == column, "\(error)")
            #expect(error.description.contains("expected plain keys"), "\(error)")
            #expect(error.description.contains(what), "\(error)")
        }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    /// Aliases as values, merge lists, quoted text and comments with those characters are not keys.
    @Test func aliasesAsValuesQuotesAndCommentsAreNotKeys() throws {
        let merged = """
            name: "*a: [x]: 'q'"   # *b: ? [c]: d
            model: so101.urdf
            buses: [{name: arm, protocol: feetech, port: virtual}]
            base: &base {servo: sts3215, limits: {position_rad: [-1, 1]}}
            joints:
              - {<<: [*base], name: shoulder_pan, id: 1}
              - {<<: *base, name: shoulder_lift, id: 2}
            """
        do {
            _ = try parse(merged)
            Issue.record("the unknown key 'base' was accepted")
        } catch {
            // Past the key scan: the parser itself refuses the unknown top-level key.
            #expect(error.kind == .unknownKey, "\(error)")
        }
    }

    /// A robot.yaml larger than 1 MB is refused before it is read (and so is such a text).
    @Test func oversizedFileIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-bounds-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/robot.yaml"
        let text = boundsYAML + "\n# " + String(repeating: "x", count: RobotConfiguration.maximumFileBytes) + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try RobotConfiguration.load(contentsOf: path)
            Issue.record("a file over 1 MB was accepted")
        } catch {
            #expect(error.kind == .tooLarge, "\(error)")
            #expect(error.location.file == path)
            #expect(error.description.contains("\(RobotConfiguration.maximumFileBytes) bytes"), "\(error)")
        }
        do {
            _ = try parse(text)
            Issue.record("a text over 1 MB was accepted")
        } catch {
            #expect(error.kind == .tooLarge, "\(error)")
        }
    }

    // MARK: Names and IDs

    /// A robot name becomes part of file names (recordings): `../../../x` would leave the recording folder.
    @Test(arguments: ["../../../x", ".hidden", "a/b", "arm 1", "x\u{0}y", String(repeating: "a", count: 65)])
    func unsafeRobotNamesAreRefused(_ name: String) throws {
        let quoted = "\"" + name.replacingOccurrences(of: "\u{0}", with: "\\0") + "\""
        do {
            _ = try parse(boundsYAML(replacingLine: 1, with: "name: \(quoted)"))
            Issue.record("name \(quoted) was accepted")
        } catch {
            #expect(error.kind == .invalidValue, "\(error)")
            #expect(error.keyPath == "name")
            #expect(error.description.hasPrefix("robot.yaml:1:7: name: expected a name of 1–64 letters"), "\(error)")
        }
    }

    @Test func safeRobotNamesAndDefaultNames() throws {
        #expect(try parse(boundsYAML(replacingLine: 1, with: "name: arm-2_v1.0")).name == "arm-2_v1.0")
        let longest = String(repeating: "a", count: 64)
        #expect(try parse(boundsYAML(replacingLine: 1, with: "name: \(longest)")).name == longest)
        // Without `name:`, the folder's name, made safe.
        let unnamed = boundsYAML(replacingLine: 1, with: "")
        #expect(try parse(unnamed, file: "/robots/my arm (v2)/robot.yaml").name == "my_arm__v2_")
        #expect(try parse(unnamed, file: "/robots/..hidden/robot.yaml").name == "hidden")
        #expect(try parse(unnamed, file: "/robot.yaml").name == "robot")
        #expect(try parse(unnamed, file: "robot.yaml").name == "robot")
        #expect(RobotConfiguration.isSafeName("so101") && !RobotConfiguration.isSafeName(".."))
    }

    /// Servo IDs are checked per protocol at load, as the codecs accept them: Feetech 0–253, Dynamixel 0–252.
    @Test func servoIDsAreCheckedPerProtocol() throws {
        let feetech253 = boundsYAML(replacingLine: 7, with: "    id: 253")
        #expect(try parse(feetech253).joints[0].servoID == 253)
        do {
            _ = try parse(boundsYAML(replacingLine: 7, with: "    id: 254"))
            Issue.record("Feetech ID 254 (broadcast) was accepted")
        } catch {
            #expect(error.kind == .servoIDOutOfRange)
            #expect(error.description.hasPrefix("robot.yaml:7:9: joints[0].id: expected a feetech servo ID in 0–253"))
        }
        let dynamixel = boundsYAML.replacingOccurrences(of: "protocol: feetech", with: "protocol: dynamixel")
            .replacingOccurrences(of: "servo: sts3215", with: "servo: xm430-w350")
        var lines = dynamixel.components(separatedBy: "\n")
        lines[6] = "    id: 253"
        do {
            _ = try parse(lines.joined(separator: "\n"))
            Issue.record("Dynamixel ID 253 (0xFD, part of the header) was accepted")
        } catch {
            #expect(error.kind == .servoIDOutOfRange)
            #expect(
                error.description.hasPrefix("robot.yaml:7:9: joints[0].id: expected a dynamixel servo ID in 0–252"))
        }
    }
}
