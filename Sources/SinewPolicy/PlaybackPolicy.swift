/// Plays joint positions recorded at known times (a flight recording's guarded commands, for `sinew replay
/// --backend sim`): at each tick, the positions of the last sample at or before the observation's time.
public final class PlaybackPolicy: Policy {
    public let typeName = "playback"
    public let commands: [PolicyJointCommand]
    /// Sample times, ns on the policy's clock (since activation), ascending.
    let timesNs: [Int64]
    /// Joint-major rows: sample k's positions (rad) are `positionsRad[k * jointCount ..< (k + 1) * jointCount]`.
    let positionsRad: [Double]
    let jointCount: Int
    private var next = 0

    /// - Parameters:
    ///   - jointNames: the robot's joints, robot.yaml order.
    ///   - timesNs: each sample's time since activation, ns, ascending.
    ///   - positionsRad: one row of `jointNames.count` positions (rad) per sample.
    public init(jointNames: [String], timesNs: [Int64], positionsRad: [[Double]]) {
        commands = jointNames.map { PolicyJointCommand(joint: $0) }
        jointCount = jointNames.count
        self.timesNs = timesNs
        var flat: [Double] = []
        flat.reserveCapacity(positionsRad.count * jointNames.count)
        for row in positionsRad {
            for j in 0..<jointNames.count { flat.append(j < row.count ? row[j] : .nan) }
        }
        self.positionsRad = flat
    }

    /// The duration of the recording (s), so the run ends with it.
    public var plannedDurationS: Double? { timesNs.last.map { Double($0) * 1e-9 } }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        next = 0
        command.hold(observation)
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        while next + 1 < timesNs.count && timesNs[next + 1] <= observation.timeNs { next += 1 }
        guard next < timesNs.count, timesNs[next] <= observation.timeNs else { return }
        for j in 0..<jointCount {
            let value = positionsRad[next * jointCount + j]
            if value.isFinite { command.positionRad[j] = value }
        }
    }
}
