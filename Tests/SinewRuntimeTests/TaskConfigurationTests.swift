import Foundation
import SinewKinematics
import SinewPolicy
import SinewRuntime
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
private let so101 = "\(repositoryRoot)/Hardware/robots/so101"

/// task.yaml: the shipped tasks load and check against the SO-101, every mistake is an error naming the file, line,
/// column and key (with a suggestion for a mistyped key), seeded mutations never crash the parser, and the
/// randomisation ranges draw the same physics from the same seed.
@Suite struct TaskConfigurationTests {
    static let robot = try! RobotConfiguration.loadChecked(contentsOf: "\(so101)/robot.yaml")

    func parse(_ text: String) throws(ConfigurationError) -> TaskConfiguration {
        try TaskConfiguration.parse(text, file: "task.yaml", baseDirectory: so101, robot: Self.robot.configuration)
    }

    @Test func shippedTasksLoadAndCheck() throws {
        let reach = try TaskConfiguration.load(
            contentsOf: "\(so101)/tasks/reach.yaml", robot: Self.robot.configuration, model: Self.robot.model)
        #expect(reach.warnings.isEmpty)
        let settings = try #require(reach.task.settings as? ReachTaskSettings)
        #expect(settings.frame == "gripper_frame_link")
        #expect(settings.toleranceM == 0.02 && settings.holdS == 0.3)
        #expect(reach.task.instruction == "reach the target with the gripper")
        #expect(reach.task.fps == 30 && reach.task.timeLimitS == 5)
        #expect(reach.task.startRad == [0.0, -1.2, 1.2, 0.7, 0.0, 0.1])
        #expect(reach.task.randomization.ranges.count == DomainRandomization.knobs.count)
        #expect(
            settings.observationNames(configuration: Self.robot.configuration) == ["target.x", "target.y", "target.z"])

