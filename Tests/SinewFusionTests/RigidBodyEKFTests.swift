import CAllocCounter
import Foundation
import SinewFusion
import Testing

/// Smooth 3-D motion with analytic derivatives: position sums of sines (m), orientation from Z-Y-X Euler
/// angles that are sums of sines plus a slow yaw drift (rad).
private struct SmoothRigidBodyTrajectory {
    var phase: Double = 0

    struct Sample {
        var orientation: (w: Double, x: Double, y: Double, z: Double)
        var positionM: SIMD3<Double>
        var velocityMPerS: SIMD3<Double>
        var accelerationMPerS2: SIMD3<Double>
        var bodyAngularVelocityRadPerS: SIMD3<Double>
    }

    private func wave(_ t: Double, _ amplitude: Double, _ hz: Double, _ offset: Double) -> (Double, Double, Double) {
        let w = 2 * Double.pi * hz
        let a = w * t + offset + phase
        return (amplitude * sin(a), amplitude * w * cos(a), -amplitude * w * w * sin(a))
    }

    func sample(_ t: Double) -> Sample {
        let px = wave(t, 1.5, 0.05, 0), px2 = wave(t, 0.3, 0.31, 1)
        let py = wave(t, 1.0, 0.07, 2), py2 = wave(t, 0.2, 0.43, 0.5)
        let pz = wave(t, 0.5, 0.11, 1.3), pz2 = wave(t, 0.1, 0.5, 0.1)
        let roll = wave(t, 0.4, 0.13, 0.3), roll2 = wave(t, 0.1, 0.7, 0)
        let pitch = wave(t, 0.3, 0.09, 1.7), pitch2 = wave(t, 0.08, 0.6, 2)
        let yawWave = wave(t, 1.2, 0.04, 0.9), yaw2 = wave(t, 0.15, 0.45, 0.4)
        let r = roll.0 + roll2.0
        let rd = roll.1 + roll2.1
        let p = pitch.0 + pitch2.0
        let pd = pitch.1 + pitch2.1
        let y = yawWave.0 + yaw2.0 + 0.05 * t
        let yd = yawWave.1 + yaw2.1 + 0.05
        let (cr, sr) = (cos(r / 2), sin(r / 2))
        let (cp, sp) = (cos(p / 2), sin(p / 2))
        let (cy, sy) = (cos(y / 2), sin(y / 2))
        let q = (
            w: cr * cp * cy + sr * sp * sy, x: sr * cp * cy - cr * sp * sy,
            y: cr * sp * cy + sr * cp * sy, z: cr * cp * sy - sr * sp * cy
        )
        let omega = SIMD3(
            rd - yd * sin(p), pd * cos(r) + yd * cos(p) * sin(r), -pd * sin(r) + yd * cos(p) * cos(r))
        return Sample(
            orientation: q, positionM: SIMD3(px.0 + px2.0, py.0 + py2.0, pz.0 + pz2.0),
            velocityMPerS: SIMD3(px.1 + px2.1, py.1 + py2.1, pz.1 + pz2.1),
            accelerationMPerS2: SIMD3(px.2 + px2.2, py.2 + py2.2, pz.2 + pz2.2),
            bodyAngularVelocityRadPerS: omega)
    }
}

private func rotateToBody(_ q: (w: Double, x: Double, y: Double, z: Double), _ v: SIMD3<Double>) -> SIMD3<Double> {
    // Rᵀ v with R the body → world rotation of q.
    let (w, x, y, z) = (q.w, q.x, q.y, q.z)
    let r0 = SIMD3(1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y))
    let r1 = SIMD3(2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x))
    let r2 = SIMD3(2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))
    return r0 * v.x + r1 * v.y + r2 * v.z
}

