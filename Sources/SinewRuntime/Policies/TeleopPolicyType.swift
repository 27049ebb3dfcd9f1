import Foundation
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewPolicy

/// Leader → follower teleoperation, the way SO-101 and Koch owners collect demonstrations: the leader arm (a
/// second robot.yaml, its servos torque off on a bus of their own) is read every tick and its joints are
/// mapped onto the follower's — each arm's positions through its own calibration, by joint name or an
/// explicit map, with a linear range map where the two differ (a gripper's trigger and jaw). The follower
/// first ramps from where it is to the leader's pose (minimum jerk, within `ramp_speed_rad_s`), then tracks it
/// with at most `max_step_rad` per tick. A leader that stops answering ages the command, so the watchdog
/// stops the follower within `watchdog_ms`.
public final class TeleopPolicy: Policy {
    public let typeName = "teleop"
    public let commands: [PolicyJointCommand]
    public let notices: [String]
    public let leader: LeaderArm
    /// Per mapped follower joint: its index, the leader joint's index, and a range map (a → c, b → d) or nil.
    let map: [(follower: Int, leader: Int, range: (a: Double, b: Double, c: Double, d: Double)?)]
    let rampSpeedRadPerS: Double
    let maxStepRad: Double
    let startRad: UnsafeMutableBufferPointer<Double>
    let targetRad: UnsafeMutableBufferPointer<Double>
    let commandRad: UnsafeMutableBufferPointer<Double>
    public private(set) var ramping = true
    var rampStartNs: Int64 = -1
    var rampDurationS = 0.0
    var lastReadNs: Int64 = 0
    /// Read on the leader's own thread (a real-time run) rather than in the tick (lockstep).
    let threaded: Bool
    let periodS: Double
    /// The newest leader reading the tick has (rad, the leader's joint order).
    let leaderRad: UnsafeMutableBufferPointer<Double>

    /// - Parameters:
    ///   - jointNames: the follower's joints, robot.yaml order.
    ///   - map: per follower joint (name) the leader joint (name) and an optional range map.
    ///   - readOnOwnThread: read the leader on a thread of its own (a real-time run: its bus is a port of its
    ///     own) instead of in the tick (lockstep); `periodS` is then the loop's period.
    public init(
        leader: LeaderArm, jointNames: [String],
        map: [(follower: String, leader: String, range: (a: Double, b: Double, c: Double, d: Double)?)],
        rampSpeedRadPerS: Double, maxStepRad: Double, readOnOwnThread: Bool = false, periodS: Double = 0.002
    ) throws(RobotLoopError) {
        self.leader = leader
        threaded = readOnOwnThread
        self.periodS = periodS
        leaderRad = .allocate(capacity: max(1, leader.configuration.joints.count))
        leaderRad.initialize(repeating: 0)
        let leaderNames = leader.jointNames
        var resolved: [(Int, Int, (a: Double, b: Double, c: Double, d: Double)?)] = []
        for entry in map {
            guard let f = jointNames.firstIndex(of: entry.follower) else {
                throw RobotLoopError("teleop: the follower has no joint \"\(entry.follower)\"")
            }
            guard let l = leaderNames.firstIndex(of: entry.leader) else {
                throw RobotLoopError(
                    "teleop: leader \(leader.source) has no joint \"\(entry.leader)\" (it has \(leaderNames.joined(separator: ", ")))"
                )
            }
            resolved.append((f, l, entry.range))
        }
        self.map = resolved
        self.rampSpeedRadPerS = rampSpeedRadPerS
        self.maxStepRad = maxStepRad
        commands = resolved.map { PolicyJointCommand(joint: jointNames[$0.0]) }
        let n = max(1, jointNames.count)
        func doubles() -> UnsafeMutableBufferPointer<Double> {
            let b = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
            b.initialize(repeating: 0)
            return b
        }
        startRad = doubles()
        targetRad = doubles()
        commandRad = doubles()
        let pairs = map.map { $0.follower == $0.leader ? $0.follower : "\($0.follower) ← \($0.leader)" }
        notices = [
            "teleop: leader \(leader.source) (\(leader.configuration.joints.count) joints, torque off) drives "
                + pairs.joined(separator: ", ") + "; the follower ramps to the leader's pose at ≤ \(rampSpeedRadPerS) "
                + "rad/s, then follows it at ≤ \(maxStepRad) rad per tick; the leader is read "
                + (readOnOwnThread
                    ? "on a thread of its own (its bus beside the follower's)" : "in the tick (lockstep)")
        ]
    }

    deinit {
        leader.stopReading()
        startRad.deallocate()
        targetRad.deallocate()
        commandRad.deallocate()
        leaderRad.deallocate()
    }

