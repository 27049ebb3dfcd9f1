import CAllocCounter
import Foundation
import SinewFusion
import Testing

/// A pick-and-place-like joint trajectory with analytic derivatives: slow multi-sine sway plus
/// minimum-jerk moves and trapezoidal-velocity moves (piecewise-constant acceleration, i.e. jerk
/// impulses, as a servo's profile generator produces).
private struct PickAndPlaceJointTrajectory {
    struct Move {
        var startS: Double
        var durationS: Double
        var distanceRad: Double
        var isTrapezoid: Bool
    }
    var moves: [Move] = [
        Move(startS: 0.5, durationS: 0.8, distanceRad: 1.2, isTrapezoid: false),
        Move(startS: 1.8, durationS: 0.6, distanceRad: -0.7, isTrapezoid: true),
        Move(startS: 3.0, durationS: 1.0, distanceRad: 1.5, isTrapezoid: true),
        Move(startS: 4.5, durationS: 0.5, distanceRad: -1.8, isTrapezoid: false),
        Move(startS: 5.5, durationS: 0.7, distanceRad: 0.9, isTrapezoid: true),
        Move(startS: 6.6, durationS: 0.9, distanceRad: -1.1, isTrapezoid: false),
    ]
    let sines: [(amplitude: Double, hz: Double, phase: Double)] = [
        (0.15, 0.31, 0.2), (0.05, 1.7, 1.1), (0.02, 3.9, 2.0),
    ]

    /// (position rad, velocity rad/s, acceleration rad/s²) at time t.
    func sample(_ t: Double) -> (Double, Double, Double) {
        var p = 0.3
        var v = 0.0
        var a = 0.0
        for s in sines {
            let w = 2 * Double.pi * s.hz
            p += s.amplitude * sin(w * t + s.phase)
            v += s.amplitude * w * cos(w * t + s.phase)
            a -= s.amplitude * w * w * sin(w * t + s.phase)
        }
        for m in moves {
            let u = (t - m.startS) / m.durationS
            if u <= 0 { continue }
            if u >= 1 {
                p += m.distanceRad
                continue
            }
            let d = m.distanceRad
            let T = m.durationS
            if m.isTrapezoid {
                // Thirds: accelerate, cruise, decelerate; peak velocity 1.5 d / T.
                let vMax = 1.5 * d / T
                let accel = vMax / (T / 3)
                let tau = u * T
                if u < 1.0 / 3 {
                    p += 0.5 * accel * tau * tau
                    v += accel * tau
                    a += accel
                } else if u < 2.0 / 3 {
                    p += d / 4 + vMax * (tau - T / 3)
                    v += vMax
                } else {
                    let r = T - tau
                    p += d - 0.5 * accel * r * r
                    v += accel * r
                    a -= accel
                }
            } else {
                p += d * (10 * u * u * u - 15 * u * u * u * u + 6 * u * u * u * u * u)
                v += d / T * (30 * u * u - 60 * u * u * u + 30 * u * u * u * u)
                a += d / (T * T) * (60 * u - 180 * u * u + 120 * u * u * u)
            }
        }
        return (p, v, a)
    }
}

/// Delay (in samples) of `estimate` behind `truth`, two ways: the peak of their cross-correlation refined
/// by a parabola through the three best shifts, and the least-squares fit of the error against
/// acceleration (estimate ≈ truth(t − τ) ≈ truth − τ·acceleration — the "ramp" method applied to the
/// whole run).
private func velocityLagTicks(estimate: [Double], truth: [Double], truthDerivative: [Double], dt: Double) -> (
    crossCorrelation: Double, regression: Double
) {
    let n = estimate.count
    let maxShift = 10
    var best = -Double.infinity
    var bestShift = 0
    var scores = [Double](repeating: 0, count: 2 * maxShift + 1)
    for shift in -maxShift...maxShift {
        var sum = 0.0
        for i in (maxShift)..<(n - maxShift) { sum += estimate[i] * truth[i - shift] }
        scores[shift + maxShift] = sum
        if sum > best {
            best = sum
            bestShift = shift
        }
    }
    var peak = Double(bestShift)
    let index = bestShift + maxShift
    if index > 0, index < scores.count - 1 {
        let (l, c, r) = (scores[index - 1], scores[index], scores[index + 1])
        let denominator = l - 2 * c + r
        if denominator != 0 { peak += 0.5 * (l - r) / denominator }
    }
    var num = 0.0
    var den = 0.0
    for i in 0..<n {
        num += (estimate[i] - truth[i]) * truthDerivative[i]
        den += truthDerivative[i] * truthDerivative[i]
    }
    return (peak, -num / den / dt)
}

private struct JointRunResult {
    var filterRMS: Double
    var finiteDifferenceRMS: Double
    var accelerationRMS: Double
    var filterLag: (crossCorrelation: Double, regression: Double)
    var finiteDifferenceLag: (crossCorrelation: Double, regression: Double)
}

