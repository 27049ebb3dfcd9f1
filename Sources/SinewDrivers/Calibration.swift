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

    public static func load(path: String) throws(Problem) -> CalibrationFile {
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
            joints.append(
                Joint(
                    joint: try field("joint", String.self), bus: try field("bus", String.self), servoID: UInt8(id),
                    servoModel: try field("model", String.self), modelNumber: UInt16(number),
                    zeroCounts: Int64(try field("zero_counts", Int.self)),
                    minCounts: Int64(try field("min_counts", Int.self)),
                    maxCounts: Int64(try field("max_counts", Int.self))))
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

    public func write(path: String) throws(Problem) {
        guard FileManager.default.createFile(atPath: path, contents: Data(jsonText.utf8)) else {
            throw Problem(location: SourceLocation(file: path), message: "cannot write the calibration file")
        }
    }

    // MARK: Checking against the hardware

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