private func quaternionTimesExp(_ q: (w: Double, x: Double, y: Double, z: Double), _ v: SIMD3<Double>) -> (
    w: Double, x: Double, y: Double, z: Double
) {
    let angle = (v * v).sum().squareRoot()
    let k = angle < 1e-12 ? 0.5 : sin(angle / 2) / angle
    let b = (w: cos(angle / 2), x: k * v.x, y: k * v.y, z: k * v.z)
    return (
        w: q.w * b.w - q.x * b.x - q.y * b.y - q.z * b.z, x: q.w * b.x + q.x * b.w + q.y * b.z - q.z * b.y,
        y: q.w * b.y - q.x * b.z + q.y * b.w + q.z * b.x, z: q.w * b.z + q.x * b.y - q.y * b.x + q.z * b.w
    )
}

/// Closed-loop simulation: truth from the trajectory, an IMU with white noise and random-walk biases,
/// positions at 10 Hz of which `lateFraction` arrive 50–100 ms late (so some also arrive out of order).
private struct EKFSimulation {
    static let imuRateHz = 200.0
    static let gyroNoiseDensity = 3.0e-4  // rad/s/√Hz (0.017 °/s/√Hz, a good MEMS gyro)
    static let accelNoiseDensity = 2.0e-3  // m/s²/√Hz (200 µg/√Hz)
    static let gyroBiasRandomWalk = 2.0e-5  // rad/s/√s
    static let accelBiasRandomWalk = 3.0e-4  // m/s²/√s
    static let positionSigmaM = 0.02
    static let initialSigmas = (
        orientationRad: 0.05, positionM: 0.05, velocityMPerS: 0.1, gyroBiasRadPerS: 0.005, accelBiasMPerS2: 0.05
    )

    struct Result {
        var meanNEES: Double
        var meanNEESPerBlock: [Double]  // orientation, position, velocity, gyro bias, accel bias
        var neesSamples: Int
        var maxPositionErrorM: Double
        var maxOrientationErrorRad: Double
        var finalPositionErrorM: Double
        var finalOrientationErrorRad: Double
        var lateApplied: Int
        var rejected: Int
        var meanNIS: Double
    }

