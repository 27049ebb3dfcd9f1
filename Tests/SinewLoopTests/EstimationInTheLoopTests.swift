import Foundation
import SinewFusion
import SinewKinematics
import SinewRuntime
import SinewSim
import Testing

/// Runs the loop's stages and calls `observe` after the estimate stage of every tick.
final class ObservingBody: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    let observe: (TickInfo) -> Void

    init(loop: RobotLoop, observe: @escaping (TickInfo) -> Void) {
        self.loop = loop
        self.observe = observe
    }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) { loop.sense(&tick) }
    func estimate(_ tick: inout TickInfo) {
        loop.estimate(&tick)
        observe(tick)
    }
    func decide(_ tick: inout TickInfo) { loop.decide(&tick) }
    func guardCommands(_ tick: inout TickInfo) { loop.guardCommands(&tick) }
    func act(_ tick: inout TickInfo) { loop.act(&tick) }
    func record(_ tick: inout TickInfo) { loop.record(&tick) }
}

/// Checks that the loop stayed active for at least `minimumActiveTicks`, and names what ended it if not.
func expectActiveLongEnough(_ rig: SimulatedRig, activeTicks: Int, minimumActiveTicks: Int) {
    let events = rig.loop.supervisor.events.events
    let description = events.map(rig.loop.supervisor.describe).joined(separator: "; ")
    #expect(events.isEmpty, "\(description)")
    #expect(activeTicks >= minimumActiveTicks, "active for \(activeTicks) ticks: \(description)")
}

