import ArgumentParser
import Foundation
import SinewKinematics
import SinewPolicy
import SinewROS
import SinewRuntime

/// `sinew run`'s ROS 2 options (they override robot.yaml's `ros:`; docs/ros2.md).
struct ROSRunOptions: ParsableArguments {
    @Flag(
        name: .customLong("ros"),
        help: ArgumentHelp(
            "Join ROS 2 on DDS (Cyclone DDS): publish joint_states, tf, diagnostics, robot_description (and imu), "
                + "take estop and recover, and joint_trajectory and cmd with `policy: {type: ros}` (see --follow-ros).")
    )
    var enabled = false

    @Option(
        name: .customLong("ros-namespace"),
        help: ArgumentHelp(
            "The robot's ROS 2 namespace (topics /NAME/joint_states, …); default robot.yaml's, else the "
                + "robot's name.", valueName: "name"))
    var namespace: String?

    @Option(
        name: .customLong("ros-domain-id"),
        help: ArgumentHelp(
            "The DDS domain (default robot.yaml's ros.domain_id, else $ROS_DOMAIN_ID, else 0).",
            valueName: "id"))
    var domainID: Int?

    @Flag(
        name: .customLong("follow-ros"),
        help: ArgumentHelp(
            "Follow ROS 2 instead of robot.yaml's policy (the `ros` policy: trajectories from joint_trajectory, "
                + "targets from cmd; hold until they come). Implies --ros."))
    var followROS = false

    init() {}

    /// The options as plain values, for code that runs without the command line (`sinew teleop`, `sinew jog`).
    var overrides: ROSOverrides {
        ROSOverrides(enabled: enabled || followROS, namespace: namespace, domainID: domainID)
    }

    func validate() throws {
        if let namespace {
            let trimmed = String(namespace.drop { $0 == "/" })
            guard RobotConfiguration.ROS.isValidNamespace(trimmed) else {
                throw ValidationError("--ros-namespace \(namespace): \(RobotConfiguration.ROS.namespaceRule)")
            }
        }
        if let domainID, !(0...RobotConfiguration.ROS.maximumDomainID).contains(domainID) {
            throw ValidationError(
                "--ros-domain-id must be in 0–\(RobotConfiguration.ROS.maximumDomainID) (got \(domainID))")
        }
    }

}

/// What the command line changes of robot.yaml's `ros:` (plain values: a ``ROSRunOptions`` made outside argument
/// parsing has no values to read, so the run's options carry these instead). None by default.
struct ROSOverrides {
    var enabled = false
    var namespace: String?
    var domainID: Int?

    /// robot.yaml's configuration with these overrides applied.
    func applied(to configuration: RobotConfiguration) -> RobotConfiguration {
        var ros = configuration.ros
        if enabled || namespace != nil || domainID != nil { ros.enabled = true }
        if let namespace { ros.namespace = String(namespace.drop { $0 == "/" }) }
        if let domainID { ros.domainID = domainID }
        return configuration.replacingROS(ros)
    }
}

/// The ROS 2 node of one `sinew run`: made before torque, fed by the recorder's thread, reported with the run.
final class ROSRun {
    let node: ROSNode
    let publisher: ROSStatePublisher
    let notes: [String]

    init(loop: RobotLoop, configuration: RobotConfiguration, model: RobotModel) throws {
        let network = try ROSNetworkSettings(configuration: configuration)
        let policy = loop.policy as? ExternalCommandPolicy
        node = try ROSNode(
            configuration: configuration, model: model, network: network,
            estop: loop.supervisor.emergencyStop, policy: policy, tickIndex: { [loop] in loop.currentTickIndex })
        // The servos' temperatures and voltages for diagnostics: the loop's one health tap, shared with telemetry
        // (both read it on the recorder's thread; `startRecording` asks for it with the same decimation).
        let tap = loop.attachHealthTap(decimation: RunOptions.healthTapDecimation(configuration))
        publisher = ROSStatePublisher(
            node: node, configuration: configuration, model: model, policyName: loop.policy.typeName, healthTap: tap)
        var notes = [
            "ros: domain \(network.domainID), publishing \(network.rosName("joint_states")), "
                + "\(network.rosName("tf")), \(network.rosName("diagnostics")), \(network.rosName("robot_description"))"
                + (configuration.imu == nil ? "" : ", \(network.rosName("imu"))")
                + "; e-stop on \(network.rosName("estop")), recovery on \(network.rosName("recover"))"
        ]
        if policy == nil {
            notes.append(
                "ros: the policy is \(loop.policy.typeName): \(network.rosName("joint_trajectory")) and "
                    + "\(network.rosName("cmd")) are refused (policy: {type: ros}, or --follow-ros, follows them)")
        } else {
            notes.append(
                "ros: following \(network.rosName("joint_trajectory")) and \(network.rosName("cmd")); holding until "
                    + "they come")
        }
        self.notes = notes
    }

    func start() { node.start() }
    func stop() { node.stop() }

    var json: JSONValue {
        let r = node.report
        let published = publisher.publishedCounts.merging(r.published) { $0 + $1 }
        return .object([
            ("namespace", .string(node.network.namespace)), ("domain_id", .integer(node.network.domainID)),
            ("published", .object(published.sorted { $0.key < $1.key }.map { ($0.key, .integer($0.value)) })),
            ("trajectories_accepted", .integer(r.trajectoriesAccepted)),
            ("trajectories_refused", .integer(r.trajectoriesRefused)),
            ("commands_accepted", .integer(r.commandsAccepted)), ("commands_refused", .integer(r.commandsRefused)),
            ("malformed_samples", .integer(r.malformedSamples)), ("estops_received", .integer(r.estopsReceived)),
            ("recoveries_requested", .integer(r.recoveriesRequested)),
            ("estop_received_tick", r.estopReceivedTick.map { .integer(Int($0)) } ?? .null),
            ("safe_state_tick", r.safeStateTick.map { .integer(Int($0)) } ?? .null),
            ("command_latency_p50_us", r.commandLatencyP50Us.map { .number($0) } ?? .null),
            ("command_latency_p99_us", r.commandLatencyP99Us.map { .number($0) } ?? .null),
            ("last_refusal", r.lastRefusal.map { .string($0) } ?? .null),
        ])
    }

    var summary: String {
        let r = node.report
        let published = publisher.publishedCounts
        var text = "  ros: \(node.network.rosName("joint_states")) ×\(published["joint_states"] ?? 0)"
        text += ", tf ×\(published["tf"] ?? 0), diagnostics ×\(published["diagnostics"] ?? 0)"
        text += "; trajectories \(r.trajectoriesAccepted) taken, \(r.trajectoriesRefused) refused"
        text += "; cmd \(r.commandsAccepted) taken, \(r.commandsRefused) refused"
        if r.malformedSamples > 0 { text += "; \(r.malformedSamples) malformed samples" }
        if r.estopsReceived > 0 { text += "; \(r.estopsReceived) e-stop(s)" }
        if let last = r.lastRefusal { text += "\n  ros: last refusal: \(last)" }
        return text
    }
}
