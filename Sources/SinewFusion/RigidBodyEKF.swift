import Foundation

/// Error-state extended Kalman filter for a rigid body carrying an IMU: nominal state orientation,
/// position, velocity, gyroscope and accelerometer biases (`RigidBodyNominalState`); 15-D error state
/// (δθ about body axes, δp, δv, δb_g, δb_a, in that order) with q_true = q ⊗ Exp(δθ).
///
/// IMU samples propagate the state; any number of position / velocity / orientation / pose measurements
/// correct it, each with its covariance and component mask. A late measurement (time-stamped before the
/// newest IMU sample) is applied at its own time: the filter keeps a fixed ring of the IMU inputs and the
/// state and covariance before each of them, restores the state before the measurement's time, splits
/// that IMU interval at the measurement, and re-propagates to the present, re-applying the other stored
/// measurements in time order (so sensors may also arrive out of order). The work per call is bounded by
/// the window; nothing is allocated after `init`.
public final class RigidBodyEKF {
    public let configuration: RigidBodyEKFConfiguration
    /// The current estimate, at `timestampSeconds`.
    public private(set) var state: RigidBodyNominalState
    /// Time of the newest IMU sample (or of `init`), s.
    public private(set) var timestampSeconds: Double

    private static let n = 15
    private static let n2 = 225
    // Current covariance (15×15 row-major) and scratch.
    private let covariance: UnsafeMutablePointer<Double>
    private let transition: UnsafeMutablePointer<Double>
    private let scratchA: UnsafeMutablePointer<Double>
    private let scratchB: UnsafeMutablePointer<Double>
    // Column indices of the structural non-zeros of each row of the transition matrix (≤ 8 per row).
    private let transitionColumns: UnsafeMutablePointer<Int>
    private let transitionColumnCounts: UnsafeMutablePointer<Int>
    // History ring: step i covers (startSeconds, endSeconds] with one IMU input; the snapshot is the
    // state and covariance at startSeconds with every measurement up to startSeconds applied.
    private let steps: UnsafeMutableBufferPointer<HistoryStep>
    private let snapshotStates: UnsafeMutableBufferPointer<RigidBodyNominalState>
    private let snapshotCovariances: UnsafeMutablePointer<Double>
    private var oldestStep = 0
    private var stepCount = 0
    // Measurements inside the window, kept for replay: a ring sorted by time, oldest at
    // `measurementHead`, so dropping the oldest is O(1) and an insertion moves only the newer entries.
    private let measurements: UnsafeMutableBufferPointer<RigidBodyMeasurement>
    private var measurementHead = 0
    private var measurementCount = 0
    // Nothing at or before this time can be replayed any more (an evicted measurement is baked in).
    private var replayFloorSeconds: Double

    private struct HistoryStep {
        var startSeconds: Double
        var endSeconds: Double
        var gyroRadPerS: SIMD3<Double>
        var specificForceMPerS2: SIMD3<Double>
    }