    @inline(__always) private func mapLeader() {
        for entry in map {
            var q = leaderRad[entry.leader]
            if let r = entry.range {
                let low = min(r.c, r.d)
                let high = max(r.c, r.d)
                q = r.c + (q - r.a) * (r.d - r.c) / (r.b - r.a)
                q = min(max(q, low), high)
            }
            targetRad[entry.follower] = q
        }
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        for j in 0..<observation.jointCount {
            startRad[j] = observation.positionRad[j]
            commandRad[j] = observation.positionRad[j]
        }
        ramping = true
        rampStartNs = -1
        lastReadNs = observation.timeNs
        if threaded { leader.startReading(periodS: periodS) }
    }

    /// The loop stopped: the leader is no longer read.
    public func deactivate() { leader.stopReading() }

    /// The newest leader reading, from its thread or read now; false when there is none new.
    @inline(__always) private func takeLeader() -> Bool {
        if threaded { return leader.takeLatest(into: leaderRad) }
        guard leader.read() else { return false }
        for i in 0..<leader.configuration.joints.count { leaderRad[i] = leader.positionRad[i] }
        return true
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        if takeLeader() {
            lastReadNs = observation.timeNs
            mapLeader()
        } else if rampStartNs < 0 {
            // No leader pose yet: hold, the command ageing toward the watchdog.
            command.computedForNs = lastReadNs
            return
        }
        // The command's time is the last leader reading's: a tick without a new one still moves toward it, and a
        // leader that stops answering lets the command age until the watchdog stops the follower.
        command.computedForNs = lastReadNs
        if ramping {
            if rampStartNs < 0 {
                // The ramp's length from the first leader pose: the slowest joint at the ramp speed, minimum jerk
                // (peak 1.875 × the mean speed), at least 0.3 s.
                var longest = 0.0
                for entry in map { longest = max(longest, abs(targetRad[entry.follower] - startRad[entry.follower])) }
                rampDurationS = max(0.3, 1.875 * longest / rampSpeedRadPerS)
                rampStartNs = observation.timeNs
            }
            let tau = min(1, Double(observation.timeNs - rampStartNs) * 1e-9 / rampDurationS)
            let s = tau * tau * tau * (10 - 15 * tau + 6 * tau * tau)
            for entry in map {
                let f = entry.follower
                commandRad[f] = startRad[f] + s * (targetRad[f] - startRad[f])
            }
            if tau >= 1 { ramping = false }
        } else {
            for entry in map {
                let f = entry.follower
                commandRad[f] += min(max(targetRad[f] - commandRad[f], -maxStepRad), maxStepRad)
            }
        }
        for entry in map { command.positionRad[entry.follower] = commandRad[entry.follower] }
    }
}

/// `policy: {type: teleop, leader: leader.yaml, …}`.
public struct TeleopPolicyType: PolicyType {
    public init() {}
    public var name: String { "teleop" }
    public var summary: String {
        "follow a leader arm (a second robot.yaml, torque off, moved by hand): ramp to its pose, then track it"
    }
    public var keys: [String] { ["leader", "joints", "ranges", "ramp_speed_rad_s", "max_step_rad"] }

    public func settings(from reader: PolicySettingsReader) throws(ConfigurationError) -> any PolicySettings {
        guard let leaderPath = try reader.path("leader") else {
            throw reader.error("leader", expected: "the leader arm's robot.yaml (e.g. leader.yaml beside this file)")
        }
        let leader: RobotConfiguration
        do {
            leader = try RobotConfiguration.load(contentsOf: leaderPath)
        } catch {
            throw reader.error("leader", expected: "a leader robot.yaml that loads", found: "\(error)")
        }
        let leaderNames = leader.joints.map(\.name)
        var joints: [(follower: String, leader: String)] = []
        if let mapping = try reader.mapping("joints", keys: reader.joints.map(\.name)) {
            for joint in reader.joints {
                guard let name = try mapping.string(joint.name) else { continue }
                guard leaderNames.contains(name) else {
                    throw mapping.error(
                        joint.name, expected: "a joint of the leader (\(leaderNames.joined(separator: ", ")))",
                        found: "'\(name)'")
                }
                joints.append((joint.name, name))
            }
        } else {
            joints = reader.joints.map(\.name).filter(leaderNames.contains).map { ($0, $0) }
            if joints.isEmpty {
                throw reader.error(
                    "joints",
                    expected: "a map follower joint → leader joint (the two arms share no joint name)")
            }
        }
        var ranges: [TeleopPolicySettings.Range] = []
        if let rangeMap = try reader.mapping("ranges", keys: reader.joints.map(\.name)) {
            for joint in reader.joints where rangeMap.has(joint.name) {
                guard let one = try rangeMap.mapping(joint.name, keys: ["leader_rad", "follower_rad"]),
                    let from = try one.numbers("leader_rad", count: 2, unit: "rad", bound: 100),
                    let to = try one.numbers("follower_rad", count: 2, unit: "rad", bound: 100)
                else {
                    throw rangeMap.error(
                        joint.name, expected: "{leader_rad: [a, b], follower_rad: [c, d]}: a ↦ c, b ↦ d")
                }
                guard from[0] != from[1] else {
                    throw one.error("leader_rad", expected: "two different positions")
                }
                ranges.append(.init(joint: joint.name, leaderRad: from, followerRad: to))
            }
        }
        return TeleopPolicySettings(
            leaderPath: leaderPath, leader: leader,
            joints: joints.map { .init(follower: $0.follower, leader: $0.leader) },
            ranges: ranges,
            rampSpeedRadPerS: try reader.double(
                "ramp_speed_rad_s", default: 0.5, unit: "rad/s", where: { $0 > 0 && $0 <= 20 }, "in (0, 20]"),
            maxStepRad: try reader.has("max_step_rad")
                ? reader.double(
                    "max_step_rad", default: 0.02, unit: "rad per tick", where: { $0 > 0 && $0 <= 1 }, "in (0, 1]")
                : nil,
            location: reader.location(of: "leader"))
    }
}

