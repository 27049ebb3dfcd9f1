import Foundation

/// Tuning of ``AHRS``. The defaults are one parameter set chosen from the physics of a MEMS IMU on a
/// hand-held or robot-mounted body (see each field); they are used unchanged for every BROAD trial.
public struct AHRSConfiguration: Sendable, Equatable {
    /// Time constant (s) of the low-pass filter on the specific force expressed in the estimated earth frame.
    /// Linear accelerations of a body that does not fly away average to zero over a few seconds, gravity does
    /// not, so this filter separates them without needing to detect them.
    public var accelerationFilterTimeConstantS: Double = 3.0
    /// Time constant (s) with which the filtered gravity direction corrects the inclination while moving.
    public var inclinationTimeConstantS: Double = 3.0
    /// Time constant (s) of both of the above while the sensor rests (the accelerometer then measures gravity only).
    public var restInclinationTimeConstantS: Double = 0.5
    /// Time constant (s) of the heading correction from the horizontal projection of the magnetic field.
    public var headingTimeConstantS: Double = 10.0
    /// The heading correction gain is divided by `1 + (|ω| / this)²` (rad/s): while the sensor turns fast, the
    /// magnetometer's own filtering and its timing relative to the gyroscope turn the measured field by an
    /// angle that grows with the rate, whereas integrating the gyroscope over that short time is nearly exact.
    public var headingRateScaleRadPerS: Double = 3.0
    /// Time constant (s) of gyroscope bias learning from the inclination/heading corrections while moving;
    /// 0 disables it (bias is then learned at rest only).
    public var motionBiasTimeConstantS: Double = 0

    /// Rest detection: the low-passed angular rate (rad/s, bias included) must stay below this ...
    public var restAngularRateRadPerS: Double = 2.0 * .pi / 180
    /// ... the RMS deviation of the angular rate from its low-passed value (rad/s) below this ...
    public var restAngularRateDeviationRadPerS: Double = 0.5 * .pi / 180
    /// ... the RMS deviation of the specific force from its low-passed value (m/s²) below this ...
    public var restAccelerationDeviationMPerS2: Double = 0.2
    /// ... for at least this long (s).
    public var restMinimumDurationS: Double = 1.5
    /// Time constant (s) of the rest detector's low-pass filters.
    public var restFilterTimeConstantS: Double = 0.5
    /// Time constant (s) of gyroscope bias learning at rest.
    public var restBiasTimeConstantS: Double = 2.0

    /// Magnetic field accepted when its (low-passed) norm is within this fraction of the reference norm ...
    public var magneticNormTolerance: Double = 0.1
    /// ... and its dip angle within this many radians of the reference dip.
    public var magneticDipToleranceRad: Double = 10.0 * .pi / 180
    /// ... and its azimuth in the estimated earth frame (the heading disagreement) within this many radians.
    /// Gyroscope drift between corrections is far below this; a magnet moving nearby often turns the field
    /// long before it changes its norm or dip.
    public var magneticHeadingToleranceRad: Double = 10.0 * .pi / 180
    /// Upper bound of the heading drift (rad/s) of gyroscope-only propagation with a bias learned at rest: a
    /// disagreement above ``magneticHeadingToleranceRad`` is only believed if this drift over the time since the
    /// last accepted field explains it (a magnet that merely turns the field is not).
    public var gyroHeadingDriftRadPerS: Double = 0.2 * .pi / 180
    /// A plausible field (norm and dip) that disagrees with the heading (explainably, see above), or the first
    /// one after a rejection longer than ``magneticRecoveryAfterS``, is trusted after it stayed so this long (s).
    public var magneticConfirmDurationS: Double = 2
    /// Time constant (s) of the low-pass filters on field norm, dip and azimuth used for the checks above.
    public var magneticCheckTimeConstantS: Double = 0.3
    /// Time constant (s) with which an accepted field refines the reference norm and dip.
    public var magneticReferenceTimeConstantS: Double = 60
    /// A rejected field that stays self-consistent while the sensor rotates for this long (s) becomes the new
    /// reference: the environment changed (another room, a steel structure), it is not a passing disturbance.
    public var magneticAdoptionDurationS: Double = 60
    /// After a rejection longer than ``magneticRecoveryAfterS`` the heading is corrected with
    /// ``magneticRecoveryTimeConstantS`` for ``magneticRecoveryDurationS``, to remove the gyroscope drift quickly.
    public var magneticRecoveryAfterS: Double = 5
    public var magneticRecoveryTimeConstantS: Double = 2
    public var magneticRecoveryDurationS: Double = 3