    /// - Parameters:
    ///   - initialState: the starting estimate.
    ///   - initialStandardDeviations: 1σ of the error state blocks (orientation rad, position m, velocity
    ///     m/s, gyro bias rad/s, accel bias m/s²), each applied to the three axes.
    ///   - timestampSeconds: time of the initial state (IMU clock).
    public init(
        configuration: RigidBodyEKFConfiguration, initialState: RigidBodyNominalState,
        initialStandardDeviations: (
            orientationRad: Double, positionM: Double, velocityMPerS: Double, gyroBiasRadPerS: Double,
            accelBiasMPerS2: Double
        ), timestampSeconds: Double = 0
    ) {
        self.configuration = configuration
        state = initialState
        self.timestampSeconds = timestampSeconds
        replayFloorSeconds = timestampSeconds
        let n2 = Self.n2
        covariance = .allocate(capacity: n2)
        transition = .allocate(capacity: n2)
        scratchA = .allocate(capacity: n2)
        scratchB = .allocate(capacity: n2)
        covariance.initialize(repeating: 0, count: n2)
        transition.initialize(repeating: 0, count: n2)
        scratchA.initialize(repeating: 0, count: n2)
        scratchB.initialize(repeating: 0, count: n2)
        for i in 0..<Self.n { transition[i * Self.n + i] = 1 }
        transitionColumns = .allocate(capacity: Self.n * 8)
        transitionColumns.initialize(repeating: 0, count: Self.n * 8)
        transitionColumnCounts = .allocate(capacity: Self.n)
        transitionColumnCounts.initialize(repeating: 0, count: Self.n)
        // Rows δθ: θ, b_g; rows δp: θ, p, v, b_a; rows δv: θ, v, b_a; bias rows: themselves.
        for axis in 0..<3 {
            let rows: [(row: Int, columns: [Int])] = [
                (axis, [0, 1, 2, 9 + axis]),
                (3 + axis, [0, 1, 2, 3 + axis, 6 + axis, 12, 13, 14]),
                (6 + axis, [0, 1, 2, 6 + axis, 12, 13, 14]),
                (9 + axis, [9 + axis]),
                (12 + axis, [12 + axis]),
            ]
            for (row, columns) in rows {
                transitionColumnCounts[row] = columns.count
                for (e, column) in columns.enumerated() { transitionColumns[row * 8 + e] = column }
            }
        }
        let sigmas = [
            initialStandardDeviations.orientationRad, initialStandardDeviations.positionM,
            initialStandardDeviations.velocityMPerS, initialStandardDeviations.gyroBiasRadPerS,
            initialStandardDeviations.accelBiasMPerS2,
        ]
        for i in 0..<Self.n { covariance[i * Self.n + i] = sigmas[i / 3] * sigmas[i / 3] }
        let capacity = configuration.historyCapacity
        steps = .allocate(capacity: capacity)
        steps.initialize(
            repeating: HistoryStep(startSeconds: 0, endSeconds: 0, gyroRadPerS: .zero, specificForceMPerS2: .zero))
        snapshotStates = .allocate(capacity: capacity)
        snapshotStates.initialize(repeating: initialState)
        snapshotCovariances = .allocate(capacity: capacity * n2)
        snapshotCovariances.initialize(repeating: 0, count: capacity * n2)
        measurements = .allocate(capacity: configuration.measurementCapacity)
        measurements.initialize(
            repeating: RigidBodyMeasurement(
                kind: .position, timestampSeconds: 0, covariance: InlineArray(repeating: 0), mask: []))
    }

    deinit {
        covariance.deallocate()
        transition.deallocate()
        scratchA.deallocate()
        scratchB.deallocate()
        transitionColumns.deallocate()
        transitionColumnCounts.deallocate()
        steps.deallocate()
        snapshotStates.deallocate()
        snapshotCovariances.deallocate()
        measurements.deallocate()
    }

    /// Element (row, column) of the 15×15 error-state covariance (order δθ, δp, δv, δb_g, δb_a).
    public func covariance(row: Int, column: Int) -> Double { covariance[row * Self.n + column] }

    /// Oldest time a late measurement can still be applied at, s.
    public var windowStartSeconds: Double {
        stepCount == 0 ? timestampSeconds : max(steps[oldestStep].startSeconds, replayFloorSeconds)
    }

    // MARK: IMU

    /// Propagates with one IMU sample valid over (previous timestamp, `timestampSeconds`]: body angular
    /// velocity as measured by the gyroscope, rad/s, and specific force as measured by the accelerometer,
    /// m/s² (reads +g upwards at rest).
    @discardableResult
    public func propagate(gyroRadPerS: SIMD3<Double>, specificForceMPerS2: SIMD3<Double>, timestampSeconds t: Double)
        -> RigidBodyIMUResult
    {
        guard t > timestampSeconds else {
            return .nonIncreasingTimestamp(previousSeconds: timestampSeconds, sampleSeconds: t)
        }
        let capacity = configuration.historyCapacity
        if stepCount == capacity {
            oldestStep = (oldestStep + 1) % capacity
            stepCount -= 1
            // The new oldest snapshot already contains every measurement up to its start.
            let floor = steps[oldestStep].startSeconds
            dropMeasurements(upTo: floor)
        }
        let slot = (oldestStep + stepCount) % capacity
        stepCount += 1
        steps[slot] = HistoryStep(
            startSeconds: timestampSeconds, endSeconds: t, gyroRadPerS: gyroRadPerS,
            specificForceMPerS2: specificForceMPerS2)
        snapshotStates[slot] = state
        (snapshotCovariances + slot * Self.n2).update(from: covariance, count: Self.n2)
        propagateCurrent(gyroRadPerS: gyroRadPerS, specificForceMPerS2: specificForceMPerS2, dt: t - timestampSeconds)
        timestampSeconds = t
        return .propagated
    }

