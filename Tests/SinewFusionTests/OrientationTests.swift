import CAllocCounter
import Foundation
import SinewFusion
import SinewTestSupport
import Testing

/// Five BROAD trials in Tests/Fixtures/imu/broad (source, citation and licence in its README.md).

private let broadFiles = [
    "02_undisturbed_slow_rotation_B", "07_undisturbed_fast_rotation_B", "16_undisturbed_fast_translation_B",
    "25_disturbed_tapping_B", "33_disturbed_attached_magnet_2cm",
]

private let degree = Double.pi / 180
private let gravityMPerS2 = 9.81
/// A field like BROAD's lab (µT, ENU): north and steeply down.
private let earthFieldMicroTesla = SIMD3<Double>(0, 16, -41)
private let samplePeriodS = 1.0 / 285.714

/// Deterministic noise for synthetic sensors.
private struct OrientationTestNoise {
    var state: UInt64
    mutating func uniform() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
    /// Approximately normal (sum of 4 uniforms), standard deviation `sigma`.
    mutating func gaussian(_ sigma: Double) -> Double {
        (uniform() + uniform() + uniform() + uniform() - 2) * sigma * 3.0.squareRoot()
    }
    mutating func vector(_ sigma: Double) -> SIMD3<Double> { SIMD3(gaussian(sigma), gaussian(sigma), gaussian(sigma)) }
}

/// A simulated IMU: integrates the true orientation from a body rate and produces noisy gyroscope (with bias),
/// accelerometer and magnetometer samples with BROAD-like noise levels.
private struct OrientationTestIMU {
    var truth: OrientationQuaternion
    var gyroBiasRadPerS = SIMD3<Double>.zero
    var noise = OrientationTestNoise(state: 42)

    /// Advances by one sample with body rate `rateRadPerS` (sensor frame), earth-frame linear acceleration
    /// `linearAccelerationEarth` and an earth-frame magnetic disturbance `disturbanceEarth`.
    mutating func sample(
        rateRadPerS: SIMD3<Double>, linearAccelerationEarth: SIMD3<Double> = .zero,
        disturbanceEarth: SIMD3<Double> = .zero
    ) -> (gyro: SIMD3<Double>, acc: SIMD3<Double>, mag: SIMD3<Double>) {
        truth = (truth * OrientationQuaternion(rotationVectorRad: rateRadPerS * samplePeriodS)).normalized
        let gyro = rateRadPerS + gyroBiasRadPerS + noise.vector(0.1 * degree)
        let acc =
            truth.inverseRotate(SIMD3(0, 0, gravityMPerS2) + linearAccelerationEarth) + noise.vector(0.05)
        let mag = truth.inverseRotate(earthFieldMicroTesla + disturbanceEarth) + noise.vector(0.7)
        return (gyro, acc, mag)
    }
}

private func randomOrientation(_ noise: inout OrientationTestNoise) -> OrientationQuaternion {
    OrientationQuaternion(
        w: noise.gaussian(1), x: noise.gaussian(1), y: noise.gaussian(1), z: noise.gaussian(1)
    ).normalized
}

@Test func orientationUpdateAllocatesNothing() {
    var imu = OrientationTestIMU(truth: .identity)
    var samples = [(gyro: SIMD3<Double>, acc: SIMD3<Double>, mag: SIMD3<Double>)]()
    for i in 0..<4096 {
        let t = Double(i) * samplePeriodS
        samples.append(imu.sample(rateRadPerS: SIMD3(sin(t), cos(2 * t), 0.5)))
    }
    var ahrs9 = AHRS(samplePeriodS: samplePeriodS)
    var ahrs6 = AHRS(samplePeriodS: samplePeriodS)
    for s in samples {
        ahrs9.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: s.mag)
        ahrs6.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc)
    }
    var checksum = 0.0
    let before = sinew_thread_allocations()
    samples.withUnsafeBufferPointer { buffer in
        for _ in 0..<50 {
            for s in buffer {
                ahrs9.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: s.mag)
                ahrs6.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc)
            }
            checksum += ahrs9.orientation.w + ahrs6.orientation.w
        }
    }
    let delta = sinew_thread_allocations() - before
    #expect(delta == 0)
    #expect(checksum.isFinite)
}

