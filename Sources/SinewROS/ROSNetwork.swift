import Foundation
import SinewRuntime

/// Where and how the robot's DDS participant talks: the domain, the namespace its topics live under, and the
/// network settings Cyclone DDS is configured with.
public struct ROSNetworkSettings: Sendable, Equatable {
    /// DDS domain (ROS_DOMAIN_ID).
    public var domainID: Int
    /// Topics are `rt/NAMESPACE/name` (`rt/name` when empty).
    public var namespace: String
    public var interface: String?
    public var peers: [String]
    public var multicast: Bool?

    public init(
        domainID: Int = 0, namespace: String = "", interface: String? = nil, peers: [String] = [],
        multicast: Bool? = nil
    ) {
        self.domainID = domainID
        self.namespace = namespace
        self.interface = interface
        self.peers = peers
        self.multicast = multicast
    }

    /// From robot.yaml's `ros:`: the namespace defaults to the robot's name, the domain to the environment's
    /// ROS_DOMAIN_ID, else 0.
    public init(configuration: RobotConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ROSError)
    {
        let ros = configuration.ros
        var domain = ros.domainID
        if domain == nil, let text = environment["ROS_DOMAIN_ID"], !text.isEmpty {
            guard let value = Int(text), (0...RobotConfiguration.ROS.maximumDomainID).contains(value) else {
                throw ROSError(
                    "ROS_DOMAIN_ID=\(text) is not a domain id (0–\(RobotConfiguration.ROS.maximumDomainID))")
            }
            domain = value
        }
        self.init(
            domainID: domain ?? 0,
            namespace: ros.namespace ?? RobotConfiguration.ROS.namespace(fromRobotName: configuration.name),
            interface: ros.interface, peers: ros.peers, multicast: ros.multicast)
    }

    /// The DDS topic of ROS 2 topic `name` under the namespace: `rt/NAMESPACE/name`.
    public func topic(_ name: String) -> String { namespace.isEmpty ? "rt/\(name)" : "rt/\(namespace)/\(name)" }

    /// The ROS 2 name of the same topic (`/NAMESPACE/name`).
    public func rosName(_ name: String) -> String { namespace.isEmpty ? "/\(name)" : "/\(namespace)/\(name)" }

    /// Cyclone DDS's configuration for these settings, or nil when none is given (Cyclone's defaults, and
    /// CYCLONEDDS_URI when set, apply).
    public var cycloneConfiguration: String? {
        guard interface != nil || !peers.isEmpty || multicast != nil else { return nil }
        var general = ""
        if let interface {
            // A name (lo, eth0) or an address.
            let isAddress = interface.contains(".") || interface.contains(":")
            general += "<Interfaces><NetworkInterface \(isAddress ? "address" : "name")=\"\(interface)\"/></Interfaces>"
        }
        if let multicast { general += "<AllowMulticast>\(multicast ? "true" : "false")</AllowMulticast>" }
        var discovery = ""
        if !peers.isEmpty {
            // Unicast discovery sends to the ports of participant indices up to the maximum: enough for a fleet.
            discovery +=
                "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
            discovery += "<Peers>" + peers.map { "<Peer address=\"\($0)\"/>" }.joined() + "</Peers>"
        }
        return "<CycloneDDS><Domain id=\"any\"><General>\(general)</General><Discovery>\(discovery)</Discovery>"
            + "</Domain></CycloneDDS>"
    }
}

/// A failure of the ROS 2 node (DDS could not start, a topic could not be made), with what and why.
public struct ROSError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
