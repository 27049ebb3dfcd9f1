import Foundation
import SinewDrivers
import Testing

@Suite struct JointServoMappingTests {
    let catalog: ServoCatalog

    init() throws { catalog = try ServoCatalog.load(directory: servoTableDirectory) }

    @Test func positionsRoundTripThroughCountsWithReducerDirectionAndOffset() throws {
        let sts = try #require(catalog.model(named: "sts3215"))
        let mapping = JointServoMapping(
            jointName: "elbow", servoID: 3, servo: sts, reducerRatio: 2, direction: -1, offsetRad: 0.25,
            zeroCounts: 2000)
        #expect(mapping.jointPositionRad(counts: 2000) == 0.25)
        // One servo turn is half a joint turn, the other way round.
        #expect(abs(mapping.jointPositionRad(counts: 2000 + 4096) - (0.25 - Double.pi)) < 1e-12)
        for q in stride(from: -1.5, through: 1.5, by: 0.1) {
            let counts = mapping.counts(forJointPositionRad: q)
            // Quantisation: half a count at the servo is a quarter count's angle at the joint here.
            #expect(abs(mapping.jointPositionRad(counts: counts) - q) <= 0.5 / mapping.countsPerRad / 2 + 1e-12)
            let shaft = mapping.shaftAngleRad(forJointPositionRad: q)
            #expect(abs(mapping.jointPositionRad(shaftAngleRad: shaft) - q) < 1e-12)
            #expect(abs(shaft * mapping.countsPerRad - Double(counts)) <= 0.5 + 1e-9)
        }
    }

    @Test func velocityCurrentEffortAndElectricalUnits() throws {
        let xm = try #require(catalog.model(named: "xm430-w350"))
        let mapping = JointServoMapping(jointName: "shoulder", servoID: 2, servo: xm)
        // 0.229 rev/min per unit.
        #expect(abs(mapping.jointVelocityRadPerS(raw: 100) - 100 * 0.229 * 2 * Double.pi / 60) < 1e-12)
        #expect(mapping.rawVelocity(forJointVelocityRadPerS: mapping.jointVelocityRadPerS(raw: -37)) == -37)
        // 2.69 mA per unit.
        #expect(abs(mapping.currentA(raw: 1000) - 2.69) < 1e-12)
        #expect(mapping.rawCurrent(forCurrentA: 2.69) == 1000)
        let stall = xm.physical
        // At stall current the joint torque is the stall torque (direct drive).
        let stallRaw = mapping.rawCurrent(forCurrentA: stall.stallCurrentA)
        #expect(abs(mapping.jointEffortNm(currentRaw: stallRaw) - stall.stallTorqueNm) < 0.01 * stall.stallTorqueNm)
        #expect(
            abs(mapping.currentA(forJointEffortNm: mapping.jointEffortNm(currentRaw: 200)) - mapping.currentA(raw: 200))
                < 1e-12)
        #expect(abs(mapping.voltageV(raw: 120) - 12.0) < 1e-12)
        #expect(mapping.temperatureC(raw: 41) == 41)

        let sts = try #require(catalog.model(named: "sts3215"))
        let feetech = JointServoMapping(jointName: "wrist", servoID: 4, servo: sts, reducerRatio: 1, direction: -1)
        // STS velocity is in counts per second.
        #expect(abs(feetech.jointVelocityRadPerS(raw: 4096) + 2 * Double.pi) < 1e-12)
    }
}

@Suite struct CalibrationFileTests {
    let calibration = CalibrationFile(
        robot: "so101", recorded: "2026-11-22T04:40:00Z",
        joints: [
            .init(
                joint: "shoulder_pan", bus: "main", servoID: 1, servoModel: "sts3215", modelNumber: 777,
                zeroCounts: 2040,
                minCounts: 800, maxCounts: 3300),
            .init(
                joint: "gripper", bus: "main", servoID: 6, servoModel: "sts3215", modelNumber: 777, zeroCounts: 2100,
                minCounts: 2000, maxCounts: 3500),
        ])

    @Test func roundTripsThroughItsFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("calib-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try calibration.write(path: path)
        #expect(try CalibrationFile.load(path: path) == calibration)
    }

    @Test func detectsASwappedServo() throws {
        try calibration.check(
            joint: "gripper", bus: "main", servoID: 6, servoModel: "sts3215", reportedModelNumber: 777, file: "c.json")
        do {
            try calibration.check(
                joint: "gripper", bus: "main", servoID: 6, servoModel: "sts3215", reportedModelNumber: 1200,
                file: "c.json")
            Issue.record("a swapped servo must be detected")
        } catch {
            #expect(error.description.contains("gripper") && error.description.contains("swapped"))
        }
        do {
            try calibration.check(
                joint: "gripper", bus: "main", servoID: 5, servoModel: "sts3215", reportedModelNumber: 777,
                file: "c.json")
            Issue.record("a moved servo must be detected")
        } catch {
            #expect(error.description.contains("recalibrate"))
        }
    }

    @Test func refusesOtherFormatsAndVersions() {
        for text in ["{}", "{\"format\": \"sinew-calibration\", \"version\": 2, \"joints\": []}", "[1, 2]"] {
            #expect(throws: CalibrationFile.Problem.self) {
                try CalibrationFile.parse(data: Data(text.utf8), file: "bad.json")
            }
        }
    }
}
