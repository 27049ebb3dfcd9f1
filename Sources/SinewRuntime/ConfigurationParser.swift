import Foundation
import SinewCore
import Yams

extension RobotConfiguration {
    /// Keys valid at each place of a `robot.yaml`; unknown keys are errors with a suggestion from these.
    enum Keys {
        static let root = [
            "name", "model", "buses", "joints", "loop", "policy", "safety", "recording", "imu", "calibration",
            "simulation", "telemetry", "ros",
        ]
        static let bus = ["name", "protocol", "port", "baud", "reply_margin_ms", "retries"]
        static let joint = [
            "name", "bus", "id", "servo", "reducer", "direction", "offset_rad", "limits", "safe_state", "coupled",
        ]
        static let reducer = ["ratio", "backlash_rad", "efficiency"]
        static let limits = ["position_rad", "velocity_rad_s", "effort_nm", "acceleration_rad_s2"]
        static let coupled = ["id", "direction", "bus"]
        static let loop = ["rate_hz", "priority", "cpu", "overrun", "catch_up_max", "busy_poll_us", "bus_io"]
        static let waypoint = ["positions_rad", "duration_s"]
        static let safety = [
            "position_margin_rad", "velocity_limit_scale", "max_step_rad", "workspace", "watchdog_ms",
            "bus_error_budget", "estop",
        ]
        static let workspaceBox = ["frame", "min", "max"]
        static let estop = ["file", "socket", "required"]
        static let recording = ["enabled", "path", "decimation", "profile", "compression"]
        static let imu = ["port", "protocol", "link", "mounting", "rate_hz", "baud"]
        static let mounting = ["xyz", "rpy"]
        static let simulation = ["motion"]
        static let telemetry = ["listen", "dashboard", "token_file"]
        static let ros = [
            "enabled", "namespace", "domain_id", "interface", "peers", "multicast", "joint_states_rate_hz",
            "tf_rate_hz", "imu_rate_hz", "diagnostics_rate_hz",
        ]
    }

    /// Reads and checks a `robot.yaml` file. The URDF path in it is resolved against the file's directory.
    /// This checks the configuration on its own; `check(against:)` checks it against the URDF.
    /// `policyTypes`: the types `policy.type` may name (the built-ins, and a program's own).
    public static func load(contentsOf path: String, policyTypes: [any PolicyType] = PolicyTypes.builtin)
        throws(ConfigurationError) -> RobotConfiguration
    {
        // Refuse an oversized file before reading it (a device or a multi-gigabyte file named by mistake).
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
            size.int64Value > Int64(maximumFileBytes)
        {
            throw ConfigurationError(
                .tooLarge, at: SourceLocation(file: path), keyPath: "",
                expected: "a robot.yaml of at most \(maximumFileBytes) bytes", found: "a file of \(size) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(
                .unreadableFile, at: SourceLocation(file: path), keyPath: "", expected: "a readable file",
                found: FileManager.default.fileExists(atPath: path) ? "a file that cannot be read" : "no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(
                .unreadableFile, at: SourceLocation(file: path), keyPath: "", expected: "UTF-8 text",
                found: "bytes that are not UTF-8")
        }
        let directory = (path as NSString).deletingLastPathComponent
        return try parse(
            text, file: path, baseDirectory: directory.isEmpty ? "." : directory, policyTypes: policyTypes)
    }

    /// Parses `robot.yaml` text. `file` is used in error locations; relative paths in it (the URDF) are
    /// resolved against `baseDirectory`.
    public static func parse(
        _ text: String, file: String, baseDirectory: String, policyTypes: [any PolicyType] = PolicyTypes.builtin
    ) throws(ConfigurationError) -> RobotConfiguration {
        let reader = YAMLReader(file: file)
        if text.utf8.count > maximumFileBytes {
            throw ConfigurationError(
                .tooLarge, at: SourceLocation(file: file), keyPath: "",
                expected: "a robot.yaml of at most \(maximumFileBytes) bytes",
                found: "a document of \(text.utf8.count) bytes")
        }
        if let key = YAMLKeyScan.firstNonScalarKey(in: text) {
            throw ConfigurationError(
                .wrongType, at: SourceLocation(file: file, line: key.line, column: key.column), keyPath: "",
                expected: "plain keys (robot.yaml's keys are words)", found: key.what)
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigurationError(
                    .malformedYAML, at: SourceLocation(file: file), keyPath: "",
                    expected: "a mapping with keys \(Keys.root.joined(separator: ", "))", found: "an empty document")
            }
            root = node
        } catch let error as ConfigurationError {
            throw error
        } catch let error as YamlError {
            let mark = error.mark
            throw ConfigurationError(
                .malformedYAML, at: SourceLocation(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0),
                keyPath: "", expected: "valid YAML", found: error.problem)
        } catch {
            throw ConfigurationError(
                .malformedYAML, at: SourceLocation(file: file), keyPath: "", expected: "valid YAML", found: "\(error)")
        }
        // Aliases and merge keys share nodes, so the composed document is small, but reading it visits every
        // node where it is used: a merge-key bomb (merges of merges of lists of aliases) would take forever.
        if let node = YAMLExpansion.nodeWhereLimitIsPassed(root, limit: maximumExpandedNodes) {
            throw ConfigurationError(
                .tooLarge, at: reader.location(node), keyPath: "",
                expected: "at most \(maximumExpandedNodes) nodes once aliases and merge keys ('<<') are expanded",
                found: "a document that expands to more (here the count passes the limit)")
        }
        return try Parser(reader: reader, baseDirectory: baseDirectory, policyTypes: policyTypes).robot(root)
    }
}

