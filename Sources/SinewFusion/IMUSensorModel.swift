import Foundation

/// Datasheet-style model of one triaxial sensor (gyroscope or accelerometer) of an IMU.
///
/// measured = saturate(quantise(M · (1 + scaleFactorError) ⊙ true + turnOnBias + b(t) + white noise)),
/// where M = I + crossAxis (off-diagonal misalignment / cross-axis sensitivity, small angles in rad) and
/// b(t) is the in-run bias: a first-order Gauss–Markov process (standard deviation `biasInstability`,
/// correlation time `biasCorrelationTimeSeconds`) plus a random walk (`biasRandomWalk`). Units are those of
/// the sensor: rad/s for a gyroscope, m/s² for an accelerometer.
public struct IMUAxisModel: Sendable, Equatable {
    /// White-noise density, unit/√Hz (the per-sample standard deviation is density · √rate).
    public var noiseDensity: Double
    /// In-run bias instability, unit, used as the 1σ of the Gauss–Markov bias. (A datasheet's Allan floor
    /// is about 0.664 of this σ for flicker noise; using it directly is the usual conservative choice.)
    public var biasInstability: Double
    public var biasCorrelationTimeSeconds: Double
    /// Bias random walk, unit/√s.
    public var biasRandomWalk: Double
    /// Constant bias from power-up, unit.
    public var turnOnBias: SIMD3<Double>
    /// Per-axis scale-factor error, fraction (0.01 = 1%).
    public var scaleFactorError: SIMD3<Double>
    /// Cross-axis matrix, row-major 3×3; the diagonal is ignored (that is the scale factor).
    public var crossAxis: InlineArray<9, Double>
    /// Full-scale range, unit: outputs clip to ±range.
    public var range: Double
    /// Output resolution (one LSB), unit; 0 leaves the value unquantised.
    public var resolution: Double

    public init(
        noiseDensity: Double, biasInstability: Double = 0, biasCorrelationTimeSeconds: Double = 100,
        biasRandomWalk: Double = 0, turnOnBias: SIMD3<Double> = .zero, scaleFactorError: SIMD3<Double> = .zero,
        crossAxis: InlineArray<9, Double> = InlineArray(repeating: 0), range: Double = .infinity,
        resolution: Double = 0
    ) {
        self.noiseDensity = noiseDensity
        self.biasInstability = biasInstability
        self.biasCorrelationTimeSeconds = biasCorrelationTimeSeconds
        self.biasRandomWalk = biasRandomWalk
        self.turnOnBias = turnOnBias
        self.scaleFactorError = scaleFactorError
        self.crossAxis = crossAxis
        self.range = range
        self.resolution = resolution
    }

    public static func == (a: IMUAxisModel, b: IMUAxisModel) -> Bool {
        guard
            a.noiseDensity == b.noiseDensity, a.biasInstability == b.biasInstability,
            a.biasCorrelationTimeSeconds == b.biasCorrelationTimeSeconds, a.biasRandomWalk == b.biasRandomWalk,
            a.turnOnBias == b.turnOnBias, a.scaleFactorError == b.scaleFactorError, a.range == b.range,
            a.resolution == b.resolution
        else { return false }
        for i in 0..<9 where a.crossAxis[i] != b.crossAxis[i] { return false }
        return true
    }
}

/// One IMU sample as the device would report it.
public struct IMUSensorSample: Sendable, Equatable {
    /// Sample time, s.
    public var timestampSeconds: Double
    /// Body angular velocity, rad/s.
    public var angularVelocityRadPerS: SIMD3<Double>
    /// Specific force (acceleration minus gravity, what an accelerometer reads), m/s².
    public var specificForceMPerS2: SIMD3<Double>

    public init(timestampSeconds: Double, angularVelocityRadPerS: SIMD3<Double>, specificForceMPerS2: SIMD3<Double>) {
        self.timestampSeconds = timestampSeconds
        self.angularVelocityRadPerS = angularVelocityRadPerS
        self.specificForceMPerS2 = specificForceMPerS2
    }
}

