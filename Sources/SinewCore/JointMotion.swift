import Foundation

/// Joint angles over time, as a person moving an arm by hand produces them (a leader arm's recording): rows
/// of a time and one position per joint, read from a CSV file, immutable once parsed.
///
/// The file (UTF-8, comma-separated, `#` comment lines and blank lines ignored, CRLF accepted):
///
///     t_s,shoulder_pan,shoulder_lift,elbow_flex
///     0.00,0.0,-1.2,1.2
///     0.01,0.0012,-1.1994,1.1991
///
/// The header's first field is `t_s` (time, s), then one column per joint (the joints' names; whether they
/// exist is the caller's check). Every row holds finite numbers: a time that increases by at least
/// ``minimumIntervalS`` from the row before, and positions in rad (m for a prismatic joint) within
/// ±``positionBoundRad``. At least two rows; at most ``maximumFileBytes`` bytes, ``maximumJoints`` joints.
///
/// Played back (``sample(atS:segment:positionsRad:velocitiesRadPerS:)``) the rows are knots of a cubic
/// Hermite spline: positions pass through every row, velocities are continuous (C1), the tangent at each row
/// the slope of the parabola through it and its two neighbours. The motion loops: a file whose last row is
/// its first pose wraps seamlessly; otherwise a closing segment returns to the first row, at an average
/// speed of at most ``closingSpeedRadPerS`` (and no shorter than the file's mean row interval), and the
/// tangents wrap around it. Time 0 is the first row.
public struct JointMotion: Sendable, Equatable {
    /// The largest file read, bytes (10 minutes of a 7-joint recording at 100 Hz is ~5 MB).
    public static let maximumFileBytes = 8 << 20
    /// The most joint columns a file may have.
    public static let maximumJoints = 64
    /// How far a position may be from zero, rad or m: far beyond any joint, small enough to stay exact.
    public static let positionBoundRad = 100.0
    /// How far a time may be from zero, s (a recording stamped with Unix time fits).
    public static let timeBoundS = 1e10
    /// The shortest time between two rows, s.
    public static let minimumIntervalS = 1e-5
    /// The fastest average speed of the closing segment of a file that does not end where it starts, rad/s.
    public static let closingSpeedRadPerS = 0.5
    /// Longest field read as a number, bytes.
    static let maximumNumberBytes = 64
    /// Longest joint name, bytes.
    static let maximumNameBytes = 128

    /// The file the motion came from, as given (used in errors).
    public let file: String
    /// The joints, in column order.
    public let jointNames: [String]
    /// The header's line in the file, and each joint column's 1-based byte column in it.
    public let headerLine: Int
    public let jointColumns: [Int]
    /// Each row's line in the file.
    public let rowLines: [Int]
    /// The first row's time in the file, s.
    public let startTimeS: Double
    /// Knot times since the first row, s: the rows, then the closing knot when the file does not end where it
    /// starts. The last knot is the first pose again, at ``loopPeriodS``.
    public let knotTimesS: [Double]
    /// Knot positions, row-major (knot × joint), rad.
    let knotPositionsRad: [Double]
    /// Knot tangents, row-major (knot × joint), rad/s.
    let knotSlopesRadPerS: [Double]
    /// One pass of the loop, s.
    public let loopPeriodS: Double

    public var jointCount: Int { jointNames.count }
    /// Rows in the file.
    public var rowCount: Int { rowLines.count }
    /// From the first row to the last, s.
    public var durationS: Double { knotTimesS[rowCount - 1] }
    /// Whether the file ends where it starts (no closing segment).
    public var endsWhereItStarts: Bool { knotTimesS.count == rowCount }

    /// The position of `joint` (column index) in `row` (0-based), rad.
    public func positionRad(row: Int, joint: Int) -> Double { knotPositionsRad[row * jointCount + joint] }
    /// The time of `row` since the first row, s.
    public func timeS(row: Int) -> Double { knotTimesS[row] }
    /// The column index of a joint, by name.
    public func jointIndex(named name: String) -> Int? { jointNames.firstIndex(of: name) }