/// One pass over the document: sections that others refer to (buses, then joints) come first so that
/// references can be checked where they are written.
private struct Parser {
    typealias Keys = RobotConfiguration.Keys
    let reader: YAMLReader
    let baseDirectory: String
    let policyTypes: [any PolicyType]

    func robot(_ root: Node) throws(ConfigurationError) -> RobotConfiguration {
        let fields = try YAMLFields(root, path: "", allowed: Keys.root, reader: reader)
        let modelText = try reader.string(
            try fields.required("model", expected: "the path of the robot's URDF file"), "model",
            expected: "the path of the robot's URDF file")
        let modelPath =
            modelText.hasPrefix("/") ? modelText : (baseDirectory as NSString).appendingPathComponent(modelText)
        let name: String
        if let nameNode = fields["name"] {
            name = try reader.string(nameNode, "name", expected: RobotConfiguration.nameRule)
            guard RobotConfiguration.isSafeName(name) else {
                throw reader.error(.invalidValue, nameNode, "name", expected: RobotConfiguration.nameRule)
            }
        } else {
            name = RobotConfiguration.safeName(
                from: ((reader.file as NSString).deletingLastPathComponent as NSString).lastPathComponent)
        }
        let buses = try self.buses(try fields.required("buses", expected: "a list of servo buses"))
        let joints = try self.joints(try fields.required("joints", expected: "a list of joints"), buses: buses)
        let loop = try fields["loop"].map { node throws(ConfigurationError) in try self.loop(node) } ?? .init()
        let policy =
            try fields["policy"].map { node throws(ConfigurationError) in try self.policy(node, joints: joints) }
            ?? .hold
        let safety = try fields["safety"].map { node throws(ConfigurationError) in try self.safety(node) } ?? .init()
        let recording =
            try fields["recording"].map { node throws(ConfigurationError) in try self.recording(node) } ?? .init()
        let imu = try fields["imu"].map { node throws(ConfigurationError) in try self.imu(node) }
        let calibration = try fields["calibration"].map { node throws(ConfigurationError) in
            let text = try reader.string(
                node, "calibration", expected: "the path of the calibration file written by `sinew calibrate`")
            return text.hasPrefix("/") ? text : (baseDirectory as NSString).appendingPathComponent(text)
        }
        let simulation = try fields["simulation"].map { node throws(ConfigurationError) in
            try self.simulation(node, joints: joints)
        }
        let telemetry =
            try fields["telemetry"].map { node throws(ConfigurationError) in
                try self.telemetry(node, baseDirectory: baseDirectory)
            } ?? .init()
        var configuration = RobotConfiguration(
            name: name, file: reader.file, modelPath: modelPath, buses: buses,
            joints: joints, loop: loop, policy: policy, safety: safety, recording: recording, imu: imu,
            calibrationPath: calibration, simulation: simulation, telemetry: telemetry)
        if let node = fields["ros"] { configuration.ros = try ros(node, loop: loop) }
        return configuration
    }

    // MARK: buses