@Test func startUpConvergesFromArbitraryStillOrientations() {
    var noise = OrientationTestNoise(state: 7)
    for _ in 0..<20 {
        let truth = randomOrientation(&noise)
        var imu = OrientationTestIMU(truth: truth, noise: OrientationTestNoise(state: noise.state))
        var ahrs9 = AHRS(samplePeriodS: samplePeriodS)
        var ahrs6 = AHRS(samplePeriodS: samplePeriodS)
        var worstAfterTwoSeconds = (total9: 0.0, inclination6: 0.0)
        for i in 0..<Int(4 / samplePeriodS) {
            let s = imu.sample(rateRadPerS: .zero)
            ahrs9.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: s.mag)
            ahrs6.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc)
            if Double(i) * samplePeriodS > 2 {
                let e9 = ahrs9.orientation.errorAnglesRad(relativeTo: imu.truth)
                let e6 = ahrs6.orientation.errorAnglesRad(relativeTo: imu.truth)
                worstAfterTwoSeconds.total9 = max(worstAfterTwoSeconds.total9, e9.totalRad)
                worstAfterTwoSeconds.inclination6 = max(worstAfterTwoSeconds.inclination6, e6.inclinationRad)
            }
        }
        #expect(worstAfterTwoSeconds.total9 < 1 * degree, "truth \(truth)")
        #expect(worstAfterTwoSeconds.inclination6 < 0.5 * degree, "truth \(truth)")
    }
}

@Test func gyroscopeBiasIsLearnedAtRest() {
    let bias = SIMD3<Double>(0.5, -0.3, 0.8) * degree
    var noise = OrientationTestNoise(state: 3)
    var imu = OrientationTestIMU(truth: randomOrientation(&noise), gyroBiasRadPerS: bias)
    var ahrs = AHRS(samplePeriodS: samplePeriodS)
    // 10 s still, then 60 s of 6-D turning: heading may only drift by what the residual bias explains.
    for _ in 0..<Int(10 / samplePeriodS) {
        let s = imu.sample(rateRadPerS: .zero)
        ahrs.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc)
    }
    #expect(ahrs.isResting)
    let residual = ahrs.gyroBiasRadPerS - bias
    #expect((residual * residual).sum().squareRoot() < 0.02 * degree, "bias estimate \(ahrs.gyroBiasRadPerS)")

    let headingBefore = ahrs.orientation.errorAnglesRad(relativeTo: imu.truth).headingRad
    for i in 0..<Int(60 / samplePeriodS) {
        let t = Double(i) * samplePeriodS
        let s = imu.sample(rateRadPerS: SIMD3(0.3 * sin(t), 0.3 * cos(0.7 * t), 0.8 * sin(0.5 * t)))
        ahrs.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc)
    }
    let error = ahrs.orientation.errorAnglesRad(relativeTo: imu.truth)
    // An unestimated bias of 0.8 °/s would have turned the heading by 48°.
    #expect(abs(error.headingRad - headingBefore) < 1.5 * degree)
    #expect(error.inclinationRad < 1 * degree)
}

