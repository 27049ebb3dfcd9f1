/// The nominal (best-estimate) state of a rigid body carrying an IMU.
///
/// Frames: `orientation` rotates body-frame vectors into the world frame (a unit quaternion, w first);
/// position and velocity are of the IMU origin in the world frame; biases are in the body (IMU) frame.
public struct RigidBodyNominalState: Sendable {
    /// Body → world rotation as a unit quaternion (w, x, y, z).
    public var orientation: (w: Double, x: Double, y: Double, z: Double)
    /// World-frame position, m.
    public var positionM: SIMD3<Double>
    /// World-frame velocity, m/s.
    public var velocityMPerS: SIMD3<Double>
    /// Gyroscope bias, rad/s (body frame): measured = true + bias + noise.
    public var gyroBiasRadPerS: SIMD3<Double>
    /// Accelerometer bias, m/s² (body frame): measured = true specific force + bias + noise.
    public var accelBiasMPerS2: SIMD3<Double>

    public init(
        orientation: (w: Double, x: Double, y: Double, z: Double) = (1, 0, 0, 0),
        positionM: SIMD3<Double> = .zero, velocityMPerS: SIMD3<Double> = .zero,
        gyroBiasRadPerS: SIMD3<Double> = .zero, accelBiasMPerS2: SIMD3<Double> = .zero
    ) {
        self.orientation = orientation
        self.positionM = positionM
        self.velocityMPerS = velocityMPerS
        self.gyroBiasRadPerS = gyroBiasRadPerS
        self.accelBiasMPerS2 = accelBiasMPerS2
    }
}

/// Noise model and buffer sizes of `RigidBodyEKF`. Noise densities are the datasheet figures.
public struct RigidBodyEKFConfiguration: Sendable {
    /// Gyroscope white-noise density, rad/s/√Hz.
    public var gyroNoiseDensity: Double
    /// Accelerometer white-noise density, m/s²/√Hz.
    public var accelNoiseDensity: Double
    /// Gyroscope bias random walk, rad/s²/√Hz (= rad/s per √s).
    public var gyroBiasRandomWalk: Double
    /// Accelerometer bias random walk, m/s³/√Hz (= m/s² per √s).
    public var accelBiasRandomWalk: Double
    /// World-frame gravity, m/s² (z up: (0, 0, −9.80665)).
    public var gravityMPerS2: SIMD3<Double>
    /// IMU samples kept to re-apply late measurements at their time; the window is this many IMU
    /// periods (e.g. 100 at 200 Hz = 0.5 s). Memory: about 2 KB per entry, allocated once.
    public var historyCapacity: Int
    /// Measurements kept for replay inside the window (all sensors together).
    public var measurementCapacity: Int
    /// A measurement whose normalised innovation squared exceeds this is rejected as an outlier
    /// (e.g. the 99.9% chi-square quantile for its dimension); infinity disables gating.
    public var outlierGateNIS: Double

    public init(
        gyroNoiseDensity: Double, accelNoiseDensity: Double, gyroBiasRandomWalk: Double,
        accelBiasRandomWalk: Double, gravityMPerS2: SIMD3<Double> = SIMD3(0, 0, -9.80665),
        historyCapacity: Int = 100, measurementCapacity: Int = 64, outlierGateNIS: Double = .infinity
    ) {
        self.gyroNoiseDensity = gyroNoiseDensity
        self.accelNoiseDensity = accelNoiseDensity
        self.gyroBiasRandomWalk = gyroBiasRandomWalk
        self.accelBiasRandomWalk = accelBiasRandomWalk
        self.gravityMPerS2 = gravityMPerS2
        self.historyCapacity = max(1, historyCapacity)
        self.measurementCapacity = max(1, measurementCapacity)
        self.outlierGateNIS = outlierGateNIS
    }
}