    func buses(_ node: Node) throws(ConfigurationError) -> [RobotConfiguration.Bus] {
        let items = try reader.list(node, "buses", expected: "a list of servo buses")
        if items.isEmpty {
            throw reader.error(.invalidValue, node, "buses", expected: "at least one bus", found: "an empty list")
        }
        var buses: [RobotConfiguration.Bus] = []
        for (i, item) in items.enumerated() {
            let path = "buses[\(i)]"
            let fields = try YAMLFields(item, path: path, allowed: Keys.bus, reader: reader)
            let nameNode = try fields.required("name", expected: "a bus name")
            let name = try reader.string(nameNode, fields.childPath("name"), expected: "a bus name")
            if let other = buses.first(where: { $0.name == name }) {
                throw reader.error(
                    .duplicateName, nameNode, fields.childPath("name"),
                    expected: "a bus name not used before (\(path) repeats the bus at \(other.location))")
            }
            let busProtocol = try reader.word(
                try fields.required("protocol", expected: "'dynamixel' or 'feetech'"), fields.childPath("protocol"),
                RobotConfiguration.BusProtocol.self)
            let port = try reader.port(
                try fields.required("port", expected: "'virtual' or a device path such as /dev/ttyACM0"),
                fields.childPath("port"))
            var baud = 1_000_000
            if let baudNode = fields["baud"] {
                let rates = busProtocol.supportedBaudRates.map(String.init).joined(separator: ", ")
                let expected = "a baud rate the \(busProtocol.rawValue) servos support (\(rates))"
                baud = try reader.int(baudNode, fields.childPath("baud"), expected: expected)
                guard busProtocol.supportedBaudRates.contains(baud) else {
                    throw reader.error(.invalidValue, baudNode, fields.childPath("baud"), expected: expected)
                }
            }
            let replyMarginMs = try fields.optionalDouble(
                "reply_margin_ms", unit: "ms", where: { $0 >= 0.05 && $0 <= 100 }, "in [0.05, 100]")
            let retries = try fields.int("retries", default: 1, where: { (0...5).contains($0) }, "in [0, 5]")
            buses.append(
                RobotConfiguration.Bus(
                    name: name, busProtocol: busProtocol, port: port, baudRate: baud, replyMarginMs: replyMarginMs,
                    retries: retries, location: reader.location(item)))
        }
        return buses
    }

    // MARK: joints

    func joints(_ node: Node, buses: [RobotConfiguration.Bus]) throws(ConfigurationError) -> [RobotConfiguration.Joint]
    {
        let items = try reader.list(node, "joints", expected: "a list of joints")
        if items.isEmpty {
            throw reader.error(.invalidValue, node, "joints", expected: "at least one joint", found: "an empty list")
        }
        var joints: [RobotConfiguration.Joint] = []
        // Who holds each (bus, id), to name the first holder when an ID is used twice.
        var idOwners: [String: String] = [:]
        for (i, item) in items.enumerated() {
            let path = "joints[\(i)]"
            let fields = try YAMLFields(item, path: path, allowed: Keys.joint, reader: reader)
            let nameNode = try fields.required("name", expected: "the joint's name in the URDF")
            let name = try reader.string(nameNode, fields.childPath("name"), expected: "the joint's name in the URDF")
            if let other = joints.first(where: { $0.name == name }) {
                throw reader.error(
                    .duplicateName, nameNode, fields.childPath("name"),
                    expected: "a joint name not used before (already configured at \(other.location))")
            }

            let bus: RobotConfiguration.Bus
            let busNames = buses.map { "'\($0.name)'" }.joined(separator: ", ")
            if let busNode = fields["bus"] {
                let busName = try reader.string(busNode, fields.childPath("bus"), expected: "a bus name")
                guard let found = buses.first(where: { $0.name == busName }) else {
                    throw reader.error(
                        .unknownBus, busNode, fields.childPath("bus"),
                        expected: "one of the configured buses: \(busNames)")
                }
                bus = found
            } else if buses.count == 1 {
                bus = buses[0]
            } else {
                throw fields.missing("bus", expected: "the name of the joint's bus (one of \(busNames))")
            }

            let servoNode = try fields.required("servo", expected: "a servo model")
            let models = ServoModelCatalog.names.map { "'\($0)'" }.joined(separator: ", ")
            let servoModel = try reader.string(servoNode, fields.childPath("servo"), expected: "one of \(models)")
            guard let entry = ServoModelCatalog.entry(named: servoModel) else {
                throw reader.error(
                    .unknownServoModel, servoNode, fields.childPath("servo"), expected: "one of \(models)")
            }
            guard entry.busProtocol == bus.busProtocol else {
                let fitting = ServoModelCatalog.entries.filter { $0.busProtocol == bus.busProtocol }
                    .map { "'\($0.name)'" }.joined(separator: ", ")
                throw reader.error(
                    .servoProtocolMismatch, servoNode, fields.childPath("servo"),
                    expected: "a \(bus.busProtocol.rawValue) servo for bus '\(bus.name)' (\(fitting))",
                    found: "'\(servoModel)', a \(entry.busProtocol.rawValue) servo")
            }

            if entry.unsupportedBaudRates.contains(bus.baudRate) {
                throw reader.error(
                    .invalidValue, servoNode, fields.childPath("servo"),
                    expected: "a servo that can run at bus '\(bus.name)''s \(bus.baudRate) bit/s",
                    found: "'\(servoModel)', which cannot")
            }

            let idNode = try fields.required("id", expected: "the servo ID")
            let servoID = try servoIDValue(idNode, fields.childPath("id"), bus: bus, owner: path, owners: &idOwners)

            let reducer = try fields["reducer"].map { node throws(ConfigurationError) in
                try self.reducer(node, path: fields.childPath("reducer"))
            }
            let limits = try fields["limits"].map { node throws(ConfigurationError) in
                try self.limits(node, path: fields.childPath("limits"))
            }
            var coupled: RobotConfiguration.CoupledServo?
            if let coupledNode = fields["coupled"] {
                let coupledFields = try YAMLFields(
                    coupledNode, path: fields.childPath("coupled"), allowed: Keys.coupled, reader: reader)
                if let busNode = coupledFields["bus"] {
                    // A joint's servos share one bus: across two buses a fault on one would leave the other
                    // servo driving the joint alone, against a partner that no longer takes commands.
                    let busPath = coupledFields.childPath("bus")
                    let other = try reader.string(busNode, busPath, expected: "a bus name")
                    guard other == bus.name else {
                        throw reader.error(
                            .invalidValue, busNode, busPath,
                            expected: "the joint's own bus '\(bus.name)': a joint driven by servos on two buses is "
                                + "not supported (a fault on one bus would leave the other servo fighting a partner "
                                + "that takes no commands); put both servos on one bus",
                            found: "'\(other)'")
                    }
                }
                let coupledIDNode = try coupledFields.required("id", expected: "the second servo's ID")
                let coupledID = try servoIDValue(
                    coupledIDNode, coupledFields.childPath("id"), bus: bus, owner: "\(path).coupled", owners: &idOwners)
                coupled = RobotConfiguration.CoupledServo(
                    servoID: coupledID, direction: try coupledFields.direction("direction"))
            }

            joints.append(
                RobotConfiguration.Joint(
                    name: name, bus: bus.name, servoID: servoID, servoModel: servoModel, reducer: reducer ?? .init(),
                    direction: try fields.direction("direction"),
                    offsetRad: try fields.double(
                        "offset_rad", default: 0, unit: "rad", where: { abs($0) <= 2 * Double.pi }, "within ±2π"),
                    limits: limits ?? .init(), safeState: try fields.word("safe_state", default: .torqueOff),
                    coupled: coupled, location: reader.location(item)))
        }
        return joints
    }

