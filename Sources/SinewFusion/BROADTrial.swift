import Foundation
import SinewCore

/// Bad BROAD input or output: where (file and 1-based line, 0 when the whole file is concerned) and what.
public struct BROADError: Error, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String

    public init(location: SourceLocation, message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// One BROAD trial (Laidig et al., "BROAD — A Benchmark for Robust Inertial Orientation Estimation", Data 6(7),
/// 2021) in the CSV layout of `Tests/Fixtures/imu/broad/` (its README.md lists the columns).
public struct BROADTrial: Sendable {
    /// File name without directory and extension, e.g. `25_disturbed_tapping_B`.
    public var name: String
    public var timeS: [Double]
    public var gyroRadPerS: [SIMD3<Double>]
    public var accelerationMPerS2: [SIMD3<Double>]
    public var magneticFieldMicroTesla: [SIMD3<Double>]
    /// Optical ground truth, sensor relative to ENU; components are NaN where the cameras lost the marker.
    public var reference: [OrientationQuaternion]
    /// True for samples of a motion phase (the only ones the metric scores).
    public var movement: [Bool]

    public var count: Int { timeS.count }

    /// Samples the metric scores: in a motion phase, with a reference orientation.
    public var scoredSampleCount: Int {
        zip(movement, reference).reduce(0) { $0 + ($1.0 && !$1.1.w.isNaN ? 1 : 0) }
    }

    /// Mean sample period (s) from the time column; BROAD's nominal 1/285.714 s when that is unusable.
    public var samplePeriodS: Double {
        let mean = count > 1 ? (timeS[count - 1] - timeS[0]) / Double(count - 1) : 0
        return mean > 0 && mean.isFinite ? mean : 1.0 / 285.714
    }

    static let columns = [
        "t_s", "gyr_x", "gyr_y", "gyr_z", "acc_x", "acc_y", "acc_z", "mag_x", "mag_y", "mag_z",
        "ref_qw", "ref_qx", "ref_qy", "ref_qz", "movement",
    ]

    /// Reads a BROAD CSV file. Columns are found by name in the header, so their order does not matter.
    public static func load(path: String) throws(BROADError) -> BROADTrial {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BROADError(location: SourceLocation(file: path), message: "cannot read the file")
        }
        var bytes = [UInt8](data)
        bytes.append(0)  // strtod needs a terminator after the last field
        let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return try bytes.withUnsafeBufferPointer { (buffer) throws(BROADError) -> BROADTrial in
            try parse(buffer, byteCount: buffer.count - 1, path: path, name: name)
        }
    }

    private static func parse(
        _ buffer: UnsafeBufferPointer<UInt8>, byteCount: Int, path: String, name: String
    ) throws(BROADError) -> BROADTrial {
        let newline = UInt8(ascii: "\n")
        let comma = UInt8(ascii: ",")
        let carriageReturn = UInt8(ascii: "\r")
        var headerEnd = 0
        while headerEnd < byteCount && buffer[headerEnd] != newline { headerEnd += 1 }
        var headerText = String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<headerEnd]), as: UTF8.self)
        if headerText.hasSuffix("\r") { headerText.removeLast() }
        let header = headerText.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        var columnOfField = [Int](repeating: -1, count: columns.count)
        for (field, wanted) in columns.enumerated() {
            guard let index = header.firstIndex(of: wanted) else {
                throw BROADError(
                    location: SourceLocation(file: path, line: 1), message: "missing column '\(wanted)' in the header")
            }
            columnOfField[field] = index
        }
        let columnCount = header.count
        // Which field (or -1) each CSV column feeds.
        var fieldOfColumn = [Int](repeating: -1, count: columnCount)
        for (field, column) in columnOfField.enumerated() { fieldOfColumn[column] = field }

        let estimatedRows = byteCount / 100 + 16
        var trial = BROADTrial(
            name: name, timeS: [], gyroRadPerS: [], accelerationMPerS2: [], magneticFieldMicroTesla: [],
            reference: [], movement: [])
        trial.timeS.reserveCapacity(estimatedRows)
        trial.gyroRadPerS.reserveCapacity(estimatedRows)
        trial.accelerationMPerS2.reserveCapacity(estimatedRows)
        trial.magneticFieldMicroTesla.reserveCapacity(estimatedRows)
        trial.reference.reserveCapacity(estimatedRows)
        trial.movement.reserveCapacity(estimatedRows)

        var values = [Double](repeating: 0, count: columns.count)
        var position = headerEnd + 1
        var line = 1
        let base = buffer.baseAddress!
        while position < byteCount {
            line += 1
            // Skip blank lines (a trailing newline, Windows line ends).
            if buffer[position] == newline || buffer[position] == carriageReturn {
                position += 1
                if buffer[position - 1] == carriageReturn && position < byteCount && buffer[position] == newline {
                    position += 1
                }
                continue
            }
            for column in 0..<columnCount {
                let start = base + position
                var end: UnsafeMutablePointer<CChar>? = nil
                let value = start.withMemoryRebound(to: CChar.self, capacity: 1) { strtod($0, &end) }
                let consumed = end.map { UnsafeRawPointer($0) - UnsafeRawPointer(start) } ?? 0
                let next = position + consumed
                let terminator = next < byteCount ? buffer[next] : newline
                let isLast = column == columnCount - 1
                let expected = isLast ? (terminator == newline || terminator == carriageReturn) : terminator == comma
                if consumed == 0 || !expected {
                    var fieldEnd = position
                    while fieldEnd < byteCount && buffer[fieldEnd] != comma && buffer[fieldEnd] != newline {
                        fieldEnd += 1
                    }
                    let text = String(
                        decoding: UnsafeBufferPointer(rebasing: buffer[position..<fieldEnd]), as: UTF8.self)
                    let problem: String
                    if consumed == 0 || (terminator != comma && terminator != newline && terminator != carriageReturn) {
                        problem = "column '\(header[column])': '\(text)' is not a number"
                    } else if isLast {
                        problem = "more than \(columnCount) columns"
                    } else {
                        problem = "only \(column + 1) of \(columnCount) columns"
                    }
                    throw BROADError(location: SourceLocation(file: path, line: line), message: problem)
                }
                let field = fieldOfColumn[column]
                if field >= 0 { values[field] = value }
                position = next + 1
                if isLast && terminator == carriageReturn && position < byteCount && buffer[position] == newline {
                    position += 1
                }
            }
            trial.timeS.append(values[0])
            trial.gyroRadPerS.append(SIMD3(values[1], values[2], values[3]))
            trial.accelerationMPerS2.append(SIMD3(values[4], values[5], values[6]))
            trial.magneticFieldMicroTesla.append(SIMD3(values[7], values[8], values[9]))
            trial.reference.append(OrientationQuaternion(w: values[10], x: values[11], y: values[12], z: values[13]))
            trial.movement.append(values[14] == 1)
        }
        if trial.count == 0 {
            throw BROADError(location: SourceLocation(file: path, line: line), message: "no samples")
        }
        return trial
    }
}

