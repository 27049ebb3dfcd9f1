import ArgumentParser
import Foundation
import SinewBus
import SinewDrivers
import SinewKinematics
import SinewRuntime
import SinewSim

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record each joint's zero and range of motion and write the robot's calibration file.",
        discussion: """
            Interactive (prompts on standard error, Enter to continue): switches torque off, asks you to move \
            every joint to its zero pose and records the servos' present positions as zero counts, then asks you \
            to move every joint through its full range and samples the positions for --range-seconds (or until \
            Enter) to record each joint's minimum and maximum. --from-pose takes the present pose as the zero \
            without asking (the range then comes from the configured limits). The file is tied to each joint's \
            bus, servo ID and model: `sinew run --calibration FILE` (or `calibration: FILE` in robot.yaml) \
            refuses a servo swapped since. With --backend sim the simulated robot plays the part of the person \
            moving the arm.
            Example: sinew calibrate Hardware/robots/so101/robot.yaml --backend serial --port /dev/ttyACM0
            """)

    @Argument(help: "The robot's robot.yaml.")
    var robot: String

    @Option(help: "Where the buses lead: sim, pty or serial.")
    var backend: Backend = .sim

    @Option(help: "Port for a single-bus robot (pty or serial backend), overriding robot.yaml.")
    var port: String?

    @Option(help: "Calibration file to write (default: calibration.json beside robot.yaml).")
    var output: String?

    @Flag(help: "Take the present pose as every joint's zero, without prompting; ranges from the configured limits.")
    var fromPose = false

    @Option(parsing: .unconditional, help: "Longest time to sample the range of motion, s (Enter ends it sooner).")
    var rangeSeconds: Double = 10

    func validate() throws {
        guard rangeSeconds.isFinite, rangeSeconds > 0, rangeSeconds <= 3600 else {
            throw ValidationError("--range-seconds must be a number of seconds in (0, 3600]; got \(rangeSeconds)")
        }
    }

    func run() throws {
        let checked = try RobotConfiguration.loadChecked(contentsOf: robot)
        let configuration = checked.configuration
        let model = checked.model
        for warning in checked.warnings { printError("warning: \(warning)") }
        let catalog = try ServoTables.load()
        let outputPath =
            output
            ?? ((robot as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
                "calibration.json")

        var simulated: SimulatedRobot?
        let transports: [String: any ByteTransport]
        switch backend {
        case .sim:
            let sim = try SimulatedRobot(configuration: configuration, model: model, catalog: catalog)
            simulated = sim
            transports = sim.transports
        case .pty, .serial:
            transports = try openTransports(configuration: configuration, backend: backend, port: port)
        }
        defer { simulated?.stop() }

        let servos = try CalibrationServos(configuration: configuration, catalog: catalog, transports: transports)
        let limits = configuration.resolvedJointLimits(against: model)
        // The pose the simulated robot is put in for "zero": where every joint reads its configured offset.
        let zeroPose = configuration.joints.enumerated().map { i, joint in
            min(max(joint.offsetRad, limits[i].lowerRad), limits[i].upperRad)
        }
        var zero: [Int64]
        var low: [Int64]
        var high: [Int64]
        if fromPose {
            simulated?.place(configuration: configuration, positionsRad: zeroPose)
            zero = try servos.presentCounts()
            low = zero
            high = zero
            for (i, servo) in servos.joints.enumerated() {
                // The configured limits, seen from the new zero.
                var mapping = servo.mapping
                mapping.zeroCounts = Double(zero[i])
                if limits[i].lowerRad.isFinite && limits[i].upperRad.isFinite {
                    let a = mapping.counts(forJointPositionRad: limits[i].lowerRad)
                    let b = mapping.counts(forJointPositionRad: limits[i].upperRad)
                    low[i] = min(a, b)
                    high[i] = max(a, b)
                } else {
                    low[i] = 0
                    high[i] = Int64(servo.model.countsPerTurn - 1)
                }
            }
        } else {
            try servos.torqueOff()
            prompt("Torque is off. Move every joint to its zero pose, then press Enter.")
            if simulated != nil {
                printError("  (simulated robot: placed in its zero pose)")
                simulated?.place(configuration: configuration, positionsRad: zeroPose)
            } else if readLine() == nil {
                throw CommandFailure(
                    "standard input ended before the zero pose was confirmed; run in a terminal, or use --from-pose")
            }
            zero = try servos.presentCounts()
            printError("  zero: " + zip(configuration.joints, zero).map { "\($0.name) \($1)" }.joined(separator: ", "))
            prompt(
                "Move every joint slowly through its full range of motion; press Enter when done "
                    + String(format: "(sampling for up to %.0f s).", rangeSeconds))
            (low, high) = try sampleRange(
                servos: servos, start: zero, simulated: simulated, configuration: configuration, limits: limits)
            for (i, servo) in servos.joints.enumerated() {
                let span = high[i] - low[i]
                if span < 20 {
                    printError("warning: joint \"\(servo.joint.name)\" moved only \(span) counts while sampling")
                } else if span > Int64(servo.model.countsPerTurn) * 95 / 100 {
                    // A joint that crosses the encoder's wrap reads 0 and countsPerTurn−1 side by side.
                    printError(
                        "warning: joint \"\(servo.joint.name)\" spans \(span) of \(servo.model.countsPerTurn) counts: "
                            + "its range may cross the encoder's wrap-around; check the recorded range")
                }
            }
        }

        let formatter = ISO8601DateFormatter()
        let file = CalibrationFile(
            robot: configuration.name, recorded: formatter.string(from: Date()),
            joints: servos.joints.enumerated().map { i, servo in
                CalibrationFile.Joint(
                    joint: servo.joint.name, bus: servo.joint.bus, servoID: UInt8(servo.joint.servoID),
                    servoModel: servo.joint.servoModel, modelNumber: servo.reportedModelNumber, zeroCounts: zero[i],
                    minCounts: low[i], maxCounts: high[i])
            })
        do {
            try file.write(path: outputPath)
        } catch {
            throw CommandFailure("\(error)")
        }
        for (i, servo) in servos.joints.enumerated() {
            print(
                "\(servo.joint.name.padding(toLength: 16, withPad: " ", startingAt: 0)) bus \(servo.joint.bus) "
                    + "id \(servo.joint.servoID)  zero \(zero[i])  range \(low[i])…\(high[i])")
        }
        print("wrote \(outputPath) (\(file.joints.count) joints)")
        print("use it: sinew run \(robot) --calibration \(outputPath)   (or `calibration: FILE` in robot.yaml)")
    }

    private func prompt(_ text: String) { printError("\n" + text) }

    /// Samples the joints' positions until Enter or `rangeSeconds`; on the simulator, sweeps every joint
    /// through its configured range meanwhile, as a person would move the arm.
    private func sampleRange(
        servos: CalibrationServos, start: [Int64], simulated: SimulatedRobot?, configuration: RobotConfiguration,
        limits: [RobotConfiguration.ResolvedJointLimits]
    ) throws -> ([Int64], [Int64]) {
        var low = start
        var high = start
        let began = Date()
        let sweepSeconds = min(rangeSeconds, 3)
        var samples = 0
        while true {
            let elapsed = Date().timeIntervalSince(began)
            if let simulated {
                if elapsed > sweepSeconds { break }
                // From the lower limit to the upper and back, every joint at once.
                let phase = elapsed / sweepSeconds
                let pose = configuration.joints.indices.map { i -> Double in
                    let lower = limits[i].lowerRad.isFinite ? limits[i].lowerRad : -Double.pi
                    let upper = limits[i].upperRad.isFinite ? limits[i].upperRad : Double.pi
                    let triangle = phase < 0.5 ? phase / 0.5 : (1 - phase) / 0.5
                    // Dwell a little at each end, so the samples catch the limits themselves.
                    let s = min(1, max(0, 1.25 * triangle - 0.125))
                    return lower + s * (upper - lower)
                }
                simulated.place(configuration: configuration, positionsRad: pose)
            } else if elapsed > rangeSeconds || standardInputHasLine(waitMilliseconds: 20) {
                break
            }
            let counts = try servos.presentCounts()
            for i in counts.indices {
                low[i] = min(low[i], counts[i])
                high[i] = max(high[i], counts[i])
            }
            samples += 1
            if simulated != nil { Thread.sleep(forTimeInterval: 0.01) }
        }
        printError("  \(samples) samples")
        return (low, high)
    }

    /// Whether Enter was pressed (or standard input ended); consumes the line.
    private func standardInputHasLine(waitMilliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, waitMilliseconds) > 0 else { return false }
        _ = readLine()
        return true
    }
}

