import Foundation
import SinewPolicy

/// Why a received command was refused (counted, and shown in diagnostics and `sinew run --json`).
public struct ROSCommandRefusal: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Checks what arrives on `joint_trajectory` and `cmd` against the robot and turns it into the policy's hand-off
/// slots: joints by name (each known, once), values finite and inside the joints' position limits, times increasing.
/// Trajectories are resampled onto a fixed step — cubic Hermite between points when every point gives velocities,
/// linear otherwise — into a chunk the mixed-rate bridge executes. Not real-time (the DDS thread).
public struct ROSCommandIntake: Sendable {
    public let jointNames: [String]
    /// Position limits per joint, rad (robot.yaml order; infinite where the joint has none).
    public let positionMinRad: [Double]
    public let positionMaxRad: [Double]
    /// How far from the present a stamped trajectory may start, ns.
    public var maxStampOffsetNs: Int64 = 60_000_000_000

    public init(jointNames: [String], positionMinRad: [Double], positionMaxRad: [Double]) {
        self.jointNames = jointNames
        self.positionMinRad = positionMinRad
        self.positionMaxRad = positionMaxRad
    }

    /// Robot joint index of each name, refusing unknown and repeated names.
    func indices(_ names: [String], _ what: String) throws(ROSCommandRefusal) -> [Int] {
        guard !names.isEmpty else { throw ROSCommandRefusal("\(what) names no joint") }
        var result: [Int] = []
        for name in names {
            guard let j = jointNames.firstIndex(of: name) else {
                throw ROSCommandRefusal(
                    "\(what): \"\(name)\" is not one of the robot's joints (\(jointNames.joined(separator: ", ")))")
            }
            guard !result.contains(j) else { throw ROSCommandRefusal("\(what): joint \"\(name)\" is named twice") }
            result.append(j)
        }
        return result
    }

    func checkPosition(_ value: Double, joint j: Int, _ what: String) throws(ROSCommandRefusal) {
        guard value.isFinite else { throw ROSCommandRefusal("\(what): \(jointNames[j]) is not a finite number") }
        guard value >= positionMinRad[j] && value <= positionMaxRad[j] else {
            throw ROSCommandRefusal(
                "\(what): \(jointNames[j]) \(value) rad is outside its limits [\(positionMinRad[j]), "
                    + "\(positionMaxRad[j])]")
        }
    }

    /// A `cmd` sample into `target`.
    public func fill(_ target: ExternalTarget, from message: JointStateMessage) throws(ROSCommandRefusal) {
        let joints = try indices(message.name, "cmd")
        guard message.position.count == joints.count else {
            throw ROSCommandRefusal(
                "cmd: \(message.position.count) positions for \(joints.count) names (one position per name)")
        }
        for (i, j) in joints.enumerated() { try checkPosition(message.position[i], joint: j, "cmd") }
        for j in 0..<jointNames.count { target.given[j] = false }
        for (i, j) in joints.enumerated() {
            target.positionRad[j] = message.position[i]
            target.given[j] = true
        }
    }

    /// A `joint_trajectory` sample into `trajectory`, resampled every `stepNs`. `nowWallNs`: the wall clock now
    /// (a stamp further than ``maxStampOffsetNs`` from it is refused).
    public func fill(
        _ trajectory: ExternalTrajectory, from message: JointTrajectoryMessage, stepNs: Int64, nowWallNs: Int64
    ) throws(ROSCommandRefusal) {
        let joints = try indices(message.jointNames, "joint_trajectory")
        let points = message.points
        guard !points.isEmpty else { throw ROSCommandRefusal("joint_trajectory has no points") }
        var withVelocities = true
        var previousNs = Int64.min
        for (k, p) in points.enumerated() {
            let what = "joint_trajectory point \(k)"
            guard p.positions.count == joints.count else {
                throw ROSCommandRefusal(
                    "\(what): \(p.positions.count) positions for \(joints.count) joints")
            }
            guard p.velocities.isEmpty || p.velocities.count == joints.count else {
                throw ROSCommandRefusal("\(what): \(p.velocities.count) velocities for \(joints.count) joints")
            }
            if p.velocities.isEmpty { withVelocities = false }
            for (i, j) in joints.enumerated() { try checkPosition(p.positions[i], joint: j, what) }
            guard p.velocities.allSatisfy(\.isFinite) else {
                throw ROSCommandRefusal("\(what): a velocity is not a finite number")
            }
            let t = p.timeFromStart.nanoseconds
            guard t >= 0 else { throw ROSCommandRefusal("\(what): time_from_start is negative") }
            guard t > previousNs else {
                throw ROSCommandRefusal("\(what): time_from_start does not increase")
            }
            previousNs = t
        }
        let chunk = trajectory.chunk
        let firstNs = points[0].timeFromStart.nanoseconds
        let lastNs = points[points.count - 1].timeFromStart.nanoseconds
        let spanNs = lastNs - firstNs
        let steps = Int((spanNs + stepNs - 1) / stepNs) + 1
        guard steps <= chunk.capacity else {
            throw ROSCommandRefusal(
                "joint_trajectory lasts \(Double(spanNs) * 1e-9) s, longer than the \(Double(Int64(chunk.capacity - 1) * stepNs) * 1e-9) s "
                    + "accepted (policy.max_trajectory_s)")
        }
        let stampNs = message.header.stamp.nanoseconds
        if stampNs != 0 && abs(stampNs - nowWallNs) > maxStampOffsetNs {
            throw ROSCommandRefusal(
                "joint_trajectory is stamped \(Double(stampNs - nowWallNs) * 1e-9) s from now (clocks apart? stamp 0 "
                    + "starts it on arrival)")
        }
        chunk.startNs = firstNs
        chunk.stepNs = stepNs
        chunk.stepCount = steps
        chunk.observationTimeNs = 0
        var k = 0
        for s in 0..<steps {
            let t = min(firstNs + Int64(s) * stepNs, lastNs)
            while k + 1 < points.count - 1 && points[k + 1].timeFromStart.nanoseconds <= t { k += 1 }
            let a = points[k]
            let b = points[min(k + 1, points.count - 1)]
            let t0 = a.timeFromStart.nanoseconds
            let dtNs = b.timeFromStart.nanoseconds - t0
            let u = dtNs > 0 ? min(1, max(0, Double(t - t0) / Double(dtNs))) : 1
            let dtS = Double(dtNs) * 1e-9
            for (i, j) in joints.enumerated() {
                let p0 = a.positions[i]
                let p1 = b.positions[i]
                var value: Double
                if withVelocities && dtNs > 0 {
                    let u2 = u * u
                    let u3 = u2 * u
                    value =
                        (2 * u3 - 3 * u2 + 1) * p0 + (u3 - 2 * u2 + u) * dtS * a.velocities[i]
                        + (-2 * u3 + 3 * u2) * p1 + (u3 - u2) * dtS * b.velocities[i]
                } else {
                    value = p0 + (p1 - p0) * u
                }
                // A Hermite curve may overshoot between points: never past the joint's limits.
                value = min(max(value, positionMinRad[j]), positionMaxRad[j])
                chunk[s, j] = value
            }
        }
        for j in 0..<jointNames.count { trajectory.moves[j] = false }
        for j in joints { trajectory.moves[j] = true }
        trajectory.startWallNs = stampNs
    }
}
