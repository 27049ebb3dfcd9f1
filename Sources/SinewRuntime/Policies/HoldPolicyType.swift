import SinewPolicy

/// `policy: {type: hold}` (or no `policy:` at all): keep the pose the robot was activated in.
public struct HoldPolicyType: PolicyType {
    public init() {}
    public var name: String { "hold" }
    public var summary: String { "keep the pose the robot was activated in (the default)" }
    public var keys: [String] { [] }
    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        HoldPolicySettings()
    }
}

/// The `hold` policy's settings: there are none.
public struct HoldPolicySettings: PolicySettings, Equatable {
    public init() {}
    public var typeName: String { "hold" }
    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        HoldPolicy(jointNames: context.configuration.joints.map(\.name))
    }
}