/// Every joint's main servo, found and checked on its bus, for reading positions outside the control loop.
final class CalibrationServos {
    struct Servo {
        let joint: RobotConfiguration.Joint
        let model: ServoModel
        let mapping: JointServoMapping
        let master: BusMaster
        let reportedModelNumber: UInt16
    }

    let joints: [Servo]

    /// Pings every joint's servo and checks that it is the configured model.
    init(configuration: RobotConfiguration, catalog: ServoCatalog, transports: [String: any ByteTransport]) throws {
        var masters: [String: BusMaster] = [:]
        for bus in configuration.buses {
            guard let transport = transports[bus.name] else { continue }
            let wire: BusProtocol = bus.busProtocol == .dynamixel ? .dynamixel : .feetechSTS
            // Settings are not written yet (Return Delay Time may be the factory's): generous timing.
            masters[bus.name] = BusMaster(transport: transport, protocol: wire, timing: BusTiming(retries: 2))
        }
        var servos: [Servo] = []
        for joint in configuration.joints {
            guard let model = catalog.model(named: joint.servoModel) else {
                throw CommandFailure("joint \"\(joint.name)\": no servo table for \"\(joint.servoModel)\"")
            }
            guard let master = masters[joint.bus] else {
                throw CommandFailure("joint \"\(joint.name)\": bus \"\(joint.bus)\" has no port to talk through")
            }
            let reply: PingReply
            do {
                reply = try master.ping(UInt8(joint.servoID))
            } catch {
                throw CommandFailure(
                    "bus \"\(joint.bus)\": servo \(joint.servoID) (joint \"\(joint.name)\") does not answer: \(error)")
            }
            guard reply.modelNumber == model.modelNumber else {
                throw CommandFailure(
                    "bus \"\(joint.bus)\": servo \(joint.servoID) (joint \"\(joint.name)\") is model number "
                        + "\(reply.modelNumber), but the configuration expects a \(model.name) (\(model.modelNumber))")
            }
            let mapping = joint.servoMapping(servo: model)
            servos.append(
                Servo(
                    joint: joint, model: model, mapping: mapping, master: master, reportedModelNumber: reply.modelNumber
                ))
        }
        joints = servos
    }