    /// A motion from values (a program's own, or a test's): rows of positions in `jointNames` order, checked
    /// like a file's (`file` names it in errors; lines count from 2, after a header on line 1).
    public init(jointNames: [String], timesS: [Double], positionsRad: [[Double]], file: String = "motion")
        throws(JointMotionError)
    {
        var parser = JointMotionParser(file: file)
        try parser.header(fields: ["t_s"] + jointNames, columns: Array(1...(jointNames.count + 1)), line: 1)
        guard timesS.count == positionsRad.count else {
            throw JointMotionError(
                .wrongFieldCount, at: SourceLocation(file: file),
                "\(timesS.count) times for \(positionsRad.count) rows of positions")
        }
        for (i, row) in positionsRad.enumerated() {
            let location = SourceLocation(file: file, line: i + 2)
            guard row.count == jointNames.count else {
                throw JointMotionError(
                    .wrongFieldCount, at: location, "\(row.count) positions for \(jointNames.count) joints")
            }
            try parser.row(timeS: timesS[i], positionsRad: row, line: i + 2, columns: nil)
        }
        self = try parser.finish()
    }

    init(
        file: String, jointNames: [String], headerLine: Int, jointColumns: [Int], rowLines: [Int], startTimeS: Double,
        rowTimesS: [Double], rowPositionsRad: [Double]
    ) {
        self.file = file
        self.jointNames = jointNames
        self.headerLine = headerLine
        self.jointColumns = jointColumns
        self.rowLines = rowLines
        self.startTimeS = startTimeS
        let joints = jointNames.count
        let rows = rowLines.count
        var times = rowTimesS
        var positions = rowPositionsRad
        var closes = true
        for j in 0..<joints where abs(positions[(rows - 1) * joints + j] - positions[j]) > 1e-9 { closes = false }
        if !closes {
            // Back to the first pose at a calm pace: the largest joint travel at the closing speed, and never
            // faster than the file's own rows come.
            var travel = 0.0
            for j in 0..<joints { travel = max(travel, abs(positions[(rows - 1) * joints + j] - positions[j])) }
            let meanInterval = times[rows - 1] / Double(rows - 1)
            times.append(times[rows - 1] + max(meanInterval, travel / Self.closingSpeedRadPerS))
            positions.append(contentsOf: positions[0..<joints])
        }
        let knots = times.count
        // Tangents: the slope of the parabola through each knot and its neighbours; the first and last knots
        // are the same point of the loop, their neighbours the second and the second-to-last knots.
        var slopes = [Double](repeating: 0, count: knots * joints)
        for k in 0..<knots {
            let previous = k == 0 || k == knots - 1 ? knots - 2 : k - 1
            let next = k == 0 || k == knots - 1 ? 1 : k + 1
            let here = k == knots - 1 ? 0 : k
            let hBefore = k == 0 || k == knots - 1 ? times[knots - 1] - times[knots - 2] : times[k] - times[k - 1]
            let hAfter = k == 0 || k == knots - 1 ? times[1] - times[0] : times[k + 1] - times[k]
            for j in 0..<joints {
                let before = (positions[here * joints + j] - positions[previous * joints + j]) / hBefore
                let after = (positions[next * joints + j] - positions[here * joints + j]) / hAfter
                slopes[k * joints + j] = (hAfter * before + hBefore * after) / (hBefore + hAfter)
            }
        }
        knotTimesS = times
        knotPositionsRad = positions
        knotSlopesRadPerS = slopes
        loopPeriodS = times[knots - 1]
    }

    // MARK: Reading