    // MARK: Measurements

    /// Fuses a measurement at its timestamp. One later than the newest IMU sample is applied now (the
    /// filter does not extrapolate); one earlier is applied in the past and the state re-propagated.
    @discardableResult
    public func update(_ measurement: RigidBodyMeasurement) -> RigidBodyMeasurementResult {
        var m = measurement
        let validComponents: UInt8 = m.kind == .pose ? 0b11_1111 : 0b111
        guard m.mask.rawValue & validComponents != 0 else { return .rejected(.emptyMask) }
        if m.timestampSeconds >= timestampSeconds {
            m.timestampSeconds = timestampSeconds
            let result = applyMeasurement(m, gate: true)
            if case .applied = result { store(m) }
            return result
        }
        let t = m.timestampSeconds
        let windowStart = windowStartSeconds
        guard t > windowStart else {
            return .rejected(.tooOld(ageSeconds: timestampSeconds - t, windowSeconds: timestampSeconds - windowStart))
        }
        // Newest step whose start is before t: the measurement falls in (start, end].
        var offset = stepCount - 1
        while offset > 0, steps[(oldestStep + offset) % configuration.historyCapacity].startSeconds >= t {
            offset -= 1
        }
        let capacity = configuration.historyCapacity
        let first = (oldestStep + offset) % capacity
        state = snapshotStates[first]
        covariance.update(from: snapshotCovariances + first * Self.n2, count: Self.n2)
        var result = RigidBodyMeasurementResult.rejected(.emptyMask)
        var newApplied = false
        var cursor = firstMeasurementIndex(after: steps[first].startSeconds)
        for k in offset..<stepCount {
            let slot = (oldestStep + k) % capacity
            let step = steps[slot]
            if k > offset {
                snapshotStates[slot] = state
                (snapshotCovariances + slot * Self.n2).update(from: covariance, count: Self.n2)
            }
            var time = step.startSeconds
            // Stored measurements and the new one, merged in time order (the new one after equal times).
            while true {
                let storedTime = cursor < measurementCount ? storedMeasurement(cursor).timestampSeconds : .infinity
                let takeNew = !newApplied && t <= step.endSeconds && t < storedTime
                let nextTime = takeNew ? t : storedTime
                if nextTime > step.endSeconds { break }
                propagateCurrent(
                    gyroRadPerS: step.gyroRadPerS, specificForceMPerS2: step.specificForceMPerS2, dt: nextTime - time)
                time = nextTime
                if takeNew {
                    result = applyMeasurement(m, gate: true)
                    newApplied = true
                } else {
                    _ = applyMeasurement(storedMeasurement(cursor), gate: false)
                    cursor += 1
                }
            }
            propagateCurrent(
                gyroRadPerS: step.gyroRadPerS, specificForceMPerS2: step.specificForceMPerS2,
                dt: step.endSeconds - time)
        }
        if case .applied(let nis, let dimension, _) = result {
            store(m)
            return .applied(normalisedInnovationSquared: nis, dimension: dimension, replayedSteps: stepCount - offset)
        }
        return result
    }

    // MARK: Consistency

    /// Error state of the estimate with respect to `truth` (truth ⊟ estimate, same order and frames as
    /// the covariance) written to `error[0..<15]`.
    public func errorState(relativeTo truth: RigidBodyNominalState, into error: UnsafeMutablePointer<Double>) {
        let dq = quaternionMultiply(quaternionConjugate(quaternion(state.orientation)), quaternion(truth.orientation))
        let dTheta = quaternionLog(dq)
        let dp = truth.positionM - state.positionM
        let dv = truth.velocityMPerS - state.velocityMPerS
        let dbg = truth.gyroBiasRadPerS - state.gyroBiasRadPerS
        let dba = truth.accelBiasMPerS2 - state.accelBiasMPerS2
        for c in 0..<3 {
            error[c] = dTheta[c]
            error[3 + c] = dp[c]
            error[6 + c] = dv[c]
            error[9 + c] = dbg[c]
            error[12 + c] = dba[c]
        }
    }

