/// Velocity and acceleration of one joint from quantised encoder positions (and, when the servo reports
/// them, its own velocity or an acceleration derived from its current): a constant-acceleration Kalman
/// filter with state (position rad, velocity rad/s, acceleration rad/s²) driven by white jerk.
///
/// Why a Kalman filter rather than finite differences: a 4096-count encoder has a step of 1.53 mrad, so a
/// backward difference at 500 Hz carries ~0.3 rad/s of quantisation noise and half a tick of lag. The
/// constant-acceleration model tracks ramps of velocity without steady-state lag (the error of a type-3
/// loop on a constant acceleration is zero), and the measurement variance is the quantisation noise
/// step²/12, so the gain is set by physics rather than hand-tuned.
///
/// A value type with no heap storage: one update costs a fixed ~60 floating-point operations.
public struct JointStateFilter: Sendable {
    /// Tuning and sensor description of one joint.
    public struct Parameters: Sendable, Equatable {
        /// Encoder resolution; the quantisation step is 2π / countsPerTurn rad.
        public var encoderCountsPerTurn: Int
        /// Spectral density of the white jerk that drives the model, (rad/s³)²/Hz. Larger follows
        /// sudden acceleration changes faster but passes more quantisation noise.
        public var jerkSpectralDensity: Double
        /// When true, positions are single-turn (wrap at one turn) and innovations are wrapped to ±π, so
        /// the estimated position stays continuous across the wrap.
        public var positionWrapsEveryTurn: Bool

        /// - Parameters:
        ///   - encoderCountsPerTurn: counts per revolution (4096 for Dynamixel X / Feetech STS).
        ///   - jerkSpectralDensity: (rad/s³)²/Hz. A white-jerk Kalman filter is optimal when this matches
        ///     the motion's own jerk: q ≈ E[(Δa)²]/Δt. The simulated SO-101 on its pick-and-place
        ///     trajectory (servo position control behind the rigid-body physics) measures 0.8–1.2e3; the
        ///     default sits a factor 2 above it, so sharper moves than that one still lose little to lag.
        ///     There, read through the loop at 500 Hz, 1e3…1e5 traded a velocity-RMS gain over finite
        ///     differences of 7.4…3.2 against a lag of 0.39…0.19 ticks; 2e3 gave 6.6 and 0.35 ticks (the
        ///     earlier default 5e3, tuned on a synthetic trajectory, gave only 5.5–5.6 on the real physics).
        ///   - positionWrapsEveryTurn: true for single-turn absolute encoders.
        public init(
            encoderCountsPerTurn: Int = 4096, jerkSpectralDensity: Double = 2.0e3,
            positionWrapsEveryTurn: Bool = false
        ) {
            self.encoderCountsPerTurn = encoderCountsPerTurn
            self.jerkSpectralDensity = jerkSpectralDensity
            self.positionWrapsEveryTurn = positionWrapsEveryTurn
        }

        /// Size of one encoder count, rad.
        public var encoderStepRad: Double { 2 * Double.pi / Double(encoderCountsPerTurn) }
        /// Variance of uniform quantisation error, step²/12, rad².
        public var quantisationVarianceRad2: Double { encoderStepRad * encoderStepRad / 12 }
    }

    public var parameters: Parameters
    /// Estimated position, rad (continuous: it does not wrap even if the encoder does).
    public private(set) var positionRad: Double
    /// Estimated velocity, rad/s.
    public private(set) var velocityRadPerS: Double
    /// Estimated acceleration, rad/s².
    public private(set) var accelerationRadPerS2: Double
    // Symmetric 3×3 covariance of (position, velocity, acceleration), upper triangle.
    private var p00: Double, p01: Double, p02: Double, p11: Double, p12: Double, p22: Double
    private var isInitialised = false

    public init(parameters: Parameters = Parameters()) {
        self.parameters = parameters
        positionRad = 0
        velocityRadPerS = 0
        accelerationRadPerS2 = 0
        p00 = 0
        p01 = 0
        p02 = 0
        p11 = 0
        p12 = 0
        p22 = 0
    }

    /// Variance of the velocity estimate, (rad/s)².
    public var velocityVariance: Double { p11 }
    /// Variance of the acceleration estimate, (rad/s²)².
    public var accelerationVariance: Double { p22 }

    /// Forgets the state; the next position measurement re-initialises it.
    public mutating func reset() {
        isInitialised = false
    }

    /// Advances the model by `dtSeconds` (≥ 0) without a measurement, e.g. for a missed read.
    public mutating func predict(dtSeconds dt: Double) {
        guard isInitialised, dt > 0 else { return }
        let dt2 = dt * dt
        let halfDt2 = 0.5 * dt2
        positionRad += dt * velocityRadPerS + halfDt2 * accelerationRadPerS2
        velocityRadPerS += dt * accelerationRadPerS2
        // P ← F P Fᵀ with F = [[1, dt, dt²/2], [0, 1, dt], [0, 0, 1]], written out (F is upper unitriangular).
        let a00 = p00 + dt * p01 + halfDt2 * p02
        let a01 = p01 + dt * p11 + halfDt2 * p12
        let a02 = p02 + dt * p12 + halfDt2 * p22
        let a11 = p11 + dt * p12
        let a12 = p12 + dt * p22
        let n00 = a00 + dt * a01 + halfDt2 * a02
        let n01 = a01 + dt * a02
        let n11 = a11 + dt * a12
        // Discrete white-jerk noise (continuous-time Wiener process acceleration model).
        let q = parameters.jerkSpectralDensity
        let dt3 = dt2 * dt
        let dt4 = dt3 * dt
        let dt5 = dt4 * dt
        p00 = n00 + q * dt5 * (1.0 / 20)
        p01 = n01 + q * dt4 * (1.0 / 8)
        p02 = a02 + q * dt3 * (1.0 / 6)
        p11 = n11 + q * dt3 * (1.0 / 3)
        p12 = a12 + q * dt2 * 0.5
        p22 += q * dt
    }

