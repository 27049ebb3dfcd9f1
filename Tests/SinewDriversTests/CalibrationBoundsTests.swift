import Foundation
import SinewDrivers
import Testing

/// Calibration files that belong to another robot, or say two things about one joint, are refused.
@Suite struct CalibrationBoundsTests {
    private func text(robot: String = "so101", _ entries: [String]) -> Data {
        Data(
            """
            {"format": "sinew-calibration", "version": 1, "robot": "\(robot)", "recorded": "t",
             "joints": [\(entries.joined(separator: ",\n"))]}
            """.utf8)
    }

    private func entry(_ joint: String, id: Int, bus: String = "main", zero: Int = 2048) -> String {
        "{\"joint\": \"\(joint)\", \"bus\": \"\(bus)\", \"id\": \(id), \"model\": \"sts3215\", \"model_number\": 777, "
            + "\"zero_counts\": \(zero), \"min_counts\": 100, \"max_counts\": 4000}"
    }

    @Test func duplicateJointsAreRefused() {
        let data = text([entry("gripper", id: 6), entry("elbow", id: 3), entry("gripper", id: 5)])
        do {
            _ = try CalibrationFile.parse(data: data, file: "c.json")
            Issue.record("a file calibrating gripper twice was accepted")
        } catch {
            #expect(
                error.description
                    == "c.json: joints[2].joint: \"gripper\" is calibrated twice (also joints[0]); one entry per joint")
        }
    }

    @Test func oneServoCalibratedForTwoJointsIsRefused() {
        let data = text([entry("gripper", id: 6), entry("elbow", id: 6)])
        do {
            _ = try CalibrationFile.parse(data: data, file: "c.json")
            Issue.record("servo 6 calibrated twice was accepted")
        } catch {
            #expect(error.description.contains("servo 6 on bus \"main\" is calibrated twice"), "\(error)")
        }
    }

    @Test func readingsOutOfRangeAreRefused() {
        let huge = entry("gripper", id: 6, zero: 1 << 40)
        #expect(throws: CalibrationFile.Problem.self) { try CalibrationFile.parse(data: text([huge]), file: "c.json") }
        let swapped = entry("gripper", id: 6).replacingOccurrences(
            of: "\"min_counts\": 100", with: "\"min_counts\": 4001")
        #expect(throws: CalibrationFile.Problem.self) {
            try CalibrationFile.parse(data: text([swapped]), file: "c.json")
        }
    }

    @Test func aFileOfAnotherRobotIsRefused() throws {
        let file = try CalibrationFile.parse(data: text(robot: "left_arm", [entry("gripper", id: 6)]), file: "c.json")
        try file.checkBelongs(toRobot: "left_arm", joints: ["elbow", "gripper"], file: "c.json")
        do {
            try file.checkBelongs(toRobot: "right_arm", joints: ["elbow", "gripper"], file: "c.json")
            Issue.record("the calibration of left_arm was accepted for right_arm")
        } catch {
            #expect(error.description.hasPrefix("c.json: this calibration was recorded for robot \"left_arm\""))
            #expect(error.description.contains("not for robot \"right_arm\""))
        }
        do {
            try file.checkBelongs(toRobot: "left_arm", joints: ["elbow", "wrist"], file: "c.json")
            Issue.record("a calibrated joint the robot does not have was accepted")
        } catch {
            #expect(error.description.contains("joint \"gripper\" is calibrated here but is not a joint of robot"))
        }
    }
}