    static func run(seconds: Double, seed: UInt64, lateFraction: Double = 0.5) -> Result {
        var random = EstimationTestRandom(seed: seed)
        let trajectory = SmoothRigidBodyTrajectory(phase: Double(seed % 17))
        let dt = 1 / imuRateHz
        let gravity = SIMD3<Double>(0, 0, -9.80665)
        let configuration = RigidBodyEKFConfiguration(
            gyroNoiseDensity: gyroNoiseDensity, accelNoiseDensity: accelNoiseDensity,
            gyroBiasRandomWalk: gyroBiasRandomWalk, accelBiasRandomWalk: accelBiasRandomWalk)
        func gaussian3(_ sigma: Double) -> SIMD3<Double> {
            SIMD3(random.gaussian(), random.gaussian(), random.gaussian()) * sigma
        }
        let start = trajectory.sample(0)
        var gyroBias = gaussian3(initialSigmas.gyroBiasRadPerS)
        var accelBias = gaussian3(initialSigmas.accelBiasMPerS2)
        // The initial estimate is the truth displaced by a draw from the initial covariance, so the prior
        // is consistent and the NEES is meaningful from the start.
        let initial = RigidBodyNominalState(
            orientation: quaternionTimesExp(start.orientation, gaussian3(initialSigmas.orientationRad)),
            positionM: start.positionM + gaussian3(initialSigmas.positionM),
            velocityMPerS: start.velocityMPerS + gaussian3(initialSigmas.velocityMPerS))
        let filter = RigidBodyEKF(
            configuration: configuration, initialState: initial, initialStandardDeviations: initialSigmas)

        var pending: [RigidBodyMeasurement] = []
        var pendingDelivery: [Double] = []
        let steps = Int(seconds * imuRateHz)
        var neesSum = 0.0
        var blockSums = [Double](repeating: 0, count: 5)
        var neesCount = 0
        var nisSum = 0.0
        var nisCount = 0
        var maxPositionError = 0.0
        var maxOrientationError = 0.0
        var lateApplied = 0
        var rejected = 0
        let blocks: [RigidBodyErrorBlocks] = [.orientation, .position, .velocity, .gyroBias, .accelBias]
        let stepsPerMeasurement = Int(imuRateHz / 10)
        for k in 1...steps {
            let t = Double(k) * dt
            // The sample that covers (t − dt, t] is taken at the interval's middle.
            let mid = trajectory.sample(t - dt / 2)
            gyroBias += gaussian3(gyroBiasRandomWalk * dt.squareRoot())
            accelBias += gaussian3(accelBiasRandomWalk * dt.squareRoot())
            let gyro = mid.bodyAngularVelocityRadPerS + gyroBias + gaussian3(gyroNoiseDensity / dt.squareRoot())
            let force =
                rotateToBody(mid.orientation, mid.accelerationMPerS2 - gravity) + accelBias
                + gaussian3(accelNoiseDensity / dt.squareRoot())
            filter.propagate(gyroRadPerS: gyro, specificForceMPerS2: force, timestampSeconds: t)
            let truth = trajectory.sample(t)
            if k % stepsPerMeasurement == 0 {
                let measured = truth.positionM + gaussian3(positionSigmaM)
                let late = random.uniform() < lateFraction
                let delay = late ? 0.05 + 0.05 * random.uniform() : 0
                pending.append(
                    .position(measured, standardDeviationM: SIMD3(repeating: positionSigmaM), timestampSeconds: t))
                pendingDelivery.append(t + delay)
            }
            var i = 0
            while i < pending.count {
                if pendingDelivery[i] <= t + 1e-9 {
                    let result = filter.update(pending[i])
                    switch result {
                    case .applied(let nis, _, let replayed):
                        nisSum += nis
                        nisCount += 1
                        if replayed > 0 { lateApplied += 1 }
                    case .rejected: rejected += 1
                    }
                    pending.remove(at: i)
                    pendingDelivery.remove(at: i)
                } else {
                    i += 1
                }
            }
            let truthState = RigidBodyNominalState(
                orientation: truth.orientation, positionM: truth.positionM, velocityMPerS: truth.velocityMPerS,
                gyroBiasRadPerS: gyroBias, accelBiasMPerS2: accelBias)
            if k % 10 == 0 {
                neesSum += filter.normalisedEstimationErrorSquared(truth: truthState)
                for b in 0..<5 {
                    blockSums[b] += filter.normalisedEstimationErrorSquared(truth: truthState, blocks: blocks[b])
                }
                neesCount += 1
            }
            let errorBuffer = UnsafeMutablePointer<Double>.allocate(capacity: 15)
            filter.errorState(relativeTo: truthState, into: errorBuffer)
            let positionError =
                (errorBuffer[3] * errorBuffer[3] + errorBuffer[4] * errorBuffer[4]
                + errorBuffer[5] * errorBuffer[5]).squareRoot()
            let orientationError =
                (errorBuffer[0] * errorBuffer[0] + errorBuffer[1] * errorBuffer[1]
                + errorBuffer[2] * errorBuffer[2]).squareRoot()
            errorBuffer.deallocate()
            if t > 5 {
                maxPositionError = max(maxPositionError, positionError)
                maxOrientationError = max(maxOrientationError, orientationError)
            }
            if k == steps {
                return Result(
                    meanNEES: neesSum / Double(neesCount), meanNEESPerBlock: blockSums.map { $0 / Double(neesCount) },
                    neesSamples: neesCount, maxPositionErrorM: maxPositionError,
                    maxOrientationErrorRad: maxOrientationError, finalPositionErrorM: positionError,
                    finalOrientationErrorRad: orientationError, lateApplied: lateApplied, rejected: rejected,
                    meanNIS: nisSum / Double(max(nisCount, 1)))
            }
        }
        fatalError("unreachable")
    }
}