/// The `teleop` policy's settings.
public struct TeleopPolicySettings: PolicySettings, Equatable {
    public var replayLimitation: String? { "it follows a leader arm, whose motion the recording does not hold" }

    public struct Pair: Sendable, Equatable {
        public var follower: String
        public var leader: String
        public init(follower: String, leader: String) {
            self.follower = follower
            self.leader = leader
        }
    }
    public struct Range: Sendable, Equatable {
        public var joint: String
        public var leaderRad: [Double]
        public var followerRad: [Double]
    }
    /// The leader's robot.yaml, resolved, and as loaded.
    public let leaderPath: String
    public let leader: RobotConfiguration
    public let joints: [Pair]
    public let ranges: [Range]
    public let rampSpeedRadPerS: Double
    /// Per tick while tracking; nil: 0.02 rad, or the follower's `safety.max_step_rad` when that is smaller.
    public let maxStepRad: Double?
    public let location: SourceLocation
    public var typeName: String { "teleop" }

    /// The bus name the front end opens the leader's port under, in ``PolicyBuildContext/policyTransports``.
    public static let leaderTransportName = "leader"

    public init(
        leaderPath: String, leader: RobotConfiguration, joints: [Pair], ranges: [Range] = [],
        rampSpeedRadPerS: Double = 0.5, maxStepRad: Double? = nil, location: SourceLocation = SourceLocation(file: "")
    ) {
        self.leaderPath = leaderPath
        self.leader = leader
        self.joints = joints
        self.ranges = ranges
        self.rampSpeedRadPerS = rampSpeedRadPerS
        self.maxStepRad = maxStepRad
        self.location = location
    }

    /// The leader's robot.yaml passes its own checks against its URDF.
    public func check(against model: RobotModel, configuration: RobotConfiguration) throws(ConfigurationError)
        -> [ConfigurationWarning]
    {
        do {
            _ = try RobotConfiguration.loadChecked(contentsOf: leaderPath)
        } catch {
            throw ConfigurationError(
                .invalidValue, at: location, keyPath: "policy.leader", expected: "a leader robot.yaml that checks",
                found: "\(error)")
        }
        return []
    }

    public func makePolicy(in context: PolicyBuildContext) throws(RobotLoopError) -> any Policy {
        guard let transport = context.policyTransports[Self.leaderTransportName] else {
            throw RobotLoopError("teleop: no port for the leader arm (\(leaderPath)) was opened")
        }
        var calibration: CalibrationFile?
        if let path = leader.calibrationPath {
            do {
                let file = try CalibrationFile.load(path: path)
                try file.checkBelongs(toRobot: leader.name, joints: leader.joints.map(\.name), file: path)
                calibration = file
            } catch {
                throw RobotLoopError("teleop: the leader's calibration: \(error)")
            }
        }
        let arm = try LeaderArm(
            configuration: leader, catalog: context.catalog, calibration: calibration, transport: transport,
            lockstep: context.lockstep, source: leaderPath)
        try arm.connect()
        return try TeleopPolicy(
            leader: arm, jointNames: context.configuration.joints.map(\.name),
            map: joints.map { pair in
                let range = ranges.first { $0.joint == pair.follower }.map {
                    (a: $0.leaderRad[0], b: $0.leaderRad[1], c: $0.followerRad[0], d: $0.followerRad[1])
                }
                return (pair.follower, pair.leader, range)
            },
            rampSpeedRadPerS: rampSpeedRadPerS,
            maxStepRad: maxStepRad ?? min(0.02, context.configuration.safety.maxStepRad),
            readOnOwnThread: !context.lockstep, periodS: 1 / context.loopRateHz)
    }
}
