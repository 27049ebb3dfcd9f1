import Foundation
import SinewCore

/// A robot's calibration: for every joint, which servo it was recorded on (bus, ID, model) and the servo's
/// reading at the joint's zero and at the ends of its range. The file is versioned and tied to the
/// hardware: a servo swapped behind the configuration's back no longer matches its entry, and
/// `CalibrationFile.check` says which joint and why.
public struct CalibrationFile: Sendable, Equatable {
    public static let formatName = "sinew-calibration"
    public static let currentVersion = 1

    public struct Joint: Sendable, Equatable {
        public var joint: String
        public var bus: String
        public var servoID: UInt8
        public var servoModel: String
        public var modelNumber: UInt16
        /// Present Position at the joint's zero.
        public var zeroCounts: Int64
        /// Present Position at the ends of the recorded range of motion.
        public var minCounts: Int64
        public var maxCounts: Int64

        public init(
            joint: String, bus: String, servoID: UInt8, servoModel: String, modelNumber: UInt16, zeroCounts: Int64,
            minCounts: Int64, maxCounts: Int64
        ) {
            self.joint = joint
            self.bus = bus
            self.servoID = servoID
            self.servoModel = servoModel
            self.modelNumber = modelNumber
            self.zeroCounts = zeroCounts
            self.minCounts = minCounts
            self.maxCounts = maxCounts
        }
    }

    public var robot: String
    /// When it was recorded (ISO 8601), for people.
    public var recorded: String
    public var joints: [Joint]

    public init(robot: String, recorded: String, joints: [Joint]) {
        self.robot = robot
        self.recorded = recorded
        self.joints = joints
    }

    public func entry(forJoint name: String) -> Joint? { joints.first { $0.joint == name } }