    /// During this first interval (s) all corrections average the samples seen so far (gain 1/n) instead of
    /// the time constants above, so start-up converges in about this time from any orientation.
    public var startupDurationS: Double = 1.0

    public init() {}
}

/// A 6-D (gyroscope + accelerometer) or 9-D (+ magnetometer) orientation estimator.
///
/// Units: angular rate rad/s, specific force m/s² (the rest detector's thresholds are in m/s²), magnetic field
/// in any unit (µT in BROAD; only its direction and ratios to the learned reference are used). All vectors in
/// the sensor frame. The estimate ``orientation`` maps sensor to earth, earth frame East-North-Up with north =
/// magnetic north in 9-D use (6-D: heading starts with the horizontal projection of the sensor's y axis as
/// north and then drifts with the residual gyroscope bias). No initial orientation is needed: the first samples set inclination and heading.
///
/// Structure: the gyroscope is integrated; the accelerometer, rotated into the estimated earth frame and
/// low-pass filtered there, corrects only inclination; the magnetometer corrects only heading, through the
/// horizontal projection of the field in the estimated earth frame, so a magnetic error can never tilt the
/// estimate. A field whose norm or dip angle departs from a slowly learned reference, or whose direction
/// disagrees with the heading by more than gyroscope drift explains, is rejected (heading then comes from the
/// gyroscope alone) and its weight fades before that; after a long rejection the heading is pulled back
/// quickly. The gyroscope bias is learned while the sensor rests.
///
/// Fixed cost, no allocation: every `update` does the same arithmetic.
public struct AHRS: Sendable {
    public let configuration: AHRSConfiguration
    /// Sample period (s) the gains were computed for.
    public let samplePeriodS: Double

    /// Orientation of the sensor relative to the earth frame (ENU).
    public private(set) var orientation: OrientationQuaternion = .identity
    /// Estimated gyroscope bias (rad/s, sensor frame), subtracted from every angular rate.
    public private(set) var gyroBiasRadPerS: SIMD3<Double> = .zero
    /// True while the rest detector considers the sensor still.
    public private(set) var isResting = false
    /// Samples ignored because a gyroscope or accelerometer component was not finite.
    public private(set) var droppedSampleCount = 0
    /// True when the last magnetic sample was accepted for heading correction.
    public private(set) var isMagneticFieldAccepted = false
    /// Learned reference of the undisturbed field: norm (sensor units) and dip angle (rad, negative = below
    /// the horizon, as in the northern hemisphere).
    public private(set) var magneticReferenceNorm: Double = 0
    public private(set) var magneticReferenceDipRad: Double = 0

    // Precomputed per-sample gains 1 - exp(-T/τ).
    private let kAccFilter: Double
    private let kInclination: Double
    private let kRestInclination: Double
    private let kHeading: Double
    private let kRecoveryHeading: Double
    private let kMotionBias: Double
    private let kRestFilter: Double
    private let kRestBias: Double
    private let kMagCheck: Double
    private let kMagReference: Double
    private let startupSamples: Int
    private let inverseHeadingRateScaleSquared: Double

    private var sampleCount = 0
    private var isInitialized = false
    /// Low-passed specific force in the estimated earth frame.
    private var gravityEarth: SIMD3<Double> = .zero

    private var restGyroFiltered: SIMD3<Double> = .zero
    private var restAccFiltered: SIMD3<Double> = .zero
    private var restGyroDeviationSquared: Double = 0
    private var restAccDeviationSquared: Double = 0
    private var restDurationS: Double = 0

    private var magNormFiltered: Double = 0
    private var magDipFiltered: Double = 0
    private var magRejectedDurationS: Double = 0
    private var magRecoveryRemainingS: Double = 0
    private var magCandidateNorm: Double = 0
    private var magCandidateDip: Double = 0
    private var magCandidateDurationS: Double = 0
    private var magReferenceSamples = 0
    private var magCandidateSamples = 0
    private var magConfirmDurationS: Double = 0
    private var magHeadingWeight: Double = 1
    private var magHorizontalFiltered: SIMD2<Double> = .zero

