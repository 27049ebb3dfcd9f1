import ArgumentParser
import Foundation
import SinewKinematics
import SinewPolicy
import SinewRuntime

/// `sinew teleop ROBOT.yaml --leader LEADER.yaml`: `sinew run` with the `teleop` policy.
struct Teleop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Teleoperate a robot from a leader arm: the follower ramps to the leader's pose, then follows it.",
        discussion: """
            The leader is a second robot.yaml (its servos on a bus of their own, torque off: a person moves it by \
            hand). Its joints are read every tick and mapped onto the follower's by name, each arm's positions \
            through its own calibration; the follower first ramps to the leader's pose (minimum jerk, at most \
            0.5 rad/s), then tracks it within 0.02 rad per tick. For range maps (a gripper's trigger onto its \
            jaw) or other names, write the policy in robot.yaml instead: `policy: {type: teleop, leader: …, \
            joints: …, ranges: …}` (docs/policies.md) and use `sinew run`.
            On the sim backend the leader is simulated too: its joints follow the motion file its robot.yaml's \
            `simulation: {motion: …}` names. On pty/serial its robot.yaml's bus port is used, or --leader-port.
            Everything else — the safety supervisor, e-stops, Ctrl-C, --json, exit statuses — is `sinew run`'s.
            Example: sinew teleop Hardware/robots/so101/robot.yaml --leader Hardware/robots/so101/leader.yaml
            """)

    @Argument(help: "The follower's robot.yaml.")
    var robot: String

    @Option(help: ArgumentHelp("The leader arm's robot.yaml.", valueName: "leader.yaml"))
    var leader: String

    @Option(help: "Where the buses lead: sim, pty or serial (the leader's too).")
    var backend: Backend = .sim

    @Option(help: "Port for the follower (pty or serial backend), overriding its robot.yaml.")
    var port: String?

    @Option(help: "Port for the leader (pty or serial backend), overriding its robot.yaml.")
    var leaderPort: String?

    @Option(help: "Stop after this many seconds (default: until Ctrl-C).")
    var duration: Double?

    @Flag(help: "End with one JSON object instead of the human summary (docs/run-json.md).")
    var json = false

    @Flag(help: "Simulate as fast as possible (sim backend), leader and follower in lockstep.")
    var fast = false

    @Option(help: "The follower's calibration file, overriding its robot.yaml's.")
    var calibration: String?

    @Option(help: "Record every tick to this CSV file.")
    var record: String?

    func validate() throws {
        if fast && backend != .sim { throw ValidationError("--fast runs the simulator only (--backend sim)") }
        if let duration, !(duration > 0 && duration <= RobotSession.maximumDurationS) {
            throw ValidationError("--duration must be a number of seconds above 0 (got \(duration))")
        }
    }

    func run() throws {
        let leaderPath = leader
        var options = RunOptions(calibrationPath: calibration, recordPath: record)
        options.leaderPort = leaderPort
        options.policyOverride = { checked in try teleopPolicy(leaderPath: leaderPath, follower: checked) }
        try runWithPolicy(
            robot: robot, backend: backend, port: port, duration: duration, json: json, fast: fast, options: options)
    }
}

