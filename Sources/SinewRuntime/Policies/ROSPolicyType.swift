import SinewPolicy

/// `policy: {type: ros}`: the robot follows what arrives over ROS 2 (docs/ros2.md) — trajectories on
/// `joint_trajectory` through the mixed-rate bridge, direct joint targets on `cmd` under the watchdog — and holds
/// its pose until then (``ExternalCommandPolicy``). Needs the run to join ROS 2 (`ros.enabled`, or `sinew run --ros`).
public struct ROSPolicyType: PolicyType {
    public init() {}
    public var name: String { "ros" }
    public var summary: String {
        "follow ROS 2 trajectories (joint_trajectory) and joint targets (cmd) over DDS; hold until they come"
    }
    public var keys: [String] { ["trajectory_step_s", "max_trajectory_s", "switch_blend_s", "catch_up_rad_per_s"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        ROSPolicySettings(
            trajectoryStepS: try reader.double(
                "trajectory_step_s", default: 0.01, unit: "s", where: { $0 >= 0.001 && $0 <= 0.1 }, "in [0.001, 0.1]"),
            maxTrajectoryS: try reader.double(
                "max_trajectory_s", default: 60, unit: "s", where: { $0 > 0 && $0 <= 600 }, "in (0, 600]"),
            switchBlendS: try reader.double(
                "switch_blend_s", default: 0.1, unit: "s", where: { $0 > 0 && $0 <= 5 }, "in (0, 5]"),
            catchUpRadPerS: try reader.double(
                "catch_up_rad_per_s", default: 1, unit: "rad/s", where: { $0 > 0 && $0 <= 100 }, "in (0, 100]"))
    }
}

/// The `ros` policy's settings.
public struct ROSPolicySettings: PolicySettings, Equatable {
    /// The step trajectories are resampled at, s.
    public var trajectoryStepS: Double
    /// The longest trajectory accepted, s.
    public var maxTrajectoryS: Double
    /// The bridge's blend to a new trajectory, s, and the most speed it adds to close a gap, rad/s.
    public var switchBlendS: Double
    public var catchUpRadPerS: Double

    public init(
        trajectoryStepS: Double = 0.01, maxTrajectoryS: Double = 60, switchBlendS: Double = 0.1,
        catchUpRadPerS: Double = 1
    ) {
        self.trajectoryStepS = trajectoryStepS
        self.maxTrajectoryS = maxTrajectoryS
        self.switchBlendS = switchBlendS
        self.catchUpRadPerS = catchUpRadPerS
    }

    public var typeName: String { "ros" }
    public var replayLimitation: String? { "it follows ROS 2 topics, which a recording does not hold" }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        ExternalCommandPolicy(
            jointNames: context.configuration.joints.map(\.name), trajectoryStepS: trajectoryStepS,
            maxTrajectoryS: maxTrajectoryS,
            settings: ChunkBridgeSettings(mode: .latest, switchBlendS: switchBlendS, catchUpRadPerS: catchUpRadPerS))
    }
}