    /// - Parameters:
    ///   - samplePeriodS: time between samples (s); gains are computed once for it.
    public init(samplePeriodS: Double, configuration: AHRSConfiguration = AHRSConfiguration()) {
        self.samplePeriodS = samplePeriodS
        self.configuration = configuration
        func gain(_ tau: Double) -> Double { tau > 0 ? 1 - exp(-samplePeriodS / tau) : 0 }
        kAccFilter = gain(configuration.accelerationFilterTimeConstantS)
        kInclination = gain(configuration.inclinationTimeConstantS)
        kRestInclination = gain(configuration.restInclinationTimeConstantS)
        kHeading = gain(configuration.headingTimeConstantS)
        kRecoveryHeading = gain(configuration.magneticRecoveryTimeConstantS)
        kMotionBias = gain(configuration.motionBiasTimeConstantS)
        kRestFilter = gain(configuration.restFilterTimeConstantS)
        kRestBias = gain(configuration.restBiasTimeConstantS)
        kMagCheck = gain(configuration.magneticCheckTimeConstantS)
        kMagReference = gain(configuration.magneticReferenceTimeConstantS)
        let rateScale = configuration.headingRateScaleRadPerS
        inverseHeadingRateScaleSquared = rateScale > 0 && rateScale.isFinite ? 1 / (rateScale * rateScale) : 0
        let startup = (configuration.startupDurationS / samplePeriodS).rounded()
        startupSamples = startup.isFinite ? Int(min(max(startup, 1), 1e9)) : 1
    }

    /// Forget everything learned (orientation, bias, magnetic reference); the next sample initialises again.
    public mutating func reset() {
        self = AHRS(samplePeriodS: samplePeriodS, configuration: configuration)
    }

    /// One 6-D update (no magnetometer): heading is propagated by the gyroscope only.
    public mutating func update(gyroRadPerS: SIMD3<Double>, accelerationMPerS2: SIMD3<Double>) {
        step(gyro: gyroRadPerS, acc: accelerationMPerS2, mag: .zero, useMag: false)
    }

    /// One 9-D update.
    public mutating func update(
        gyroRadPerS: SIMD3<Double>, accelerationMPerS2: SIMD3<Double>, magneticField: SIMD3<Double>
    ) {
        step(gyro: gyroRadPerS, acc: accelerationMPerS2, mag: magneticField, useMag: true)
    }

    @inline(__always)
    private mutating func step(gyro: SIMD3<Double>, acc: SIMD3<Double>, mag: SIMD3<Double>, useMag requested: Bool) {
        // One corrupted sample (a bus error, a NaN from a driver) must not poison the state forever: a
        // non-finite component makes the sum non-finite.
        if !(gyro.sum() + acc.sum()).isFinite {
            droppedSampleCount &+= 1
            return
        }
        let useMag = requested && mag.sum().isFinite
        let dt = samplePeriodS
        let accNorm = length(acc)
        if !isInitialized {
            // Nothing to start from without gravity: wait for a usable sample.
            if !(accNorm > 0) || !accNorm.isFinite { return }
            initialize(acc: acc, mag: mag, useMag: useMag)
        }
        sampleCount &+= 1
        let startup = sampleCount < startupSamples
        let startupGain = 1 / Double(sampleCount + 1)

        updateRestDetector(gyro: gyro, acc: acc)

        // Gyroscope propagation in the sensor frame.
        let rate = gyro - gyroBiasRadPerS
        var q = orientation * OrientationQuaternion(rotationVectorRad: rate * dt)

        // Inclination: low-pass the earth-frame specific force, then turn the earth frame so that it points up.
        let kFilter: Double
        let kCorrect: Double
        if startup {
            kFilter = startupGain
            kCorrect = startupGain
        } else if isResting {
            kFilter = kRestInclination
            kCorrect = kRestInclination
        } else {
            kFilter = kAccFilter
            kCorrect = kInclination
        }
        let accEarth = q.rotate(acc)
        gravityEarth += kFilter * (accEarth - gravityEarth)
        var g = gravityEarth
        let horizontal = (g.x * g.x + g.y * g.y).squareRoot()
        var correctionEarth = SIMD3<Double>.zero
        if horizontal > 0 {
            let tilt = atan2(horizontal, g.z)
            // Axis g × z = (g.y, -g.x, 0) turns g towards +z.
            let angle = kCorrect * tilt
            correctionEarth = SIMD3(g.y / horizontal * angle, -g.x / horizontal * angle, 0)
        }

        // Heading: only the horizontal part of the field, and only about the earth vertical.
        isMagneticFieldAccepted = false
        if useMag {
            let magEarth = q.rotate(mag)
            let magNorm = length(mag)
            let magHorizontal = (magEarth.x * magEarth.x + magEarth.y * magEarth.y).squareRoot()
            if magNorm > 0 && magHorizontal > 0 {
                let dip = atan2(magEarth.z, magHorizontal)
                // The first magnetic samples (normally the first samples at all) set heading and reference.
                let magStartup = magReferenceSamples < startupSamples
                let accepted = checkMagnetic(
                    norm: magNorm, dip: dip, horizontal: SIMD2(magEarth.x, magEarth.y), rate: rate,
                    startup: magStartup)
                if accepted {
                    isMagneticFieldAccepted = true
                    let rateSquared = (rate * rate).sum()
                    var k = kHeading * magHeadingWeight / (1 + rateSquared * inverseHeadingRateScaleSquared)
                    if magStartup {
                        k = 1 / Double(magReferenceSamples)
                    } else if magRecoveryRemainingS > 0 {
                        k = kRecoveryHeading
                        magRecoveryRemainingS -= dt
                    }
                    // Azimuth of the field, clockwise from north; rotating the frame by +ψ about up removes it.
                    let azimuth = atan2(magEarth.x, magEarth.y)
                    correctionEarth.z = k * azimuth
                }
            }
        }

        let correction = OrientationQuaternion(rotationVectorRad: correctionEarth)
        q = correction * q
        orientation = q.normalized
        g = correction.rotate(g)
        gravityEarth = g

        if kMotionBias > 0 && !startup && !isResting {
            // The corrections are what the gyroscope failed to integrate: a persistent part is bias.
            let correctionSensor = orientation.inverseRotate(correctionEarth)
            gyroBiasRadPerS -= kMotionBias * correctionSensor / dt
        }
    }