@Suite struct RigidBodyEKFTests {
    /// Ten minutes at 200 Hz (120 000 IMU steps, 6 000 positions, half of them 50–100 ms late). A single
    /// run's time-averaged NEES must lie within the 95% bounds of one chi-square sample (15 dof:
    /// [6.26, 27.49]; 3 dof per block: [0.22, 9.35]) — conservative, since averaging correlated samples
    /// never increases the variance — and the error must stay bounded.
    @Test func tenMinutesWithLatePositionsStaysConsistentAndBounded() {
        let r = EKFSimulation.run(seconds: 600, seed: 1)
        print(
            "EKF 10 min: mean NEES \(r.meanNEES) (15 dof) over \(r.neesSamples) samples; per block "
                + "(θ, p, v, bg, ba) \(r.meanNEESPerBlock); mean NIS \(r.meanNIS) (3 dof); late applied "
                + "\(r.lateApplied), rejected \(r.rejected); max |δp| \(r.maxPositionErrorM) m, max |δθ| "
                + "\(r.maxOrientationErrorRad) rad; final |δp| \(r.finalPositionErrorM) m, |δθ| "
                + "\(r.finalOrientationErrorRad) rad")
        let low15 = estimationChiSquareQuantile(degreesOfFreedom: 15, normalQuantile: -1.959964)
        let high15 = estimationChiSquareQuantile(degreesOfFreedom: 15, normalQuantile: 1.959964)
        #expect(r.meanNEES > low15 && r.meanNEES < high15)
        for block in r.meanNEESPerBlock {
            #expect(block > 0.2158 && block < 9.348)
        }
        #expect(r.rejected == 0)
        // Innovations of a consistent filter are white, so the 6 000 NIS values are independent and their
        // mean must lie within the 95% bounds of chi-square(3·6000)/6000.
        let nisLow = estimationChiSquareQuantile(degreesOfFreedom: 18_000, normalQuantile: -1.959964) / 6000
        let nisHigh = estimationChiSquareQuantile(degreesOfFreedom: 18_000, normalQuantile: 1.959964) / 6000
        #expect(r.meanNIS > nisLow && r.meanNIS < nisHigh)
        #expect(r.lateApplied > 2500)
        #expect(r.maxPositionErrorM < 0.1)
        #expect(r.maxOrientationErrorRad < 0.05)
    }