/// Which components of a measurement are observed. Bits 0–2 are the x, y, z components of a position,
/// velocity or orientation measurement; for a pose, bits 0–2 are position x, y, z and bits 3–5 the
/// orientation about body x, y, z.
public struct RigidBodyMeasurementMask: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let x = RigidBodyMeasurementMask(rawValue: 1 << 0)
    public static let y = RigidBodyMeasurementMask(rawValue: 1 << 1)
    public static let z = RigidBodyMeasurementMask(rawValue: 1 << 2)
    public static let xyz: RigidBodyMeasurementMask = [.x, .y, .z]
    /// Pose only: orientation about body x, y, z.
    public static let rotationX = RigidBodyMeasurementMask(rawValue: 1 << 3)
    public static let rotationY = RigidBodyMeasurementMask(rawValue: 1 << 4)
    public static let rotationZ = RigidBodyMeasurementMask(rawValue: 1 << 5)
    public static let rotationXYZ: RigidBodyMeasurementMask = [.rotationX, .rotationY, .rotationZ]
    public static let all: RigidBodyMeasurementMask = [.xyz, .rotationXYZ]
}

/// One measurement of the rigid body from any sensor, time-stamped on the same clock as the IMU.
///
/// The covariance is 6×6 row-major over the measurement's components (see `RigidBodyMeasurementMask`);
/// position/velocity/orientation use its top-left 3×3. Only rows and columns in `mask` are read.
/// Orientation errors are rotation vectors about the body axes (q_measured = q_true ⊗ Exp(noise)), rad².
public struct RigidBodyMeasurement: Sendable {
    public enum Kind: Sendable, Equatable {
        /// World-frame position of the IMU origin, m.
        case position
        /// World-frame velocity of the IMU origin, m/s.
        case velocity
        /// Body → world orientation.
        case orientation
        /// Position and orientation together (correlated covariance allowed).
        case pose
    }

    public var kind: Kind
    /// When the measurement was valid, s (IMU clock). May be in the past: it is applied at its time.
    public var timestampSeconds: Double
    public var positionM: SIMD3<Double>
    public var velocityMPerS: SIMD3<Double>
    public var orientation: (w: Double, x: Double, y: Double, z: Double)
    /// 6×6 row-major covariance (units² of the components).
    public var covariance: InlineArray<36, Double>
    public var mask: RigidBodyMeasurementMask

    public init(
        kind: Kind, timestampSeconds: Double, positionM: SIMD3<Double> = .zero,
        velocityMPerS: SIMD3<Double> = .zero,
        orientation: (w: Double, x: Double, y: Double, z: Double) = (1, 0, 0, 0),
        covariance: InlineArray<36, Double>, mask: RigidBodyMeasurementMask
    ) {
        self.kind = kind
        self.timestampSeconds = timestampSeconds
        self.positionM = positionM
        self.velocityMPerS = velocityMPerS
        self.orientation = orientation
        self.covariance = covariance
        self.mask = mask
    }

    /// A diagonal 6×6 covariance from per-component standard deviations.
    public static func diagonalCovariance(_ standardDeviations: SIMD3<Double>, _ second: SIMD3<Double> = .zero)
        -> InlineArray<36, Double>
    {
        var c = InlineArray<36, Double>(repeating: 0)
        for i in 0..<3 {
            c[i * 7] = standardDeviations[i] * standardDeviations[i]
            c[(i + 3) * 7] = second[i] * second[i]
        }
        return c
    }

    /// World position, m, with independent per-axis standard deviations, m.
    public static func position(
        _ positionM: SIMD3<Double>, standardDeviationM: SIMD3<Double>, timestampSeconds: Double,
        mask: RigidBodyMeasurementMask = .xyz
    ) -> RigidBodyMeasurement {
        RigidBodyMeasurement(
            kind: .position, timestampSeconds: timestampSeconds, positionM: positionM,
            covariance: diagonalCovariance(standardDeviationM), mask: mask)
    }