/// Lockstep on the simulation clock: the runs are the same on any machine, so nothing is retried or excused.
@Suite(.serialized) struct EstimationInTheLoopTests {
    /// The simulated SO-101 follows its pick-and-place trajectory with the virtual MAVLink IMU on
    /// gripper_link (robot.yaml); the loop's estimate stage reads it and the 6-D AHRS estimates the link's
    /// orientation. Its inclination (roll/pitch: heading has no reference without a magnetometer) stays
    /// within 3° of the physics' truth at every tick, while the link itself tilts by tens of degrees.
    @Test func estimatedLinkOrientationTracksTheTruthOnTheTrajectory() throws {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true, withIMU: true)
        let truthIMU = try #require(rig.imu)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let imu = try #require(rig.loop.imu)
        var errorsDeg: [Double] = []
        var firstTruth: OrientationQuaternion?
        var tiltRangeDeg = 0.0
        // Ticks of the trajectory (10.4 s at 500 Hz); the first 0.2 s let the AHRS take its first samples.
        let ticks: Int64 = 5_200
        var activeTicks = 0
        let body = ObservingBody(loop: rig.loop) { tick in
            guard rig.loop.lifecycle.state == .active else { return }
            activeTicks += 1
            // Compared with the truth at the instant of the last sample the AHRS took.
            guard tick.index >= 100, imu.samplesReceived > 0,
                let truth = truthIMU.trueLinkOrientation(atSampleTimeS: imu.lastSample.timestampSeconds)
            else { return }
            errorsDeg.append(imu.linkOrientation.errorAnglesRad(relativeTo: truth).inclinationRad * 180 / .pi)
            if let first = firstTruth {
                tiltRangeDeg = max(tiltRangeDeg, truth.errorAnglesRad(relativeTo: first).inclinationRad * 180 / .pi)
            } else {
                firstTruth = truth
            }
        }
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: ticks), body: body)
        let report = try scheduler.run()
        let rms = (errorsDeg.map { $0 * $0 }.reduce(0, +) / Double(max(errorsDeg.count, 1))).squareRoot()
        let maximum = errorsDeg.max() ?? .infinity
        print(
            String(
                format:
                    "IMU on gripper_link over %lld ticks: %d samples, link tilted up to %.1f°; inclination error "
                    + "RMS %.2f°, max %.2f°, final %.2f°",
                report.ticks, imu.samplesReceived, tiltRangeDeg, rms, maximum, errorsDeg.last ?? .nan))
        expectActiveLongEnough(rig, activeTicks: activeTicks, minimumActiveTicks: 2_500)
        #expect(Double(imu.samplesReceived) > 0.9 * 200 * Double(ticks) / 500, "about 200 samples per second")
        #expect(imu.decoder.checksumErrors == 0)
        #expect(tiltRangeDeg > 20, "the trajectory tilts the link")
        #expect(errorsDeg.count > 2_000)
        #expect(maximum < 3, "inclination error bounded at every tick")
        #expect(rms < 1)
    }

    /// Joint velocity from the encoder positions the loop reads (4096 counts per turn, through the joint
    /// layer) at 500 Hz, by `JointStateFilter`, against the physics' true velocity, on the pick-and-place
    /// trajectory: RMS error at least 5× below backward finite differences, and less than one tick of lag.
    ///
    /// Truth: the bus's dynamics are wrapped to keep the joint states of the last 64 physics steps; each
    /// tick takes the newest step whose positions match what the servos reported (within half a count),
    /// and the velocity at that step's instant. Both the filter and the finite difference use the time
    /// between the ticks' wake-ups (what the loop knows; a skipped tick doubles it).
    ///
    /// Lag is measured by regression, which noise does not bias: an estimate late by d seconds errs by
    /// −d·a(t), so d = −Σ e·a / Σ a² with e the velocity error and a the true acceleration (central
    /// difference of the true velocity), over ticks whose last three intervals were on time. The same
    /// regression of measured minus true position on the true velocity checks the alignment (≈ 0), and
    /// the finite difference, which estimates the velocity half a tick back, checks the method (≈ 0.5).
    @Test func jointStateFilterBeatsFiniteDifferencesOnTheSimulatedArm() throws {
        let rig = try SimulatedRig(wireTiming: true, lockstep: true)
        let n = rig.loop.configuration.joints.count
        let urdf = try rig.loop.configuration.joints.map { joint in
            try #require(rig.model.jointIndex(named: joint.name))
        }
        let history = PhysicsHistory(robot: rig.robot, joints: urdf)
        rig.server.withBus { bus in
            history.inner = bus.dynamics
            bus.dynamics = history
        }
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let encoderStepRad = 2 * Double.pi / 4096
        let dt = 1.0 / 500
        var measured: [[Double]] = Array(repeating: [], count: n)
        var truePosition: [[Double]] = Array(repeating: [], count: n)
        var trueVelocity: [[Double]] = Array(repeating: [], count: n)
        var tickTimeS: [Double] = []
        var physicsStep: [Int] = []
        let body = ObservingBody(loop: rig.loop) { tick in
            guard rig.loop.lifecycle.state == .active else { return }
            let reading = (0..<n).map { rig.loop.supervisor.measuredPositionRad[$0] }
            // The loop's own time: simulated, one period a tick.
            tickTimeS.append(Double(rig.loop.simulationClock?.nanoseconds ?? 0) * 1e-9)
            let truth = rig.server.withBus { _ in history.truth(matching: reading, toleranceRad: encoderStepRad / 2) }
            // A reading no recorded step matches (nil) counts as irregular.
            physicsStep.append(truth.step ?? -1_000_000)
            for j in 0..<n {
                measured[j].append(rig.loop.supervisor.measuredPositionRad[j])
                truePosition[j].append(truth.joints[j].positionRad)
                trueVelocity[j].append(truth.joints[j].velocityRadPerS)
            }
        }
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 5_200), body: body)
        _ = try scheduler.run()
        let intervals = zip(tickTimeS.dropFirst(), tickTimeS).map { $0 - $1 }
        expectActiveLongEnough(rig, activeTicks: tickTimeS.count, minimumActiveTicks: 2_500)

        // Scored after 0.2 s of settling. A read that fails on a loaded machine (a timeout) leaves the last
        // value for one tick, which both estimators see alike; a handful at most.
        #expect(rig.loop.busErrorCount <= 5)
        let first = 100
        // Every joint's series has one entry per active tick; scoring needs at least two past `first`.
        try #require(tickTimeS.count >= first + 2, "active for \(tickTimeS.count) ticks: too few to score")
        func velocities(_ q: Double?) -> [[Double]] {
            (0..<n).map { j in
                var filter = JointStateFilter(parameters: .init(jerkSpectralDensity: q ?? 0))
                var out: [Double] = []
                // Both use the time between the ticks' wake-ups, as the loop knows it (a skipped tick
                // doubles it).
                for k in measured[j].indices {
                    let elapsed = k == 0 ? dt : tickTimeS[k] - tickTimeS[k - 1]
                    if q != nil {
                        filter.predict(dtSeconds: elapsed)
                        filter.updatePosition(measured[j][k])
                        out.append(filter.velocityRadPerS)
                    } else {
                        out.append(k == 0 ? 0 : (measured[j][k] - measured[j][k - 1]) / elapsed)
                    }
                }
                return out
            }
        }
        func rms(_ estimate: [[Double]]) -> Double {
            var sum = 0.0
            var count = 0
            for j in 0..<n {
                for k in first..<estimate[j].count {
                    sum += (estimate[j][k] - trueVelocity[j][k]) * (estimate[j][k] - trueVelocity[j][k])
                    count += 1
                }
            }
            return (sum / Double(count)).squareRoot()
        }
        // Ticks whose last three intervals were on time, both by the loop's clock and by the physics steps
        // the servos reported (a skipped tick, or a simulator that stalled and caught up, has its own error).
        let stepsPerTick = Int((dt * VirtualBusOptions().physicsRateHz).rounded())  // the rig's physics rate
        let regular = tickTimeS.indices.map { k in
            k >= 3
                && (k - 2...k).allSatisfy {
                    abs(tickTimeS[$0] - tickTimeS[$0 - 1] - dt) < 0.5e-3
                        && physicsStep[$0] - physicsStep[$0 - 1] == stepsPerTick
                }
        }
        /// Delay (s) of `estimate` behind `truth`, whose derivative is `rate`: −Σ e·rate / Σ rate².
        /// Also its standard error: the residual's RMS over √Σ rate² (noise in e makes the finite
        /// difference's figure uncertain by ~0.2 tick, the filter's by a few hundredths).
        func delay(_ estimate: [[Double]], _ truth: [[Double]], _ rate: [[Double]]) -> (s: Double, error: Double) {
            var numerator = 0.0
            var denominator = 0.0
            var squares = 0.0
            var count = 0
            for j in 0..<n {
                for k in first..<(estimate[j].count - 1) where regular[k] {
                    numerator += (estimate[j][k] - truth[j][k]) * rate[j][k]
                    denominator += rate[j][k] * rate[j][k]
                    squares += (estimate[j][k] - truth[j][k]) * (estimate[j][k] - truth[j][k])
                    count += 1
                }
            }
            let d = -numerator / denominator
            let residual = max(0, squares / Double(count) - d * d * denominator / Double(count)).squareRoot()
            return (d, residual / denominator.squareRoot())
        }
        // True acceleration, central difference of the true velocity.
        var trueAcceleration: [[Double]] = []
        for j in 0..<n {
            let v = trueVelocity[j]
            var a = [Double](repeating: 0, count: v.count)
            for k in 1..<(v.count - 1) { a[k] = (v[k + 1] - v[k - 1]) / (2 * dt) }
            trueAcceleration.append(a)
        }
        let samplingOffsetS = delay(measured, truePosition, trueVelocity).s
        // The truth's own jerk, for the filter's white-jerk density: q ≈ E[(Δa)²]/Δt over one tick.
        var jerkSquares = 0.0
        var jerkCount = 0
        for j in 0..<n {
            for k in (first + 1)..<(trueAcceleration[j].count - 1) {
                let change = trueAcceleration[j][k] - trueAcceleration[j][k - 1]
                jerkSquares += change * change
                jerkCount += 1
            }
        }
        let trueJerkDensity = jerkSquares / Double(jerkCount) / dt
        let differenced = velocities(nil)
        let differenceRMS = rms(differenced)
        let differenceDelay = delay(differenced, trueVelocity, trueAcceleration)
        let differenceLagTicks = (differenceDelay.s - samplingOffsetS) / dt
        let differenceLagErrorTicks = differenceDelay.error / dt
        var lines = [
            String(
                format: "Joint velocity on the simulated SO-101 (500 Hz, 4096 counts/turn, %d joints × %d ticks): "
                    + "encoder sampled %.2f ticks before the truth; true jerk density %.2e (rad/s³)²/Hz; finite "
                    + "difference RMS %.4f rad/s, lag %.2f ± %.2f ticks",
                n, tickTimeS.count - first, samplingOffsetS / dt, trueJerkDensity, differenceRMS, differenceLagTicks,
                differenceLagErrorTicks)
        ]
        var shipped = (ratio: 0.0, lag: Double.infinity, error: Double.infinity)
        for q in [1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5] {
            let filtered = velocities(q)
            let ratio = differenceRMS / rms(filtered)
            let filterDelay = delay(filtered, trueVelocity, trueAcceleration)
            let lagTicks = (filterDelay.s - samplingOffsetS) / dt
            let lagErrorTicks = filterDelay.error / dt
            lines.append(
                String(
                    format: "  jerk density %.0e (rad/s³)²/Hz: RMS %.4f rad/s (%.1f× lower), lag %.2f ± %.2f ticks", q,
                    rms(filtered), ratio, lagTicks, lagErrorTicks))
            if q == JointStateFilter.Parameters().jerkSpectralDensity { shipped = (ratio, lagTicks, lagErrorTicks) }
        }
        lines.append(
            String(
                format: "  tick interval max %.2f ms; %d of %d intervals over 3 ms; lag scored over %d ticks regular "
                    + "by the loop's clock and the physics steps", 1000 * (intervals.max() ?? 0),
                intervals.filter { $0 > 0.003 }.count, intervals.count, regular.filter { $0 }.count))
        print(lines.joined(separator: "\n"))
        // The two checks of the measurement itself: the truth lines up with the readings, and the method
        // sees the finite difference's half tick (within three standard errors: its noise makes this figure
        // loose).
        let aligned = abs(samplingOffsetS / dt) < 0.2
        let methodSeesHalfTick = abs(differenceLagTicks - 0.5) < 3 * differenceLagErrorTicks + 0.05
        #expect(aligned, "truth aligned with the encoder readings")
        #expect(methodSeesHalfTick, "the method sees the half tick")
        #expect(shipped.ratio >= 5, "velocity RMS error vs finite differences")
        #expect(abs(shipped.lag) + 3 * shipped.error < 1, "lag in ticks, with its uncertainty")
    }
}