    /// Monte Carlo: 10 independent 60 s runs. The average NEES over runs and time must lie within the
    /// 95% bounds of chi-square(15·10)/10, i.e. [11.9, 18.5] (again conservative for the time average).
    @Test func monteCarloAverageNEESWithinChiSquareBounds() {
        let runs = 10
        var sum = 0.0
        var blockSums = [Double](repeating: 0, count: 5)
        for seed in 0..<runs {
            let r = EKFSimulation.run(seconds: 60, seed: UInt64(100 + seed))
            sum += r.meanNEES
            for b in 0..<5 { blockSums[b] += r.meanNEESPerBlock[b] }
        }
        let average = sum / Double(runs)
        let low =
            estimationChiSquareQuantile(degreesOfFreedom: 15 * Double(runs), normalQuantile: -1.959964) / Double(runs)
        let high =
            estimationChiSquareQuantile(degreesOfFreedom: 15 * Double(runs), normalQuantile: 1.959964) / Double(runs)
        let blockLow =
            estimationChiSquareQuantile(degreesOfFreedom: 3 * Double(runs), normalQuantile: -1.959964) / Double(runs)
        let blockHigh =
            estimationChiSquareQuantile(degreesOfFreedom: 3 * Double(runs), normalQuantile: 1.959964) / Double(runs)
        let blocks = blockSums.map { $0 / Double(runs) }
        print(
            "EKF Monte Carlo (\(runs) × 60 s): average NEES \(average), bounds [\(low), \(high)]; per block "
                + "\(blocks), bounds [\(blockLow), \(blockHigh)]")
        #expect(average > low && average < high)
        for block in blocks { #expect(block > blockLow && block < blockHigh) }
    }
}

/// A filter fed a fixed, noise-free-ish IMU stream (constant rotation and acceleration), for the
/// bookkeeping tests below.
private func makeBookkeepingFilter(historyCapacity: Int = 100) -> RigidBodyEKF {
    RigidBodyEKF(
        configuration: RigidBodyEKFConfiguration(
            gyroNoiseDensity: 3e-4, accelNoiseDensity: 2e-3, gyroBiasRandomWalk: 2e-5, accelBiasRandomWalk: 3e-4,
            historyCapacity: historyCapacity),
        initialState: RigidBodyNominalState(),
        initialStandardDeviations: (0.05, 0.05, 0.1, 0.005, 0.05))
}

private func feedIMU(_ filter: RigidBodyEKF, from firstStep: Int, to lastStep: Int) {
    for k in firstStep...lastStep {
        let t = Double(k) * 0.005
        let gyro = SIMD3(0.3 * sin(t), 0.2, -0.1 * cos(2 * t))
        let force = SIMD3(0.5 * cos(t), 0.2 * sin(3 * t), 9.80665 + 0.1 * sin(t))
        filter.propagate(gyroRadPerS: gyro, specificForceMPerS2: force, timestampSeconds: t)
    }
}

private func stateDistance(_ a: RigidBodyEKF, _ b: RigidBodyEKF) -> Double {
    var d = 0.0
    let sa = a.state
    let sb = b.state
    d = max(d, abs(sa.orientation.w - sb.orientation.w), abs(sa.orientation.x - sb.orientation.x))
    d = max(d, abs(sa.orientation.y - sb.orientation.y), abs(sa.orientation.z - sb.orientation.z))
    for c in 0..<3 {
        d = max(d, abs(sa.positionM[c] - sb.positionM[c]), abs(sa.velocityMPerS[c] - sb.velocityMPerS[c]))
        d = max(d, abs(sa.gyroBiasRadPerS[c] - sb.gyroBiasRadPerS[c]))
        d = max(d, abs(sa.accelBiasMPerS2[c] - sb.accelBiasMPerS2[c]))
    }
    for i in 0..<15 {
        for j in 0..<15 { d = max(d, abs(a.covariance(row: i, column: j) - b.covariance(row: i, column: j))) }
    }
    return d
}

@Suite struct RigidBodyEKFBookkeepingTests {
    @Test func lateMeasurementEqualsOnTimeMeasurement() {
        let onTime = makeBookkeepingFilter()
        let late = makeBookkeepingFilter()
        // Between samples 40 and 41 (t = 0.2025 s) to exercise the split IMU interval.
        let measurement = RigidBodyMeasurement.position(
            SIMD3(0.1, -0.05, 0.02), standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.2025)
        feedIMU(onTime, from: 1, to: 40)
        // On time: propagate exactly to the measurement with the next sample's input, then apply, then on.
        let t41 = 41 * 0.005
        let gyro41 = SIMD3(0.3 * sin(t41), 0.2, -0.1 * cos(2 * t41))
        let force41 = SIMD3(0.5 * cos(t41), 0.2 * sin(3 * t41), 9.80665 + 0.1 * sin(t41))
        onTime.propagate(gyroRadPerS: gyro41, specificForceMPerS2: force41, timestampSeconds: 0.2025)
        let r1 = onTime.update(measurement)
        onTime.propagate(gyroRadPerS: gyro41, specificForceMPerS2: force41, timestampSeconds: t41)
        feedIMU(onTime, from: 42, to: 60)
        feedIMU(late, from: 1, to: 60)
        let r2 = late.update(measurement)
        guard case .applied(let nis1, 3, 0) = r1, case .applied(let nis2, 3, let replayed) = r2 else {
            Issue.record("unexpected results \(r1) \(r2)")
            return
        }
        #expect(replayed == 20)
        #expect(abs(nis1 - nis2) < 1e-9)
        #expect(stateDistance(onTime, late) < 1e-9)
    }