        let tracking = try TaskConfiguration.load(
            contentsOf: "\(so101)/tasks/trajectory_tracking.yaml", robot: Self.robot.configuration,
            model: Self.robot.model)
        let trackingSettings = try #require(tracking.task.settings as? TrajectoryTrackingTaskSettings)
        #expect(trackingSettings.waypoints.count == 4)
        #expect(
            trackingSettings.observationNames(configuration: Self.robot.configuration).first == "reference.shoulder_pan"
        )
    }

    @Test func mistakesNameTheirLineAndKey() throws {
        let reach = """
            type: reach
            frame: gripper_frame_link
            target_box: {min: [0.17, -0.1, 0.05], max: [0.27, 0.1, 0.15]}
            tolerence_m: 0.02
            """
        do {
            _ = try parse(reach)
            Issue.record("a mistyped key was accepted")
        } catch {
            #expect(error.kind == .unknownKey)
            #expect(error.location.line == 4)
            #expect(error.suggestion == "tolerance_m")
            #expect(error.description.contains("task.yaml:4"))
        }
        let cases: [(String, ConfigurationError.Kind, Int, String)] = [
            ("type: rech\nframe: a", .invalidValue, 1, "type"),
            ("frame: a", .missingKey, 1, "type"),
            ("type: reach\ntarget_box: {min: [0, 0, 0], max: [1, 1, 1]}", .missingKey, 1, "frame"),
            ("type: reach\nframe: a\ntarget_box: {min: [0, 0, 0], max: [1, 1]}", .invalidValue, 3, "target_box.max"),
            (
                "type: reach\nframe: a\ntarget_box: {min: [0, 0, 0], max: [1, 1, 1]}\ntime_limit_s: -1", .invalidValue,
                4,
                "time_limit_s"
            ),
            (
                "type: reach\nframe: a\ntarget_box: {min: [0, 0, 0], max: [1, 1, 1]}\nstart_rad: [1, 2]", .invalidValue,
                4,
                "start_rad"
            ),
            (
                "type: reach\nframe: a\ntarget_box: {min: [0, 0, 0], max: [1, 1, 1]}\nrandomization:\n  packet_loss: [0.2, 0.1]",
                .invalidValue, 5, "randomization.packet_loss"
            ),
            (
                "type: reach\nframe: a\ntarget_box: {min: [0, 0, 0], max: [1, 1, 1]}\nrandomization:\n  link_mass: [1, 2]",
                .unknownKey, 5, "randomization"
            ),
            (
                "type: trajectory_tracking\nwaypoints:\n  - {duration_s: 1, positions_rad: [0, 0, 0]}", .invalidValue,
                3,
                "waypoints[0].positions_rad"
            ),
            ("type: reach\nframe: [a", .malformedYAML, 3, ""),
        ]
        for (text, kind, line, keyPath) in cases {
            do {
                _ = try parse(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.kind == kind, "\(text): \(error)")
                #expect(error.location.line == line, "\(text): \(error)")
                #expect(error.keyPath == keyPath, "\(text): \(error)")
            }
        }
    }

    /// What only the URDF can say: the frame is a link, the box is inside the workspace and within reach.
    @Test func checksAgainstTheRobot() throws {
        func check(_ text: String) throws -> ConfigurationError? {
            let task = try parse(text)
            do {
                _ = try task.settings.check(against: Self.robot.model, configuration: Self.robot.configuration)
                return nil
            } catch {
                return error
            }
        }
        let unknown = try check("type: reach\nframe: gripper\ntarget_box: {min: [0.2, 0, 0.1], max: [0.2, 0, 0.1]}")
        #expect(unknown?.kind == .unknownFrame)
        #expect(unknown?.location.line == 2)
        let outside = try check(
            "type: reach\nframe: gripper_frame_link\ntarget_box: {min: [0.2, 0, -0.1], max: [0.25, 0, 0.1]}")
        #expect(outside?.keyPath == "target_box")
        #expect(outside?.description.contains("workspace") == true)
        let far = try check(
            "type: reach\nframe: gripper_frame_link\ntarget_box: {min: [0.45, 0, 0.1], max: [0.48, 0, 0.1]}")
        #expect(far?.description.contains("reach") == true, "\(String(describing: far))")
    }

    /// 3,000 inputs made from the shipped task files by a seeded mutator (bytes flipped, lines cut, repeated and
    /// swapped, characters inserted): every one parses or fails with a `ConfigurationError` that points inside the
    /// document, never crashes.
    @Test func mutatedTaskFilesFailCleanly() throws {
        let sources = try ["reach.yaml", "trajectory_tracking.yaml"].map {
            try String(contentsOfFile: "\(so101)/tasks/\($0)", encoding: .utf8)
        }
        var random = SplitMix64(seed: 15)
        let alphabet = Array(":-[]{},#&*!|>'\"%@` \n\t0123456789.eE+-_abcxyz")
        var accepted = 0
        for n in 0..<3000 {
            var lines = sources[n % 2].components(separatedBy: "\n")
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let l = Int(random.next() % UInt64(lines.count))
                switch random.next() % 5 {
                case 0: lines.remove(at: l)
                case 1: lines.insert(lines[l], at: Int(random.next() % UInt64(lines.count)))
                case 2: lines.swapAt(l, Int(random.next() % UInt64(lines.count)))
                default:
                    var characters = Array(lines[l])
                    let position = characters.isEmpty ? 0 : Int(random.next() % UInt64(characters.count + 1))
                    if random.next() % 2 == 0 || characters.isEmpty {
                        characters.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: position)
                    } else {
                        characters.remove(at: min(position, characters.count - 1))
                    }
                    lines[l] = String(characters)
                }
                if lines.isEmpty { lines = [""] }
            }
            let text = lines.joined(separator: "\n")
            do {
                let task = try parse(text)
                accepted += 1
                // What is accepted is usable: the ranges draw, the start pose is inside the limits.
                _ = task.randomization.sample(seed: UInt64(n), linkCount: 8, jointCount: 6)
                let start = task.startPose(configuration: Self.robot.configuration, model: Self.robot.model, seed: 1)
                #expect(start.count == 6 && start.allSatisfy(\.isFinite))
            } catch {
                #expect(error.location.file == "task.yaml")
                #expect(error.location.line <= lines.count + 1, "\(error)")
                #expect(!error.description.isEmpty)
            }
        }
        #expect(accepted > 100 && accepted < 2900, "accepted \(accepted) of 3000")
    }

    @Test func rangesOnTheCommandLine() throws {
        let ranges = try DomainRandomization.parse("packet_loss=0:0.02, link_mass_scale=0.9:1.1,backlash_rad=0.005")
        #expect(ranges.ranges["packet_loss"] == 0...0.02)
        #expect(ranges.ranges["backlash_rad"] == 0.005...0.005)
        for (text, problem) in [
            ("packet_los=0:0.1", "did you mean packet_loss"), ("packet_loss=0.2:0.1", "LOW ≤ HIGH"),
            ("packet_loss=0:0.9", "must lie in"), ("packet_loss", "KEY=LOW:HIGH"), ("loop_jitter_us=a:b", "LOW:HIGH"),
        ] {
            do {
                _ = try DomainRandomization.parse(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.description.contains(problem), "\(text): \(error)")
            }
        }
    }

    /// One seed, one draw: the same physics every time; each knob draws from its own stream, so adding a knob
    /// leaves the others' values as they were; no range means the nominal robot.
    @Test func drawsDependOnlyOnTheSeedAndTheirOwnKnob() throws {
        let task = try TaskConfiguration.load(
            contentsOf: "\(so101)/tasks/reach.yaml", robot: Self.robot.configuration, model: Self.robot.model
        ).task
        let all = task.randomization
        let a = all.sample(seed: 42, linkCount: 8, jointCount: 6)
        #expect(a == all.sample(seed: 42, linkCount: 8, jointCount: 6))
        #expect(a != all.sample(seed: 43, linkCount: 8, jointCount: 6))
        #expect(!a.isNeutral)
        for (j, scale) in a.jointFrictionScale.enumerated() {
            #expect((0.5...2.0).contains(scale), "joint \(j)")
        }
        #expect(a.busLatencyNs <= 300_000 && a.packetLoss <= 0.01)
        var one = DomainRandomization()
        _ = one.set("packet_loss", 0...0.01)
        let b = one.sample(seed: 42, linkCount: 8, jointCount: 6)
        #expect(b.packetLoss == a.packetLoss)
        #expect(b.linkMassScale == [Double](repeating: 1, count: 8))
        #expect(DomainRandomization().sample(seed: 42, linkCount: 8, jointCount: 6).isNeutral)
        // The start pose and the task's draws come from streams of their own, independent of randomisation.
        #expect(
            task.startPose(configuration: Self.robot.configuration, model: Self.robot.model, seed: 42)
                == task.startPose(configuration: Self.robot.configuration, model: Self.robot.model, seed: 42))
    }
}