/// Records the physics' joint states of the last 64 steps (wrapping the bus's dynamics) so a test can take
/// the truth at the very step whose positions the servos reported.
final class PhysicsHistory: JointDynamics {
    var inner: (any JointDynamics)?
    let robot: RobotJointDynamics
    let joints: [Int]
    var positions: [[Double]]
    var velocities: [[Double]]
    var steps = 0
    static let depth = 64

    init(robot: RobotJointDynamics, joints: [Int]) {
        self.robot = robot
        self.joints = joints
        positions = Array(repeating: Array(repeating: 0, count: joints.count), count: Self.depth)
        velocities = positions
    }

    func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        inner?.step(outputs: outputs, dtS: dtS, positionsRad: positionsRad, velocitiesRadPerS: velocitiesRadPerS)
        let slot = steps % Self.depth
        for (i, j) in joints.enumerated() {
            positions[slot][i] = robot.positions[j]
            velocities[slot][i] = robot.velocities[j]
        }
        steps += 1
    }

    /// The newest recorded step whose positions all lie within `toleranceRad` of `reading` (the servos
    /// report the last step before the request; nil and the newest step's state when none matches), with the joints'
    /// positions and velocities at that step's instant: the physics integrates semi-implicitly
    /// (p += dt·v), so its velocity is the mean over the step ending there and the instant's velocity is
    /// the mean of that step's and the next one's (extrapolated for the newest).
    func truth(matching reading: [Double], toleranceRad: Double) -> (
        step: Int?, joints: [(positionRad: Double, velocityRadPerS: Double)]
    ) {
        var matched: Int?
        for back in 0..<min(16, steps) {
            let slot = (steps - 1 - back) % Self.depth
            if zip(reading, positions[slot]).allSatisfy({ abs($0 - $1) <= toleranceRad + 1e-9 }) {
                matched = steps - 1 - back
                break
            }
        }
        let chosen = matched ?? max(steps - 1, 0)
        let slot = chosen % Self.depth
        let previous = (chosen + Self.depth - 1) % Self.depth
        let joints = joints.indices.map { i in
            let v = velocities[slot][i]
            let atInstant: Double
            if chosen + 1 < steps {
                atInstant = 0.5 * (v + velocities[(chosen + 1) % Self.depth][i])
            } else {
                atInstant = v + 0.5 * (v - velocities[previous][i])
            }
            return (positionRad: positions[slot][i], velocityRadPerS: atInstant)
        }
        return (matched, joints)
    }
}
