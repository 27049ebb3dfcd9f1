import ArgumentParser
import Foundation
import SinewROS
import SinewRuntime

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Several simulated robots on one ROS 2 domain, each in its own process and namespace.",
        discussion: """
            `sinew fleet up N` starts N `sinew run ROBOT --follow-ros` processes, robot i in namespace PREFIX<i> \
            (so101_0, so101_1, …) on one DDS domain, and waits for them (Ctrl-C or SIGTERM stops them all through \
            their safe state). `sinew fleet status` finds every robot on the domain by its diagnostics topic and \
            shows its state, rate and joints, read from DDS as a ROS 2 tool would (docs/ros2.md).
            """,
        subcommands: [FleetUp.self, FleetStatus.self])
}

struct FleetUp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start N simulated robots, each `sinew run --follow-ros` in a namespace of its own.")

    @Argument(help: "How many robots (1–32).")
    var count: Int

    @Option(help: "The robot.yaml every robot runs (default: the shipped SO-101).")
    var robot: String?

    @Option(help: "Namespaces are PREFIX0, PREFIX1, … (default: the robot's name and '_').")
    var namespacePrefix: String?

    @Option(
        name: .customLong("ros-domain-id"), help: "The DDS domain (default robot.yaml's, else $ROS_DOMAIN_ID, else 0).")
    var domainID: Int?

    @Option(help: "Stop each robot after this many seconds (default: until Ctrl-C).")
    var duration: Double?

    @Option(
        help: "Where each robot's JSON report (NAME.json) and messages (NAME.log) go (default: a new temporary folder)."
    )
    var logDir: String?

    @Flag(help: "End with one JSON object: each robot's namespace, exit status and final state.")
    var json = false

    func validate() throws {
        guard (1...32).contains(count) else { throw ValidationError("N must be in 1–32 (got \(count))") }
        if let namespacePrefix, !RobotConfiguration.ROS.isValidNamespace(namespacePrefix + "0") {
            throw ValidationError("--namespace-prefix \(namespacePrefix): \(RobotConfiguration.ROS.namespaceRule)")
        }
    }

    func run() throws {
        let robotPath = try robot ?? (HardwareDirectory.locate() + "/robots/so101/robot.yaml")
        let configuration: RobotConfiguration
        do {
            configuration = try RobotConfiguration.load(contentsOf: robotPath)
        } catch {
            throw ValidationError("\(error)")
        }
        let prefix = namespacePrefix ?? RobotConfiguration.ROS.namespace(fromRobotName: configuration.name) + "_"
        let directory = logDir ?? temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = ShutdownSignals.install()
        var environment = ProcessInfo.processInfo.environment
        // Each robot ends with this process, however it ends.
        environment[ParentWatch.environmentKey] = "1"
        var children: [(name: String, process: Process)] = []
        for i in 0..<count {
            let name = "\(prefix)\(i)"
            var arguments = ["run", robotPath, "--follow-ros", "--ros-namespace", name, "--json"]
            if let domainID { arguments += ["--ros-domain-id", String(domainID)] }
            if let duration { arguments += ["--duration", String(duration)] }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.executablePath)
            process.arguments = arguments
            process.environment = environment
            let out = directory + "/\(name).json"
            let err = directory + "/\(name).log"
            FileManager.default.createFile(atPath: out, contents: nil)
            FileManager.default.createFile(atPath: err, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                for child in children { kill(child.process.processIdentifier, SIGTERM) }
                throw CommandFailure("cannot start robot \(name): \(error)")
            }
            children.append((name, process))
            printError("fleet: \(name) (pid \(process.processIdentifier)); messages in \(err)")
        }
        var stopping = false
        while children.contains(where: { $0.process.isRunning }) {
            if ShutdownSignals.isRequested && !stopping {
                stopping = true
                printError("fleet: stopping every robot (SIGTERM)")
                for child in children where child.process.isRunning {
                    kill(child.process.processIdentifier, SIGTERM)
                }
            }
            usleep(100_000)
        }
        var results: [JSONValue] = []
        var lines: [String] = []
        var allOK = true
        for child in children {
            let status = child.process.terminationStatus
            let report = (try? String(contentsOfFile: directory + "/\(child.name).json", encoding: .utf8))
                .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let finalState = report?["final_state"] as? String ?? "?"
            let ticks = report?["ticks"] as? Int ?? 0
            if status != 0 && !(stopping && status == 143) { allOK = false }
            results.append(
                .object([
                    ("namespace", .string(child.name)), ("exit_status", .integer(Int(status))),
                    ("final_state", .string(finalState)), ("ticks", .integer(ticks)),
                ]))
            lines.append("  \(child.name): exit \(status), \(finalState), \(ticks) ticks")
        }
        if json {
            print(JSONValue.object([("robots", .array(results)), ("log_dir", .string(directory))]).text)
        } else {
            print("fleet of \(count) (\(directory)):\n" + lines.joined(separator: "\n"))
        }
        if !allOK { throw ExitCode(1) }
    }

    private func temporaryDirectory() -> String {
        var template = Array(
            ((NSTemporaryDirectory() as NSString).appendingPathComponent("sinew-fleet-XXXXXX")).utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
}

struct FleetStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Every Sinew robot on a ROS 2 domain: state, loop rate, lateness, joints — read from DDS.")

    @Option(name: .customLong("ros-domain-id"), help: "The DDS domain (default $ROS_DOMAIN_ID, else 0).")
    var domainID: Int?

    @Option(help: "How long to listen, s.")
    var seconds: Double = 3

    @Option(help: "Stop listening once this many robots have reported their state.")
    var count: Int?

    @Flag(help: "One JSON object instead of the table.")
    var json = false

    func run() throws {
        var domain = domainID ?? 0
        if domainID == nil, let text = ProcessInfo.processInfo.environment["ROS_DOMAIN_ID"], let value = Int(text) {
            domain = value
        }
        let monitor: ROSFleetMonitor
        do {
            monitor = try ROSFleetMonitor(domainID: domain)
        } catch {
            throw CommandFailure("\(error)")
        }
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            do { try monitor.poll() } catch { throw CommandFailure("\(error)") }
            if let count, monitor.robots.values.filter({ $0.state != nil && $0.jointStatesReceived > 1 }).count >= count
            {
                break
            }
            usleep(50_000)
        }
        let robots = monitor.robots.values.sorted { $0.namespace < $1.namespace }
        if json {
            print(
                JSONValue.object([
                    ("domain_id", .integer(domain)),
                    (
                        "robots",
                        .array(
                            robots.map { r in
                                .object([
                                    ("namespace", .string(r.namespace)),
                                    ("state", r.state.map { .string($0) } ?? .null),
                                    ("safety_cause", r.safetyCause.map { .string($0) } ?? .null),
                                    ("policy", r.policy.map { .string($0) } ?? .null),
                                    ("loop_rate_hz", r.loopRateHz.map { .number($0) } ?? .null),
                                    ("wake_p99_us", r.wakeP99Us.map { .number($0) } ?? .null),
                                    ("bus_errors", r.busErrors.map { .integer($0) } ?? .null),
                                    ("joint_states_received", .integer(r.jointStatesReceived)),
                                    ("joint_states_rate_hz", r.jointStatesRateHz.map { .number($0) } ?? .null),
                                    (
                                        "positions_rad",
                                        .object(zip(r.jointNames, r.positionRad).map { ($0.0, .number($0.1)) })
                                    ),
                                ])
                            })
                    ),
                ]).text)
            return
        }
        if robots.isEmpty {
            print("no Sinew robot heard on domain \(domain) in \(seconds) s")
            return
        }
        print("domain \(domain): \(robots.count) robot(s)")
        for r in robots {
            var line = r.namespace.padding(toLength: max(12, r.namespace.count + 1), withPad: " ", startingAt: 0)
            line += (r.state ?? "?") + (r.safetyCause.map { " (\($0))" } ?? "")
            line += String(
                format: "  loop %.0f Hz  wake p99 %.0f µs  bus errors %d  joint_states %.0f Hz",
                r.loopRateHz ?? 0, r.wakeP99Us ?? 0, r.busErrors ?? 0, r.jointStatesRateHz ?? 0)
            line +=
                "  "
                + zip(r.jointNames, r.positionRad).map { String(format: "%@ %+.3f", $0.0, $0.1) }
                .joined(separator: ", ")
            print(line)
        }
    }
}

extension CommandLine {
    /// This executable's real path (so children run the same build).
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