    @Test func outOfOrderMeasurementsGiveTheInOrderResult() {
        let inOrder = makeBookkeepingFilter()
        let reversed = makeBookkeepingFilter()
        let a = RigidBodyMeasurement.position(
            SIMD3(0.1, 0, 0), standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.1)
        let b = RigidBodyMeasurement.velocity(
            SIMD3(0, 0.2, 0), standardDeviationMPerS: SIMD3(repeating: 0.05), timestampSeconds: 0.2)
        let c = RigidBodyMeasurement.orientation(
            (0.999, 0.02, 0.03, 0.01), standardDeviationRad: SIMD3(repeating: 0.01), timestampSeconds: 0.25)
        feedIMU(inOrder, from: 1, to: 20)
        inOrder.update(a)
        feedIMU(inOrder, from: 21, to: 40)
        inOrder.update(b)
        feedIMU(inOrder, from: 41, to: 50)
        inOrder.update(c)
        feedIMU(inOrder, from: 51, to: 70)
        feedIMU(reversed, from: 1, to: 70)
        reversed.update(c)
        reversed.update(b)
        reversed.update(a)
        #expect(stateDistance(inOrder, reversed) < 1e-9)
    }

    @Test func tooOldMeasurementIsRejectedWithItsAge() {
        let filter = makeBookkeepingFilter(historyCapacity: 20)
        feedIMU(filter, from: 1, to: 100)
        #expect(abs(filter.windowStartSeconds - 0.4) < 1e-12)
        let old = RigidBodyMeasurement.position(
            .zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.3)
        guard case .rejected(.tooOld(let age, let window)) = filter.update(old) else {
            Issue.record("expected tooOld")
            return
        }
        #expect(abs(age - 0.2) < 1e-9)
        #expect(abs(window - 0.1) < 1e-9)
        let inWindow = RigidBodyMeasurement.position(
            .zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.45)
        guard case .applied(_, 3, let replayed) = filter.update(inWindow) else {
            Issue.record("expected applied")
            return
        }
        // 0.45 s ends IMU step 90, so steps 90…100 are re-propagated.
        #expect(replayed == 11)
        #expect(
            filter.propagate(gyroRadPerS: .zero, specificForceMPerS2: .zero, timestampSeconds: 0.5)
                == .nonIncreasingTimestamp(previousSeconds: 0.5, sampleSeconds: 0.5))
    }

    @Test func fullMeasurementStoreRaisesTheReplayFloor() {
        let filter = RigidBodyEKF(
            configuration: RigidBodyEKFConfiguration(
                gyroNoiseDensity: 3e-4, accelNoiseDensity: 2e-3, gyroBiasRandomWalk: 2e-5,
                accelBiasRandomWalk: 3e-4, historyCapacity: 100, measurementCapacity: 4),
            initialState: RigidBodyNominalState(), initialStandardDeviations: (0.05, 0.05, 0.1, 0.005, 0.05))
        for k in 1...60 {
            feedIMU(filter, from: k, to: k)
            if k % 10 == 0 {
                filter.update(
                    .position(.zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: Double(k) * 0.005))
            }
        }
        // Six stored, capacity four: the measurements at 0.05 and 0.1 s were evicted, so nothing at or
        // before 0.1 s can be replayed faithfully any more.
        #expect(abs(filter.windowStartSeconds - 0.1) < 1e-12)
        let beforeFloor = RigidBodyMeasurement.position(
            .zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.09)
        guard case .rejected(.tooOld) = filter.update(beforeFloor) else {
            Issue.record("expected tooOld behind the replay floor")
            return
        }
        let afterFloor = RigidBodyMeasurement.position(
            .zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.12)
        guard case .applied = filter.update(afterFloor) else {
            Issue.record("expected applied after the replay floor")
            return
        }
    }