    /// Normalised estimation error squared eᵀP⁻¹e over the chosen blocks (a chi-square variable with
    /// 3 × (number of blocks) degrees of freedom when the filter is consistent). For simulations with
    /// known truth; allocates nothing.
    public func normalisedEstimationErrorSquared(
        truth: RigidBodyNominalState, blocks: RigidBodyErrorBlocks = .all
    ) -> Double {
        let error = scratchB
        errorState(relativeTo: truth, into: error)
        var indices = InlineArray<15, Int>(repeating: 0)
        var m = 0
        for b in 0..<5 where blocks.contains(RigidBodyErrorBlocks(rawValue: 1 << UInt8(b))) {
            for c in 0..<3 {
                indices[m] = b * 3 + c
                m += 1
            }
        }
        let sub = scratchA
        var e = InlineArray<15, Double>(repeating: 0)
        for i in 0..<m {
            e[i] = error[indices[i]]
            for j in 0..<m { sub[i * m + j] = covariance[indices[i] * Self.n + indices[j]] }
        }
        guard choleskyInPlace(sub, m) else { return .infinity }
        // eᵀP⁻¹e = |L⁻¹e|².
        var sum = 0.0
        for i in 0..<m {
            var v = e[i]
            for k in 0..<i { v -= sub[i * m + k] * e[k] }
            v /= sub[i * m + i]
            e[i] = v
            sum += v * v
        }
        return sum
    }

    // MARK: Internals

    /// The stored measurement at logical position `index` (0 = oldest).
    @inline(__always)
    private func storedMeasurement(_ index: Int) -> RigidBodyMeasurement {
        measurements[(measurementHead + index) % measurements.count]
    }

    private func store(_ m: RigidBodyMeasurement) {
        let capacity = measurements.count
        if measurementCount == capacity {
            // The oldest stored measurement can no longer be replayed: nothing older may be applied.
            replayFloorSeconds = max(replayFloorSeconds, measurements[measurementHead].timestampSeconds)
            measurementHead = (measurementHead + 1) % capacity
            measurementCount -= 1
        }
        var i = measurementCount
        while i > 0, storedMeasurement(i - 1).timestampSeconds > m.timestampSeconds {
            measurements[(measurementHead + i) % capacity] = storedMeasurement(i - 1)
            i -= 1
        }
        measurements[(measurementHead + i) % capacity] = m
        measurementCount += 1
    }

    private func dropMeasurements(upTo seconds: Double) {
        while measurementCount > 0, measurements[measurementHead].timestampSeconds <= seconds {
            measurementHead = (measurementHead + 1) % measurements.count
            measurementCount -= 1
        }
    }

    /// Logical index of the first stored measurement later than `seconds` (searched from the newest end,
    /// where late measurements land).
    private func firstMeasurementIndex(after seconds: Double) -> Int {
        var i = measurementCount
        while i > 0, storedMeasurement(i - 1).timestampSeconds > seconds { i -= 1 }
        return i
    }