    private mutating func initialize(acc: SIMD3<Double>, mag: SIMD3<Double>, useMag: Bool) {
        isInitialized = true
        let up = acc / length(acc)
        var east = useMag ? cross(mag, up) : SIMD3<Double>.zero
        if !(length(east) > 1e-9 * max(1, length(mag))) {
            // 6-D, or a field parallel to gravity: any heading will do; take the one closest to the sensor's
            // x axis pointing east.
            east = cross(SIMD3(0, 1, 0), up)
            if length(east) < 1e-6 { east = SIMD3(1, 0, 0) }
        }
        east /= length(east)
        let north = cross(up, east)
        // Rows of the sensor→earth rotation are the earth axes in sensor coordinates.
        orientation = OrientationQuaternion(rotationMatrixRows: east, north, up)
        gravityEarth = orientation.rotate(acc)
        restAccFiltered = acc
    }

    @inline(__always)
    private mutating func updateRestDetector(gyro: SIMD3<Double>, acc: SIMD3<Double>) {
        let c = configuration
        restGyroFiltered += kRestFilter * (gyro - restGyroFiltered)
        restAccFiltered += kRestFilter * (acc - restAccFiltered)
        let dw = gyro - restGyroFiltered
        let da = acc - restAccFiltered
        restGyroDeviationSquared += kRestFilter * ((dw * dw).sum() - restGyroDeviationSquared)
        restAccDeviationSquared += kRestFilter * ((da * da).sum() - restAccDeviationSquared)
        let still =
            (restGyroFiltered * restGyroFiltered).sum() < c.restAngularRateRadPerS * c.restAngularRateRadPerS
            && restGyroDeviationSquared < c.restAngularRateDeviationRadPerS * c.restAngularRateDeviationRadPerS
            && restAccDeviationSquared < c.restAccelerationDeviationMPerS2 * c.restAccelerationDeviationMPerS2
        restDurationS = still ? restDurationS + samplePeriodS : 0
        isResting = restDurationS >= c.restMinimumDurationS
        if isResting {
            gyroBiasRadPerS += kRestBias * (restGyroFiltered - gyroBiasRadPerS)
        }
    }

