import Foundation

/// The ROS 2 types Sinew reads and writes on DDS, by their DDS names (ROS 2's convention: `pkg/msg/Name` is
/// `pkg::msg::dds_::Name_`).
public enum ROSType {
    public static let jointState = "sensor_msgs::msg::dds_::JointState_"
    public static let jointTrajectory = "trajectory_msgs::msg::dds_::JointTrajectory_"
    public static let tfMessage = "tf2_msgs::msg::dds_::TFMessage_"
    public static let imu = "sensor_msgs::msg::dds_::Imu_"
    public static let diagnosticArray = "diagnostic_msgs::msg::dds_::DiagnosticArray_"
    public static let string = "std_msgs::msg::dds_::String_"
    public static let empty = "std_msgs::msg::dds_::Empty_"
}

/// Limits of what a received message may hold (beyond them it is refused).
public enum ROSMessageLimits {
    /// Joints named in one message.
    public static let joints = 64
    /// Points of one trajectory.
    public static let trajectoryPoints = 100_000
    /// The largest sample read, bytes.
    public static let sampleBytes = 8 << 20
}

/// `builtin_interfaces/Time` or `Duration`: seconds and nanoseconds (0 ≤ nanosec < 10⁹ when valid).
public struct ROSTime: Equatable, Sendable {
    public var sec: Int32
    public var nanosec: UInt32
    public init(sec: Int32, nanosec: UInt32) {
        self.sec = sec
        self.nanosec = nanosec
    }
    /// From ns since the epoch (or a duration in ns).
    public init(nanoseconds: Int64) {
        sec = Int32(truncatingIfNeeded: nanoseconds / 1_000_000_000)
        nanosec = UInt32(truncatingIfNeeded: nanoseconds % 1_000_000_000)
    }
    public var nanoseconds: Int64 { Int64(sec) * 1_000_000_000 + Int64(nanosec) }
    public var isZero: Bool { sec == 0 && nanosec == 0 }

    mutating func read(_ r: inout CDRReader, _ what: StaticString) throws(CDRDecodeError) {
        let at = r.offset
        sec = try r.int32()
        nanosec = try r.uint32()
        guard nanosec < 1_000_000_000 else { throw CDRDecodeError("\(what): nanosec \(nanosec) ≥ 10⁹", at: at + 4) }
    }

    func write(_ w: inout CDRWriter) {
        w.int32(sec)
        w.uint32(nanosec)
    }
}

/// `std_msgs/Header`.
public struct ROSHeader: Equatable, Sendable {
    public var stamp = ROSTime(sec: 0, nanosec: 0)
    public var frameID = ""
    public init(stamp: ROSTime = ROSTime(sec: 0, nanosec: 0), frameID: String = "") {
        self.stamp = stamp
        self.frameID = frameID
    }

    static func read(_ r: inout CDRReader) throws(CDRDecodeError) -> ROSHeader {
        var header = ROSHeader()
        try header.stamp.read(&r, "header.stamp")
        header.frameID = try r.string("header.frame_id")
        return header
    }

    func write(_ w: inout CDRWriter) {
        stamp.write(&w)
        w.string(frameID)
    }
}

/// `sensor_msgs/JointState` (the `cmd` topic's targets, and what `joint_states` carries).
public struct JointStateMessage: Equatable, Sendable {
    public var header = ROSHeader()
    public var name: [String] = []
    public var position: [Double] = []
    public var velocity: [Double] = []
    public var effort: [Double] = []
    public init(
        header: ROSHeader = ROSHeader(), name: [String] = [], position: [Double] = [], velocity: [Double] = [],
        effort: [Double] = []
    ) {
        self.header = header
        self.name = name
        self.position = position
        self.velocity = velocity
        self.effort = effort
    }

    /// Decodes one serialised sample (encapsulation header first).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CDRDecodeError) -> JointStateMessage {
        var r = try CDRReader(bytes)
        var m = JointStateMessage()
        m.header = try ROSHeader.read(&r)
        let limit = ROSMessageLimits.joints
        m.name = try r.strings("name", limit: limit)
        m.position = try r.doubles("position", limit: limit)
        m.velocity = try r.doubles("velocity", limit: limit)
        m.effort = try r.doubles("effort", limit: limit)
        try r.expectEnd()
        return m
    }

    public func encode() -> [UInt8] {
        var w = CDRWriter()
        header.write(&w)
        w.strings(name)
        w.doubles(position)
        w.doubles(velocity)
        w.doubles(effort)
        return w.bytes
    }
}