/// A virtual IMU: turns the true body angular velocity and specific force of the link it is attached to
/// into samples with datasheet errors. A value type with its own deterministic random generator, so a
/// simulation is reproducible from its seed; `sample` allocates nothing.
public struct IMUSensorModel: Sendable {
    public var gyroscope: IMUAxisModel
    public var accelerometer: IMUAxisModel
    /// Output data rate, Hz; noise per sample and bias evolution use 1/rate.
    public var sampleRateHz: Double

    /// Current in-run bias (Gauss–Markov + random walk, without the turn-on bias), rad/s.
    public private(set) var gyroDriftRadPerS = SIMD3<Double>.zero
    /// Current in-run bias of the accelerometer, m/s².
    public private(set) var accelDriftMPerS2 = SIMD3<Double>.zero
    private var gyroMarkov = SIMD3<Double>.zero
    private var accelMarkov = SIMD3<Double>.zero
    private var gyroWalk = SIMD3<Double>.zero
    private var accelWalk = SIMD3<Double>.zero
    private var randomState: UInt64
    private var spareGaussian: Double?
    private var sampleIndex: UInt64 = 0

    public init(gyroscope: IMUAxisModel, accelerometer: IMUAxisModel, sampleRateHz: Double, seed: UInt64 = 1) {
        self.gyroscope = gyroscope
        self.accelerometer = accelerometer
        self.sampleRateHz = sampleRateHz
        randomState = seed
        // Start the Gauss–Markov bias in its stationary distribution.
        gyroMarkov = gaussian3() * gyroscope.biasInstability
        accelMarkov = gaussian3() * accelerometer.biasInstability
        gyroDriftRadPerS = gyroMarkov
        accelDriftMPerS2 = accelMarkov
    }

    /// A typical consumer MEMS IMU, with figures of the order found in such datasheets (the gyro noise
    /// density 0.014 °/s/√Hz and ±2000 °/s / ±24 g ranges are the BMI088's; the bias, scale and cross-axis
    /// figures are plausible values, not from one part): accelerometer 160 µg/√Hz, 16-bit outputs,
    /// sub-percent scale errors, up to 0.4° cross-axis.
    public static func consumerMEMS(sampleRateHz: Double = 400, seed: UInt64 = 1) -> IMUSensorModel {
        let degree = Double.pi / 180
        var cross = InlineArray<9, Double>(repeating: 0)
        for (i, v) in [0.0, 0.004, -0.006, -0.003, 0.0, 0.005, 0.007, -0.002, 0.0].enumerated() { cross[i] = v }
        return IMUSensorModel(
            gyroscope: IMUAxisModel(
                noiseDensity: 0.014 * degree, biasInstability: 2 * degree / 3600, biasCorrelationTimeSeconds: 300,
                biasRandomWalk: 1.0e-5, turnOnBias: SIMD3(0.002, -0.001, 0.0015),
                scaleFactorError: SIMD3(0.004, -0.003, 0.002),
                crossAxis: cross, range: 2000 * degree, resolution: 2000 * degree / 32768),
            accelerometer: IMUAxisModel(
                noiseDensity: 160e-6 * 9.80665, biasInstability: 40e-6 * 9.80665, biasCorrelationTimeSeconds: 300,
                biasRandomWalk: 1.0e-4, turnOnBias: SIMD3(0.02, -0.015, 0.03),
                scaleFactorError: SIMD3(0.005, 0.002, -0.004),
                crossAxis: cross, range: 24 * 9.80665, resolution: 24 * 9.80665 / 32768),
            sampleRateHz: sampleRateHz, seed: seed)
    }