    private func servoIDValue(
        _ node: Node, _ path: String, bus: RobotConfiguration.Bus, owner: String, owners: inout [String: String]
    ) throws(ConfigurationError) -> Int {
        let range = bus.busProtocol.servoIDRange
        let expected = "a \(bus.busProtocol.rawValue) servo ID in \(range.lowerBound)–\(range.upperBound)"
        let id = try reader.int(node, path, expected: expected)
        guard range.contains(id) else { throw reader.error(.servoIDOutOfRange, node, path, expected: expected) }
        let key = "\(bus.name)#\(id)"
        if let holder = owners[key] {
            throw reader.error(
                .duplicateServoID, node, path,
                expected: "an ID not yet used on bus '\(bus.name)'",
                found: "'\(id)', already used by \(holder)")
        }
        owners[key] = owner
        return id
    }

    func reducer(_ node: Node, path: String) throws(ConfigurationError) -> RobotConfiguration.Reducer {
        let fields = try YAMLFields(node, path: path, allowed: Keys.reducer, reader: reader)
        return RobotConfiguration.Reducer(
            ratio: try fields.double(
                "ratio", default: 1, unit: "servo turns per joint turn", where: { $0 >= 1e-3 && $0 <= 1e4 },
                "in [0.001, 10000]"),
            backlashRad: try fields.double(
                "backlash_rad", default: 0, unit: "rad", where: { $0 >= 0 && $0 <= 1 }, "in [0, 1]"),
            efficiency: try fields.double(
                "efficiency", default: 1, unit: "fraction", where: { $0 > 0 && $0 <= 1 }, "in (0, 1]")
        )
    }

    func limits(_ node: Node, path: String) throws(ConfigurationError) -> RobotConfiguration.JointLimits {
        let fields = try YAMLFields(node, path: path, allowed: Keys.limits, reader: reader)
        var position: (lower: Double, upper: Double)?
        if let positionNode = fields["position_rad"] {
            let positionPath = fields.childPath("position_rad")
            let expected = "a list [lower, upper] (rad) with lower < upper"
            let items = try reader.list(positionNode, positionPath, expected: expected)
            guard items.count == 2 else {
                throw reader.error(
                    .invalidValue, positionNode, positionPath, expected: expected, found: "a list of \(items.count)")
            }
            let lower = try reader.positionValue(items[0], "\(positionPath)[0]")
            let upper = try reader.positionValue(items[1], "\(positionPath)[1]")
            guard lower < upper else {
                throw reader.error(
                    .invalidLimits, positionNode, positionPath, expected: expected, found: "[\(lower), \(upper)]")
            }
            position = (lower, upper)
        }
        return RobotConfiguration.JointLimits(
            positionRad: position,
            velocityRadPerS: try fields.optionalDouble(
                "velocity_rad_s", unit: "rad/s", where: { $0 > 0 && $0 <= 1000 }, "in (0, 1000]"),
            effortNm: try fields.optionalDouble(
                "effort_nm", unit: "N·m", where: { $0 > 0 && $0 <= 10_000 }, "in (0, 10000]"),
            accelerationRadPerS2: try fields.optionalDouble(
                "acceleration_rad_s2", unit: "rad/s²", where: { $0 > 0 && $0 <= 100_000 }, "in (0, 100000]"))
    }

