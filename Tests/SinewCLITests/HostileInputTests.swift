import Foundation
import SinewTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A scratch folder for one test, removed by the caller.
private func scratchFolder(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-hostile-\(name)-\(UUID())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The shipped SO-101 robot.yaml with text replaced, written into `folder` (its URDF named by absolute path).
private func so101YAML(in folder: String, replacing replacements: [(String, String)] = []) throws -> String {
    let shipped = repositoryRoot + "/Hardware/robots/so101"
    var text = try String(contentsOfFile: shipped + "/robot.yaml", encoding: .utf8)
        .replacingOccurrences(of: "model: so101.urdf", with: "model: \(shipped)/so101.urdf")
    for (old, new) in replacements {
        #expect(text.contains(old), "robot.yaml has no \(old)")
        text = text.replacingOccurrences(of: old, with: new)
    }
    let path = folder + "/robot.yaml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// The 1-based line of the first line of `path` containing `text`.
private func line(of text: String, in path: String) throws -> Int {
    let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
    return try #require(lines.firstIndex { $0.contains(text) }) + 1
}

@Suite("hostile numbers and inputs on the command line")
struct HostileInputTests {
    static let urdf = repositoryRoot + "/Hardware/robots/so101/so101.urdf"
    static let robot = repositoryRoot + "/Hardware/robots/so101/robot.yaml"
    static let ik = ["kinematics", "ik", urdf, "--frame", "gripper_frame_link", "--target", "0.2,0,0.1,1,0,0,0"]

    /// Every numeric option refuses nan, inf, negative and absurd values with a message naming the option and
    /// its range: no hang (`--time-budget-ms inf` once searched forever, `scan --baud 1` took minutes per probe,
    /// `calibrate --range-seconds nan` never ended), no trap, and no "Missing value" for a negative number.
    @Test(arguments: [
        (ik + ["--time-budget-ms", "inf"], "--time-budget-ms must be a number of milliseconds in [0, 60000]"),
        (ik + ["--time-budget-ms", "nan"], "--time-budget-ms"),
        (ik + ["--time-budget-ms", "1e308"], "--time-budget-ms"),
        (ik + ["--time-budget-ms", "-1"], "--time-budget-ms"),
        (ik + ["--tolerance", "-1"], "--tolerance must be a number in (0, 1]"),
        (ik + ["--tolerance", "nan"], "--tolerance"),
        (
            ["kinematics", "ik", urdf, "--frame", "gripper_frame_link", "--target", "inf,0,0.1,1,0,0,0"],
            "--target needs finite numbers"
        ),
        (["run", robot, "--duration", "-1"], "--duration must be a number of seconds above 0"),
        (["run", robot, "--duration", "-inf"], "--duration must be a number of seconds above 0"),
        (["calibrate", robot, "--range-seconds", "nan"], "--range-seconds must be a number of seconds in (0, 3600]"),
        (["calibrate", robot, "--range-seconds", "inf"], "--range-seconds"),
        (["calibrate", robot, "--range-seconds", "-1"], "--range-seconds"),
        (["scan", "--port", "/dev/null", "--baud", "1"], "invalid baud rate '1'"),
        (["scan", "--protocol", "feetech", "--baud", "4000000"], "invalid baud rate '4000000'"),
        (["scan", "--margin-ms", "-1"], "--margin-ms must be between 0 and 10000"),
        (["scan", "--margin-ms", "nan"], "--margin-ms"),
        (["virtual-bus", "--model", "sts3215", "--fault", "overload=3@inf"], "invalid fault 'overload=3@inf'"),
        (["virtual-bus", "--model", "sts3215", "--fault", "overload=3@2e10"], "a time from 0 to 1000000 s"),
        (["virtual-bus", "--model", "sts3215", "--fault", "silent=3@nan"], "invalid fault 'silent=3@nan'"),
        (["virtual-bus", "--model", "sts3215", "--fault", "corrupt=nan"], "a probability between 0 and 1"),
        (["virtual-bus", "--model", "sts3215", "--ids", "1-6", "--fault", "silent=7"], "servo ID 7"),
        (["virtual-bus", "--model", "sts3215", "--baud", "-1"], "does not support -1"),
        (["bench", "loop", "--rate", "1e-11"], "--rate must be a number of Hz in [1, 10000]"),
        (["bench", "loop", "--rate", "1e300"], "--rate"),
        (["bench", "loop", "--rate", "-5"], "--rate"),
        (["bench", "loop", "--duration", "nan"], "--duration must be a number of seconds in (0, 3600]"),
        (["bench", "loop", "--duration", "1e308"], "--duration"),
        (["bench", "loop", "--cpu", "99999999999"], "--cpu must be a CPU index"),
        (["bench", "loop", "--cpu", "-1"], "--cpu"),
        (["bench", "loop", "--priority", "-1"], "--priority"),
        (["bench", "loop", "--busy-poll-us", "-1"], "--busy-poll-us"),
        (["bench", "loop", "--servos", "-1"], "--servos"),
        (["bench", "kinematics", urdf, "--calls", "-5"], "--calls must be between 1 and 100000000"),
        (["bench", "ik", urdf, "--frame", "gripper_frame_link", "--samples", "-1"], "--samples must be between"),
        (["bench", "ik", urdf, "--frame", "gripper_frame_link", "--time-budget-ms", "nan"], "--time-budget-ms"),
        (["bench", "bus", "--seconds", "-1"], "--seconds must be in (0, 60]"),
        (["bench", "bus", "--seconds", "nan"], "--seconds"),
        (["bench", "bus", "--servos", "-3"], "--servos must be between 1 and 32"),
    ])
    func numericOptionsAreChecked(arguments: [String], message: String) throws {
        let result = try runSinew(arguments, within: 60)
        #expect(result.status == 64, "\(arguments): status \(result.status), \(result.stderr)")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        #expect(!result.stderr.contains("Missing value"), "\(arguments): \(result.stderr)")
    }

    /// A negative value is taken as the option's value (and then checked), also where it is meaningful.
    @Test func negativeValuesAreValuesNotOptions() throws {
        let result = try runSinew(Self.ik + ["--tolerance", "1e-4", "--time-budget-ms", "0"], within: 60)
        #expect(result.status == 0 || result.status == 1, "\(result.stderr)")
        #expect(jsonObject(result.stdout)?["success"] != nil, "\(result.stdout)")
        let wrongPlace = try runSinew(
            ["kinematics", "ik", Self.urdf, "--frame", "gripper_frame_link", "--target", "-0.2,0,0.1,1,0,0,0"],
            within: 60)
        #expect(!wrongPlace.stderr.contains("Missing value"), "\(wrongPlace.stderr)")
    }

    /// `lower="1.92" upper="-1.92"` is an error naming the joint and line, not a joint without limits.
    @Test func swappedURDFLimitsAreAnError() throws {
        let folder = try scratchFolder("limits")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/swapped.urdf"
        try """
        <robot name="r">
          <link name="a"/>
          <link name="b"/>
          <joint name="elbow" type="revolute">
            <parent link="a"/>
            <child link="b"/>
            <limit lower="1.92" upper="-1.92" velocity="1" effort="1"/>
          </joint>
        </robot>
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runSinew(["kinematics", "info", path], within: 60)
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(path):7:5: joint \"elbow\""), "\(result.stderr)")
        #expect(!result.stdout.contains("inf"))
    }

    /// 50 000 nested elements once overflowed the stack; a 10 000-link chain once took 8 GB in `eval`.
    @Test func deeplyNestedAndHugeURDFsAreRefusedQuickly() throws {
        let folder = try scratchFolder("urdf")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let nested = folder + "/nested.urdf"
        let elements = String(repeating: "<x>", count: 50_000) + String(repeating: "</x>", count: 50_000)
        try ("<robot name=\"r\">\n" + elements + "\n</robot>\n").write(
            toFile: nested, atomically: true, encoding: .utf8)
        let deep = try runSinew(["kinematics", "info", nested], within: 60)
        #expect(deep.status == 1, "status \(deep.status): \(deep.stderr)")
        #expect(deep.stderr.contains("\(nested):2:766"), "\(deep.stderr)")
        #expect(deep.stderr.contains("nested more than 256 deep"), "\(deep.stderr)")

        let chain = folder + "/chain.urdf"
        var text = "<robot name=\"chain\">\n<link name=\"l0\"/>\n"
        for i in 1..<10_000 {
            text += "<link name=\"l\(i)\"/><joint name=\"j\(i)\" type=\"revolute\"><parent link=\"l\(i - 1)\"/>"
            text += "<child link=\"l\(i)\"/><axis xyz=\"0 0 1\"/></joint>\n"
        }
        try (text + "</robot>\n").write(toFile: chain, atomically: true, encoding: .utf8)
        let eval = try runSinew(["kinematics", "eval", chain], within: 60)
        #expect(eval.status == 1, "status \(eval.status): \(eval.stderr)")
        #expect(eval.stderr.contains("has 10000 links; a model may have at most 1024"), "\(eval.stderr)")
    }

    /// A robot named `../../../x` would write its recordings outside the recording folder: refused at load
    /// with file:line:column.
    @Test func unsafeRobotNameIsRefusedAtLoad() throws {
        let folder = try scratchFolder("name")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = try so101YAML(in: folder, replacing: [("name: so101", "name: ../../../x")])
        let nameLine = try line(of: "name: ../../../x", in: path)
        let result = try runSinew(["run", path, "--duration", "0.2", "--json"], within: 120)
        #expect(result.status != 0)
        // With --json the error may come as the report's "error" on standard output.
        let output = result.stdout + result.stderr
        #expect(output.contains("\(path):\(nameLine):7: name: expected a name of 1–64"), "\(output)")
    }

    /// A Feetech servo at ID 253 passes robot.yaml's check, and runs (the simulator serves it as the codec does).
    @Test func feetechID253Runs() throws {
        let folder = try scratchFolder("id253")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = try so101YAML(in: folder, replacing: [("    id: 6\n", "    id: 253\n")])
        let result = try runSinew(["run", path, "--fast", "--duration", "0.5", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(jsonObject(result.stdout)?["final_state"] as? String == "active", "\(result.stdout)")
    }

    /// The calibration of another robot (same joints, another name) is refused before the run starts.
    @Test func calibrationOfAnotherRobotIsRefused() throws {
        let folder = try scratchFolder("calibration")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/calibration.json"
        let calibrate = try runSinew(
            ["calibrate", Self.robot, "--backend", "sim", "--from-pose", "--output", file], within: 120)
        #expect(calibrate.status == 0, "\(calibrate.stderr)")
        let other = folder + "/other.json"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains("\"robot\": \"so101\""))
        try text.replacingOccurrences(of: "\"robot\": \"so101\"", with: "\"robot\": \"left_arm\"")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let refused = try runSinew(["run", Self.robot, "--calibration", other, "--duration", "0.5"], within: 120)
        #expect(refused.status != 0)
        #expect(
            refused.stderr.contains("recorded for robot \"left_arm\", not for robot \"so101\""), "\(refused.stderr)")

        // Two entries for one joint.
        let lines = text.components(separatedBy: "\n")
        let gripper = try #require(lines.first { $0.contains("\"gripper\"") })
        let doubled = lines.map { $0.contains("\"shoulder_pan\"") ? $0 + "\n" + gripper + "," : $0 }
        let duplicate = folder + "/duplicate.json"
        try doubled.joined(separator: "\n").write(toFile: duplicate, atomically: true, encoding: .utf8)
        let twice = try runSinew(["run", Self.robot, "--calibration", duplicate, "--duration", "0.5"], within: 120)
        #expect(twice.status != 0)
        #expect(twice.stderr.contains("\"gripper\" is calibrated twice"), "\(twice.stderr)")
    }

    /// `--fault silent=7` on a robot whose servos are IDs 1–6 names the ID and the served IDs.
    @Test func virtualRobotRefusesFaultsForServosItDoesNotHave() throws {
        let result = try runSinew(["virtual-bus", "--robot", Self.robot, "--fault", "silent=7"], within: 60)
        #expect(result.status != 0)
        let message = "--fault names servo 7, which is on no bus of \(Self.robot) (it serves IDs 1, 2, 3, 4, 5, 6)"
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    /// A `sinew virtual-bus` killed (SIGKILL: no clean-up) leaves its link behind; started again with the same
    /// --link, it takes the link over, though its new pseudo-terminal usually has the killed one's number.
    @Test func aVirtualBusStartedAgainAfterBeingKilledTakesItsLinkBack() throws {
        let link = NSTemporaryDirectory() + "sinew-hostile-again-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(link) }
        let killed = try SinewChild(["virtual-bus", "--model", "sts3215", "--ids", "1-6", "--link", link])
        let killedPath = try #require(killed.firstLine(within: 120), "no pty path printed; stderr: \(killed.stderr)")
        killed.signal(SIGKILL)
        #expect(killed.wait(within: 60))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == killedPath, "left behind")

        let again = try SinewChild(["virtual-bus", "--model", "sts3215", "--ids", "1-6", "--link", link])
        defer { again.kill() }
        let path = try #require(again.firstLine(within: 120), "refused its link: \(again.stderr)")
        print("killed server's terminal \(killedPath), the new one's \(path)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == path)
        #expect(again.process.isRunning)
    }

    /// Two `sinew virtual-bus` with the same --link: the second refuses the link while the first serves on it,
    /// and the first still has it afterwards (and removes it when it stops).
    @Test func secondVirtualBusRefusesALinkInUse() throws {
        let link = NSTemporaryDirectory() + "sinew-hostile-link-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(link) }
        let first = try SinewChild(["virtual-bus", "--model", "sts3215", "--ids", "1-6", "--link", link])
        defer { first.kill() }
        let path = try #require(first.firstLine(within: 120), "no pty path printed; stderr: \(first.stderr)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == path)

        let second = try runSinew(["virtual-bus", "--model", "sts3215", "--ids", "1-6", "--link", link], within: 60)
        #expect(second.status != 0)
        #expect(second.stderr.contains("already leads to \(path), a pseudo-terminal in use"), "\(second.stderr)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == path, "the first keeps it")
        #expect(first.process.isRunning)

        first.signal(SIGTERM)
        #expect(first.wait(within: 60))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil, "removed by its owner")
    }
}