@Test func magneticDisturbanceIsRejectedAndHeadingRecovers() {
    var imu = OrientationTestIMU(truth: OrientationQuaternion(axis: SIMD3(1, 2, 3), angleRad: 1))
    imu.gyroBiasRadPerS = SIMD3(0.2, -0.1, 0.3) * degree
    var ahrs = AHRS(samplePeriodS: samplePeriodS)
    var worstDuring = 0.0
    var rejectedDuring = 0
    var samplesDuring = 0
    var finalHeadingError = 0.0
    let total = Int(60 / samplePeriodS)
    for i in 0..<total {
        let t = Double(i) * samplePeriodS
        // Still for 10 s (bias), then turning in all axes; a magnet of 2× the earth's field (pointing east and
        // up) is near the sensor from 30 s to 37 s.
        let moving = t > 10
        let rate = moving ? SIMD3(0.8 * sin(1.3 * t), 0.6 * cos(0.9 * t), 1.0 * sin(0.4 * t)) : .zero
        let magnetOn = t >= 30 && t < 37
        // Brought in and taken away within a second each, as by hand.
        let strength = min(1, max(0, t - 30), max(0, 37 - t))
        let disturbance = strength * SIMD3<Double>(60, 10, 50)
        let s = imu.sample(rateRadPerS: rate, disturbanceEarth: disturbance)
        ahrs.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: s.mag)
        let error = ahrs.orientation.errorAnglesRad(relativeTo: imu.truth)
        if magnetOn || (t >= 37 && t < 42) {
            worstDuring = max(worstDuring, error.headingRad)
        }
        if t > 31 && t < 36 {
            samplesDuring += 1
            if !ahrs.isMagneticFieldAccepted { rejectedDuring += 1 }
        }
        if i == total - 1 { finalHeadingError = error.headingRad }
    }
    #expect(worstDuring < 2 * degree)
    #expect(rejectedDuring == samplesDuring)
    #expect(finalHeadingError < 1 * degree)
}

@Test func accelerationDisturbanceDoesNotTiltAndRecovers() {
    var imu = OrientationTestIMU(truth: OrientationQuaternion(axis: SIMD3(0, 1, 0), angleRad: 0.4))
    var ahrs = AHRS(samplePeriodS: samplePeriodS)
    var worstDuring = 0.0
    var final = 0.0
    let total = Int(40 / samplePeriodS)
    for i in 0..<total {
        let t = Double(i) * samplePeriodS
        let rate = t > 5 ? SIMD3(0.5 * sin(t), 0.4 * cos(0.8 * t), 0.3) : .zero
        // 10 s of vigorous back-and-forth translation (±8 m/s² horizontally, ±4 m/s² vertically), with impacts.
        let shaking = t >= 10 && t < 20
        var linear = SIMD3<Double>.zero
        if shaking {
            linear = SIMD3(8 * sin(2 * .pi * 1.5 * t), 6 * cos(2 * .pi * 0.9 * t), 4 * sin(2 * .pi * 2.1 * t))
            if i % 300 == 0 { linear += SIMD3(100, -60, 80) }
        }
        let s = imu.sample(rateRadPerS: rate, linearAccelerationEarth: linear)
        ahrs.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: s.mag)
        let error = ahrs.orientation.errorAnglesRad(relativeTo: imu.truth)
        if shaking { worstDuring = max(worstDuring, error.inclinationRad) }
        if i == total - 1 { final = error.inclinationRad }
    }
    #expect(worstDuring < 3 * degree)
    #expect(final < 0.5 * degree)
}