    /// A joint position (rad): finite and within ±100 rad, far beyond any joint but small enough that every
    /// computation on it stays finite.
    // MARK: loop, policy

    func loop(_ node: Node) throws(ConfigurationError) -> RobotConfiguration.Loop {
        let fields = try YAMLFields(node, path: "loop", allowed: Keys.loop, reader: reader)
        var cpu: Int?
        if fields["cpu"] != nil {
            cpu = try fields.int("cpu", default: 0, where: { (0...1023).contains($0) }, "in 0–1023 (a CPU core index)")
        }
        return RobotConfiguration.Loop(
            rateHz: try fields.double(
                "rate_hz", default: 500, unit: "Hz", where: { $0 >= 1 && $0 <= 10_000 }, "in [1, 10000]"),
            priority: try fields.int("priority", default: 80, where: { (1...99).contains($0) }, "in 1–99 (SCHED_FIFO)"),
            cpu: cpu, overrun: try fields.word("overrun", default: .skip),
            catchUpMax: try fields.int(
                "catch_up_max", default: 3, where: { (1...1000).contains($0) }, "in 1–1000 (ticks)"),
            busyPollUs: try fields.double(
                "busy_poll_us", default: 0, unit: "µs", where: { $0 >= 0 && $0 <= 1_000_000 }, "in [0, 1000000]"),
            busIO: try fields.word("bus_io", default: .poll))
    }

    func policy(_ node: Node, joints: [RobotConfiguration.Joint]) throws(ConfigurationError)
        -> RobotConfiguration.Policy
    {
        // The type decides which other keys are valid, so read it before checking the keys.
        var typeName = "hold"
        let names = policyTypes.map(\.name)
        let expected = "one of " + names.map { "'\($0)'" }.joined(separator: ", ")
        if case .mapping(let mapping) = node, let typeNode = mapping["type"] {
            typeName = try reader.scalarText(typeNode, "policy.type", expected: expected)
            guard names.contains(typeName) else {
                throw ConfigurationError(
                    .invalidValue, at: reader.location(typeNode), keyPath: "policy.type", expected: expected,
                    found: "'\(typeName)'", suggestion: KeySuggestion.closest(to: typeName, among: names))
            }
        }
        guard let type = policyTypes.first(where: { $0.name == typeName }) else {
            throw reader.error(.invalidValue, node, "policy.type", expected: expected)
        }
        let fields = try YAMLFields(node, path: "policy", allowed: ["type"] + type.keys, reader: reader)
        let settings = try type.settings(
            from: PolicySettingsReader(fields: fields, joints: joints, baseDirectory: baseDirectory))
        return RobotConfiguration.Policy(settings: settings, location: reader.location(node))
    }

    // MARK: safety, recording, imu

    func safety(_ node: Node) throws(ConfigurationError) -> RobotConfiguration.Safety {
        let fields = try YAMLFields(node, path: "safety", allowed: Keys.safety, reader: reader)
        var workspace: [RobotConfiguration.WorkspaceBox] = []
        if let workspaceNode = fields["workspace"] {
            let items = try reader.list(
                workspaceNode, "safety.workspace", expected: "a list of {frame, min, max} boxes")
            for (i, item) in items.enumerated() {
                let path = "safety.workspace[\(i)]"
                let box = try YAMLFields(item, path: path, allowed: Keys.workspaceBox, reader: reader)
                let frame = try reader.string(
                    try box.required("frame", expected: "a URDF link name"), box.childPath("frame"),
                    expected: "a URDF link name")
                let minM = try reader.vector3(
                    try box.required("min", expected: "[x, y, z] (m)"), box.childPath("min"), unit: "m",
                    bound: RobotConfiguration.distanceBoundM)
                let maxNode = try box.required("max", expected: "[x, y, z] (m)")
                let maxM = try reader.vector3(
                    maxNode, box.childPath("max"), unit: "m", bound: RobotConfiguration.distanceBoundM)
                guard all(minM .< maxM) else {
                    throw reader.error(
                        .invalidLimits, maxNode, box.childPath("max"), expected: "every component greater than min's",
                        found: "min [\(minM.x), \(minM.y), \(minM.z)] and max [\(maxM.x), \(maxM.y), \(maxM.z)]")
                }
                workspace.append(
                    RobotConfiguration.WorkspaceBox(
                        frame: frame, minM: minM, maxM: maxM, location: reader.location(item)))
            }
        }
        var estop = RobotConfiguration.EmergencyStop()
        if let estopNode = fields["estop"] {
            let estopFields = try YAMLFields(estopNode, path: "safety.estop", allowed: Keys.estop, reader: reader)
            estop = RobotConfiguration.EmergencyStop(
                file: try estopFields.string("file"), socket: try estopFields.string("socket"),
                required: try estopFields.bool("required", default: true))
        }
        return RobotConfiguration.Safety(
            positionMarginRad: try fields.double(
                "position_margin_rad", default: 0.02, unit: "rad", where: { $0 >= 0 && $0 <= 1 }, "in [0, 1]"),
            velocityLimitScale: try fields.double(
                "velocity_limit_scale", default: 1, unit: "fraction of the velocity limit",
                where: { $0 > 0 && $0 <= 1 },
                "in (0, 1]"),
            maxStepRad: try fields.double(
                "max_step_rad", default: 0.05, unit: "rad per tick", where: { $0 > 0 && $0 <= 10 }, "in (0, 10]"),
            workspace: workspace,
            watchdogMs: try fields.double(
                "watchdog_ms", default: 50, unit: "ms", where: { $0 >= 1 && $0 <= 60_000 }, "in [1, 60000]"),
            busErrorBudget: try fields.int(
                "bus_error_budget", default: 5, where: { (1...10_000).contains($0) },
                "in 1–10000 (consecutive failed transactions)"),
            estop: estop)
    }

