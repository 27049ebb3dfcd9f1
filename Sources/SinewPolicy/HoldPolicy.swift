/// Holds the pose the robot was in when activated (robot.yaml `policy: hold`, the default).
public final class HoldPolicy: Policy {
    public let typeName = "hold"
    public let commands: [PolicyJointCommand]

    /// - Parameter jointNames: the robot's joints, all held, in robot.yaml order.
    public init(jointNames: [String]) {
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) { command.hold(observation) }

    /// The command keeps the activation pose; only its time moves on (the caller stamps it).
    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {}
}
