import CSinewDDS
import Foundation

/// Every Sinew robot on a DDS domain, seen the way a ROS 2 tool sees it: robots are found by their `diagnostics`
/// publications (`rt/NAMESPACE/diagnostics`, type DiagnosticArray), then read from their `diagnostics` and
/// `joint_states`. What `sinew fleet status` shows.
public final class ROSFleetMonitor {
    /// One robot as last heard.
    public struct Robot: Sendable, Equatable {
        public var namespace: String
        /// From diagnostics: lifecycle state, safety cause, policy, loop rate (Hz), wake-up lateness p99 (µs), bus
        /// errors; nil until its first diagnostics message.
        public var state: String?
        public var safetyCause: String?
        public var policy: String?
        public var loopRateHz: Double?
        public var wakeP99Us: Double?
        public var busErrors: Int?
        public var jointNames: [String] = []
        public var positionRad: [Double] = []
        public var jointStatesReceived = 0
        /// Rate of joint_states over what was received, Hz (stamps).
        public var jointStatesRateHz: Double?
        var firstStampNs: Int64 = 0
        var lastStampNs: Int64 = 0
    }

    public let participant: DDSParticipant
    private let publications: dds_entity_t
    private var readers: [String: (diagnostics: DDSRawTaker, jointStates: DDSRawTaker)] = [:]
    public private(set) var robots: [String: Robot] = [:]

    public init(domainID: Int, configuration: String? = nil) throws(ROSError) {
        participant = try DDSParticipant(domainID: domainID, configuration: configuration)
        publications = sinew_dds_publication_reader(participant.handle)
        guard publications > 0 else {
            throw ROSError("cannot read the domain's publications: \(DDSParticipant.text(publications))")
        }
    }

    /// Takes what discovery and the robots sent since the last call.
    public func poll() throws(ROSError) {
        var topic = [CChar](repeating: 0, count: 512)
        var type = [CChar](repeating: 0, count: 512)
        var alive: Int32 = 0
        while sinew_dds_take_publication(publications, &topic, 512, &type, 512, &alive) > 0 {
            let name = String(decoding: topic.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let typeName = String(decoding: type.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard alive != 0, typeName == ROSType.diagnosticArray, name.hasPrefix("rt/"), name.hasSuffix("/diagnostics")
            else { continue }
            let namespace = String(name.dropFirst(3).dropLast("/diagnostics".count))
            guard readers[namespace] == nil else { continue }
            let network = ROSNetworkSettings(domainID: participant.domainID, namespace: namespace)
            readers[namespace] = (
                DDSRawTaker(
                    reader: try participant.rawReader(
                        topic: network.topic("diagnostics"), typeName: ROSType.diagnosticArray, qos: .rosDefault),
                    capacity: 1 << 20),
                DDSRawTaker(
                    reader: try participant.rawReader(
                        topic: network.topic("joint_states"), typeName: ROSType.jointState, qos: .sensorData),
                    capacity: 1 << 20)
            )
            robots[namespace] = Robot(namespace: namespace)
        }
        for (namespace, pair) in readers {
            var robot = robots[namespace] ?? Robot(namespace: namespace)
            while pair.diagnostics.take({ bytes, _, _ in
                guard let message = try? DiagnosticArrayMessage.decode(bytes), let status = message.status.first
                else { return }
                robot.state = status.value("state")
                robot.safetyCause = status.value("safety_cause").flatMap { $0.isEmpty ? nil : $0 }
                robot.policy = status.value("policy")
                robot.loopRateHz = status.value("loop_rate_hz").flatMap(Double.init)
                robot.wakeP99Us = status.value("wake_lateness_p99_us").flatMap(Double.init)
                robot.busErrors = status.value("bus_errors_total").flatMap { Int($0) }
            }) {}
            while pair.jointStates.take({ bytes, _, _ in
                guard let message = try? JointStateMessage.decode(bytes) else { return }
                robot.jointNames = message.name
                robot.positionRad = message.position
                robot.jointStatesReceived += 1
                let stamp = message.header.stamp.nanoseconds
                if robot.firstStampNs == 0 { robot.firstStampNs = stamp }
                robot.lastStampNs = stamp
                if robot.jointStatesReceived > 1 && stamp > robot.firstStampNs {
                    robot.jointStatesRateHz =
                        Double(robot.jointStatesReceived - 1) / (Double(stamp - robot.firstStampNs) * 1e-9)
                }
            }) {}
            robots[namespace] = robot
        }
    }
}