@Test func broadTrialsMeanErrorStaysBelowBound() throws {
    let trials = try broadFiles.map { name in try BROADTrial.load(path: try fixture("imu/broad/\(name).csv")) }
    #expect(trials.allSatisfy { $0.count > 40_000 })
    let summary = BROADEvaluation.evaluate(trials)
    // Achieved 1.56° total (1.38° heading, 0.64° inclination); Madgwick's best is 4.83°.
    #expect(summary.mean.totalDeg < 1.8, "\(summary.table)")
    #expect(summary.mean.headingDeg < 1.65)
    #expect(summary.mean.inclinationDeg < 0.8)
    for trial in summary.trials { #expect(trial.errors.totalDeg < 2.6, "\(trial.name)") }
    let json = try JSONSerialization.jsonObject(with: Data(summary.json.utf8)) as? [String: Any]
    let mean = json?["mean"] as? [String: Double]
    #expect(abs((mean?["total_deg"] ?? 0) - summary.mean.totalDeg) < 1e-9)
    #expect((json?["trials"] as? [[String: Any]])?.count == 5)
    #expect(summary.json.hasPrefix("{\"trials\": [{\"name\": \"02_undisturbed_slow_rotation_B\", \"total_deg\": "))
}

@Test func broadLoaderNamesFileAndLineOfBadInput() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-orientation-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let header = "t_s,gyr_x,gyr_y,gyr_z,acc_x,acc_y,acc_z,mag_x,mag_y,mag_z,ref_qw,ref_qx,ref_qy,ref_qz,movement\n"
    let good = "0.0,0,0,0,0,0,9.81,0,16,-41,nan,nan,nan,nan,0\n"
    let path = directory.appendingPathComponent("bad.csv").path
    try (header + good + good + "0.007,0,0,0,0,0,9.81,0,16,oops,1,0,0,0,1\n").write(
        toFile: path, atomically: true, encoding: .utf8)
    #expect {
        _ = try BROADTrial.load(path: path)
    } throws: { error in
        guard let error = error as? BROADError else { return false }
        return error.location.file == path && error.location.line == 4 && error.message.contains("mag_z")
    }
    try (header + good + "0.0,0,0\n").write(toFile: path, atomically: true, encoding: .utf8)
    #expect {
        _ = try BROADTrial.load(path: path)
    } throws: { error in
        (error as? BROADError)?.location.line == 3
    }
    // Windows line ends, no final newline, columns in another order are all fine.
    let reordered = "movement,t_s,gyr_x,gyr_y,gyr_z,acc_x,acc_y,acc_z,mag_x,mag_y,mag_z,ref_qw,ref_qx,ref_qy,ref_qz\r\n"
    let row = "1,0.0,0,0,0,0,0,9.81,0,16,-41,1,0,0,0"
    let goodPath = directory.appendingPathComponent("good.csv").path
    try (reordered + row + "\r\n" + row.replacingOccurrences(of: "1,0.0,", with: "1,0.0035,")).write(
        toFile: goodPath, atomically: true, encoding: .utf8)
    let trial = try BROADTrial.load(path: goodPath)
    #expect(trial.count == 2 && trial.name == "good" && trial.movement == [true, true])
    let result = BROADEvaluation.run(trial)
    let written = try BROADEvaluation.writeEstimates(result, directory: directory.appendingPathComponent("out").path)
    let text = try String(contentsOfFile: written, encoding: .utf8)
    #expect(text.hasPrefix("t_s,q_w,q_x,q_y,q_z\n0.0,"))
    #expect(text.split(separator: "\n").count == 3)
}

@Test func nonFiniteSamplesAreDroppedWithoutHarm() {
    var imu = OrientationTestIMU(truth: OrientationQuaternion(axis: SIMD3(1, 0, 0), angleRad: 0.3))
    var ahrs = AHRS(samplePeriodS: samplePeriodS)
    for i in 0..<Int(5 / samplePeriodS) {
        var s = imu.sample(rateRadPerS: SIMD3(0, 0, 0.2))
        if i == 1000 { s.gyro.y = .nan }
        if i == 1001 { s.acc.z = .infinity }
        if i == 1002 { s.mag.x = .nan }  // 6-D for this sample only
        ahrs.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: s.mag)
    }
    #expect(ahrs.droppedSampleCount == 2)
    // Two lost samples of 0.2 rad/s cost 0.08° of heading; nothing else.
    #expect(ahrs.orientation.errorAnglesRad(relativeTo: imu.truth).totalRad < 0.5 * degree)
}

@Test func headingConvergesWhenTheMagnetometerStartsLate() {
    var noise = OrientationTestNoise(state: 11)
    var imu = OrientationTestIMU(truth: randomOrientation(&noise))
    var ahrs = AHRS(samplePeriodS: samplePeriodS)
    let missing = SIMD3<Double>(.nan, .nan, .nan)
    for i in 0..<Int(6 / samplePeriodS) {
        let t = Double(i) * samplePeriodS
        let s = imu.sample(rateRadPerS: SIMD3(0.2 * sin(t), 0.1, -0.3 * cos(t)))
        ahrs.update(gyroRadPerS: s.gyro, accelerationMPerS2: s.acc, magneticField: t < 2 ? missing : s.mag)
    }
    #expect(ahrs.orientation.errorAnglesRad(relativeTo: imu.truth).totalRad < 1 * degree)
    #expect(abs(ahrs.magneticReferenceNorm - 43.9) < 1)
}