    func recording(_ node: Node) throws(ConfigurationError) -> RobotConfiguration.Recording {
        let fields = try YAMLFields(node, path: "recording", allowed: Keys.recording, reader: reader)
        return RobotConfiguration.Recording(
            enabled: try fields.bool("enabled", default: false), path: try fields.string("path"),
            decimation: try fields.int(
                "decimation", default: 1, where: { (1...1_000_000).contains($0) },
                "in 1–1000000 (record every n-th tick)"),
            profile: try fields.word("profile", default: RobotConfiguration.RecordingProfile.json),
            compression: try fields.word("compression", default: RobotConfiguration.RecordingCompression.zstd))
    }

    func telemetry(_ node: Node, baseDirectory: String) throws(ConfigurationError) -> RobotConfiguration.Telemetry {
        let fields = try YAMLFields(node, path: "telemetry", allowed: Keys.telemetry, reader: reader)
        func address(_ key: String) throws(ConfigurationError) -> ListenAddress? {
            guard let node = fields[key] else { return nil }
            let expected = "HOST:PORT, e.g. 127.0.0.1:9464"
            let text = try reader.string(node, fields.childPath(key), expected: expected)
            do {
                return try ListenAddress(parsing: text)
            } catch {
                throw reader.error(
                    .invalidValue, node, fields.childPath(key), expected: "\(expected) (\(error.reason))")
            }
        }
        let tokenFile = try fields.string("token_file").map {
            $0.hasPrefix("/") ? $0 : (baseDirectory as NSString).appendingPathComponent($0)
        }
        return RobotConfiguration.Telemetry(
            metrics: try address("listen"), dashboard: try address("dashboard"), tokenFile: tokenFile)
    }

    func ros(_ node: Node, loop: RobotConfiguration.Loop) throws(ConfigurationError) -> RobotConfiguration.ROS {
        let fields = try YAMLFields(node, path: "ros", allowed: Keys.ros, reader: reader)
        var namespace: String?
        if let namespaceNode = fields["namespace"] {
            // '' is a namespace too: none (topics /joint_states, …).
            let text = try reader.scalarText(
                namespaceNode, fields.childPath("namespace"), expected: RobotConfiguration.ROS.namespaceRule)
            let trimmed = String(text.drop { $0 == "/" })
            guard RobotConfiguration.ROS.isValidNamespace(trimmed) else {
                throw reader.error(
                    .invalidValue, namespaceNode, fields.childPath("namespace"),
                    expected: RobotConfiguration.ROS.namespaceRule, found: "'\(text)'")
            }
            namespace = trimmed
        }
        var domainID: Int?
        if fields["domain_id"] != nil {
            let maximum = RobotConfiguration.ROS.maximumDomainID
            domainID = try fields.int("domain_id", default: 0, where: { (0...maximum).contains($0) }, "in 0–\(maximum)")
        }
        var peers: [String] = []
        if let peersNode = fields["peers"] {
            let items = try reader.list(peersNode, fields.childPath("peers"), expected: "a list of addresses")
            for (i, item) in items.enumerated() {
                let address = try reader.string(
                    item, "\(fields.childPath("peers"))[\(i)]", expected: "an address (a host name or an IP address)")
                guard !address.isEmpty, !address.contains(where: { $0 == "<" || $0 == ">" || $0 == "\"" || $0 == "&" })
                else {
                    throw reader.error(
                        .invalidValue, item, "\(fields.childPath("peers"))[\(i)]",
                        expected: "an address (a host name or an IP address)")
                }
                peers.append(address)
            }
        }
        var interface: String?
        if let interfaceNode = fields["interface"] {
            let text = try reader.string(
                interfaceNode, fields.childPath("interface"), expected: "a network interface name or address")
            guard !text.isEmpty, !text.contains(where: { $0 == "<" || $0 == ">" || $0 == "\"" || $0 == "&" }) else {
                throw reader.error(
                    .invalidValue, interfaceNode, fields.childPath("interface"),
                    expected: "a network interface name (lo, eth0) or an address")
            }
            interface = text
        }
        let loopRate = loop.rateHz
        let rate = { (key: String, value: Double, limit: Double) throws(ConfigurationError) -> Double in
            try fields.double(
                key, default: min(value, limit), unit: "Hz", where: { $0 > 0 && $0 <= limit },
                "in (0, \(YAMLReader.text(limit))] (at most the loop's rate)")
        }
        return RobotConfiguration.ROS(
            enabled: try fields.bool("enabled", default: false), namespace: namespace, domainID: domainID,
            interface: interface, peers: peers,
            multicast: fields["multicast"] == nil ? nil : try fields.bool("multicast", default: true),
            jointStatesRateHz: try rate("joint_states_rate_hz", 100, loopRate),
            tfRateHz: try rate("tf_rate_hz", 50, loopRate), imuRateHz: try rate("imu_rate_hz", 100, loopRate),
            diagnosticsRateHz: try rate("diagnostics_rate_hz", 1, min(loopRate, 100)),
            location: reader.location(node))
    }