    /// Reads and checks a motion file; the size is checked before anything is read.
    public static func load(contentsOf path: String) throws(JointMotionError) -> JointMotion {
        let location = SourceLocation(file: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw JointMotionError(.unreadableFile, at: location, "no such file")
        }
        guard !isDirectory.boolValue else { throw JointMotionError(.unreadableFile, at: location, "a directory") }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let type = attributes?[.type] as? FileAttributeType, type == .typeRegular,
            let size = (attributes?[.size] as? NSNumber)?.intValue
        else { throw JointMotionError(.unreadableFile, at: location, "not a regular file") }
        guard size <= maximumFileBytes else {
            throw JointMotionError(
                .tooLarge, at: location, "\(size) bytes; a motion file may have at most \(maximumFileBytes)")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw JointMotionError(.unreadableFile, at: location, "cannot be opened for reading")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maximumFileBytes + 1) ?? Data()
        } catch {
            throw JointMotionError(.unreadableFile, at: location, "cannot be read: \(error.localizedDescription)")
        }
        guard data.count <= maximumFileBytes else {
            throw JointMotionError(.tooLarge, at: location, "grew past \(maximumFileBytes) bytes while being read")
        }
        return try parse(bytes: [UInt8](data), file: path)
    }

    /// Parses motion CSV text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(JointMotionError) -> JointMotion {
        try parse(bytes: Array(text.utf8), file: file)
    }

    /// Parses the bytes of a motion CSV file; `file` names it in errors.
    public static func parse(bytes: [UInt8], file: String) throws(JointMotionError) -> JointMotion {
        guard bytes.count <= maximumFileBytes else {
            throw JointMotionError(
                .tooLarge, at: SourceLocation(file: file),
                "\(bytes.count) bytes; a motion file may have at most \(maximumFileBytes)")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw JointMotionError(.notText, at: SourceLocation(file: file), "not UTF-8 text")
        }
        var parser = JointMotionParser(file: file)
        var lineNumber = 0
        // A byte-order mark (spreadsheets write one) is not part of the header.
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var fields: [String] = []
        var columns: [Int] = []
        var values: [Double] = []
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            let lineEnd = end > start && bytes[end - 1] == UInt8(ascii: "\r") ? end - 1 : end
            defer { start = end + 1 }
            var first = start
            while first < lineEnd && (bytes[first] == UInt8(ascii: " ") || bytes[first] == UInt8(ascii: "\t")) {
                first += 1
            }
            if first == lineEnd || bytes[first] == UInt8(ascii: "#") { continue }
            // Fields, trimmed, each with its 1-based byte column.
            fields.removeAll(keepingCapacity: true)
            columns.removeAll(keepingCapacity: true)
            var fieldStart = start
            var cursor = start
            while true {
                if cursor == lineEnd || bytes[cursor] == UInt8(ascii: ",") {
                    var a = fieldStart
                    var b = cursor
                    while a < b && (bytes[a] == UInt8(ascii: " ") || bytes[a] == UInt8(ascii: "\t")) { a += 1 }
                    while b > a && (bytes[b - 1] == UInt8(ascii: " ") || bytes[b - 1] == UInt8(ascii: "\t")) { b -= 1 }
                    fields.append(String(decoding: bytes[a..<b], as: UTF8.self))
                    columns.append(a - start + 1)
                    if fields.count > maximumJoints + 1 && !parser.hasHeader {
                        throw JointMotionError(
                            .tooManyJoints, at: SourceLocation(file: file, line: lineNumber),
                            "more than \(maximumJoints) joint columns")
                    }
                    if cursor == lineEnd { break }
                    fieldStart = cursor + 1
                }
                cursor += 1
            }
            if !parser.hasHeader {
                try parser.header(fields: fields, columns: columns, line: lineNumber)
                continue
            }
            guard fields.count == parser.jointNames.count + 1 else {
                throw JointMotionError(
                    .wrongFieldCount, at: SourceLocation(file: file, line: lineNumber),
                    "\(fields.count) fields; the header has \(parser.jointNames.count + 1) (t_s and "
                        + "\(parser.jointNames.count) joint\(parser.jointNames.count == 1 ? "" : "s"))")
            }
            values.removeAll(keepingCapacity: true)
            for (i, field) in fields.enumerated() {
                let location = SourceLocation(file: file, line: lineNumber, column: columns[i])
                let what = i == 0 ? "time" : "position of \(parser.jointNames[i - 1])"
                guard field.utf8.count <= maximumNumberBytes, let value = Double(field) else {
                    let shown = field.isEmpty ? "an empty field" : "'\(field.prefix(24))'"
                    throw JointMotionError(.notANumber, at: location, "\(what): \(shown) is not a number")
                }
                guard value.isFinite else {
                    throw JointMotionError(.notFinite, at: location, "\(what): '\(field)' is not a finite number")
                }
                values.append(value)
            }
            try parser.row(
                timeS: values[0], positionsRad: Array(values.dropFirst()), line: lineNumber, columns: columns)
        }
        guard parser.hasHeader else {
            throw JointMotionError(
                .missingHeader, at: SourceLocation(file: file),
                "no header: the first line must be t_s followed by the joints' names")
        }
        return try parser.finish()
    }

    // MARK: Playback

    /// The motion at `timeS` seconds after its first row (looping; a negative or non-finite time is the start):
    /// each joint's position (rad) and velocity (rad/s), in column order, into buffers of at least
    /// ``jointCount`` elements. `segment` remembers where the last call was, so playing forward costs a step;
    /// start it at 0. Allocation-free.
    public func sample(
        atS timeS: Double, segment: inout Int, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        let knots = knotTimesS.count
        var phase = timeS.isFinite && timeS > 0 ? timeS.truncatingRemainder(dividingBy: loopPeriodS) : 0
        if !(phase >= 0 && phase < loopPeriodS) { phase = 0 }
        var s = segment >= 0 && segment < knots - 1 ? segment : 0
        if !(knotTimesS[s] <= phase && phase < knotTimesS[s + 1]) {
            if s + 2 < knots && knotTimesS[s + 1] <= phase && phase < knotTimesS[s + 2] {
                s += 1
            } else {
                var lo = 0
                var hi = knots - 1
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2
                    if knotTimesS[mid] <= phase { lo = mid } else { hi = mid }
                }
                s = lo
            }
        }
        segment = s
        let joints = jointCount
        let h = knotTimesS[s + 1] - knotTimesS[s]
        let u = min(max((phase - knotTimesS[s]) / h, 0), 1)
        let u2 = u * u
        let u3 = u2 * u
        let h00 = 2 * u3 - 3 * u2 + 1
        let h10 = u3 - 2 * u2 + u
        let h01 = 3 * u2 - 2 * u3
        let h11 = u3 - u2
        let d00 = (6 * u2 - 6 * u) / h
        let d10 = 3 * u2 - 4 * u + 1
        let d01 = (6 * u - 6 * u2) / h
        let d11 = 3 * u2 - 2 * u
        let a = s * joints
        let b = a + joints
        for j in 0..<min(joints, positionsRad.count, velocitiesRadPerS.count) {
            let q0 = knotPositionsRad[a + j]
            let q1 = knotPositionsRad[b + j]
            let m0 = knotSlopesRadPerS[a + j]
            let m1 = knotSlopesRadPerS[b + j]
            positionsRad[j] = h00 * q0 + h10 * h * m0 + h01 * q1 + h11 * h * m1
            velocitiesRadPerS[j] = d00 * q0 + d10 * m0 + d01 * q1 + d11 * m1
        }
    }

    /// ``sample(atS:segment:positionsRad:velocitiesRadPerS:)`` into new arrays (allocates; for checks and tests).
    public func sample(atS timeS: Double) -> (positionsRad: [Double], velocitiesRadPerS: [Double]) {
        var positions = [Double](repeating: 0, count: jointCount)
        var velocities = [Double](repeating: 0, count: jointCount)
        var segment = 0
        positions.withUnsafeMutableBufferPointer { p in
            velocities.withUnsafeMutableBufferPointer { v in
                sample(atS: timeS, segment: &segment, positionsRad: p, velocitiesRadPerS: v)
            }
        }
        return (positions, velocities)
    }
}