    /// Decides whether the field may correct heading, and maintains the reference and the candidate reference.
    @inline(__always)
    private mutating func checkMagnetic(
        norm: Double, dip: Double, horizontal: SIMD2<Double>, rate: SIMD3<Double>, startup: Bool
    ) -> Bool {
        let c = configuration
        let dt = samplePeriodS
        if startup {
            // Average the first samples into the reference: assumed undisturbed, as any start must be.
            magReferenceSamples += 1
            let k = 1 / Double(magReferenceSamples)
            magNormFiltered += k * (norm - magNormFiltered)
            magDipFiltered += k * (dip - magDipFiltered)
            magneticReferenceNorm = magNormFiltered
            magneticReferenceDipRad = magDipFiltered
            magCandidateNorm = magNormFiltered
            magCandidateDip = magDipFiltered
            magHorizontalFiltered += k * (horizontal - magHorizontalFiltered)
            return true
        }
        magNormFiltered += kMagCheck * (norm - magNormFiltered)
        magDipFiltered += kMagCheck * (dip - magDipFiltered)
        magHorizontalFiltered += kMagCheck * (horizontal - magHorizontalFiltered)
        let plausible =
            abs(magNormFiltered - magneticReferenceNorm) < c.magneticNormTolerance * magneticReferenceNorm
            && abs(magDipFiltered - magneticReferenceDipRad) < c.magneticDipToleranceRad
        if plausible {
            magCandidateDurationS = 0
            magCandidateSamples = 0
            magCandidateNorm = magNormFiltered
            magCandidateDip = magDipFiltered
            let azimuth = atan2(magHorizontalFiltered.x, magHorizontalFiltered.y)
            let agrees = abs(azimuth) < c.magneticHeadingToleranceRad
            // Without magnetic corrections the heading can only have drifted so far.
            let explainable =
                abs(azimuth) < c.magneticHeadingToleranceRad + c.gyroHeadingDriftRadPerS * magRejectedDurationS
            if magRecoveryRemainingS > 0 || (agrees && magRejectedDurationS < c.magneticRecoveryAfterS) {
                // Confidence fades with the largest deviation (as a fraction of its tolerance), so the correction
                // goes to zero continuously at the gate and a field that is drifting away counts less and less.
                let normDeviation =
                    abs(magNormFiltered - magneticReferenceNorm) / (c.magneticNormTolerance * magneticReferenceNorm)
                let dipDeviation = abs(magDipFiltered - magneticReferenceDipRad) / c.magneticDipToleranceRad
                let headingDeviation = abs(azimuth) / c.magneticHeadingToleranceRad
                let worst = min(1, max(normDeviation, dipDeviation, headingDeviation))
                magHeadingWeight = magRecoveryRemainingS > 0 ? 1 : 1 - worst * worst
                magRejectedDurationS = 0
                magConfirmDurationS = 0
                magneticReferenceNorm += kMagReference * (magNormFiltered - magneticReferenceNorm)
                magneticReferenceDipRad += kMagReference * (magDipFiltered - magneticReferenceDipRad)
                return true
            }
            // A plausible field that disagrees with the heading (a disturbance that only turns the field), or
            // the first plausible field after a long rejection (the heading may have drifted): trust it only
            // once it has stayed plausible for a while, then converge quickly.
            magConfirmDurationS = explainable ? magConfirmDurationS + dt : 0
            if magConfirmDurationS >= c.magneticConfirmDurationS {
                magConfirmDurationS = 0
                magRejectedDurationS = 0
                magRecoveryRemainingS = c.magneticRecoveryDurationS
                return true
            }
            magRejectedDurationS += dt
            return false
        }
        magConfirmDurationS = 0
        magRejectedDurationS += dt
        magRecoveryRemainingS = 0
        let consistent =
            abs(magNormFiltered - magCandidateNorm) < c.magneticNormTolerance * magCandidateNorm
            && abs(magDipFiltered - magCandidateDip) < c.magneticDipToleranceRad
        if consistent {
            // Only rotation proves the field is homogeneous: a magnet fixed to the sensor changes with it.
            if (rate * rate).sum() > c.restAngularRateRadPerS * c.restAngularRateRadPerS {
                magCandidateDurationS += dt
            }
            // Running mean: a candidate that follows the field would accept a field that drifts.
            magCandidateSamples += 1
            let k = 1 / Double(magCandidateSamples + 1)
            magCandidateNorm += k * (magNormFiltered - magCandidateNorm)
            magCandidateDip += k * (magDipFiltered - magCandidateDip)
            if magCandidateDurationS >= c.magneticAdoptionDurationS {
                magneticReferenceNorm = magCandidateNorm
                magneticReferenceDipRad = magCandidateDip
                magCandidateDurationS = 0
                magRecoveryRemainingS = c.magneticRecoveryDurationS
                magRejectedDurationS = 0
                return true
            }
        } else {
            magCandidateNorm = magNormFiltered
            magCandidateDip = magDipFiltered
            magCandidateDurationS = 0
            magCandidateSamples = 0
        }
        return false
    }
}

@inline(__always)
private func length(_ v: SIMD3<Double>) -> Double { (v * v).sum().squareRoot() }

@inline(__always)
private func cross(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> SIMD3<Double> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}