    @Test func maskSelectsComponents() {
        let filter = makeBookkeepingFilter()
        let before = filter.covariance(row: 3, column: 3)
        let result = filter.update(
            .position(SIMD3(5, 5, 0.1), standardDeviationM: SIMD3(repeating: 0.01), timestampSeconds: 0, mask: .z))
        let expectedNIS = 0.1 * 0.1 / (0.05 * 0.05 + 0.01 * 0.01)
        guard case .applied(let nis, 1, 0) = result else {
            Issue.record("expected a 1-D update, got \(result)")
            return
        }
        #expect(abs(nis - expectedNIS) < 1e-9)
        #expect(filter.state.positionM.x == 0)
        #expect(filter.state.positionM.y == 0)
        #expect(abs(filter.state.positionM.z - 0.1 * 0.05 * 0.05 / (0.05 * 0.05 + 0.01 * 0.01)) < 1e-12)
        #expect(filter.covariance(row: 3, column: 3) == before)
        #expect(
            filter.update(.position(.zero, standardDeviationM: .one, timestampSeconds: 0, mask: []))
                == .rejected(.emptyMask))
        var bad = RigidBodyMeasurement.position(.zero, standardDeviationM: .one, timestampSeconds: 0)
        bad.covariance[0] = -10
        #expect(filter.update(bad) == .rejected(.invalidCovariance))
    }

    @Test func outlierGateRejectsAJump() {
        let filter = RigidBodyEKF(
            configuration: RigidBodyEKFConfiguration(
                gyroNoiseDensity: 3e-4, accelNoiseDensity: 2e-3, gyroBiasRandomWalk: 2e-5,
                accelBiasRandomWalk: 3e-4, outlierGateNIS: 16.27),
            initialState: RigidBodyNominalState(), initialStandardDeviations: (0.05, 0.05, 0.1, 0.005, 0.05))
        feedIMU(filter, from: 1, to: 20)
        let jump = RigidBodyMeasurement.position(
            SIMD3(1, 0, 0), standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.1)
        guard case .rejected(.outlier(let nis)) = filter.update(jump) else {
            Issue.record("a 1 m jump against a 5 cm prior must be gated")
            return
        }
        #expect(nis > 16.27)
        let fine = RigidBodyMeasurement.position(
            SIMD3(0.03, 0, 0), standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.1)
        guard case .applied = filter.update(fine) else {
            Issue.record("a plausible measurement must pass the gate")
            return
        }
    }

    @Test func poseMeasurementsRecoverAWrongHeading() {
        // Start 0.5 rad off in yaw with a matching prior; poses at the true (identity) orientation fix it.
        let filter = RigidBodyEKF(
            configuration: RigidBodyEKFConfiguration(
                gyroNoiseDensity: 3e-4, accelNoiseDensity: 2e-3, gyroBiasRandomWalk: 2e-5, accelBiasRandomWalk: 3e-4),
            initialState: RigidBodyNominalState(orientation: (cos(0.25), 0, 0, sin(0.25))),
            initialStandardDeviations: (0.5, 0.1, 0.1, 0.005, 0.05))
        for k in 1...400 {
            let t = Double(k) * 0.005
            filter.propagate(gyroRadPerS: .zero, specificForceMPerS2: SIMD3(0, 0, 9.80665), timestampSeconds: t)
            if k % 20 == 0 {
                filter.update(
                    .pose(
                        positionM: .zero, orientation: (1, 0, 0, 0), standardDeviationM: SIMD3(repeating: 0.01),
                        standardDeviationRad: SIMD3(repeating: 0.02), timestampSeconds: t - 0.05))
            }
        }
        let q = filter.state.orientation
        let yaw = atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        #expect(abs(yaw) < 0.01)
        #expect(filter.covariance(row: 2, column: 2).squareRoot() < 0.02)
    }

    @Test func updatesAllocateNothing() {
        let filter = makeBookkeepingFilter()
        let truth = RigidBodyNominalState()
        feedIMU(filter, from: 1, to: 200)
        filter.update(.position(.zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: 0.95))
        _ = filter.normalisedEstimationErrorSquared(truth: truth)
        let before = sinew_thread_allocations()
        var k = 201
        var nees = 0.0
        while k < 20_201 {
            let t = Double(k) * 0.005
            filter.propagate(
                gyroRadPerS: SIMD3(0.3 * sin(t), 0.2, 0), specificForceMPerS2: SIMD3(0, 0, 9.80665), timestampSeconds: t
            )
            if k % 20 == 0 {
                // Late by 15 samples, plus an on-time pose, so replay and merge run too.
                filter.update(
                    .position(.zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: t - 0.075))
                filter.update(
                    .pose(
                        positionM: .zero, orientation: (1, 0, 0, 0), standardDeviationM: SIMD3(repeating: 0.02),
                        standardDeviationRad: SIMD3(repeating: 0.05), timestampSeconds: t, mask: [.z, .rotationZ]))
                nees += filter.normalisedEstimationErrorSquared(truth: truth, blocks: [.position, .velocity])
            }
            k += 1
        }
        let delta = sinew_thread_allocations() - before
        #expect(delta == 0)
        #expect(nees.isFinite)
    }
}