/// What is wrong with a motion file, and where (file:line, and the column where one field is at fault).
public struct JointMotionError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case unreadableFile
        case tooLarge
        case notText
        case missingHeader
        /// The header's first field is not `t_s`, or a joint's name is empty, too long or repeated.
        case badHeader
        case tooManyJoints
        /// A row with more or fewer fields than the header.
        case wrongFieldCount
        case notANumber
        /// NaN or an infinity.
        case notFinite
        /// A position beyond ±100 rad, a time beyond ±1e10 s.
        case outOfRange
        /// A time not at least ``JointMotion/minimumIntervalS`` after the previous row's.
        case timeNotIncreasing
        /// Fewer than two rows.
        case tooFewRows
    }

    public var kind: Kind
    public var location: SourceLocation
    public var problem: String

    public init(_ kind: Kind, at location: SourceLocation, _ problem: String) {
        self.kind = kind
        self.location = location
        self.problem = problem
    }

    public var description: String { "\(location): \(problem)" }
}

/// Checks a motion's header and rows as they come, and builds the motion.
struct JointMotionParser {
    let file: String
    var jointNames: [String] = []
    var jointColumns: [Int] = []
    var headerLine = 0
    var hasHeader = false
    var rowLines: [Int] = []
    var times: [Double] = []
    var positions: [Double] = []
    var startTimeS = 0.0
    var previousTimeS = 0.0