/// RMS orientation errors (degrees) with the BROAD metric: error quaternion `e = q_est ⊗ q_ref⁻¹`;
/// total `2·acos|e_w|`, heading `2·atan|e_z/e_w|`, inclination `2·acos√(e_w² + e_z²)`, over the samples of
/// motion phases that have a reference.
public struct BROADErrors: Sendable, Equatable, Codable {
    public var totalDeg: Double
    public var headingDeg: Double
    public var inclinationDeg: Double

    /// The key names of `sinew fusion eval --json`.
    enum CodingKeys: String, CodingKey {
        case totalDeg = "total_deg"
        case headingDeg = "heading_deg"
        case inclinationDeg = "inclination_deg"
    }

    public init(totalDeg: Double, headingDeg: Double, inclinationDeg: Double) {
        self.totalDeg = totalDeg
        self.headingDeg = headingDeg
        self.inclinationDeg = inclinationDeg
    }
}

/// The estimator's output and score on one trial.
public struct BROADTrialResult: Sendable {
    public var name: String
    public var errors: BROADErrors
    /// Estimated orientation (sensor → ENU) for every sample.
    public var estimates: [OrientationQuaternion]
    public var timeS: [Double]
}

/// Per-trial results and their mean.
public struct BROADSummary: Sendable {
    public var trials: [BROADTrialResult]
    public var mean: BROADErrors