    private func propagateCurrent(gyroRadPerS: SIMD3<Double>, specificForceMPerS2: SIMD3<Double>, dt: Double) {
        guard dt > 0 else { return }
        let n = Self.n
        let omega = gyroRadPerS - state.gyroBiasRadPerS
        let force = specificForceMPerS2 - state.accelBiasMPerS2
        let q = quaternion(state.orientation)
        // The specific force is rotated with the mid-interval attitude: using the start attitude leaves a
        // systematic |ω|·dt/2·|f| error (≈0.01 m/s² at 1 rad/s, 200 Hz) that the filter would read as bias.
        let r = rotationMatrix(quaternionMultiply(q, quaternionExp(omega * (0.5 * dt))))
        let worldAcceleration = matrixVector(r, force) + configuration.gravityMPerS2
        state.positionM += state.velocityMPerS * dt + 0.5 * dt * dt * worldAcceleration
        state.velocityMPerS += worldAcceleration * dt
        let dq = quaternionExp(omega * dt)
        var next = quaternionMultiply(q, dq)
        next = quaternionNormalised(next)
        state.orientation = (next.w, next.x, next.y, next.z)

        // Error-state transition (first order in dt, second order for position). Only the entries listed
        // in `transitionColumns` are ever read; the constant ones (identity blocks) were set in init.
        let f = transition
        let rotationStep = rotationMatrix(dq)  // Exp(ω dt); δθ' = Exp(ω dt)ᵀ δθ − dt δb_g
        let rfx = matrixTimesSkew(r, force)  // R [f]×
        let halfDt2 = 0.5 * dt * dt
        for i in 0..<3 {
            for j in 0..<3 {
                f[i * n + j] = rotationStep[j, i]
                f[(3 + i) * n + j] = -halfDt2 * rfx[i, j]
                f[(3 + i) * n + 12 + j] = -halfDt2 * r[i, j]
                f[(6 + i) * n + j] = -dt * rfx[i, j]
                f[(6 + i) * n + 12 + j] = -dt * r[i, j]
            }
            f[i * n + 9 + i] = -dt
            f[(3 + i) * n + 6 + i] = dt
        }
        // P ← F P Fᵀ + Q over F's 63 structural non-zeros: A = F P (full), then the upper triangle of
        // A Fᵀ, mirrored — about 1 400 multiply-adds instead of 2 × 3 375 dense.
        let a = scratchA
        let p = covariance
        let columns = transitionColumns
        for i in 0..<n {
            let row = a + i * n
            row.update(repeating: 0, count: n)
            for e in 0..<transitionColumnCounts[i] {
                let k = columns[i * 8 + e]
                let fik = f[i * n + k]
                let pRow = p + k * n
                for j in 0..<n { row[j] += fik * pRow[j] }
            }
        }
        for i in 0..<n {
            let aRow = a + i * n
            for j in i..<n {
                var sum = 0.0
                for e in 0..<transitionColumnCounts[j] {
                    let k = columns[j * 8 + e]
                    sum += aRow[k] * f[j * n + k]
                }
                p[i * n + j] = sum
                p[j * n + i] = sum
            }
        }
        let gyroVariance = configuration.gyroNoiseDensity * configuration.gyroNoiseDensity * dt
        let accelVariance = configuration.accelNoiseDensity * configuration.accelNoiseDensity * dt
        let gyroBiasVariance = configuration.gyroBiasRandomWalk * configuration.gyroBiasRandomWalk * dt
        let accelBiasVariance = configuration.accelBiasRandomWalk * configuration.accelBiasRandomWalk * dt
        for i in 0..<3 {
            covariance[i * n + i] += gyroVariance
            covariance[(6 + i) * n + 6 + i] += accelVariance
            covariance[(9 + i) * n + 9 + i] += gyroBiasVariance
            covariance[(12 + i) * n + 12 + i] += accelBiasVariance
        }
    }

    private func symmetrise(_ p: UnsafeMutablePointer<Double>) {
        let n = Self.n
        for i in 0..<n {
            for j in (i + 1)..<n {
                let v = 0.5 * (p[i * n + j] + p[j * n + i])
                p[i * n + j] = v
                p[j * n + i] = v
            }
        }
    }

