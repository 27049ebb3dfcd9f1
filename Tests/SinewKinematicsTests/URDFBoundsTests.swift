import Foundation
import SinewCore
import SinewKinematics
import Testing

/// Parses `text` expecting failure; returns the error.
private func parseError(_ text: String, file: String = "inline.urdf") -> RobotDescriptionError? {
    do {
        _ = try URDFLoader.parse(text, file: file)
        return nil
    } catch {
        return error
    }
}

/// A chain of `links` links joined by revolute joints, as URDF text.
func chainURDF(links: Int) -> String {
    var text = "<robot name=\"chain\">\n<link name=\"l0\"/>\n"
    for i in 1..<links {
        text += "<link name=\"l\(i)\"/>\n"
        text += "<joint name=\"j\(i)\" type=\"revolute\"><parent link=\"l\(i - 1)\"/><child link=\"l\(i)\"/>"
        text += "<axis xyz=\"0 0 1\"/><limit lower=\"-1\" upper=\"1\" velocity=\"1\" effort=\"1\"/></joint>\n"
    }
    return text + "</robot>\n"
}

@Suite("URDF bounds: swapped limits, nesting, model size, file size")
struct URDFBoundsTests {
    /// `lower="1.92" upper="-1.92"` once read as a joint without limits (`[-inf, inf]`): it is an error naming
    /// the joint and the line of its `<limit>`.
    @Test func lowerAboveUpperIsAnErrorNamingTheJoint() throws {
        let text = """
            <robot name="r">
              <link name="a"/>
              <link name="b"/>
              <joint name="elbow" type="revolute">
                <parent link="a"/>
                <child link="b"/>
                <limit lower="1.92" upper="-1.92" velocity="1" effort="1"/>
              </joint>
            </robot>
            """
        let error = try #require(parseError(text))
        #expect(error.kind == .invalidValue)
        #expect(error.location.line == 7 && error.location.column == 5, "\(error)")
        #expect(error.element == "joint \"elbow\"")
        #expect(error.description.hasPrefix("inline.urdf:7:5: joint \"elbow\": "), "\(error)")
        #expect(error.description.contains("1.92") && error.description.contains("-1.92"), "\(error)")
    }

    /// lower == upper (both 0, as the double pendulum fixture writes) still means "no range": unlimited.
    /// A continuous joint's bounds are dropped before they are compared.
    @Test func equalLimitsStillMeanUnlimitedAndContinuousJointsIgnoreThem() throws {
        let model = try RobotModel(urdf: kinematicsFixture("double_pendulum.urdf"))
        #expect(model.joints.allSatisfy { $0.lowerLimit == -.infinity && $0.upperLimit == .infinity })
        let continuous = try URDFLoader.parse(
            """
            <robot name="r"><link name="a"/><link name="b"/>
              <joint name="wheel" type="continuous"><parent link="a"/><child link="b"/>
                <limit lower="1" upper="-1" velocity="1" effort="1"/></joint>
            </robot>
            """, file: "wheel.urdf")
        #expect(continuous.joints[0].limits.lower == nil && continuous.joints[0].limits.upper == nil)
    }

    /// 50 000 nested unknown elements once overflowed the stack; nesting beyond 256 is an error at the
    /// element that goes too deep.
    @Test func deepNestingIsRefusedAtTheElementThatGoesTooDeep() throws {
        let depth = 50_000
        let text =
            "<robot name=\"r\">\n" + String(repeating: "<x>", count: depth) + String(repeating: "</x>", count: depth)
            + "\n</robot>\n"
        let error = try #require(parseError(text))
        #expect(error.kind == .tooLarge, "\(error)")
        // The robot is depth 1 on line 1; the 256th <x> (depth 257) starts at column 1 + 255 × 3 of line 2.
        #expect(error.location.line == 2 && error.location.column == 1 + 255 * 3, "\(error)")
        #expect(error.description.hasPrefix("inline.urdf:2:766: <x>: "), "\(error)")
        #expect(error.description.contains("256"), "\(error)")

        // Exactly the limit is fine.
        let deepest = XML.maximumDepth - 1
        let fits =
            "<robot name=\"r\"><link name=\"a\"/>" + String(repeating: "<x>", count: deepest)
            + String(repeating: "</x>", count: deepest) + "</robot>"
        #expect(try URDFLoader.parse(fits, file: "fits.urdf").links.count == 1)
    }

    /// A 10 000-link chain once took 8 GB in `kinematics eval`; models are bounded at 1024 links, refused
    /// with the link that passes the bound.
    @Test func modelsLargerThanTheBoundAreRefused() throws {
        let huge = try URDFLoader.parse(chainURDF(links: 10_000), file: "chain.urdf")
        do {
            _ = try RobotModel(huge)
            Issue.record("a 10000-link model was built")
        } catch {
            #expect(error.kind == .tooLarge, "\(error)")
            #expect(error.description.contains("10000 links"), "\(error)")
            #expect(error.description.contains("at most \(RobotModel.maximumLinkCount)"), "\(error)")
            #expect(error.location.file == "chain.urdf" && error.location.line == 2 + 2 * 1024 - 1, "\(error)")
        }
        let largest = try RobotModel(
            URDFLoader.parse(chainURDF(links: RobotModel.maximumLinkCount), file: "largest.urdf"))
        #expect(largest.links.count == RobotModel.maximumLinkCount)
        let workspace = KinematicsWorkspace(model: largest)
        workspace.computeMassMatrix([Double](repeating: 0.1, count: largest.dofCount))
    }

    /// URDF files over 16 MB are refused before they are read.
    @Test func oversizedFilesAreRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-big-\(UUID()).urdf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var text = "<robot name=\"big\"><link name=\"a\"/><!-- "
        text += String(repeating: "x", count: URDFLoader.maximumFileBytes)
        text += " --></robot>\n"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        do {
            _ = try URDFLoader.load(contentsOf: path)
            Issue.record("a URDF over 16 MB was read")
        } catch {
            #expect(error.kind == .tooLarge, "\(error)")
            #expect(error.description.contains("\(URDFLoader.maximumFileBytes) bytes"), "\(error)")
        }
    }
}
