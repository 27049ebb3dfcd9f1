import Foundation
import SinewCore
import SinewKinematics
import SinewRecording

/// What an MCAP recording needs besides the snapshots: the robot, its model (for the transforms), the files to
/// attach and how to write.
public struct MCAPRecordingContext: @unchecked Sendable {
    // @unchecked: RobotModel is immutable once built.
    /// How the joint states are written: `json` (Foxglove plots every field), or `ros2` (also as
    /// `sensor_msgs/msg/JointState` in CDR, so rosbag2's tools read them; the file's profile is `ros2`).
    public enum Profile: String, Sendable, CaseIterable {
        case json, ros2
    }

    public var configuration: RobotConfiguration
    public var model: RobotModel
    public var profile: Profile
    public var compression: MCAPCompression
    public var chunkSizeBytes: Int
    /// Every how many seconds a chunk is closed at the latest: about what a killed run can lose (half a second by
    /// default, well inside the second promised).
    public var maxChunkDurationS: Double
    /// The rate of `/tf` (Hz): forward kinematics of the recorded positions, at most this often.
    public var transformRateHz: Double
    /// Files and facts attached to the recording: robot.yaml, the URDF, the calibration, the command line, the
    /// version, the real-time set-up.
    public var attachments: [(name: String, mediaType: String, data: [UInt8])]
    /// Metadata records (name → key → value).
    public var metadata: [(name: String, values: [String: String])]
    /// "sinew VERSION", written in the file's header.
    public var library: String
    /// CLOCK_REALTIME (ns) at the loop's time 0: messages are logged at wall time, so Foxglove's timeline shows
    /// when the run happened.
    public var startWallNs: UInt64

    public init(
        configuration: RobotConfiguration, model: RobotModel, profile: Profile = .json,
        compression: MCAPCompression = .zstd(level: 3), chunkSizeBytes: Int = 1 << 20, maxChunkDurationS: Double = 0.5,
        transformRateHz: Double = 50, attachments: [(name: String, mediaType: String, data: [UInt8])] = [],
        metadata: [(name: String, values: [String: String])] = [], library: String = "sinew",
        startWallNs: UInt64 = MCAPRecordingContext.wallClockNs()
    ) {
        self.configuration = configuration
        self.model = model
        self.profile = profile
        self.compression = compression
        self.chunkSizeBytes = chunkSizeBytes
        self.maxChunkDurationS = maxChunkDurationS
        self.transformRateHz = transformRateHz
        self.attachments = attachments
        self.metadata = metadata
        self.library = library
        self.startWallNs = startWallNs
    }

    /// CLOCK_REALTIME now, ns.
    public static func wallClockNs() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}

/// The channels of a Sinew recording (docs/recording.md), `json` with a `jsonschema` per channel so Foxglove plots
/// every field:
///
/// | topic | what | rate |
/// |---|---|---|
/// | `/joint_states` | position, velocity, effort per joint (or CDR JointState with the `ros2` profile) | every snapshot |
/// | `/commands` | the policy's target, the guarded command, velocity and effort goals, the command's time | every snapshot |
/// | `/estimates` | the IMU's orientation, the origins of the workspace frames and the deepest link | every snapshot |
/// | `/timing` | wake-up lateness and each stage's duration | every snapshot |
/// | `/tf` | `foxglove.FrameTransforms` of every link, from forward kinematics | `transformRateHz` |
/// | `/safety` | each safety event | as recorded |
/// | `/lifecycle` | each change of the lifecycle state | as it happens |
/// | `/bus` | bus errors this tick and in all | once a second, and on a change |
/// | `/log` | the run's notices | as printed |
/// | `/robot_description` | the URDF (`std_msgs/String`-like `{data}`) | once |
///
/// Joint-indexed fields are objects keyed by joint name (`/joint_states.position.elbow_flex` in Foxglove).
public final class MCAPRecordingSink: RecordingSink {
    public let path: String
    let writer: MCAPWriter
    let context: MCAPRecordingContext
    let jointNames: [String]
    let recordsTarget: Bool
    let workspace: KinematicsWorkspace
    let urdfIndex: [Int]
    let positions: UnsafeMutableBufferPointer<Double>
    /// Links whose origin `/estimates` reports (workspace boxes' frames and the deepest link).
    let estimateLinks: [(name: String, index: Int)]
    var channels: [String: UInt16] = [:]
    let rosEncoder: ROS2JointStateEncoder?
    var rosBuffer: [UInt8] = []
    var sequence: UInt32 = 0
    var lastState: LifecycleState?
    var lastTransformNs: Int64?
    var lastBusReportNs: Int64?
    var lastBusErrorTotal: Int64 = -1
    var lastLogNs: UInt64 = 0
    /// The last tick's log time, and the calendar time of the current segment's loop time 0 (nil until its first
    /// tick: each start restarts the loop's clock).
    var lastTickNs: UInt64 = 0
    var anchorNs: UInt64?

