import SinewCore
import SinewKinematics
import SinewPolicy

/// `policy: {type: jog, frame: LINK, …}`: Cartesian velocity commands for a frame from the run's terminal keys
/// and a joystick (``JogPolicy``).
public struct JogPolicyType: PolicyType {
    public init() {}
    public var name: String { "jog" }
    public var summary: String {
        "move a frame at Cartesian velocities from the terminal's keys or a joystick, within the joint limits"
    }
    public var keys: [String] { ["frame", "linear_speed_m_s", "angular_speed_rad_s", "axes", "joystick"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        guard let frame = try reader.string("frame") else {
            throw reader.error("frame", expected: "the URDF link to jog (e.g. the gripper's frame)")
        }
        var settings = JogPolicy.Settings(frame: frame)
        settings.linearSpeedMPerS = try reader.double(
            "linear_speed_m_s", default: 0.05, unit: "m/s", where: { $0 > 0 && $0 <= 2 }, "in (0, 2]")
        settings.angularSpeedRadPerS = try reader.double(
            "angular_speed_rad_s", default: 0.3, unit: "rad/s", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]")
        settings.axesFrame =
            JogPolicy.AxesFrame(
                rawValue: try reader.word(
                    "axes", choices: JogPolicy.AxesFrame.allCases.map(\.rawValue), default: "base"))
            ?? .base
        let joystick = try reader.string("joystick") ?? "auto"
        guard joystick == "auto" || joystick == "none" || joystick.hasPrefix("/") else {
            throw reader.error("joystick", expected: "auto, none, or a device path such as /dev/input/js0")
        }
        return JogPolicySettings(settings: settings, joystick: joystick, location: reader.location(of: "frame"))
    }
}

/// The `jog` policy's settings: the policy's, and which joystick (`auto`: the first /dev/input/js* present;
/// `none`; or a path).
public struct JogPolicySettings: PolicySettings, Equatable {
    public var replayLimitation: String? { "it reads the keyboard or a joystick, which the recording does not hold" }

    public let settings: JogPolicy.Settings
    public let joystick: String
    public let location: SourceLocation
    public var typeName: String { "jog" }

    public init(
        settings: JogPolicy.Settings, joystick: String = "auto", location: SourceLocation = SourceLocation(file: "")
    ) {
        self.settings = settings
        self.joystick = joystick
        self.location = location
    }

    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        guard model.linkIndex(named: settings.frame) != nil else {
            throw ConfigurationError(
                .unknownFrame, at: location, keyPath: "policy.frame",
                expected: "a link of \(model.file)"
                    + configuration.suggestionText(settings.frame, model.links.map(\.name)),
                found: "'\(settings.frame)'")
        }
        return []
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        let configuration = context.configuration
        let limits = zip(configuration.joints, context.jointLimits).map { _, limit in
            (
                lowerRad: limit.positionMinRad + limit.positionMarginRad,
                upperRad: limit.positionMaxRad - limit.positionMarginRad, velocityRadPerS: limit.velocityLimitRadPerS
            )
        }
        let policy: JogPolicy
        do {
            policy = try JogPolicy(
                model: context.model, jointNames: configuration.joints.map(\.name), settings: settings,
                input: JogInput(),
                limits: limits, loopRateHz: context.loopRateHz)
        } catch {
            throw RobotLoopError("policy \"jog\": \(error)")
        }
        let device = joystick == "auto" ? JoystickJogSource.firstDevice() : joystick == "none" ? nil : joystick
        if let device {
            let source = try JoystickJogSource(path: device, input: policy.input)
            source.start()
            policy.inputSources.append(source)
            policy.extraNotices.append("jog: joystick \(device): left stick x/y, right stick z and yaw")
        } else {
            policy.extraNotices.append(
                "jog: no joystick (\(joystick == "none" ? "joystick: none" : "none at /dev/input/js*")); keys only")
        }
        return policy
    }
}