private func runJointFilter(
    servoVelocity: Bool, seconds: Double = 8.0, jerk: Double = JointStateFilter.Parameters().jerkSpectralDensity
) -> JointRunResult {
    let trajectory = PickAndPlaceJointTrajectory()
    let dt = 1.0 / 500
    let steps = Int(seconds / dt)
    let parameters = JointStateFilter.Parameters(jerkSpectralDensity: jerk)
    let countsPerRad = Double(parameters.encoderCountsPerTurn) / (2 * Double.pi)
    var filter = JointStateFilter(parameters: parameters)
    var random = EstimationTestRandom(seed: 7)
    // A Dynamixel-like velocity register: 0.229 rpm units, plus a little noise.
    let velocityUnit = 0.229 * 2 * Double.pi / 60
    let velocityVariance = velocityUnit * velocityUnit / 12 + 0.01 * 0.01
    var estimates: [Double] = []
    var differences: [Double] = []
    var truths: [Double] = []
    var accelerations: [Double] = []
    var accelerationErrorSum = 0.0
    var previousMeasured = 0.0
    let skip = 50  // start-up transient of both estimators
    for k in 0..<steps {
        let t = Double(k) * dt
        let (p, v, a) = trajectory.sample(t)
        let counts = Int32((p * countsPerRad).rounded(.down))
        let measured = Double(counts) / countsPerRad
        filter.predict(dtSeconds: dt)
        filter.updateEncoderCounts(counts)
        if servoVelocity {
            let reading = ((v + 0.01 * random.gaussian()) / velocityUnit).rounded() * velocityUnit
            filter.updateVelocity(reading, varianceRad2PerS2: velocityVariance)
        }
        let difference = (measured - previousMeasured) / dt
        previousMeasured = measured
        if k >= skip {
            estimates.append(filter.velocityRadPerS)
            differences.append(difference)
            truths.append(v)
            accelerations.append(a)
            let e = filter.accelerationRadPerS2 - a
            accelerationErrorSum += e * e
        }
    }
    func rms(_ x: [Double]) -> Double {
        var s = 0.0
        for i in 0..<x.count { s += (x[i] - truths[i]) * (x[i] - truths[i]) }
        return (s / Double(x.count)).squareRoot()
    }
    return JointRunResult(
        filterRMS: rms(estimates), finiteDifferenceRMS: rms(differences),
        accelerationRMS: (accelerationErrorSum / Double(estimates.count)).squareRoot(),
        filterLag: velocityLagTicks(estimate: estimates, truth: truths, truthDerivative: accelerations, dt: dt),
        finiteDifferenceLag: velocityLagTicks(
            estimate: differences, truth: truths, truthDerivative: accelerations, dt: dt))
}

@Suite struct JointStateFilterTests {
    @Test func beatsFiniteDifferencesFiveTimesWithLessThanOneTickOfLag() {
        let r = runJointFilter(servoVelocity: false)
        print(
            "joint filter (encoder only): velocity RMS \(r.filterRMS) rad/s vs finite differences "
                + "\(r.finiteDifferenceRMS) rad/s, ratio \(r.finiteDifferenceRMS / r.filterRMS); "
                + "lag xcorr \(r.filterLag.crossCorrelation) ticks, regression \(r.filterLag.regression) ticks "
                + "(finite differences: \(r.finiteDifferenceLag.crossCorrelation), "
                + "\(r.finiteDifferenceLag.regression)); acceleration RMS \(r.accelerationRMS) rad/s²")
        #expect(r.finiteDifferenceRMS / r.filterRMS >= 5)
        #expect(abs(r.filterLag.crossCorrelation) < 1)
        #expect(abs(r.filterLag.regression) < 1)
        // The lag measure itself is sound: a backward difference lags by half a tick.
        #expect(abs(r.finiteDifferenceLag.regression - 0.5) < 0.1)
    }

    @Test func servoVelocityReadingImprovesTheEstimate() {
        let encoderOnly = runJointFilter(servoVelocity: false)
        let withVelocity = runJointFilter(servoVelocity: true)
        print(
            "joint filter (encoder + servo velocity): velocity RMS \(withVelocity.filterRMS) rad/s, ratio "
                + "\(withVelocity.finiteDifferenceRMS / withVelocity.filterRMS), lag regression "
                + "\(withVelocity.filterLag.regression) ticks")
        #expect(withVelocity.filterRMS < encoderOnly.filterRMS)
        #expect(abs(withVelocity.filterLag.regression) < 1)
    }