    public init(path: String, recorder: TickRecorder, context: MCAPRecordingContext) throws(RecordingError) {
        self.path = path
        self.context = context
        jointNames = recorder.jointNames
        recordsTarget = recorder.recordsTarget
        let model = context.model
        workspace = KinematicsWorkspace(model: model)
        urdfIndex = jointNames.map { model.jointIndex(named: $0) ?? -1 }
        positions = .allocate(capacity: max(1, model.dofCount))
        positions.initialize(repeating: 0)
        var links = context.configuration.safety.workspace.compactMap { box in
            model.linkIndex(named: box.frame).map { (box.frame, $0) }
        }
        let deepest = model.links[model.deepestLink].name
        if !links.contains(where: { $0.0 == deepest }) { links.append((deepest, model.deepestLink)) }
        estimateLinks = links
        rosEncoder = context.profile == .ros2 ? ROS2JointStateEncoder(jointNames: jointNames) : nil
        do {
            writer = try MCAPWriter(
                path: path,
                options: MCAPWriterOptions(
                    profile: context.profile == .ros2 ? ROS2JointStateEncoder.profile : "", library: context.library,
                    compression: context.compression, chunkSizeBytes: context.chunkSizeBytes,
                    maxChunkDurationNs: UInt64(max(0.05, context.maxChunkDurationS) * 1e9)))
            try defineChannels()
            for attachment in context.attachments {
                try writer.attach(
                    name: attachment.name, mediaType: attachment.mediaType, data: attachment.data,
                    logTimeNs: context.startWallNs, createTimeNs: context.startWallNs)
            }
            // The joints' order, which JSON objects do not keep (a replay reads the arrays back in it).
            var metadata = context.metadata
            let order = jointNames.joined(separator: ",")
            if let i = metadata.firstIndex(where: { $0.name == "sinew" }) {
                metadata[i].values["joints"] = order
            } else {
                metadata.append(("sinew", ["joints": order]))
            }
            for record in metadata { try writer.addMetadata(name: record.name, values: record.values) }
            if let urdf = context.attachments.first(where: { $0.mediaType == "application/xml" }) {
                let json = JSONText()
                json.object { o in o.field("data", string: String(decoding: urdf.data, as: UTF8.self)) }
                try message("/robot_description", atNs: context.startWallNs, json)
            }
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }

    deinit { positions.deallocate() }

    // MARK: Schemas and channels

    private func defineChannels() throws(MCAPError) {
        let number: [String: Any] = ["type": "number"]
        let perJoint: [String: Any] = [
            "type": "object", "properties": Dictionary(uniqueKeysWithValues: jointNames.map { ($0, number) }),
        ]
        func schema(_ title: String, _ properties: [String: Any]) -> [String: Any] {
            [
                "$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "type": "object",
                "properties": properties,
            ]
        }
        let base: [String: Any] = ["t": number, "tick": ["type": "integer"]]
        var definitions: [(topic: String, name: String, schema: [String: Any])] = [
            (
                "/commands", "sinew.Commands",
                schema(
                    "sinew.Commands",
                    base.merging([
                        "target": perJoint, "command": perJoint, "velocity_goal": perJoint, "effort_goal": perJoint,
                        "loop_time_ns": ["type": "integer"], "command_time_ns": ["type": "integer"],
                    ]) { a, _ in a })
            ),
            (
                "/estimates", "sinew.Estimates",
                schema(
                    "sinew.Estimates",
                    base.merging([
                        "imu": [
                            "type": ["object", "null"],
                            "properties": ["w": number, "x": number, "y": number, "z": number],
                        ],
                        "frames": [
                            "type": "object",
                            "properties": Dictionary(
                                uniqueKeysWithValues: estimateLinks.map {
                                    (
                                        $0.name,
                                        ["type": "object", "properties": ["x": number, "y": number, "z": number]]
                                            as [String: Any]
                                    )
                                }),
                        ],
                    ]) { a, _ in a })
            ),
            (
                "/timing", "sinew.Timing",
                schema(
                    "sinew.Timing",
                    base.merging([
                        "wake_lateness_us": number,
                        "stage_us": [
                            "type": "object",
                            "properties": Dictionary(
                                uniqueKeysWithValues: TickStage.allCases.map { ("\($0.name)", number) }),
                        ],
                        "state": ["type": "string"], "overruns_in_a_row": ["type": "integer"],
                        "bus_errors": ["type": "integer"], "failing_bus": ["type": "integer"],
                        "bus_disconnected": ["type": "boolean"], "shutdown_requested": ["type": "boolean"],
                        "stale_joints": ["type": "array", "items": ["type": "string"]],
                    ]) { a, _ in a })
            ),
            (
                "/safety", "sinew.SafetyEvent",
                schema(
                    "sinew.SafetyEvent",
                    [
                        "t": number, "cause": ["type": "string"], "joint": ["type": ["string", "null"]],
                        "detail": ["type": ["string", "null"]], "value": number, "limit": number,
                        "servo_id": ["type": ["integer", "null"]], "bus": ["type": ["string", "null"]],
                        "description": ["type": "string"],
                    ])
            ),
            (
                "/lifecycle", "sinew.Lifecycle",
                schema(
                    "sinew.Lifecycle",
                    [
                        "t": number, "tick": ["type": "integer"], "from": ["type": ["string", "null"]],
                        "to": ["type": "string"],
                        "cause": ["type": ["string", "null"]],
                    ])
            ),
            (
                "/bus", "sinew.Bus",
                schema(
                    "sinew.Bus",
                    ["t": number, "errors_this_tick": ["type": "integer"], "errors_total": ["type": "integer"]])
            ),
            // foxglove.Log's fields (its Log panel shows them), and the loop time.
            (
                "/log", "foxglove.Log",
                schema(
                    "foxglove.Log",
                    [
                        "t": number, "message": ["type": "string"], "name": ["type": "string"],
                        "file": ["type": "string"],
                        "line": ["type": "integer"], "level": ["type": "integer"],
                        "timestamp": [
                            "type": "object", "properties": ["sec": ["type": "integer"], "nsec": ["type": "integer"]],
                        ],
                    ])
            ),
            (
                "/activation", "sinew.Activation",
                schema(
                    "sinew.Activation",
                    [
                        "recovering": ["type": "boolean"], "loop_time_ns": ["type": "integer"],
                        "position": perJoint, "velocity": perJoint, "effort": perJoint, "command": perJoint,
                        "target": perJoint,
                        "imu": [
                            "type": ["object", "null"],
                            "properties": ["w": number, "x": number, "y": number, "z": number],
                        ],
                    ])
            ),
            ("/robot_description", "std_msgs/String", schema("std_msgs/String", ["data": ["type": "string"]])),
            ("/tf", "foxglove.FrameTransforms", Self.frameTransformsSchema),
        ]
        if rosEncoder == nil {
            definitions.insert(
                (
                    "/joint_states", "sinew.JointStates",
                    schema(
                        "sinew.JointStates",
                        base.merging([
                            "position": perJoint, "velocity": perJoint, "effort": perJoint,
                        ]) { a, _ in a })
                ), at: 0)
        }
        for definition in definitions {
            let data =
                (try? JSONSerialization.data(
                    withJSONObject: definition.schema, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            let schemaID = try writer.addSchema(name: definition.name, encoding: "jsonschema", data: Array(data))
            channels[definition.topic] = try writer.addChannel(
                topic: definition.topic, messageEncoding: "json", schemaID: schemaID, metadata: [:])
        }
        if rosEncoder != nil {
            let schemaID = try writer.addSchema(
                name: ROS2JointStateEncoder.schemaName, encoding: ROS2JointStateEncoder.schemaEncoding,
                data: ROS2JointStateEncoder.schemaData)
            channels["/joint_states"] = try writer.addChannel(
                topic: "/joint_states", messageEncoding: ROS2JointStateEncoder.messageEncoding, schemaID: schemaID,
                metadata: ROS2JointStateEncoder.channelMetadata())
        }
    }

    /// Foxglove's `foxglove.FrameTransforms` (its published JSON schema's shape: transforms of
    /// `{timestamp {sec, nsec}, parent_frame_id, child_frame_id, translation {x, y, z}, rotation {x, y, z, w}}`).
    static var frameTransformsSchema: [String: Any] {
        let number: [String: Any] = ["type": "number"]
        let vector: [String: Any] = ["type": "object", "properties": ["x": number, "y": number, "z": number]]
        let quaternion: [String: Any] = [
            "type": "object", "properties": ["x": number, "y": number, "z": number, "w": number],
        ]
        let time: [String: Any] = [
            "type": "object", "properties": ["sec": ["type": "integer"], "nsec": ["type": "integer"]],
        ]
        let transform: [String: Any] = [
            "type": "object",
            "properties": [
                "timestamp": time, "parent_frame_id": ["type": "string"], "child_frame_id": ["type": "string"],
                "translation": vector, "rotation": quaternion,
            ],
        ]
        return [
            "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "foxglove.FrameTransforms",
            "type": "object", "properties": ["transforms": ["type": "array", "items": transform]],
        ]
    }

    // MARK: Messages

    private func message(_ topic: String, atNs logTimeNs: UInt64, _ json: JSONText) throws(MCAPError) {
        guard let channel = channels[topic] else { return }
        sequence &+= 1
        try writer.write(
            channel: channel, logTimeNs: logTimeNs, publishTimeNs: logTimeNs, sequence: sequence, data: json.bytes)
    }

    /// The log time of a moment `loopTimeS` into the current segment: its anchor (the calendar time of its
    /// loop time 0) plus the loop time.
    private func wallNs(loopTimeS: Double) -> UInt64 {
        (anchorNs ?? context.startWallNs) &+ UInt64(max(0, loopTimeS * 1e9))
    }

    public func write(_ slot: TickSnapshotSlot) throws(RecordingError) {
        do {
            try writeSnapshot(slot)
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }

    private func jointObject(_ o: inout JSONText.Object, _ key: String, _ values: UnsafeMutableBufferPointer<Double>) {
        o.object(key) { joints in
            for (j, name) in jointNames.enumerated() where j < values.count { joints.field(name, number: values[j]) }
        }
    }

    private func imuObject(_ o: inout JSONText.Object, _ h: TickSnapshotHeader) {
        guard h.imuValid else {
            o.null("imu")
            return
        }
        o.object("imu") { q in
            q.field("w", number: h.imuOrientation.0)
            q.field("x", number: h.imuOrientation.1)
            q.field("y", number: h.imuOrientation.2)
            q.field("z", number: h.imuOrientation.3)
        }
    }

    /// The policy's start (activation, recovery): what it observed and the command it answered.
    private func writeStart(_ slot: TickSnapshotSlot, atNs logNs: UInt64) throws(MCAPError) {
        let h = slot.header.pointee
        let json = JSONText()
        json.object { o in
            o.field("recovering", bool: h.kind == .recovery)
            o.field("loop_time_ns", integer: Int(h.loopTimeNs))
            jointObject(&o, "position", slot.positionRad)
            jointObject(&o, "velocity", slot.velocityRadPerS)
            jointObject(&o, "effort", slot.effortNm)
            jointObject(&o, "command", slot.commandRad)
            if recordsTarget { jointObject(&o, "target", slot.targetRad) }
            imuObject(&o, h)
        }
        try message("/activation", atNs: logNs, json)
    }

    private func writeSnapshot(_ slot: TickSnapshotSlot) throws(MCAPError) {
        let h = slot.header.pointee
        let t = h.timeSeconds
        if h.kind != .tick {
            // A start (activation, recovery): the loop's clock starts from 0 again; the next tick anchors it.
            anchorNs = nil
            try writeStart(slot, atNs: max(h.wallTimeNs, lastTickNs &+ 1))
            return
        }
        if anchorNs == nil {
            // Anchored once per segment on the calendar, so that log times follow the loop's (monotonic) clock
            // and never go back, whatever CLOCK_REALTIME does meanwhile.
            let tNs = UInt64(max(0, t * 1e9))
            let wall = h.wallTimeNs == 0 ? context.startWallNs &+ tNs : h.wallTimeNs
            anchorNs = max(wall, lastTickNs &+ 1) &- tNs
        }
        let logNs = wallNs(loopTimeS: t)
        lastTickNs = logNs
        if h.state != lastState {
            let json = JSONText()
            json.object { o in
                o.field("t", number: t)
                o.field("tick", integer: Int(h.tick))
                o.field("from", optionalString: lastState.map { "\($0)" })
                o.field("to", string: "\(h.state)")
                o.field("cause", optionalString: h.safetyCause.map { "\($0)" })
            }
            try message("/lifecycle", atNs: logNs, json)
            lastState = h.state
        }
        if let rosEncoder {
            rosBuffer.removeAll(keepingCapacity: true)
            rosEncoder.encode(
                stampNs: logNs, positionRad: UnsafeBufferPointer(slot.positionRad),
                velocityRadPerS: UnsafeBufferPointer(slot.velocityRadPerS),
                effortNm: UnsafeBufferPointer(slot.effortNm),
                into: &rosBuffer)
            if let channel = channels["/joint_states"] {
                sequence &+= 1
                try writer.write(
                    channel: channel, logTimeNs: logNs, publishTimeNs: logNs, sequence: sequence, data: rosBuffer)
            }
        } else {
            let json = JSONText()
            json.object { o in
                o.field("t", number: t)
                o.field("tick", integer: Int(h.tick))
                jointObject(&o, "position", slot.positionRad)
                jointObject(&o, "velocity", slot.velocityRadPerS)
                jointObject(&o, "effort", slot.effortNm)
            }
            try message("/joint_states", atNs: logNs, json)
        }
        let commands = JSONText()
        commands.object { o in
            o.field("t", number: t)
            o.field("tick", integer: Int(h.tick))
            o.field("loop_time_ns", integer: Int(h.loopTimeNs))
            o.field("command_time_ns", integer: Int(h.commandTimeNs))
            jointObject(&o, "command", slot.commandRad)
            if recordsTarget {
                jointObject(&o, "target", slot.targetRad)
                jointObject(&o, "velocity_goal", slot.velocityGoalRadPerS)
                jointObject(&o, "effort_goal", slot.effortGoalNm)
            }
        }
        try message("/commands", atNs: logNs, commands)
        // Forward kinematics of the measured pose: the estimates' frames, and the transforms now and then.
        for i in 0..<positions.count { positions[i] = 0 }
        for (j, index) in urdfIndex.enumerated() where index >= 0 && j < slot.positionRad.count {
            positions[index] = slot.positionRad[j]
        }
        for (i, joint) in context.model.joints.enumerated() {
            if let mimic = joint.mimic { positions[i] = mimic.multiplier * positions[mimic.master] + mimic.offset }
        }
        workspace.forwardKinematics(UnsafeBufferPointer(positions))
        let estimates = JSONText()
        estimates.object { o in
            o.field("t", number: t)
            o.field("tick", integer: Int(h.tick))
            imuObject(&o, h)
            o.object("frames") { frames in
                for link in estimateLinks {
                    let p = workspace.linkPose(link.index).translation
                    frames.object(link.name) { v in
                        v.field("x", number: p.0)
                        v.field("y", number: p.1)
                        v.field("z", number: p.2)
                    }
                }
            }
        }
        try message("/estimates", atNs: logNs, estimates)
        let timing = JSONText()
        timing.object { o in
            o.field("t", number: t)
            o.field("tick", integer: Int(h.tick))
            o.field("wake_lateness_us", number: Double(h.wakeLatenessNs) * 1e-3)
            o.field("state", string: "\(h.state)")
            o.field("overruns_in_a_row", integer: Int(h.overrunsInARow))
            o.field("bus_errors", integer: Int(h.busErrorsThisTick))
            o.field("failing_bus", integer: Int(h.failingBusIndex))
            o.field("bus_disconnected", bool: h.busDisconnected)
            o.field("shutdown_requested", bool: h.shutdownRequested)
            o.array("stale_joints") { a in
                for (j, name) in jointNames.enumerated() where j < 64 && h.freshJoints & (1 << UInt64(j)) == 0 {
                    a.string(name)
                }
            }
            let stages = [h.stageNs.0, h.stageNs.1, h.stageNs.2, h.stageNs.3, h.stageNs.4, h.stageNs.5]
            o.object("stage_us") { s in
                for stage in TickStage.allCases {
                    s.field("\(stage.name)", number: Double(stages[stage.rawValue]) * 1e-3)
                }
            }
        }
        try message("/timing", atNs: logNs, timing)
        let nowNs = Int64(t * 1e9)
        if context.transformRateHz > 0,
            lastTransformNs.map({ nowNs - $0 >= Int64(1e9 / context.transformRateHz) }) ?? true
        {
            lastTransformNs = nowNs
            try writeTransforms(atNs: logNs)
        }
        if h.busErrorTotal != lastBusErrorTotal || lastBusReportNs.map({ nowNs - $0 >= 1_000_000_000 }) ?? true {
            lastBusReportNs = nowNs
            lastBusErrorTotal = h.busErrorTotal
            let bus = JSONText()
            bus.object { o in
                o.field("t", number: t)
                o.field("errors_this_tick", integer: Int(h.busErrorsThisTick))
                o.field("errors_total", integer: Int(h.busErrorTotal))
            }
            try message("/bus", atNs: logNs, bus)
        }
    }

    /// Each link's pose in its parent link's frame (the joints' motion), as Foxglove's 3D panel takes them.
    private func writeTransforms(atNs logNs: UInt64) throws(MCAPError) {
        let model = context.model
        let json = JSONText()
        json.object { o in
            o.array("transforms") { transforms in
                for (index, link) in model.links.enumerated() {
                    guard let jointIndex = link.joint else { continue }
                    let joint = model.joints[jointIndex]
                    guard let parent = model.linkIndex(named: joint.parentLink) else { continue }
                    let relative = workspace.linkPose(parent).inverse * workspace.linkPose(index)
                    transforms.object { tf in
                        tf.object("timestamp") { ts in
                            ts.field("sec", integer: Int(logNs / 1_000_000_000))
                            ts.field("nsec", integer: Int(logNs % 1_000_000_000))
                        }
                        tf.field("parent_frame_id", string: joint.parentLink)
                        tf.field("child_frame_id", string: link.name)
                        tf.object("translation") { v in
                            v.field("x", number: relative.translation.0)
                            v.field("y", number: relative.translation.1)
                            v.field("z", number: relative.translation.2)
                        }
                        let q = relative.quaternion
                        tf.object("rotation") { r in
                            r.field("x", number: q.x)
                            r.field("y", number: q.y)
                            r.field("z", number: q.z)
                            r.field("w", number: q.w)
                        }
                    }
                }
            }
        }
        try message("/tf", atNs: logNs, json)
    }

    public func record(event: SafetyEvent, description: String) throws(RecordingError) {
        let configuration = context.configuration
        let json = JSONText()
        json.object { o in
            o.field("t", number: event.timeSeconds)
            o.field("cause", string: "\(event.cause)")
            let j = Int(event.jointIndex)
            o.field(
                "joint", optionalString: j >= 0 && j < configuration.joints.count ? configuration.joints[j].name : nil)
            let detail = "\(event.detail)"
            o.field("detail", optionalString: detail.isEmpty ? nil : detail)
            o.field("value", number: event.value)
            o.field("limit", number: event.limit)
            if event.servoID >= 0 { o.field("servo_id", integer: Int(event.servoID)) } else { o.null("servo_id") }
            let b = Int(event.busIndex)
            o.field("bus", optionalString: b >= 0 && b < configuration.buses.count ? configuration.buses[b].name : nil)
            o.field("description", string: description)
        }
        do {
            try message("/safety", atNs: wallNs(loopTimeS: event.timeSeconds), json)
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }

    public func log(_ line: String, timeSeconds: Double) throws(RecordingError) {
        // Log lines are logged no earlier than the last one (a line printed before the first tick is at 0).
        let ns = max(wallNs(loopTimeS: timeSeconds), lastLogNs)
        lastLogNs = ns
        let json = JSONText()
        json.object { o in
            o.object("timestamp") { ts in
                ts.field("sec", integer: Int(ns / 1_000_000_000))
                ts.field("nsec", integer: Int(ns % 1_000_000_000))
            }
            // foxglove.Log's levels: 2 INFO, 3 WARNING, 4 ERROR.
            let level = line.hasPrefix("warning") ? 3 : (line.contains("failed") || line.contains("error") ? 4 : 2)
            o.field("level", integer: level)
            o.field("message", string: line)
            o.field("name", string: "sinew")
            o.field("file", string: "")
            o.field("line", integer: 0)
            o.field("t", number: timeSeconds)
        }
        do {
            try message("/log", atNs: ns, json)
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }

    public func attach(name: String, mediaType: String, data: [UInt8]) throws(RecordingError) {
        do {
            let now = MCAPRecordingContext.wallClockNs()
            try writer.attach(name: name, mediaType: mediaType, data: data, logTimeNs: now, createTimeNs: now)
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }

    public func idle() throws(RecordingError) {
        do {
            try writer.closeChunkIfDue()
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }

    public func finish() throws(RecordingError) {
        do {
            _ = try writer.finish()
        } catch {
            throw .failed(path: path, reason: "\(error)")
        }
    }
}

extension RigidTransform {
    /// The inverse transform.
    public var inverse: RigidTransform {
        let r = rotation
        let t = translation
        // Rᵀ and −Rᵀ t.
        let rt = (r.0, r.3, r.6, r.1, r.4, r.7, r.2, r.5, r.8)
        var out = RigidTransform.identity
        out.rotation = rt
        out.translation = (
            -(rt.0 * t.0 + rt.1 * t.1 + rt.2 * t.2), -(rt.3 * t.0 + rt.4 * t.1 + rt.5 * t.2),
            -(rt.6 * t.0 + rt.7 * t.1 + rt.8 * t.2)
        )
        return out
    }

    /// The rotation as a unit quaternion (Shepperd's method: the largest of the four candidates, for accuracy).
    public var quaternion: (w: Double, x: Double, y: Double, z: Double) {
        let m = rotation
        let trace = m.0 + m.4 + m.8
        if trace > 0 {
            let s = (trace + 1).squareRoot() * 2
            return (0.25 * s, (m.7 - m.5) / s, (m.2 - m.6) / s, (m.3 - m.1) / s)
        } else if m.0 > m.4 && m.0 > m.8 {
            let s = (1 + m.0 - m.4 - m.8).squareRoot() * 2
            return ((m.7 - m.5) / s, 0.25 * s, (m.1 + m.3) / s, (m.2 + m.6) / s)
        } else if m.4 > m.8 {
            let s = (1 + m.4 - m.0 - m.8).squareRoot() * 2
            return ((m.2 - m.6) / s, (m.1 + m.3) / s, 0.25 * s, (m.5 + m.7) / s)
        } else {
            let s = (1 + m.8 - m.0 - m.4).squareRoot() * 2
            return ((m.3 - m.1) / s, (m.2 + m.6) / s, (m.5 + m.7) / s, 0.25 * s)
        }
    }
}

/// A small JSON writer for the recorder's messages: numbers in their shortest round-trip form (so a replay reads
/// back the very bits), non-finite numbers as null, strings escaped. One buffer, written in place.
final class JSONText {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(512) }

    func object(_ body: (inout Object) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        var o = Object(text: self)
        body(&o)
        bytes.append(UInt8(ascii: "}"))
    }

    struct Object {
        let text: JSONText
        var first = true

        mutating func key(_ name: String) {
            if !first { text.bytes.append(UInt8(ascii: ",")) }
            first = false
            text.appendString(name)
            text.bytes.append(UInt8(ascii: ":"))
        }

        mutating func field(_ name: String, number: Double) {
            key(name)
            text.appendNumber(number)
        }

        mutating func field(_ name: String, integer: Int) {
            key(name)
            text.bytes.append(contentsOf: String(integer).utf8)
        }

        mutating func field(_ name: String, string: String) {
            key(name)
            text.appendString(string)
        }

        mutating func field(_ name: String, optionalString: String?) {
            if let optionalString { field(name, string: optionalString) } else { null(name) }
        }

        mutating func field(_ name: String, bool: Bool) {
            key(name)
            text.bytes.append(contentsOf: (bool ? "true" : "false").utf8)
        }

        mutating func null(_ name: String) {
            key(name)
            text.bytes.append(contentsOf: "null".utf8)
        }

        mutating func object(_ name: String, _ body: (inout Object) -> Void) {
            key(name)
            text.object(body)
        }

        mutating func array(_ name: String, _ body: (inout JSONArray) -> Void) {
            key(name)
            text.bytes.append(UInt8(ascii: "["))
            var inner = JSONArray(text: text)
            body(&inner)
            text.bytes.append(UInt8(ascii: "]"))
        }
    }

    struct JSONArray {
        let text: JSONText
        var first = true

        mutating func string(_ value: String) {
            if !first { text.bytes.append(UInt8(ascii: ",")) }
            first = false
            text.appendString(value)
        }

        mutating func object(_ body: (inout Object) -> Void) {
            if !first { text.bytes.append(UInt8(ascii: ",")) }
            first = false
            text.object(body)
        }
    }

    func appendNumber(_ value: Double) {
        guard value.isFinite else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        bytes.append(contentsOf: "\(value)".utf8)
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
            case 10: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
            case 13: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
            case 9: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<32:
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 15)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