    /// Produces the next sample from the true body angular velocity, rad/s, and specific force, m/s²
    /// (both in the IMU's axes). Time advances by 1/`sampleRateHz` per call.
    public mutating func sample(trueAngularVelocityRadPerS: SIMD3<Double>, trueSpecificForceMPerS2: SIMD3<Double>)
        -> IMUSensorSample
    {
        let dt = 1 / sampleRateHz
        (gyroMarkov, gyroWalk) = advanceBias(gyroMarkov, gyroWalk, gyroscope, dt)
        (accelMarkov, accelWalk) = advanceBias(accelMarkov, accelWalk, accelerometer, dt)
        gyroDriftRadPerS = gyroMarkov + gyroWalk
        accelDriftMPerS2 = accelMarkov + accelWalk
        let gyro = measure(trueAngularVelocityRadPerS, gyroscope, gyroDriftRadPerS, dt)
        let accel = measure(trueSpecificForceMPerS2, accelerometer, accelDriftMPerS2, dt)
        sampleIndex += 1
        return IMUSensorSample(
            timestampSeconds: Double(sampleIndex) * dt, angularVelocityRadPerS: gyro, specificForceMPerS2: accel)
    }

    private mutating func advanceBias(
        _ markovNow: SIMD3<Double>, _ walkNow: SIMD3<Double>, _ axis: IMUAxisModel, _ dt: Double
    ) -> (SIMD3<Double>, SIMD3<Double>) {
        var markov = markovNow
        var walk = walkNow
        if axis.biasInstability > 0 {
            let decay = exp(-dt / axis.biasCorrelationTimeSeconds)
            markov = markov * decay + gaussian3() * (axis.biasInstability * (1 - decay * decay).squareRoot())
        }
        if axis.biasRandomWalk > 0 { walk += gaussian3() * (axis.biasRandomWalk * dt.squareRoot()) }
        return (markov, walk)
    }

    private mutating func measure(_ truth: SIMD3<Double>, _ axis: IMUAxisModel, _ drift: SIMD3<Double>, _ dt: Double)
        -> SIMD3<Double>
    {
        let scaled = truth * (1 + axis.scaleFactorError)
        let c = axis.crossAxis
        var v = SIMD3(
            scaled.x + c[1] * scaled.y + c[2] * scaled.z,
            c[3] * scaled.x + scaled.y + c[5] * scaled.z,
            c[6] * scaled.x + c[7] * scaled.y + scaled.z)
        v += axis.turnOnBias + drift + gaussian3() * (axis.noiseDensity / dt.squareRoot())
        if axis.resolution > 0 { v = (v / axis.resolution).rounded(.toNearestOrEven) * axis.resolution }
        return v.clamped(lowerBound: SIMD3(repeating: -axis.range), upperBound: SIMD3(repeating: axis.range))
    }

    private mutating func uniform() -> Double {
        // SplitMix64: tiny, fast, and good enough for sensor noise.
        randomState &+= 0x9E37_79B9_7F4A_7C15
        var z = randomState
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) * 0x1p-53
    }

    private mutating func gaussian() -> Double {
        if let spare = spareGaussian {
            spareGaussian = nil
            return spare
        }
        let radius = (-2 * log(uniform())).squareRoot()
        let angle = 2 * Double.pi * uniform()
        spareGaussian = radius * sin(angle)
        return radius * cos(angle)
    }

    private mutating func gaussian3() -> SIMD3<Double> { SIMD3(gaussian(), gaussian(), gaussian()) }
}

extension MAVLinkHighResIMU {
    /// The sample as a HIGHRES_IMU message, numbers as they are (convert to MAVLink's front-right-down
    /// axes beforehand if the IMU's axes differ); `fieldsUpdated` marks the six inertial fields.
    public init(sample: IMUSensorSample, sensorID: UInt8 = 0) {
        self.init(
            timeMicroseconds: UInt64((sample.timestampSeconds * 1e6).rounded()),
            accelerationMPerS2: SIMD3<Float>(sample.specificForceMPerS2),
            angularVelocityRadPerS: SIMD3<Float>(sample.angularVelocityRadPerS), fieldsUpdated: 0x003F,
            sensorID: sensorID)
    }
}