/// `trajectory_msgs/JointTrajectoryPoint`.
public struct JointTrajectoryPointMessage: Equatable, Sendable {
    public var positions: [Double] = []
    public var velocities: [Double] = []
    public var accelerations: [Double] = []
    public var effort: [Double] = []
    public var timeFromStart = ROSTime(sec: 0, nanosec: 0)
    public init(
        positions: [Double] = [], velocities: [Double] = [], accelerations: [Double] = [], effort: [Double] = [],
        timeFromStart: ROSTime = ROSTime(sec: 0, nanosec: 0)
    ) {
        self.positions = positions
        self.velocities = velocities
        self.accelerations = accelerations
        self.effort = effort
        self.timeFromStart = timeFromStart
    }
}

/// `trajectory_msgs/JointTrajectory`.
public struct JointTrajectoryMessage: Equatable, Sendable {
    public var header = ROSHeader()
    public var jointNames: [String] = []
    public var points: [JointTrajectoryPointMessage] = []
    public init(header: ROSHeader = ROSHeader(), jointNames: [String] = [], points: [JointTrajectoryPointMessage] = [])
    {
        self.header = header
        self.jointNames = jointNames
        self.points = points
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CDRDecodeError) -> JointTrajectoryMessage {
        var r = try CDRReader(bytes)
        var m = JointTrajectoryMessage()
        m.header = try ROSHeader.read(&r)
        let limit = ROSMessageLimits.joints
        m.jointNames = try r.strings("joint_names", limit: limit)
        // A point is at least four empty sequences and a duration: 24 bytes.
        let n = try r.count("points", limit: ROSMessageLimits.trajectoryPoints, minimumElementBytes: 24)
        m.points.reserveCapacity(n)
        for _ in 0..<n {
            var p = JointTrajectoryPointMessage()
            p.positions = try r.doubles("points[].positions", limit: limit)
            p.velocities = try r.doubles("points[].velocities", limit: limit)
            p.accelerations = try r.doubles("points[].accelerations", limit: limit)
            p.effort = try r.doubles("points[].effort", limit: limit)
            try p.timeFromStart.read(&r, "points[].time_from_start")
            m.points.append(p)
        }
        try r.expectEnd()
        return m
    }

    public func encode() -> [UInt8] {
        var w = CDRWriter()
        header.write(&w)
        w.strings(jointNames)
        w.uint32(UInt32(points.count))
        for p in points {
            w.doubles(p.positions)
            w.doubles(p.velocities)
            w.doubles(p.accelerations)
            w.doubles(p.effort)
            p.timeFromStart.write(&w)
        }
        return w.bytes
    }
}

/// `std_msgs/Empty` (the `estop` and `recover` topics): one uint8 on the wire, as rosidl gives an empty message.
public enum EmptyMessage {
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CDRDecodeError) {
        var r = try CDRReader(bytes)
        _ = try r.uint8()
        try r.expectEnd()
    }

    public static func encode() -> [UInt8] {
        var w = CDRWriter()
        w.uint8(0)
        return w.bytes
    }
}

/// `diagnostic_msgs/DiagnosticStatus` (level OK 0, WARN 1, ERROR 2, STALE 3).
public struct DiagnosticStatusMessage: Equatable, Sendable {
    public var level: UInt8 = 0
    public var name = ""
    public var message = ""
    public var hardwareID = ""
    public var values: [(key: String, value: String)] = []
    public init() {}

    public static func == (a: DiagnosticStatusMessage, b: DiagnosticStatusMessage) -> Bool {
        a.level == b.level && a.name == b.name && a.message == b.message && a.hardwareID == b.hardwareID
            && a.values.map(\.key) == b.values.map(\.key) && a.values.map(\.value) == b.values.map(\.value)
    }

    /// The value of `key`, or nil.
    public func value(_ key: String) -> String? { values.first { $0.key == key }?.value }
}

/// `diagnostic_msgs/DiagnosticArray` (what `sinew fleet status` reads from every robot).
public struct DiagnosticArrayMessage: Equatable, Sendable {
    public var header = ROSHeader()
    public var status: [DiagnosticStatusMessage] = []
    public init() {}

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(CDRDecodeError) -> DiagnosticArrayMessage {
        var r = try CDRReader(bytes)
        var m = DiagnosticArrayMessage()
        m.header = try ROSHeader.read(&r)
        // A status is at least a byte and three empty strings and a count: 20 bytes; a key-value pair 10.
        let n = try r.count("status", limit: 1024, minimumElementBytes: 20)
        for _ in 0..<n {
            var s = DiagnosticStatusMessage()
            s.level = try r.uint8()
            s.name = try r.string("status[].name")
            s.message = try r.string("status[].message")
            s.hardwareID = try r.string("status[].hardware_id")
            let k = try r.count("status[].values", limit: 4096, minimumElementBytes: 10)
            for _ in 0..<k {
                let key = try r.string("status[].values[].key")
                let value = try r.string("status[].values[].value")
                s.values.append((key, value))
            }
            m.status.append(s)
        }
        try r.expectEnd()
        return m
    }
}
