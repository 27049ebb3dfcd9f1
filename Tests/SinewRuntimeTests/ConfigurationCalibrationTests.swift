import Foundation
import SinewRuntime
import Testing

@Suite struct ConfigurationCalibrationTests {
    let base = """
        model: so101.urdf
        buses: [{name: b, protocol: feetech, port: virtual}]
        joints: [{name: gripper, bus: b, id: 6, servo: sts3215}]

        """

    func parse(_ text: String) throws(ConfigurationError) -> RobotConfiguration {
        try RobotConfiguration.parse(text, file: "robot.yaml", baseDirectory: "/robots/arm")
    }

    @Test func calibrationPathIsResolvedAgainstTheYAMLDirectory() throws {
        #expect(try parse(base).calibrationPath == nil)
        #expect(try parse(base + "calibration: calibration.json").calibrationPath == "/robots/arm/calibration.json")
        #expect(try parse(base + "calibration: /etc/arm.json").calibrationPath == "/etc/arm.json")
    }

    @Test func calibrationThatIsNotAPathNamesTheLine() {
        do {
            _ = try parse(base + "calibration: [1, 2]")
            Issue.record("expected an error")
        } catch {
            #expect(error.keyPath == "calibration")
            #expect(error.location.line == 4)
        }
        do {
            _ = try parse(base + "calibratoin: c.json")
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .unknownKey && error.suggestion == "calibration")
        }
    }
}