    /// Acceleration derived from the servo current (τ = k_t·i = J·a, with 5% current noise and a
    /// miscalibrated torque constant) sharpens the estimate during the moves.
    @Test func accelerationFromCurrentImprovesTheEstimate() {
        let trajectory = PickAndPlaceJointTrajectory()
        let dt = 1.0 / 500
        var encoderOnly = JointStateFilter()
        var withCurrent = JointStateFilter()
        var random = EstimationTestRandom(seed: 3)
        var errorEncoderOnly = 0.0
        var errorWithCurrent = 0.0
        let countsPerRad = 4096 / (2 * Double.pi)
        for k in 0..<4000 {
            let (p, v, a) = trajectory.sample(Double(k) * dt)
            let counts = Int32((p * countsPerRad).rounded(.down))
            encoderOnly.predict(dtSeconds: dt)
            encoderOnly.updateEncoderCounts(counts)
            withCurrent.predict(dtSeconds: dt)
            withCurrent.updateEncoderCounts(counts)
            let accelerationFromCurrent = 1.03 * a + 0.5 * random.gaussian()
            withCurrent.updateAcceleration(accelerationFromCurrent, varianceRad2PerS4: 0.5 * 0.5 + 1)
            if k >= 50 {
                errorEncoderOnly += (encoderOnly.velocityRadPerS - v) * (encoderOnly.velocityRadPerS - v)
                errorWithCurrent += (withCurrent.velocityRadPerS - v) * (withCurrent.velocityRadPerS - v)
            }
        }
        let rmsEncoderOnly = (errorEncoderOnly / 3950).squareRoot()
        let rmsWithCurrent = (errorWithCurrent / 3950).squareRoot()
        print(
            "joint filter (encoder + acceleration from current): velocity RMS \(rmsWithCurrent) rad/s "
                + "(encoder only \(rmsEncoderOnly))")
        #expect(rmsWithCurrent < 0.8 * rmsEncoderOnly)
    }

    /// A real bus drops reads and the tick jitters: with 5% of samples missing (predict only) and sample
    /// times jittered by ±20% of a tick, the filter must still beat finite differences (taken over the
    /// actual interval between received samples) by 5×.
    @Test func toleratesMissedSamplesAndJitter() {
        let trajectory = PickAndPlaceJointTrajectory()
        let nominalDt = 1.0 / 500
        var filter = JointStateFilter()
        var random = EstimationTestRandom(seed: 12)
        let countsPerRad = 4096 / (2 * Double.pi)
        var previousTime = 0.0
        var previousMeasured = 0.0
        var lastTime = 0.0
        var filterError = 0.0
        var differenceError = 0.0
        var count = 0
        for k in 1..<4000 {
            let t = Double(k) * nominalDt + 0.2 * nominalDt * (2 * random.uniform() - 1)
            filter.predict(dtSeconds: t - lastTime)
            lastTime = t
            if random.uniform() < 0.05 { continue }
            let (p, v, _) = trajectory.sample(t)
            let measured = (p * countsPerRad).rounded(.down) / countsPerRad
            filter.updatePosition(measured)
            if k > 50 {
                let difference = (measured - previousMeasured) / (t - previousTime)
                filterError += (filter.velocityRadPerS - v) * (filter.velocityRadPerS - v)
                differenceError += (difference - v) * (difference - v)
                count += 1
            }
            previousTime = t
            previousMeasured = measured
        }
        let ratio = (differenceError / filterError).squareRoot()
        print("joint filter with 5% missed samples and ±20% jitter: RMS ratio \(ratio)")
        #expect(ratio >= 5)
    }

    @Test func followsAWrappingSingleTurnEncoder() {
        var filter = JointStateFilter(parameters: .init(positionWrapsEveryTurn: true))
        let dt = 0.002
        let velocity = 3.0
        var velocitySum = 0.0
        for k in 0..<2000 {
            let angle = 1.0 + velocity * Double(k) * dt
            let counts = Int32((angle / (2 * Double.pi) * 4096).rounded(.down)) & 4095
            filter.predict(dtSeconds: dt)
            filter.updateEncoderCounts(counts)
            if k >= 1000 { velocitySum += filter.velocityRadPerS }
        }
        // Several wraps happened (1 + 6 rad … 13 rad); a wrap glitch would show as a ±2π/dt spike.
        #expect(abs(velocitySum / 1000 - velocity) < 0.01)
        #expect(abs(filter.positionRad - (1.0 + velocity * 1999 * dt)) < 0.01)
    }

    @Test func estimatorAllocatesNothingPerTick() {
        let estimator = JointStateEstimator(jointCount: 6)
        estimator.step(joint: 0, dtSeconds: 0.002, encoderCounts: 10)
        let before = sinew_thread_allocations()
        for k in 0..<100_000 {
            let joint = k % 6
            estimator.step(
                joint: joint, dtSeconds: 0.002, encoderCounts: Int32(k / 7), servoVelocityRadPerS: 0.1,
                servoVelocityVariance: 1e-4)
        }
        let delta = sinew_thread_allocations() - before
        #expect(delta == 0)
        #expect(estimator.velocityRadPerS(joint: 0).isFinite)
    }
}