/// `sinew jog ROBOT.yaml [--frame LINK]`: `sinew run` with the `jog` policy.
struct Jog: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Jog a robot's end effector at Cartesian velocities from the terminal's keys or a joystick.",
        discussion: """
            Keys in the terminal the run started from: arrows move along x (up/down) and y (left/right), Page Up \
            and Page Down along z, u/o roll, i/k pitch, j/l yaw; a key held down keeps moving, let go it stops. \
            A Linux joystick or gamepad (/dev/input/js*) when present: left stick x/y, right stick z and yaw. \
            Axes are the robot's base frame (--axes tool: the frame's own). The joint limits, workspace boxes and \
            every other rule of the safety supervisor stay in force; e, space: e-stop; r: recover; Ctrl-C ends.
            Example: sinew jog Hardware/robots/so101/robot.yaml --frame gripper_frame_link
            """)

    @Argument(help: "The robot's robot.yaml.")
    var robot: String

    @Option(help: "The URDF link to jog (default: the robot's deepest link).")
    var frame: String?

    @Option(help: "Top linear speed, m/s.")
    var linearSpeed = 0.05

    @Option(help: "Top angular speed, rad/s.")
    var angularSpeed = 0.3

    @Option(help: "Axes frame: base or tool.")
    var axes = "base"

    @Option(help: "Joystick: auto (the first /dev/input/js*), none, or a device path.")
    var joystick = "auto"

    @Option(help: "Where the buses lead: sim, pty or serial.")
    var backend: Backend = .sim

    @Option(help: "Port for a single-bus robot (pty or serial backend), overriding robot.yaml.")
    var port: String?

    @Option(help: "Stop after this many seconds (default: until Ctrl-C).")
    var duration: Double?

    @Flag(help: "End with one JSON object instead of the human summary (docs/run-json.md).")
    var json = false

    func validate() throws {
        guard linearSpeed > 0 && linearSpeed <= 2 else { throw ValidationError("--linear-speed must be in (0, 2] m/s") }
        guard angularSpeed > 0 && angularSpeed <= 10 else {
            throw ValidationError("--angular-speed must be in (0, 10] rad/s")
        }
        guard JogPolicy.AxesFrame(rawValue: axes) != nil else { throw ValidationError("--axes is base or tool") }
        guard joystick == "auto" || joystick == "none" || joystick.hasPrefix("/") else {
            throw ValidationError("--joystick is auto, none or a device path")
        }
        if let duration, !(duration > 0 && duration <= RobotSession.maximumDurationS) {
            throw ValidationError("--duration must be a number of seconds above 0 (got \(duration))")
        }
    }

    func run() throws {
        var options = RunOptions()
        let (frame, linear, angular, axes, joystick) = (self.frame, linearSpeed, angularSpeed, self.axes, self.joystick)
        options.policyOverride = { checked in
            let link = frame ?? checked.model.links[checked.model.deepestLink].name
            var settings = JogPolicy.Settings(frame: link)
            settings.linearSpeedMPerS = linear
            settings.angularSpeedRadPerS = angular
            settings.axesFrame = JogPolicy.AxesFrame(rawValue: axes) ?? .base
            return RobotConfiguration.Policy(settings: JogPolicySettings(settings: settings, joystick: joystick))
        }
        try runWithPolicy(
            robot: robot, backend: backend, port: port, duration: duration, json: json, fast: false, options: options)
    }
}

/// The `teleop` policy with the leader arm of `leaderPath`, its joints paired with the follower's by name.
func teleopPolicy(leaderPath: String, follower checked: CheckedRobotConfiguration) throws -> RobotConfiguration.Policy {
    RobotConfiguration.Policy(settings: try teleopSettings(leaderPath: leaderPath, follower: checked.configuration))
}

/// The `teleop` policy's settings: the leader arm of `leaderPath`, its joints paired with the follower's by name.
func teleopSettings(leaderPath: String, follower: RobotConfiguration) throws -> TeleopPolicySettings {
    let leader = try RobotConfiguration.load(contentsOf: leaderPath)
    let names = Set(leader.joints.map(\.name))
    let pairs = follower.joints.map(\.name).filter(names.contains)
    guard !pairs.isEmpty else {
        throw ValidationError(
            "\(leaderPath) shares no joint name with \(follower.file); map them in robot.yaml's "
                + "policy (type: teleop, joints: {follower: leader})")
    }
    return TeleopPolicySettings(
        leaderPath: leaderPath, leader: leader,
        joints: pairs.map { TeleopPolicySettings.Pair(follower: $0, leader: $0) })
}

/// `sinew run`'s ending for the commands that run a robot with a policy of their own choosing.
func runWithPolicy(
    robot: String, backend: Backend, port: String?, duration: Double?, json: Bool, fast: Bool, options: RunOptions
) throws {
    let outcome: RunOutcome
    do {
        outcome = try RobotRun.run(
            configurationPath: robot, backend: backend, port: port, duration: duration, statusLine: !json, fast: fast,
            options: options)
    } catch let failure as RunFailure where json {
        print(failure.json(robot: robot, backend: backend).text)
        throw ExitCode(RunExit.error)
    }
    if json { print(outcome.json.text) } else { print(outcome.summary) }
    if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
}