    /// `{"trials": [{"name", "total_deg", "heading_deg", "inclination_deg"}], "mean": {...}}`, one line.
    public var json: String {
        // JSON has no NaN or infinity: such an error (a diverged estimate) is written as null.
        func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
        func errorsJSON(_ e: BROADErrors) -> String {
            "\"total_deg\": \(number(e.totalDeg)), \"heading_deg\": \(number(e.headingDeg)), "
                + "\"inclination_deg\": \(number(e.inclinationDeg))"
        }
        let trialsJSON = trials.map { "{\"name\": \(jsonString($0.name)), \(errorsJSON($0.errors))}" }
        return "{\"trials\": [\(trialsJSON.joined(separator: ", "))], \"mean\": {\(errorsJSON(mean))}}"
    }

    /// A fixed-width table: one row per trial and a final `mean` row, degrees with 2 decimals.
    public var table: String {
        let width = max(4, trials.map { $0.name.count }.max() ?? 0)
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        func row(_ name: String, _ e: BROADErrors) -> String {
            pad(name)
                + String(format: "  %9.2f  %11.2f  %15.2f", e.totalDeg, e.headingDeg, e.inclinationDeg)
        }
        var lines = [pad("trial") + "  total (°)  heading (°)  inclination (°)"]
        lines += trials.map { row($0.name, $0.errors) }
        lines.append(row("mean", mean))
        return lines.joined(separator: "\n")
    }
}

private func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// Runs ``AHRS`` over BROAD trials and scores it.
public enum BROADEvaluation {
    /// Runs a fresh estimator over the whole trial (9-D unless `useMagnetometer` is false) and scores it.
    public static func run(
        _ trial: BROADTrial, configuration: AHRSConfiguration = AHRSConfiguration(), useMagnetometer: Bool = true
    ) -> BROADTrialResult {
        var ahrs = AHRS(samplePeriodS: trial.samplePeriodS, configuration: configuration)
        var estimates = [OrientationQuaternion]()
        estimates.reserveCapacity(trial.count)
        for i in 0..<trial.count {
            if useMagnetometer {
                ahrs.update(
                    gyroRadPerS: trial.gyroRadPerS[i], accelerationMPerS2: trial.accelerationMPerS2[i],
                    magneticField: trial.magneticFieldMicroTesla[i])
            } else {
                ahrs.update(gyroRadPerS: trial.gyroRadPerS[i], accelerationMPerS2: trial.accelerationMPerS2[i])
            }
            estimates.append(ahrs.orientation)
        }
        return BROADTrialResult(
            name: trial.name, errors: score(estimates: estimates, trial: trial), estimates: estimates,
            timeS: trial.timeS)
    }

    /// The BROAD metric of `estimates` (one per sample, sensor → ENU) against the trial's reference.
    public static func score(estimates: [OrientationQuaternion], trial: BROADTrial) -> BROADErrors {
        var sumTotal = 0.0
        var sumHeading = 0.0
        var sumInclination = 0.0
        var n = 0
        for i in 0..<min(estimates.count, trial.count) where trial.movement[i] {
            let r = trial.reference[i]
            if r.w.isNaN || r.x.isNaN || r.y.isNaN || r.z.isNaN { continue }
            let (total, heading, inclination) = estimates[i].errorAnglesRad(relativeTo: r)
            sumTotal += total * total
            sumHeading += heading * heading
            sumInclination += inclination * inclination
            n += 1
        }
        let toDeg = 180 / Double.pi
        let count = Double(max(n, 1))
        return BROADErrors(
            totalDeg: (sumTotal / count).squareRoot() * toDeg, headingDeg: (sumHeading / count).squareRoot() * toDeg,
            inclinationDeg: (sumInclination / count).squareRoot() * toDeg)
    }