    /// Kalman update with a selection-matrix H (each measured component observes one error-state entry).
    private func applyMeasurement(_ m: RigidBodyMeasurement, gate: Bool) -> RigidBodyMeasurementResult {
        let n = Self.n
        var indices = InlineArray<6, Int>(repeating: 0)
        var components = InlineArray<6, Int>(repeating: 0)
        var residual = InlineArray<6, Double>(repeating: 0)
        var dimension = 0
        let componentCount = m.kind == .pose ? 6 : 3
        var rotationResidual = SIMD3<Double>.zero
        if m.kind == .orientation || m.kind == .pose {
            let dq = quaternionMultiply(quaternionConjugate(quaternion(state.orientation)), quaternion(m.orientation))
            rotationResidual = quaternionLog(dq)
        }
        for c in 0..<componentCount where m.mask.rawValue & (1 << UInt8(c)) != 0 {
            let axis = c % 3
            switch (m.kind, c < 3) {
            case (.position, _), (.pose, true):
                indices[dimension] = 3 + axis
                residual[dimension] = m.positionM[axis] - state.positionM[axis]
            case (.velocity, _):
                indices[dimension] = 6 + axis
                residual[dimension] = m.velocityMPerS[axis] - state.velocityMPerS[axis]
            case (.orientation, _), (.pose, false):
                indices[dimension] = axis
                residual[dimension] = rotationResidual[axis]
            }
            components[dimension] = c
            dimension += 1
        }
        guard dimension > 0 else { return .rejected(.emptyMask) }

        // S = H P Hᵀ + R, factorised; B = P Hᵀ (15 × dimension, column-major in scratchA).
        let s = scratchB
        for i in 0..<dimension {
            for j in 0..<dimension {
                s[i * dimension + j] =
                    covariance[indices[i] * n + indices[j]] + m.covariance[components[i] * 6 + components[j]]
            }
        }
        guard choleskyInPlace(s, dimension) else { return .rejected(.invalidCovariance) }
        var y = residual
        choleskySolve(s, dimension, &y)
        var nis = 0.0
        for i in 0..<dimension { nis += residual[i] * y[i] }
        guard nis.isFinite else { return .rejected(.invalidCovariance) }
        if gate, nis > configuration.outlierGateNIS {
            return .rejected(.outlier(normalisedInnovationSquared: nis))
        }
        let b = scratchA
        for c in 0..<dimension { for i in 0..<n { b[c * n + i] = covariance[i * n + indices[c]] } }
        // δx = B S⁻¹ r.
        var correction = InlineArray<15, Double>(repeating: 0)
        for c in 0..<dimension { for i in 0..<n { correction[i] += b[c * n + i] * y[c] } }
        // P ← P − B S⁻¹ Bᵀ: solve S X = Bᵀ column by column (15 small solves), then subtract B X.
        let x = scratchB + 36
        for j in 0..<n {
            var column = InlineArray<6, Double>(repeating: 0)
            for c in 0..<dimension { column[c] = b[c * n + j] }
            choleskySolve(s, dimension, &column)
            for c in 0..<dimension { x[c * n + j] = column[c] }
        }
        for i in 0..<n {
            for j in 0..<n {
                var sum = 0.0
                for c in 0..<dimension { sum += b[c * n + i] * x[c * n + j] }
                covariance[i * n + j] -= sum
            }
        }
        symmetrise(covariance)
        inject(correction)
        return .applied(normalisedInnovationSquared: nis, dimension: dimension, replayedSteps: 0)
    }

    /// Moves the error estimate into the nominal state (the error resets to zero; the reset Jacobian
    /// I − [δθ/2]× is taken as identity, as is usual for small corrections).
    private func inject(_ dx: InlineArray<15, Double>) {
        let dTheta = SIMD3(dx[0], dx[1], dx[2])
        let q = quaternionNormalised(quaternionMultiply(quaternion(state.orientation), quaternionExp(dTheta)))
        state.orientation = (q.w, q.x, q.y, q.z)
        state.positionM += SIMD3(dx[3], dx[4], dx[5])
        state.velocityMPerS += SIMD3(dx[6], dx[7], dx[8])
        state.gyroBiasRadPerS += SIMD3(dx[9], dx[10], dx[11])
        state.accelBiasMPerS2 += SIMD3(dx[12], dx[13], dx[14])
    }
}

// MARK: Small fixed-size math (file-private so the module's other estimators keep their own names).

private struct EKFQuaternion {
    var w: Double
    var x: Double
    var y: Double
    var z: Double
}

private func quaternion(_ q: (w: Double, x: Double, y: Double, z: Double)) -> EKFQuaternion {
    EKFQuaternion(w: q.w, x: q.x, y: q.y, z: q.z)
}

private func quaternionMultiply(_ a: EKFQuaternion, _ b: EKFQuaternion) -> EKFQuaternion {
    EKFQuaternion(
        w: a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
        x: a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
        y: a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
        z: a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w)
}