    func imu(_ node: Node) throws(ConfigurationError) -> RobotConfiguration.IMU {
        let fields = try YAMLFields(node, path: "imu", allowed: Keys.imu, reader: reader)
        let port = try reader.port(
            try fields.required("port", expected: "'virtual' or a device path"), fields.childPath("port"))
        let link = try reader.string(
            try fields.required("link", expected: "the URDF link the IMU is mounted on"), fields.childPath("link"),
            expected: "a URDF link name")
        var xyz = SIMD3<Double>.zero
        var rpy = SIMD3<Double>.zero
        if let mountingNode = fields["mounting"] {
            let mounting = try YAMLFields(mountingNode, path: "imu.mounting", allowed: Keys.mounting, reader: reader)
            if let node = mounting["xyz"] {
                xyz = try reader.vector3(node, "imu.mounting.xyz", unit: "m", bound: RobotConfiguration.distanceBoundM)
            }
            if let node = mounting["rpy"] {
                rpy = try reader.vector3(node, "imu.mounting.rpy", unit: "rad", bound: 2 * Double.pi, boundText: "2π")
            }
        }
        var imuProtocol = "virtual"
        if let protocolNode = fields["protocol"] {
            let protocols = RobotConfiguration.IMU.protocols
            let expected = "one of " + protocols.joined(separator: ", ")
            imuProtocol = try reader.string(protocolNode, fields.childPath("protocol"), expected: expected).lowercased()
            if imuProtocol == "mavlink2" { imuProtocol = "mavlink" }
            guard protocols.contains(imuProtocol) else {
                throw reader.error(.invalidValue, protocolNode, fields.childPath("protocol"), expected: expected)
            }
        }
        let baudRates = RobotConfiguration.IMU.baudRates
        return RobotConfiguration.IMU(
            port: port, imuProtocol: imuProtocol, link: link, mountingXYZ: xyz, mountingRPY: rpy,
            rateHz: try fields.double(
                "rate_hz", default: 100, unit: "Hz", where: { $0 >= 1 && $0 <= 10_000 }, "in [1, 10000]"),
            baudRate: try fields.int(
                "baud", default: 921_600, where: baudRates.contains,
                "among the serial rates " + baudRates.map(String.init).joined(separator: ", ") + " (bit/s)"),
            location: reader.location(node))
    }
}

extension Parser {
    // MARK: simulation