    /// What is wrong with a calibration file, or with the hardware it is checked against.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var location: SourceLocation
        public var message: String
        public var description: String { "\(location): \(message)" }
    }

    // MARK: Reading and writing

    /// The largest calibration file read, bytes (a real one is a line per joint).
    public static let maximumFileBytes = 1 << 20
    /// Servo readings a calibration may record: far beyond any encoder, small enough for exact arithmetic.
    public static let countsBound: Int64 = 1 << 31

    public static func load(path: String) throws(Problem) -> CalibrationFile {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
            size.int64Value > Int64(maximumFileBytes)
        {
            throw Problem(
                location: SourceLocation(file: path),
                message: "the calibration file has \(size) bytes; at most \(maximumFileBytes) are read")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem(location: SourceLocation(file: path), message: "cannot read the calibration file")
        }
        return try parse(data: data, file: path)
    }

    public static func parse(data: Data, file: String) throws(Problem) -> CalibrationFile {
        func fail(_ message: String) -> Problem { Problem(location: SourceLocation(file: file), message: message) }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        guard object["format"] as? String == formatName else {
            throw fail("\"format\" must be \"\(formatName)\" (is this a Sinew calibration file?)")
        }
        guard let version = object["version"] as? Int else { throw fail("missing \"version\"") }
        guard version == currentVersion else {
            throw fail("version \(version) is not supported (this Sinew reads version \(currentVersion)); recalibrate")
        }
        guard let entries = object["joints"] as? [[String: Any]] else { throw fail("missing \"joints\" list") }
        var joints: [Joint] = []
        // Where each joint and each (bus, servo ID) was first given, to refuse a second entry for either.
        var jointEntries: [String: Int] = [:]
        var servoEntries: [String: Int] = [:]
        for (i, entry) in entries.enumerated() {
            func field<T>(_ key: String, _ type: T.Type) throws(Problem) -> T {
                guard let value = entry[key] as? T else {
                    throw fail("joints[\(i)].\(key): missing or of the wrong type")
                }
                return value
            }
            let id = try field("id", Int.self)
            let number = try field("model_number", Int.self)
            guard (0...253).contains(id) else { throw fail("joints[\(i)].id: \(id) is not a servo ID") }
            guard (0...0xFFFF).contains(number) else { throw fail("joints[\(i)].model_number: out of range") }
            var counts: [Int64] = []
            for key in ["zero_counts", "min_counts", "max_counts"] {
                let value = Int64(try field(key, Int.self))
                guard abs(value) <= countsBound else {
                    throw fail("joints[\(i)].\(key): \(value) is not a servo reading (within ±\(countsBound))")
                }
                counts.append(value)
            }
            guard counts[1] <= counts[2] else {
                throw fail("joints[\(i)]: min_counts \(counts[1]) is above max_counts \(counts[2])")
            }
            let name = try field("joint", String.self)
            let bus = try field("bus", String.self)
            if let first = jointEntries[name] {
                throw fail(
                    "joints[\(i)].joint: \"\(name)\" is calibrated twice (also joints[\(first)]); one entry per joint")
            }
            jointEntries[name] = i
            if let first = servoEntries["\(bus)#\(id)"] {
                throw fail(
                    "joints[\(i)]: servo \(id) on bus \"\(bus)\" is calibrated twice (also joints[\(first)])")
            }
            servoEntries["\(bus)#\(id)"] = i
            joints.append(
                Joint(
                    joint: name, bus: bus, servoID: UInt8(id), servoModel: try field("model", String.self),
                    modelNumber: UInt16(number), zeroCounts: counts[0], minCounts: counts[1], maxCounts: counts[2]))
        }
        return CalibrationFile(
            robot: object["robot"] as? String ?? "", recorded: object["recorded"] as? String ?? "", joints: joints)
    }

    /// The file's JSON text, one joint per line for readable diffs.
    public var jsonText: String {
        func quoted(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var out = "{\n  \"format\": \"\(Self.formatName)\",\n  \"version\": \(Self.currentVersion),\n"
        out += "  \"robot\": \(quoted(robot)),\n  \"recorded\": \(quoted(recorded)),\n  \"joints\": [\n"
        out += joints.map { j in
            "    {\"joint\": \(quoted(j.joint)), \"bus\": \(quoted(j.bus)), \"id\": \(j.servoID), "
                + "\"model\": \(quoted(j.servoModel)), \"model_number\": \(j.modelNumber), "
                + "\"zero_counts\": \(j.zeroCounts), \"min_counts\": \(j.minCounts), \"max_counts\": \(j.maxCounts)}"
        }.joined(separator: ",\n")
        out += "\n  ]\n}\n"
        return out
    }

    /// Writes the file, checking every step (open, each write, fsync, close): a full disk or a device like
    /// /dev/full is an error naming the reason, never a file reported written that is not.
    public func write(path: String) throws(Problem) {
        func failure(_ step: String, _ code: Int32) -> Problem {
            Problem(
                location: SourceLocation(file: path),
                message:
                    "cannot write the calibration file (\(step): \(String(cString: strerror(code))), errno \(code))")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open", errno) }
        var bytes = Array(jsonText.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let code = written < 0 ? errno : ENOSPC
                close(fd)
                throw failure("write", code)
            }
            offset += written
        }
        // EINVAL: a descriptor that cannot be synchronised (a pipe, /dev/null), which is no failure.
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            let code = errno
            close(fd)
            throw failure("fsync", code)
        }
        guard close(fd) == 0 else { throw failure("close", errno) }
    }

    // MARK: Checking against the robot and the hardware

    /// Checks that the file was recorded for this robot: the robot's name, and only joints it has. A file of
    /// another robot (its name, or joints this one does not have) is refused before any servo is touched.
    /// - Parameters:
    ///   - robot: the robot's name (robot.yaml's `name:`).
    ///   - joints: the robot's configured joint names.
    ///   - file: the calibration file's path, for the message.
    public func checkBelongs(toRobot robot: String, joints names: [String], file: String) throws(Problem) {
        let location = SourceLocation(file: file)
        guard self.robot == robot else {
            let recorded = self.robot.isEmpty ? "no robot name" : "robot \"\(self.robot)\""
            throw Problem(
                location: location,
                message: "this calibration was recorded for \(recorded), not for robot \"\(robot)\"; use the "
                    + "robot's own calibration file or run `sinew calibrate` for it")
        }
        if let stranger = joints.first(where: { !names.contains($0.joint) }) {
            throw Problem(
                location: location,
                message: "joint \"\(stranger.joint)\" is calibrated here but is not a joint of robot \"\(robot)\" ("
                    + names.joined(separator: ", ") + "); recalibrate")
        }
    }

    /// Checks the entry for `joint` against what is configured and what the servo reported at configure time.
    /// - Parameters:
    ///   - reportedModelNumber: what the servo at (bus, id) answered to PING / its Model Number register.
    public func check(
        joint: String, bus: String, servoID: UInt8, servoModel: String, reportedModelNumber: UInt16, file: String
    ) throws(Problem) {
        let location = SourceLocation(file: file)
        guard let entry = entry(forJoint: joint) else {
            throw Problem(location: location, message: "joint \"\(joint)\" is not calibrated; run `sinew calibrate`")
        }
        if entry.bus != bus || entry.servoID != servoID {
            throw Problem(
                location: location,
                message: "joint \"\(joint)\" was calibrated on bus \"\(entry.bus)\" servo \(entry.servoID), "
                    + "but is configured on bus \"\(bus)\" servo \(servoID); recalibrate it")
        }
        if entry.servoModel != servoModel || entry.modelNumber != reportedModelNumber {
            throw Problem(
                location: location,
                message: "joint \"\(joint)\": servo \(servoID) on bus \"\(bus)\" reports model number "
                    + "\(reportedModelNumber), but the calibration was recorded on a \(entry.servoModel) "
                    + "(model number \(entry.modelNumber)): the servo was swapped; recalibrate this joint")
        }
    }
}
