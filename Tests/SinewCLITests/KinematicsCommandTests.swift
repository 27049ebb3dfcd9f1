import Foundation
import SinewTestSupport
import Testing

@Suite(.serialized) struct KinematicsCommandTests {
    @Test func evalMatchesTheReferenceAndReportsBadLinesWithoutStopping() throws {
        let reference = try #require(
            jsonObject(
                try String(contentsOfFile: kinematicsFixture("panda.pinocchio.json"), encoding: .utf8)))
        let sample = try #require((reference["samples"] as? [[String: Any]])?.first)
        var joints = try #require(sample["joints"] as? [String: Double])
        joints["panda_finger_joint2"] = nil  // a mimic joint left out follows its master
        let line = String(decoding: try JSONSerialization.data(withJSONObject: ["joints": joints]), as: UTF8.self)
        let input = [line, "{\"joints\": {\"no_such_joint\": 1}}", "not json", line].joined(separator: "\n")
        let result = try runSinew(["kinematics", "eval", kinematicsFixture("panda.urdf")], input: input)
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 4, "\(result.stdout)")
        #expect(lines[1].contains("\"error\"") && lines[1].contains("no_such_joint") && lines[1].contains("line 2"))
        #expect(lines[2].contains("\"error\""))
        let output = try #require(jsonObject(lines[3]))

        let poses = try #require(output["link_poses"] as? [String: [[Double]]])
        let expectedPoses = try #require(sample["link_poses"] as? [String: [[Double]]])
        #expect(Set(poses.keys) == Set(expectedPoses.keys))
        for (name, pose) in expectedPoses {
            for (a, b) in zip(pose.flatMap { $0 }, try #require(poses[name]).flatMap { $0 }) {
                #expect(abs(a - b) < 1e-9)
            }
        }
        let jacobian = try #require(output["jacobian"] as? [String: Any])
        #expect(jacobian["frame"] as? String == "panda_leftfinger")
        let columns = try #require(jacobian["columns"] as? [String: [Double]])
        for (name, column) in try #require(sample["jacobian"] as? [String: [Double]]) {
            for (a, b) in zip(column, try #require(columns[name])) { #expect(abs(a - b) < 1e-9) }
        }
        let gravity = try #require(output["gravity_torque"] as? [String: Double])
        for (name, value) in try #require(sample["gravity_torque"] as? [String: Double]) {
            #expect(abs(try #require(gravity[name]) - value) <= max(1e-9, 1e-7 * abs(value)))
        }
        let mass = try #require(output["mass_matrix"] as? [String: Any])
        let order = try #require(mass["order"] as? [String])
        let rows = try #require(mass["rows"] as? [[Double]])
        let expectedMass = try #require(sample["mass_matrix"] as? [String: Any])
        let expectedOrder = try #require(expectedMass["order"] as? [String])
        let expectedRows = try #require(expectedMass["rows"] as? [[Double]])
        try #require(Set(order) == Set(expectedOrder) && rows.count == order.count)
        for (a, nameA) in expectedOrder.enumerated() {
            for (b, nameB) in expectedOrder.enumerated() {
                let row = try #require(order.firstIndex(of: nameA))
                let column = try #require(order.firstIndex(of: nameB))
                try #require(rows[row].count == order.count)
                let got = rows[row][column]
                #expect(abs(got - expectedRows[a][b]) <= max(1e-9, 1e-7 * abs(expectedRows[a][b])))
            }
        }
    }

    @Test func evalHonoursFrame() throws {
        let result = try runSinew(
            ["kinematics", "eval", kinematicsFixture("ur5_robot.urdf"), "--frame", "tool0"],
            input: "{\"joints\": {}}\n{\"joints\": {\"elbow_joint\": 1.0, \"wrist_1_joint\": 0}}\n"
                + "{\"joints\": {\"elbow_joint\": true}}\n")
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n")
        try #require(lines.count == 3, "\(result.stdout)")
        #expect(!lines[1].contains("error") && lines[2].contains("expected a number"))
        let output = try #require(jsonObject(String(lines[0])))
        #expect((output["jacobian"] as? [String: Any])?["frame"] as? String == "tool0")
        let bad = try runSinew([
            "kinematics", "eval", kinematicsFixture("ur5_robot.urdf"), "--frame", "nope",
        ])
        #expect(bad.status != 0 && bad.stderr.contains("nope"))
    }

    @Test func ikSolvesAReachableTargetAndReportsTheResidualOtherwise() throws {
        let urdf = try kinematicsFixture("ur5_robot.urdf")
        let eval = try runSinew(
            ["kinematics", "eval", urdf, "--frame", "tool0"],
            input: "{\"joints\": {\"shoulder_lift_joint\": -1.0, \"elbow_joint\": 1.2, \"wrist_2_joint\": 0.4}}\n")
        let pose = try #require((jsonObject(eval.stdout)?["link_poses"] as? [String: [[Double]]])?["tool0"])
        // Quaternion from the rotation matrix (trace is positive for this pose or close enough to use the w branch).
        let m = pose
        try #require(m.count == 4 && m.allSatisfy { $0.count == 4 })
        let w = (max(0, 1 + m[0][0] + m[1][1] + m[2][2])).squareRoot() / 2
        let q = [w, (m[2][1] - m[1][2]) / (4 * w), (m[0][2] - m[2][0]) / (4 * w), (m[1][0] - m[0][1]) / (4 * w)]
        let target = [m[0][3], m[1][3], m[2][3]] + q
        let ok = try runSinew(
            ["kinematics", "ik", urdf, "--frame", "tool0", "--target", target.map { "\($0)" }.joined(separator: ",")])
        #expect(ok.status == 0, "\(ok.stderr)")
        let solution = try #require(jsonObject(ok.stdout))
        #expect(solution["success"] as? Bool == true)
        #expect((solution["position_error_m"] as? Double ?? 1) < 1e-5)
        #expect((solution["joints"] as? [String: Double])?.count == 6)

        let far = try runSinew([
            "kinematics", "ik", urdf, "--frame", "tool0", "--target", "3,0,0,1,0,0,0", "--time-budget-ms", "5",
        ])
        #expect(far.status == 1)
        #expect(jsonObject(far.stdout)?["success"] as? Bool == false)
        #expect(far.stderr.contains("residual"))

        let malformed = try runSinew(["kinematics", "ik", urdf, "--frame", "tool0", "--target", "1,2,3"])
        #expect(malformed.status != 0 && malformed.stderr.contains("7 numbers"))
    }

    @Test func infoShowsTreeLimitsMimicAndMasses() throws {
        let result = try runSinew(["kinematics", "info", kinematicsFixture("panda.urdf")])
        #expect(result.status == 0)
        #expect(result.stdout.contains("9 moving joints (1 mimic)"))
        #expect(result.stdout.contains("mimic: 1·panda_finger_joint1 + 0"))
        #expect(result.stdout.contains("panda_finger_joint1 [prismatic]"))
        #expect(result.stdout.contains("kg"))
    }

    @Test func badDescriptionsGetAnErrorNamingFileLineAndElement() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-bad-\(getpid()).urdf").path
        try """
        <robot name="bad">
          <link name="a"/>
          <link name="b"/>
          <joint name="j" type="revolute">
            <parent link="a"/><child link="b"/>
            <origin xyz="0 zero 0"/>
          </joint>
        </robot>
        """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try runSinew(["kinematics", "info", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains(path + ":6"))
        #expect(result.stderr.contains("zero"))
    }

    /// A floating base (a humanoid, a mobile manipulator) is refused with the flag that accepts it, and
    /// `--fixed-base` then loads the robot with that joint held fixed.
    @Test func aFloatingBaseNamesTheFlagThatFixesIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-float-\(getpid()).urdf").path
        try """
        <robot name="walker">
          <link name="world"/>
          <link name="pelvis"><inertial><mass value="5"/><inertia ixx="0.1" iyy="0.1" izz="0.1" ixy="0" ixz="0" iyz="0"/></inertial></link>
          <link name="thigh"><inertial><mass value="2"/><inertia ixx="0.1" iyy="0.1" izz="0.1" ixy="0" ixz="0" iyz="0"/></inertial></link>
          <joint name="root" type="floating"><parent link="world"/><child link="pelvis"/></joint>
          <joint name="hip" type="revolute"><parent link="pelvis"/><child link="thigh"/><axis xyz="0 1 0"/>
            <limit lower="-1" upper="1" effort="100" velocity="10"/></joint>
        </robot>
        """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let refused = try runSinew(["kinematics", "info", path])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("\"floating\"") && refused.stderr.contains("--fixed-base"), "\(refused.stderr)")
        let fixed = try runSinew(["kinematics", "info", path, "--fixed-base"])
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(fixed.stdout.contains("1 moving joints") || fixed.stdout.contains("1 moving joint"), "\(fixed.stdout)")
    }

    @Test func benchmarksPrintTheirJSONKeys() throws {
        let urdf = try kinematicsFixture("ur5_robot.urdf")
        let kinematics = try runSinew(["bench", "kinematics", urdf, "--json", "--calls", "200"])
        let k = try #require(jsonObject(kinematics.stdout))
        for key in ["fk_ns", "jacobian_ns", "rnea_ns", "crba_ns", "aba_ns"] { #expect(k[key] is Double, "\(key)") }
        let ik = try runSinew(["bench", "ik", urdf, "--frame", "tool0", "--samples", "20", "--json"])
        let i = try #require(jsonObject(ik.stdout))
        for key in ["success_rate", "mean_us", "p99_us"] { #expect(i[key] is Double, "\(key)") }
    }
}