    /// Fuses an encoder position, rad, whose noise is the quantisation variance (plus `extraVarianceRad2`
    /// for backlash or sensor noise). Call `predict` first for the time elapsed since the previous call.
    public mutating func updatePosition(_ measuredRad: Double, extraVarianceRad2: Double = 0) {
        let r = parameters.quantisationVarianceRad2 + extraVarianceRad2
        guard isInitialised else {
            positionRad = measuredRad
            velocityRadPerS = 0
            accelerationRadPerS2 = 0
            // Broad prior on the derivatives so the first few samples take over within a few ticks.
            p00 = r
            p01 = 0
            p02 = 0
            p11 = 100
            p12 = 0
            p22 = 1.0e4
            isInitialised = true
            return
        }
        var innovation = measuredRad - positionRad
        if parameters.positionWrapsEveryTurn {
            let turn = 2 * Double.pi
            innovation -= turn * (innovation / turn).rounded()
        }
        fuse(innovation: innovation, variance: r, column: (p00, p01, p02), observedVariance: p00)
    }

    /// Fuses a position given in encoder counts (see `Parameters.encoderCountsPerTurn`).
    public mutating func updateEncoderCounts(_ counts: Int32) {
        updatePosition(Double(counts) * parameters.encoderStepRad)
    }

    /// Fuses the servo's own velocity reading, rad/s, with its variance, (rad/s)² — for a reading
    /// quantised to `unit` use at least unit²/12. The servo's own filtering lag is not modelled, so
    /// inflate the variance for slow servo filters.
    public mutating func updateVelocity(_ measuredRadPerS: Double, varianceRad2PerS2 r: Double) {
        guard isInitialised else { return }
        fuse(
            innovation: measuredRadPerS - velocityRadPerS, variance: r, column: (p01, p11, p12), observedVariance: p11)
    }

    /// Fuses an acceleration, rad/s², e.g. derived from the servo current as
    /// (torque constant × current − gravity and friction torque) / reflected inertia by the caller who
    /// knows the model, with its variance, (rad/s²)².
    public mutating func updateAcceleration(_ measuredRadPerS2: Double, varianceRad2PerS4 r: Double) {
        guard isInitialised else { return }
        fuse(
            innovation: measuredRadPerS2 - accelerationRadPerS2, variance: r, column: (p02, p12, p22),
            observedVariance: p22)
    }

    /// The scalar Kalman update all three measurements share. The measured component has variance
    /// `observedVariance` and P-column `column` (its covariances with position, velocity, acceleration):
    /// K = column / S with S = observedVariance + r, x ← x + K·innovation, P ← P − K·columnᵀ.
    @inline(__always)
    private mutating func fuse(
        innovation: Double, variance r: Double, column c: (Double, Double, Double), observedVariance: Double
    ) {
        let inverseS = 1 / (observedVariance + r)
        let k0 = c.0 * inverseS
        let k1 = c.1 * inverseS
        let k2 = c.2 * inverseS
        positionRad += k0 * innovation
        velocityRadPerS += k1 * innovation
        accelerationRadPerS2 += k2 * innovation
        p00 -= k0 * c.0
        p01 -= k0 * c.1
        p02 -= k0 * c.2
        p11 -= k1 * c.1
        p12 -= k1 * c.2
        p22 -= k2 * c.2
    }
}

/// The joint-state filters of a whole robot in one preallocated block, for the estimate stage of the
/// tick: `step` costs the same every tick and allocates nothing.
public final class JointStateEstimator {
    private let filters: UnsafeMutableBufferPointer<JointStateFilter>

    /// Number of joints.
    public var jointCount: Int { filters.count }

    /// One filter per entry of `parameters`.
    public init(parameters: [JointStateFilter.Parameters]) {
        filters = .allocate(capacity: parameters.count)
        for (index, jointParameters) in parameters.enumerated() {
            (filters.baseAddress! + index).initialize(to: JointStateFilter(parameters: jointParameters))
        }
    }

    /// `jointCount` identical filters.
    public convenience init(jointCount: Int, parameters: JointStateFilter.Parameters = .init()) {
        self.init(parameters: [JointStateFilter.Parameters](repeating: parameters, count: jointCount))
    }

    deinit {
        filters.deinitialize()
        filters.deallocate()
    }

    /// One sample of one joint: predicts by `dtSeconds` then fuses the encoder counts and, when given, the
    /// servo's velocity reading (rad/s, with its variance in (rad/s)²).
    public func step(
        joint: Int, dtSeconds: Double, encoderCounts: Int32, servoVelocityRadPerS: Double? = nil,
        servoVelocityVariance: Double = 0
    ) {
        filters[joint].predict(dtSeconds: dtSeconds)
        filters[joint].updateEncoderCounts(encoderCounts)
        if let velocity = servoVelocityRadPerS {
            filters[joint].updateVelocity(velocity, varianceRad2PerS2: servoVelocityVariance)
        }
    }

    /// Direct access for other measurement combinations (acceleration from current, missed samples).
    public subscript(joint: Int) -> JointStateFilter {
        get { filters[joint] }
        set { filters[joint] = newValue }
    }

    public func positionRad(joint: Int) -> Double { filters[joint].positionRad }
    public func velocityRadPerS(joint: Int) -> Double { filters[joint].velocityRadPerS }
    public func accelerationRadPerS2(joint: Int) -> Double { filters[joint].accelerationRadPerS2 }
}