@Suite struct RigidBodyEKFWithVirtualIMUTests {
    /// The EKF fed by the datasheet IMU model, whose scale-factor, cross-axis and Gauss–Markov bias errors
    /// the filter does not model: it must stay bounded (the position fixes absorb them), with the noise
    /// figures taken from the same datasheet and the bias walk inflated to cover the unmodelled drift.
    @Test func staysBoundedWithUnmodelledSensorErrors() {
        let rate = 200.0
        let dt = 1 / rate
        var imu = IMUSensorModel.consumerMEMS(sampleRateHz: rate, seed: 21)
        let trajectory = SmoothRigidBodyTrajectory()
        let start = trajectory.sample(0)
        let filter = RigidBodyEKF(
            configuration: RigidBodyEKFConfiguration(
                gyroNoiseDensity: imu.gyroscope.noiseDensity, accelNoiseDensity: imu.accelerometer.noiseDensity,
                gyroBiasRandomWalk: 1e-4, accelBiasRandomWalk: 2e-3),
            initialState: RigidBodyNominalState(
                orientation: start.orientation, positionM: start.positionM, velocityMPerS: start.velocityMPerS),
            initialStandardDeviations: (0.05, 0.05, 0.1, 0.01, 0.1))
        var random = EstimationTestRandom(seed: 4)
        var maxPositionError = 0.0
        var maxOrientationError = 0.0
        let error = UnsafeMutablePointer<Double>.allocate(capacity: 15)
        defer { error.deallocate() }
        for k in 1...24_000 {
            let t = Double(k) * dt
            let mid = trajectory.sample(t - dt / 2)
            let sample = imu.sample(
                trueAngularVelocityRadPerS: mid.bodyAngularVelocityRadPerS,
                trueSpecificForceMPerS2: rotateToBody(mid.orientation, mid.accelerationMPerS2 - SIMD3(0, 0, -9.80665)))
            filter.propagate(
                gyroRadPerS: sample.angularVelocityRadPerS, specificForceMPerS2: sample.specificForceMPerS2,
                timestampSeconds: t)
            let truth = trajectory.sample(t)
            if k % 20 == 0 {
                let noise = SIMD3(random.gaussian(), random.gaussian(), random.gaussian()) * 0.02
                filter.update(
                    .position(
                        truth.positionM + noise, standardDeviationM: SIMD3(repeating: 0.02),
                        timestampSeconds: t - (k % 40 == 0 ? 0.075 : 0)))
            }
            // The first seconds, while the turn-on biases and the cross-axis terms are being separated,
            // show a transient of up to 0.1 rad in heading; judge the steady state.
            if t > 20 {
                filter.errorState(
                    relativeTo: RigidBodyNominalState(
                        orientation: truth.orientation, positionM: truth.positionM, velocityMPerS: truth.velocityMPerS),
                    into: error)
                maxOrientationError = max(
                    maxOrientationError, (error[0] * error[0] + error[1] * error[1] + error[2] * error[2]).squareRoot())
                maxPositionError = max(
                    maxPositionError, (error[3] * error[3] + error[4] * error[4] + error[5] * error[5]).squareRoot())
            }
        }
        print(
            "EKF with the datasheet IMU model, 20…120 s: max |δp| \(maxPositionError) m, max |δθ| \(maxOrientationError) rad"
        )
        #expect(maxPositionError < 0.15)
        #expect(maxOrientationError < 0.03)
    }
}