    init(file: String) { self.file = file }

    mutating func header(fields: [String], columns: [Int], line: Int) throws(JointMotionError) {
        func at(_ i: Int) -> SourceLocation { SourceLocation(file: file, line: line, column: columns[i]) }
        guard fields.first == "t_s" else {
            throw JointMotionError(
                .badHeader, at: at(0),
                "the header must start with t_s (time, s), found '\(fields.first?.prefix(24) ?? "")'")
        }
        guard fields.count >= 2 else {
            throw JointMotionError(.badHeader, at: at(0), "the header names no joint after t_s")
        }
        guard fields.count <= JointMotion.maximumJoints + 1 else {
            throw JointMotionError(
                .tooManyJoints, at: at(0), "\(fields.count - 1) joint columns; at most \(JointMotion.maximumJoints)")
        }
        for i in 1..<fields.count {
            let name = fields[i]
            guard !name.isEmpty else { throw JointMotionError(.badHeader, at: at(i), "an empty joint name") }
            guard name.utf8.count <= JointMotion.maximumNameBytes,
                name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F && $0 != "\"" })
            else {
                throw JointMotionError(
                    .badHeader, at: at(i),
                    "'\(name.prefix(24))' is not a joint name (at most \(JointMotion.maximumNameBytes) bytes, "
                        + "no quotes or control characters)")
            }
            if let first = fields[1..<i].firstIndex(of: name) {
                throw JointMotionError(
                    .badHeader, at: at(i), "joint '\(name)' has two columns (\(columns[first]) and \(columns[i]))")
            }
        }
        jointNames = Array(fields.dropFirst())
        jointColumns = Array(columns.dropFirst())
        headerLine = line
        hasHeader = true
    }

    mutating func row(timeS: Double, positionsRad: [Double], line: Int, columns: [Int]?) throws(JointMotionError) {
        func at(_ i: Int) -> SourceLocation { SourceLocation(file: file, line: line, column: columns?[i] ?? 0) }
        guard timeS.isFinite else { throw JointMotionError(.notFinite, at: at(0), "time: not a finite number") }
        guard abs(timeS) <= JointMotion.timeBoundS else {
            throw JointMotionError(.outOfRange, at: at(0), "time \(timeS) s is beyond ±1e10 s")
        }
        for (j, value) in positionsRad.enumerated() {
            guard value.isFinite else {
                throw JointMotionError(
                    .notFinite, at: at(j + 1), "position of \(jointNames[j]): not a finite number")
            }
            guard abs(value) <= JointMotion.positionBoundRad else {
                throw JointMotionError(
                    .outOfRange, at: at(j + 1), "position of \(jointNames[j]): \(value) is beyond ±100 rad")
            }
        }
        if rowLines.isEmpty {
            startTimeS = timeS
        } else if !(timeS - previousTimeS >= JointMotion.minimumIntervalS) {
            throw JointMotionError(
                .timeNotIncreasing, at: at(0),
                "time \(timeS) s does not come at least 10 µs after the previous row's \(previousTimeS) s "
                    + "(line \(rowLines[rowLines.count - 1]))")
        }
        guard rowLines.count < JointMotion.maximumFileBytes / 4 else {
            throw JointMotionError(.tooLarge, at: at(0), "too many rows")
        }
        previousTimeS = timeS
        rowLines.append(line)
        times.append(timeS - startTimeS)
        positions.append(contentsOf: positionsRad)
    }

    func finish() throws(JointMotionError) -> JointMotion {
        guard rowLines.count >= 2 else {
            throw JointMotionError(
                .tooFewRows, at: SourceLocation(file: file, line: rowLines.last ?? headerLine),
                "\(rowLines.count) row\(rowLines.count == 1 ? "" : "s") of data; a motion needs at least 2")
        }
        return JointMotion(
            file: file, jointNames: jointNames, headerLine: headerLine, jointColumns: jointColumns,
            rowLines: rowLines, startTimeS: startTimeS, rowTimesS: times, rowPositionsRad: positions)
    }
}