    /// Runs every trial (one parameter set) and averages the errors over trials.
    public static func evaluate(
        _ trials: [BROADTrial], configuration: AHRSConfiguration = AHRSConfiguration(), useMagnetometer: Bool = true
    ) -> BROADSummary {
        let results = trials.map { run($0, configuration: configuration, useMagnetometer: useMagnetometer) }
        let n = Double(max(results.count, 1))
        let mean = BROADErrors(
            totalDeg: results.reduce(0) { $0 + $1.errors.totalDeg } / n,
            headingDeg: results.reduce(0) { $0 + $1.errors.headingDeg } / n,
            inclinationDeg: results.reduce(0) { $0 + $1.errors.inclinationDeg } / n)
        return BROADSummary(trials: results, mean: mean)
    }

    /// Writes `DIRECTORY/<trial name>.csv` with columns `t_s,q_w,q_x,q_y,q_z` (sensor → ENU), creating the
    /// directory if needed. Returns the path written.
    @discardableResult
    public static func writeEstimates(_ result: BROADTrialResult, directory: String) throws(BROADError) -> String {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BROADError(
                location: SourceLocation(file: directory), message: "cannot create the directory: \(error)")
        }
        let path = (directory as NSString).appendingPathComponent(result.name + ".csv")
        var text = "t_s,q_w,q_x,q_y,q_z\n"
        text.reserveCapacity(result.estimates.count * 96)
        for (t, q) in zip(result.timeS, result.estimates) {
            text += "\(t),\(q.w),\(q.x),\(q.y),\(q.z)\n"
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw BROADError(location: SourceLocation(file: path), message: "cannot write the file")
        }
        return path
    }

    /// Cost of one 9-D ``AHRS`` update in nanoseconds: the trial's samples are replayed (repeatedly, until at
    /// least `minimumUpdates` updates ran) and the wall-clock time divided by the number of updates.
    public static func nanosecondsPer9DUpdate(_ trial: BROADTrial, minimumUpdates: Int = 2_000_000) -> Double {
        var ahrs = AHRS(samplePeriodS: trial.samplePeriodS)
        let n = trial.count
        guard n > 0 else { return 0 }
        var checksum = 0.0
        // Warm up caches and the branch predictor on one pass.
        trial.gyroRadPerS.withUnsafeBufferPointer { gyro in
            trial.accelerationMPerS2.withUnsafeBufferPointer { acc in
                trial.magneticFieldMicroTesla.withUnsafeBufferPointer { mag in
                    for i in 0..<n {
                        ahrs.update(gyroRadPerS: gyro[i], accelerationMPerS2: acc[i], magneticField: mag[i])
                    }
                }
            }
        }
        let passes = max(1, (minimumUpdates + n - 1) / n)
        let clock = ContinuousClock()
        let start = clock.now
        trial.gyroRadPerS.withUnsafeBufferPointer { gyro in
            trial.accelerationMPerS2.withUnsafeBufferPointer { acc in
                trial.magneticFieldMicroTesla.withUnsafeBufferPointer { mag in
                    for _ in 0..<passes {
                        for i in 0..<n {
                            ahrs.update(gyroRadPerS: gyro[i], accelerationMPerS2: acc[i], magneticField: mag[i])
                        }
                        checksum += ahrs.orientation.w
                    }
                }
            }
        }
        let elapsed = clock.now - start
        // Keeps the optimiser from discarding the loop.
        if checksum.isNaN { return .nan }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return seconds * 1e9 / Double(passes * n)
    }
}