    /// Present Position of every joint's servo, in configuration order.
    func presentCounts() throws -> [Int64] {
        try joints.map { servo in try read(servo, register: "Present Position") }
    }

    func torqueOff() throws {
        for servo in joints { try write(servo, register: "Torque Enable", value: 0) }
    }

    private func spec(_ servo: Servo, _ name: String) throws -> RegisterSpec {
        guard let spec = servo.model.register(named: name) else {
            throw CommandFailure("\(servo.model.name) has no register \"\(name)\" in its servo table")
        }
        return spec
    }

    private func read(_ servo: Servo, register name: String) throws -> Int64 {
        let spec = try spec(servo, name)
        let bytes: [UInt8]
        do {
            bytes = try servo.master.read(
                id: UInt8(servo.joint.servoID), address: UInt16(spec.address), length: spec.size)
        } catch {
            throw CommandFailure(
                "bus \"\(servo.joint.bus)\": servo \(servo.joint.servoID) (joint \"\(servo.joint.name)\"): "
                    + "reading \(name): \(error)")
        }
        return bytes.withUnsafeBytes {
            spec.load(from: $0, at: 0, littleEndian: servo.model.wireProtocol.isLittleEndian)
        }
    }

    private func write(_ servo: Servo, register name: String, value: Int64) throws {
        let spec = try spec(servo, name)
        var bytes = [UInt8](repeating: 0, count: spec.size)
        bytes.withUnsafeMutableBytes {
            spec.store(value, into: $0, at: 0, littleEndian: servo.model.wireProtocol.isLittleEndian)
        }
        do {
            try bytes.withUnsafeBytes { data in
                try servo.master.write(id: UInt8(servo.joint.servoID), address: UInt16(spec.address), data: data)
            }
        } catch {
            throw CommandFailure(
                "bus \"\(servo.joint.bus)\": servo \(servo.joint.servoID) (joint \"\(servo.joint.name)\"): "
                    + "writing \(name): \(error)")
        }
    }
}

extension SimulatedRobot {
    /// Puts the simulated joints at these positions (configuration order, rad) at rest, as a person moving
    /// the arm by hand would: the physics and the virtual servos continue from there.
    func place(configuration: RobotConfiguration, positionsRad: [Double]) {
        let robot = dynamics
        for server in servers {
            server.withBuses { buses in
                for (i, joint) in configuration.joints.enumerated() {
                    guard let j = robot.model.jointIndex(named: joint.name) else { continue }
                    robot.setJointState(joint: j, positionRad: positionsRad[i])
                }
                for s in robot.mappings.indices {
                    let state = robot.shaftState(forServo: s)
                    let place = servoLocations[s]
                    buses[place.bus].setJointState(
                        index: place.index, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
                }
            }
        }
    }
}
