import Foundation
import SinewCore
import SinewKinematics
import SinewRuntime
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// robot.yaml's `simulation:` section: the motion file a hand moves a simulated (leader) arm along.
@Suite struct SimulationConfigurationTests {
    /// A folder holding `motion.csv` (the given text), removed when the test ends.
    final class Folder {
        let path: String
        init(motion: String) throws {
            path = NSTemporaryDirectory() + "sinew-sim-config-\(getpid())-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try motion.write(toFile: path + "/motion.csv", atomically: true, encoding: .utf8)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Line 11 is `simulation:`, line 12 its `motion:`.
    static func yaml(simulation: String = "  motion: motion.csv") -> String {
        """
        name: leader
        model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf
        buses:
          - {name: leader, protocol: feetech, port: virtual}
        joints:
          - {name: shoulder_pan, id: 1, servo: sts3215}
          - {name: shoulder_lift, id: 2, servo: sts3215}
          - {name: elbow_flex, id: 3, servo: sts3215}
        loop:
          rate_hz: 500
        simulation:
        \(simulation)
        """
    }

    static let motion = """
        # two rows
        t_s,shoulder_pan,elbow_flex
        0.0,0.0,0.5
        0.5,0.2,0.6
        """

    func parse(_ yaml: String, in folder: Folder) throws(ConfigurationError) -> RobotConfiguration {
        try RobotConfiguration.parse(yaml, file: "leader.yaml", baseDirectory: folder.path)
    }

    func error(_ yaml: String, in folder: Folder) -> ConfigurationError? {
        do {
            _ = try parse(yaml, in: folder)
            Issue.record("expected an error")
            return nil
        } catch {
            return error
        }
    }

    @Test func theMotionIsReadWhenRobotYamlIsLoaded() throws {
        let folder = try Folder(motion: Self.motion)
        let configuration = try parse(Self.yaml(), in: folder)
        let simulation = try #require(configuration.simulation)
        #expect(simulation.motionPath == folder.path + "/motion.csv")
        #expect(simulation.motion?.jointNames == ["shoulder_pan", "elbow_flex"])
        #expect(simulation.location.line == 12, "the section's mapping")
        // Absent, empty or null: no motion.
        #expect(try parse(Self.yaml(simulation: ""), in: folder).simulation?.motion == nil)
        #expect(try parse(Self.yaml(simulation: "  motion: ~"), in: folder).simulation?.motion == nil)
        let without = Self.yaml().replacingOccurrences(of: "simulation:\n  motion: motion.csv", with: "")
        #expect(try parse(without, in: folder).simulation == nil)
    }

    @Test func aMisspeltKeyIsSuggested() throws {
        let folder = try Folder(motion: Self.motion)
        let failure = try #require(error(Self.yaml(simulation: "  motoin: motion.csv"), in: folder))
        #expect(failure.kind == .unknownKey && failure.suggestion == "motion")
        #expect(failure.location.line == 12 && failure.location.column == 3)
        #expect(failure.description.contains("did you mean 'motion'?"))
        let top = try #require(
            error(Self.yaml().replacingOccurrences(of: "simulation:", with: "simulaton:"), in: folder))
        #expect(top.kind == .unknownKey && top.suggestion == "simulation")
    }

    @Test func aMissingMotionFileIsThisLinesError() throws {
        let folder = try Folder(motion: Self.motion)
        let failure = try #require(error(Self.yaml(simulation: "  motion: nowhere.csv"), in: folder))
        #expect(failure.kind == .unreadableFile)
        #expect(failure.location.file == "leader.yaml" && failure.location.line == 12 && failure.location.column == 11)
        #expect(failure.keyPath == "simulation.motion")
        #expect(failure.description.contains("nowhere.csv: no such file"))
    }

    @Test func aBadMotionFileIsNamedAtItsOwnLine() throws {
        let folder = try Folder(motion: "t_s,shoulder_pan\n0,0\n0.1,zero\n")
        let failure = try #require(error(Self.yaml(), in: folder))
        #expect(failure.kind == .invalidMotion)
        #expect(failure.location.file == folder.path + "/motion.csv")
        #expect(failure.location.line == 3 && failure.location.column == 5)
        #expect(failure.description.contains("'zero' is not a number"))
    }

    @Test func aColumnForAJointThatIsNotConfiguredIsAnError() throws {
        let folder = try Folder(motion: "t_s,shoulder_pan,elbow_flx\n0,0,0\n0.1,0,0\n")
        let failure = try #require(error(Self.yaml(), in: folder))
        #expect(failure.kind == .invalidMotion)
        #expect(failure.location.line == 1 && failure.location.column == 18)
        #expect(failure.description.contains("did you mean 'elbow_flex'?"), "\(failure)")
    }

    @Test func aMotionBeyondTheURDFsLimitsIsAnErrorAtItsRow() throws {
        // shoulder_pan's URDF limits are ±1.91986 rad.
        let folder = try Folder(motion: "t_s,shoulder_pan\n0,0\n1,1.5\n2,2.5\n")
        let configuration = try parse(Self.yaml(), in: folder)
        let model = try RobotModel(urdf: configuration.modelPath)
        do {
            _ = try configuration.check(against: model)
            Issue.record("a motion beyond the limits was accepted")
        } catch {
            #expect(error.kind == .outsideModelLimits)
            #expect(error.location.file == folder.path + "/motion.csv" && error.location.line == 4)
            #expect(error.description.contains("shoulder_pan"))
        }
    }

    /// The shipped leaders: the follower's URDF and joint names, a bus of their own, torque off everywhere, and a
    /// motion that the URDF's limits allow.
    @Test(arguments: [("so101", "sts3215"), ("dxl6", "xl330-m077")])
    func shippedLeadersMatchTheirFollowers(robot: String, servo: String) throws {
        let directory = "\(repositoryRoot)/Hardware/robots/\(robot)"
        let leader = try RobotConfiguration.loadChecked(contentsOf: directory + "/leader.yaml")
        let follower = try RobotConfiguration.load(contentsOf: directory + "/robot.yaml")
        let c = leader.configuration
        #expect(leader.warnings.isEmpty, "\(leader.warnings)")
        #expect(c.modelPath == follower.modelPath)
        #expect(c.joints.map(\.name) == follower.joints.map(\.name))
        #expect(c.joints.map(\.servoID) == Array(1...6))
        #expect(c.joints.allSatisfy { $0.servoModel == servo && $0.safeState == .torqueOff })
        #expect(c.buses.map(\.name) == ["leader"] && c.buses.allSatisfy { $0.port == .virtual })
        #expect(!follower.buses.contains { $0.name == "leader" })
        let motion = try #require(c.simulation?.motion)
        #expect(c.simulation?.motionPath == directory + "/motions/pick-and-place.csv")
        #expect(motion.jointNames == c.joints.map(\.name))
        #expect(c.name == "\(robot)_leader")
    }
}
