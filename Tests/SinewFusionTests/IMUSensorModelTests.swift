import Foundation
import SinewFusion
import Testing

@Suite struct IMUSensorModelTests {
    @Test func whiteNoiseMatchesTheDensity() {
        let density = 0.01
        var model = IMUSensorModel(
            gyroscope: IMUAxisModel(noiseDensity: density), accelerometer: IMUAxisModel(noiseDensity: 2 * density),
            sampleRateHz: 400, seed: 3)
        let n = 100_000
        var sum = SIMD3<Double>.zero
        var squares = SIMD3<Double>.zero
        var accelSquares = SIMD3<Double>.zero
        for _ in 0..<n {
            let s = model.sample(trueAngularVelocityRadPerS: .zero, trueSpecificForceMPerS2: .zero)
            sum += s.angularVelocityRadPerS
            squares += s.angularVelocityRadPerS * s.angularVelocityRadPerS
            accelSquares += s.specificForceMPerS2 * s.specificForceMPerS2
        }
        let expected = density * 400.0.squareRoot()
        for axis in 0..<3 {
            let std = (squares[axis] / Double(n)).squareRoot()
            #expect(abs(std / expected - 1) < 0.02)
            #expect(abs((accelSquares[axis] / Double(n)).squareRoot() / (2 * expected) - 1) < 0.02)
            #expect(abs(sum[axis] / Double(n)) < 4 * expected / Double(n).squareRoot())
        }
        #expect(abs(Double(n) / 400 - 250) < 1e-9)
    }

    @Test func scaleCrossAxisBiasQuantisationAndSaturation() {
        var cross = InlineArray<9, Double>(repeating: 0)
        cross[1] = 0.01
        cross[5] = -0.02
        cross[6] = 0.03
        let gyro = IMUAxisModel(
            noiseDensity: 0, turnOnBias: SIMD3(0.1, 0, -0.1), scaleFactorError: SIMD3(0.01, -0.02, 0),
            crossAxis: cross, range: 5)
        let accel = IMUAxisModel(noiseDensity: 0, range: 16 * 9.80665, resolution: 0.01)
        var model = IMUSensorModel(gyroscope: gyro, accelerometer: accel, sampleRateHz: 100)
        let s = model.sample(trueAngularVelocityRadPerS: SIMD3(1, 2, 3), trueSpecificForceMPerS2: SIMD3(0.123, 0, 9.81))
        let scaled = SIMD3(1.01, 1.96, 3.0)
        let expected = SIMD3(
            scaled.x + 0.01 * scaled.y + 0.1, scaled.y - 0.02 * scaled.z, 0.03 * scaled.x + scaled.z - 0.1)
        #expect(abs(s.angularVelocityRadPerS.x - expected.x) < 1e-12)
        #expect(abs(s.angularVelocityRadPerS.y - expected.y) < 1e-12)
        #expect(abs(s.angularVelocityRadPerS.z - expected.z) < 1e-12)
        #expect(abs(s.specificForceMPerS2.x - 0.12) < 1e-12)
        #expect(abs(s.specificForceMPerS2.z - 9.81) < 1e-12)
        #expect(abs(s.timestampSeconds - 0.01) < 1e-15)
        let saturated = model.sample(
            trueAngularVelocityRadPerS: SIMD3(100, -100, 0), trueSpecificForceMPerS2: SIMD3(0, 0, -1000))
        #expect(saturated.angularVelocityRadPerS.x == 5 && saturated.angularVelocityRadPerS.y == -5)
        #expect(saturated.specificForceMPerS2.z == -16 * 9.80665)
    }

    @Test func biasRandomWalkGrowsWithTheSquareRootOfTime() {
        // 200 sensors for 100 s: the drift variance must be σ²·t (within 20%, ≈3.4 standard errors).
        let walk = 0.001
        var variance = 0.0
        var count = 0
        for seed in 0..<200 {
            var model = IMUSensorModel(
                gyroscope: IMUAxisModel(noiseDensity: 0, biasRandomWalk: walk),
                accelerometer: IMUAxisModel(noiseDensity: 0),
                sampleRateHz: 100, seed: UInt64(seed + 1))
            for _ in 0..<10_000 { _ = model.sample(trueAngularVelocityRadPerS: .zero, trueSpecificForceMPerS2: .zero) }
            let drift = model.gyroDriftRadPerS
            variance += (drift * drift).sum()
            count += 3
        }
        let ratio = variance / Double(count) / (walk * walk * 100)
        #expect(abs(ratio - 1) < 0.2)
    }

    @Test func biasInstabilityIsAStationaryGaussMarkovProcess() {
        let instability = 0.002
        var model = IMUSensorModel(
            gyroscope: IMUAxisModel(noiseDensity: 0, biasInstability: instability, biasCorrelationTimeSeconds: 0.5),
            accelerometer: IMUAxisModel(noiseDensity: 0), sampleRateHz: 200, seed: 5)
        var squares = 0.0
        let n = 400_000  // 2000 s = 4000 correlation times
        for _ in 0..<n {
            let s = model.sample(trueAngularVelocityRadPerS: .zero, trueSpecificForceMPerS2: .zero)
            squares += (s.angularVelocityRadPerS * s.angularVelocityRadPerS).sum()
        }
        let std = (squares / Double(3 * n)).squareRoot()
        #expect(abs(std / instability - 1) < 0.05)
    }

    @Test func sameSeedSameSamples() {
        var a = IMUSensorModel.consumerMEMS(seed: 9)
        var b = IMUSensorModel.consumerMEMS(seed: 9)
        var c = IMUSensorModel.consumerMEMS(seed: 10)
        let truth = (SIMD3(0.1, -0.2, 0.3), SIMD3(0.0, 0.0, 9.80665))
        var differsFromOtherSeed = false
        for _ in 0..<100 {
            let sa = a.sample(trueAngularVelocityRadPerS: truth.0, trueSpecificForceMPerS2: truth.1)
            let sb = b.sample(trueAngularVelocityRadPerS: truth.0, trueSpecificForceMPerS2: truth.1)
            let sc = c.sample(trueAngularVelocityRadPerS: truth.0, trueSpecificForceMPerS2: truth.1)
            #expect(sa == sb)
            if sa != sc { differsFromOtherSeed = true }
        }
        #expect(differsFromOtherSeed)
    }
}
