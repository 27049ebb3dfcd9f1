import Foundation
import SinewROS
import SinewRuntime
import SinewTestSupport
import Testing

/// robot.yaml's `ros:` section: values, defaults, and errors that name file, line, column and key, with suggestions.
@Suite struct ROSConfigurationTests {
    static let base = """
        model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf
        buses:
          - {name: arm, protocol: feetech, port: virtual, baud: 1000000}
        joints:
          - {name: shoulder_pan, bus: arm, id: 1, servo: sts3215}
        loop: {rate_hz: 500}

        """

    static func parse(_ ros: String) throws(ConfigurationError) -> RobotConfiguration {
        try RobotConfiguration.parse(base + ros, file: "robot.yaml", baseDirectory: "/tmp")
    }

    @Test func theSectionParsesToItsValues() throws {
        let c = try Self.parse(
            """
            ros:
              enabled: true
              namespace: /cell3/arm
              domain_id: 42
              interface: lo
              peers: [10.0.0.2, robot-b.local]
              multicast: false
              joint_states_rate_hz: 500
              tf_rate_hz: 30
            """)
        #expect(c.ros.enabled && c.ros.namespace == "cell3/arm" && c.ros.domainID == 42)
        #expect(c.ros.interface == "lo" && c.ros.peers == ["10.0.0.2", "robot-b.local"] && c.ros.multicast == false)
        #expect(c.ros.jointStatesRateHz == 500 && c.ros.tfRateHz == 30 && c.ros.diagnosticsRateHz == 1)
        let network = try ROSNetworkSettings(configuration: c, environment: [:])
        #expect(network.topic("joint_states") == "rt/cell3/arm/joint_states")
        #expect(network.rosName("joint_states") == "/cell3/arm/joint_states")
        let xml = try #require(network.cycloneConfiguration)
        #expect(
            xml.contains("<NetworkInterface name=\"lo\"/>") && xml.contains("<AllowMulticast>false</AllowMulticast>"))
        #expect(xml.contains("<Peer address=\"10.0.0.2\"/>") && xml.contains("<Peer address=\"robot-b.local\"/>"))
    }

    @Test func withoutTheSectionROSIsOffAndTheNamespaceIsTheRobotsName() throws {
        let c = try Self.parse("")
        #expect(!c.ros.enabled && c.ros.namespace == nil && c.ros.domainID == nil)
        let network = try ROSNetworkSettings(configuration: c, environment: ["ROS_DOMAIN_ID": "7"])
        #expect(network.domainID == 7 && network.cycloneConfiguration == nil)
        #expect(network.namespace == RobotConfiguration.ROS.namespace(fromRobotName: c.name))
        #expect(throws: ROSError.self) { try ROSNetworkSettings(configuration: c, environment: ["ROS_DOMAIN_ID": "x"]) }
    }

    @Test func anEmptyNamespaceIsNone() throws {
        let c = try Self.parse("ros: {enabled: true, namespace: ''}")
        #expect(c.ros.namespace == "")
        let network = try ROSNetworkSettings(configuration: c, environment: [:])
        #expect(network.topic("joint_states") == "rt/joint_states" && network.rosName("cmd") == "/cmd")
    }

    @Test func aMistypedKeyIsNamedWithItsLineAndASuggestion() {
        #expect {
            try Self.parse("ros:\n  enabled: true\n  namspace: arm\n")
        } throws: { error in
            let e = error as? ConfigurationError
            return e?.kind == .unknownKey && e?.suggestion == "namespace" && e?.location.line == 9
                && e?.keyPath == "ros"
        }
    }

    @Test(arguments: [
        ("ros: {namespace: 3arm}", "ros.namespace"), ("ros: {namespace: 'a b'}", "ros.namespace"),
        ("ros: {domain_id: 500}", "ros.domain_id"), ("ros: {joint_states_rate_hz: 1000}", "ros.joint_states_rate_hz"),
        ("ros: {peers: ['<x>']}", "ros.peers[0]"), ("ros: {multicast: maybe}", "ros.multicast"),
    ])
    func aValueOutOfItsRangeIsRefusedWhereItIsWritten(_ text: String, _ keyPath: String) {
        #expect {
            try Self.parse(text)
        } throws: { error in
            let e = error as? ConfigurationError
            return e?.keyPath == keyPath && e?.location.line == 7 && (e?.description.contains("robot.yaml:7:") ?? false)
        }
    }
}