    /// World velocity, m/s, with independent per-axis standard deviations, m/s.
    public static func velocity(
        _ velocityMPerS: SIMD3<Double>, standardDeviationMPerS: SIMD3<Double>, timestampSeconds: Double,
        mask: RigidBodyMeasurementMask = .xyz
    ) -> RigidBodyMeasurement {
        RigidBodyMeasurement(
            kind: .velocity, timestampSeconds: timestampSeconds, velocityMPerS: velocityMPerS,
            covariance: diagonalCovariance(standardDeviationMPerS), mask: mask)
    }

    /// Body → world orientation with independent standard deviations about body x, y, z, rad.
    public static func orientation(
        _ orientation: (w: Double, x: Double, y: Double, z: Double), standardDeviationRad: SIMD3<Double>,
        timestampSeconds: Double, mask: RigidBodyMeasurementMask = .xyz
    ) -> RigidBodyMeasurement {
        RigidBodyMeasurement(
            kind: .orientation, timestampSeconds: timestampSeconds, orientation: orientation,
            covariance: diagonalCovariance(standardDeviationRad), mask: mask)
    }

    /// Position (m) and orientation together, with independent standard deviations (m, rad).
    public static func pose(
        positionM: SIMD3<Double>, orientation: (w: Double, x: Double, y: Double, z: Double),
        standardDeviationM: SIMD3<Double>, standardDeviationRad: SIMD3<Double>, timestampSeconds: Double,
        mask: RigidBodyMeasurementMask = .all
    ) -> RigidBodyMeasurement {
        RigidBodyMeasurement(
            kind: .pose, timestampSeconds: timestampSeconds, positionM: positionM, orientation: orientation,
            covariance: diagonalCovariance(standardDeviationM, standardDeviationRad), mask: mask)
    }
}

/// What happened to a measurement.
public enum RigidBodyMeasurementResult: Sendable, Equatable {
    /// Fused. `normalisedInnovationSquared` (rᵀS⁻¹r) follows a chi-square law with `dimension` degrees of
    /// freedom when the filter is consistent; `replayedSteps` IMU steps were re-propagated because the
    /// measurement was late (0 when it was current).
    case applied(normalisedInnovationSquared: Double, dimension: Int, replayedSteps: Int)
    case rejected(RigidBodyMeasurementRejection)
}

/// Why a measurement was not fused; each case carries what is needed to log it.
public enum RigidBodyMeasurementRejection: Sendable, Equatable {
    /// Older than the history window: `ageSeconds` behind the newest IMU sample, window
    /// `windowSeconds` (raise `historyCapacity` for slower sensors).
    case tooOld(ageSeconds: Double, windowSeconds: Double)
    /// The mask selects no component valid for the kind.
    case emptyMask
    /// Innovation covariance not positive definite (a non-PSD measurement covariance, or NaN input).
    case invalidCovariance
    /// Normalised innovation squared above `outlierGateNIS`.
    case outlier(normalisedInnovationSquared: Double)
}

/// What happened to an IMU sample.
public enum RigidBodyIMUResult: Sendable, Equatable {
    case propagated
    /// The timestamp did not advance past the previous sample (s): the sample was ignored.
    case nonIncreasingTimestamp(previousSeconds: Double, sampleSeconds: Double)
}

/// Blocks of the 15-D error state, for consistency checks.
public struct RigidBodyErrorBlocks: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let orientation = RigidBodyErrorBlocks(rawValue: 1 << 0)
    public static let position = RigidBodyErrorBlocks(rawValue: 1 << 1)
    public static let velocity = RigidBodyErrorBlocks(rawValue: 1 << 2)
    public static let gyroBias = RigidBodyErrorBlocks(rawValue: 1 << 3)
    public static let accelBias = RigidBodyErrorBlocks(rawValue: 1 << 4)
    public static let all: RigidBodyErrorBlocks = [.orientation, .position, .velocity, .gyroBias, .accelBias]
}
