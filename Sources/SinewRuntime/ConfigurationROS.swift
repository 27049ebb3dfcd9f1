import Foundation
import SinewCore

extension RobotConfiguration {
    /// robot.yaml's `ros:` section: the robot on ROS 2's DDS wire (docs/ros2.md). Plain values; the `sinew` command
    /// builds the node from them.
    public struct ROS: Sendable, Equatable {
        /// Whether the run joins ROS 2 (`sinew run --ros` turns it on too).
        public var enabled: Bool
        /// The robot's namespace: its topics are `/NAMESPACE/joint_states`, … (DDS topics `rt/NAMESPACE/…`); nil:
        /// the robot's name. Empty: no namespace (`/joint_states`).
        public var namespace: String?
        /// The DDS domain (ROS_DOMAIN_ID); nil: the environment's ROS_DOMAIN_ID, else 0.
        public var domainID: Int?
        /// The network interface DDS uses (a name such as `lo` or `eth0`, or an address); nil: Cyclone's choice.
        public var interface: String?
        /// Addresses discovery sends to directly (unicast discovery, across subnets or with multicast off).
        public var peers: [String]
        /// Whether DDS may use multicast (discovery, data); nil: Cyclone's default (on where the interface can).
        public var multicast: Bool?
        /// How often `joint_states` is published, Hz (at most the loop's rate).
        public var jointStatesRateHz: Double
        /// How often `tf` is published, Hz.
        public var tfRateHz: Double
        /// How often the IMU's estimate is published (`imu`), Hz, when robot.yaml has an `imu:`.
        public var imuRateHz: Double
        /// How often `diagnostics` is published, Hz.
        public var diagnosticsRateHz: Double
        public var location: SourceLocation

        public init(
            enabled: Bool = false, namespace: String? = nil, domainID: Int? = nil, interface: String? = nil,
            peers: [String] = [], multicast: Bool? = nil, jointStatesRateHz: Double = 100, tfRateHz: Double = 50,
            imuRateHz: Double = 100, diagnosticsRateHz: Double = 1, location: SourceLocation = SourceLocation(file: "")
        ) {
            self.enabled = enabled
            self.namespace = namespace
            self.domainID = domainID
            self.interface = interface
            self.peers = peers
            self.multicast = multicast
            self.jointStatesRateHz = jointStatesRateHz
            self.tfRateHz = tfRateHz
            self.imuRateHz = imuRateHz
            self.diagnosticsRateHz = diagnosticsRateHz
            self.location = location
        }

        /// The highest DDS domain id (Cyclone's port mapping; ROS 2 documents 0–101 and 215–232 as safe on Linux).
        public static let maximumDomainID = 232

        /// What a namespace must look like: ROS 2 name tokens (a letter or `_`, then letters, digits, `_`) joined by
        /// `/`, without a leading or trailing one.
        public static let namespaceRule =
            "a ROS 2 namespace: words of letters, digits and '_' (not starting with a digit) joined by '/'"

        /// Whether `namespace` follows ``namespaceRule`` (the empty namespace does).
        public static func isValidNamespace(_ namespace: String) -> Bool {
            if namespace.isEmpty { return true }
            for token in namespace.split(separator: "/", omittingEmptySubsequences: false) {
                guard let first = token.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                    return false
                }
                for c in token.utf8 {
                    let ok =
                        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c)
                        || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "_")
                    if !ok { return false }
                }
            }
            return true
        }

        /// A robot name made into a namespace token (characters outside the rule become `_`).
        public static func namespace(fromRobotName name: String) -> String {
            var text = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
            if text.first?.isNumber ?? true { text = "_" + text }
            return text
        }
    }

    /// The same robot with other ROS settings (a front end's `--ros` options).
    public func replacingROS(_ ros: ROS) -> RobotConfiguration {
        var copy = self
        copy.ros = ros
        return copy
    }
}