    func simulation(_ node: Node, joints: [RobotConfiguration.Joint]) throws(ConfigurationError)
        -> RobotConfiguration.Simulation
    {
        let fields = try YAMLFields(node, path: "simulation", allowed: Keys.simulation, reader: reader)
        guard let motionNode = fields["motion"], !reader.isNull(motionNode) else {
            return RobotConfiguration.Simulation(location: reader.location(node))
        }
        let path = fields.childPath("motion")
        let expected = "a joint motion CSV file (header t_s and joint names, then rows of time and positions)"
        let text = try reader.string(motionNode, path, expected: "the path of " + expected)
        let file = text.hasPrefix("/") ? text : (baseDirectory as NSString).appendingPathComponent(text)
        let motion: JointMotion
        do {
            motion = try JointMotion.load(contentsOf: file)
        } catch {
            // A file that cannot be read is this line's fault; anything in it, the motion file's line.
            if error.kind == .unreadableFile || error.kind == .tooLarge && error.location.line == 0 {
                throw ConfigurationError(
                    error.kind == .tooLarge ? .tooLarge : .unreadableFile, at: reader.location(motionNode),
                    keyPath: path, expected: expected, found: "\(file): \(error.problem)")
            }
            throw ConfigurationError(
                .invalidMotion, at: error.location, keyPath: path, expected: expected, found: error.problem)
        }
        let names = joints.map(\.name)
        for (c, name) in motion.jointNames.enumerated() where !names.contains(name) {
            let suggestion = KeySuggestion.closest(to: name, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            let configured = names.map { "'\($0)'" }.joined(separator: ", ")
            throw ConfigurationError(
                .invalidMotion,
                at: SourceLocation(file: file, line: motion.headerLine, column: motion.jointColumns[c]), keyPath: path,
                expected: "a configured joint as each column's name: \(configured)",
                found: "column '\(name)' is not a configured joint\(suggestion); the joints are \(configured)")
        }
        return RobotConfiguration.Simulation(motionPath: file, motion: motion, location: reader.location(node))
    }
}

extension YAMLFields {
    /// The error for a key that must be present here.
    func missing(_ key: String, expected: String) -> ConfigurationError {
        ConfigurationError(
            .missingKey, at: reader.location(node), keyPath: childPath(key), expected: expected, found: "nothing")
    }
}

extension YAMLReader {
    /// Positions as a map joint name → rad (joints left out keep the previous waypoint's value) or as a
    /// list in joint order.
    func waypoint(_ node: Node, path: String, joints: [RobotConfiguration.Joint], previous: [Double]?)
        throws(ConfigurationError) -> RobotConfiguration.Waypoint
    {
        let fields = try YAMLFields(node, path: path, allowed: RobotConfiguration.Keys.waypoint, reader: self)
        let durationS = try fields.double(
            "duration_s", default: .nan, unit: "s, time to reach this waypoint from the previous one",
            where: { $0 > 0 && $0 <= RobotConfiguration.durationBoundS }, "in (0, 1000000]")
        if durationS.isNaN {
            throw fields.missing("duration_s", expected: "the time to reach this waypoint (s, in (0, 1000000])")
        }
        let positionsNode = try fields.required(
            "positions_rad", expected: "joint positions (rad): a map joint → value or a list in joint order")
        let positionsPath = fields.childPath("positions_rad")
        var positions = previous ?? [Double](repeating: .nan, count: joints.count)
        var nodes = [Node?](repeating: nil, count: joints.count)
        switch positionsNode {
        case .sequence(let sequence):
            guard sequence.count == joints.count else {
                throw error(
                    .invalidValue, positionsNode, positionsPath,
                    expected: "\(joints.count) positions (rad), one per configured joint in order",
                    found: "a list of \(sequence.count)")
            }
            for (j, item) in sequence.enumerated() {
                positions[j] = try positionValue(item, "\(positionsPath)[\(j)]")
                nodes[j] = item
            }
        case .mapping:
            let names = joints.map(\.name)
            let map = try YAMLFields(positionsNode, path: positionsPath, allowed: names, reader: self)
            for (j, name) in names.enumerated() {
                guard let item = map[name] else { continue }
                positions[j] = try positionValue(item, map.childPath(name))
                nodes[j] = item
            }
            let missing = names.indices.filter { positions[$0].isNaN }.map { names[$0] }
            if !missing.isEmpty {
                throw error(
                    .missingKey, positionsNode, positionsPath,
                    expected: "a position for every joint in the first waypoint",
                    found: "none for \(missing.joined(separator: ", "))")
            }
        default:
            throw error(
                .wrongType, positionsNode, positionsPath,
                expected: "a map joint → position (rad) or a list of positions in joint order")
        }
        for (j, joint) in joints.enumerated() {
            guard let node = nodes[j], let limits = joint.limits.positionRad else { continue }
            if positions[j] < limits.lower || positions[j] > limits.upper {
                let itemPath =
                    positionsNode.sequence != nil ? "\(positionsPath)[\(j)]" : "\(positionsPath).\(joint.name)"
                throw error(
                    .invalidValue, node, itemPath,
                    expected: "a position within \(joint.name)'s limits [\(limits.lower), \(limits.upper)] rad")
            }
        }
        return RobotConfiguration.Waypoint(
            positionsRad: positions, durationS: durationS, location: location(node))
    }

    func positionValue(_ node: Node, _ path: String) throws(ConfigurationError) -> Double {
        let expected = "a position in [-100, 100] (rad)"
        let value = try double(node, path, expected: expected)
        guard abs(value) <= RobotConfiguration.positionBoundRad else {
            throw error(.invalidValue, node, path, expected: expected)
        }
        return value
    }
}