private func quaternionConjugate(_ q: EKFQuaternion) -> EKFQuaternion {
    EKFQuaternion(w: q.w, x: -q.x, y: -q.y, z: -q.z)
}

private func quaternionNormalised(_ q: EKFQuaternion) -> EKFQuaternion {
    let norm = (q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z).squareRoot()
    return EKFQuaternion(w: q.w / norm, x: q.x / norm, y: q.y / norm, z: q.z / norm)
}

private func quaternionExp(_ v: SIMD3<Double>) -> EKFQuaternion {
    let angle = (v * v).sum().squareRoot()
    let half = 0.5 * angle
    // sin(x)/x by its series near zero keeps the map smooth for tiny rotations.
    let k = angle < 1e-8 ? 0.5 - angle * angle / 48 : sin(half) / angle
    return EKFQuaternion(w: cos(half), x: k * v.x, y: k * v.y, z: k * v.z)
}

/// Rotation vector of a unit quaternion, taking the short way round (w ≥ 0).
private func quaternionLog(_ q: EKFQuaternion) -> SIMD3<Double> {
    let sign: Double = q.w < 0 ? -1 : 1
    let v = SIMD3(q.x, q.y, q.z) * sign
    let s = (v * v).sum().squareRoot()
    let w = q.w * sign
    if s < 1e-8 { return v * (2 / max(w, 1e-300)) }
    return v * (2 * atan2(s, w) / s)
}

private struct EKFMatrix3 {
    var rows: (SIMD3<Double>, SIMD3<Double>, SIMD3<Double>)

    subscript(row: Int, column: Int) -> Double {
        switch row {
        case 0: rows.0[column]
        case 1: rows.1[column]
        default: rows.2[column]
        }
    }
}

private func rotationMatrix(_ q: EKFQuaternion) -> EKFMatrix3 {
    let (w, x, y, z) = (q.w, q.x, q.y, q.z)
    return EKFMatrix3(
        rows: (
            SIMD3(1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
            SIMD3(2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
            SIMD3(2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))
        ))
}

private func matrixVector(_ m: EKFMatrix3, _ v: SIMD3<Double>) -> SIMD3<Double> {
    SIMD3((m.rows.0 * v).sum(), (m.rows.1 * v).sum(), (m.rows.2 * v).sum())
}

/// M [v]×, where [v]× is the cross-product matrix (so M [v]× u = M (v × u)).
private func matrixTimesSkew(_ m: EKFMatrix3, _ v: SIMD3<Double>) -> EKFMatrix3 {
    func row(_ r: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3(r.y * v.z - r.z * v.y, r.z * v.x - r.x * v.z, r.x * v.y - r.y * v.x)
    }
    return EKFMatrix3(rows: (row(m.rows.0), row(m.rows.1), row(m.rows.2)))
}

/// In-place Cholesky factorisation (lower triangle) of a symmetric n×n row-major matrix; false when it
/// is not positive definite.
private func choleskyInPlace(_ a: UnsafeMutablePointer<Double>, _ n: Int) -> Bool {
    for j in 0..<n {
        var d = a[j * n + j]
        for k in 0..<j { d -= a[j * n + k] * a[j * n + k] }
        guard d > 0, d.isFinite else { return false }
        let l = d.squareRoot()
        a[j * n + j] = l
        for i in (j + 1)..<n {
            var v = a[i * n + j]
            for k in 0..<j { v -= a[i * n + k] * a[j * n + k] }
            a[i * n + j] = v / l
        }
    }
    return true
}

/// Solves (L Lᵀ) x = b in place for n ≤ 6, L from `choleskyInPlace`.
private func choleskySolve(_ l: UnsafeMutablePointer<Double>, _ n: Int, _ b: inout InlineArray<6, Double>) {
    for i in 0..<n {
        var v = b[i]
        for k in 0..<i { v -= l[i * n + k] * b[k] }
        b[i] = v / l[i * n + i]
    }
    var i = n - 1
    while i >= 0 {
        var v = b[i]
        for k in (i + 1)..<n { v -= l[k * n + i] * b[k] }
        b[i] = v / l[i * n + i]
        i -= 1
    }
}
