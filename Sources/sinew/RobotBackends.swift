import ArgumentParser
import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewRuntime
import SinewSim

/// Where a robot's buses lead: the simulator in this process, a pseudo-terminal served by another
/// program (`sinew virtual-bus`, a test rig), or real serial ports. The loop talks the same bytes to all.
enum Backend: String, ExpressibleByArgument, CaseIterable {
    case sim, pty, serial
}

/// The simulated robot behind a configuration: its virtual servos, bus by bus, driven by one rigid-body
/// physics of the whole robot (a ``VirtualBusGroup`` when it has several buses), served on in-process byte
/// pipes with wire-time emulation (one serving thread for every bus), on pseudo-terminals, or in lockstep.
///
/// When robot.yaml has `simulation: {motion: FILE}` (or `handMotion` is given, `sinew virtual-bus --hand FILE`)
/// the robot is an arm in a person's hand: its joints follow the motion (``RobotJointDynamics/play(_:)``,
/// looping, from the motion's first row when the robot is built) while their servos' torque is off, and its
/// servos start with torque off, however they are served. With `manualHand` (`--hand keys`) the hand holds
/// every configured joint where it is and moves it as ``manualHands`` is told.
final class SimulatedRobot {
    let buses: [VirtualBus]
    let servers: [VirtualBusServer]
    /// The robot's physics behind every bus's servos (servos numbered bus after bus, `servoLocations`).
    let dynamics: RobotJointDynamics
    /// Bus index and servo index on that bus of each of `dynamics`' servos.
    let servoLocations: [(bus: Int, index: Int)]
    /// The buses' one physics, for a robot with several buses.
    let group: VirtualBusGroup?
    /// With `manualHand`, the hand holding the robot's configured joints (`sinew virtual-bus --hand keys`).
    let manualHands: [ManualHand]
    var transports: [String: any ByteTransport] = [:]
    /// In lockstep mode, the simulated clock the loop drives.
    var clock: LockstepBusTransport?
    /// The IMU robot.yaml declares on a link (`port: virtual`), and the pipe end the loop reads it from.
    var imu: VirtualLinkIMU?
    var imuTransport: (any ByteTransport)?

    /// Pseudo-terminal path of each bus, by bus name, when served on pseudo-terminals.
    var terminalPaths: [(bus: String, path: String, link: String?)] = []

    /// - Parameter lockstep: run in simulated time (as fast as the loop goes) instead of serving the buses in
    ///   real time on a thread of their own.
    /// - Parameter terminals: serve every bus on its own pseudo-terminal (with a link DIR/<bus name> when a
    ///   directory is given) instead of an in-process pipe, for other processes to drive.
    ///
    /// The virtual buses busy-poll (``VirtualBusServer``, at least 200 µs) when the robot's loop does
    /// (`loop.busy_poll_us`), and sleep between packets otherwise.
    /// - Parameter faults: injected on every bus (a fault naming a servo ID, on every bus that has that ID), or
    ///   on `faultBus` alone when given.
    init(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog, wireTiming: Bool = true,
        faults: FaultInjection = .none, faultBus: String? = nil, lockstep: Bool = false, terminals: Bool = false,
        linkDirectory: String? = nil, handMotion: JointMotion? = nil, manualHand: Bool = false
    ) throws {
        let motion = handMotion ?? configuration.simulation?.motion
        let handHeld = motion != nil || manualHand
        var manualHands: [ManualHand] = []
        let loopBusyPollNs = configuration.loop.busyPollNanoseconds
        let serverBusyPollNs = loopBusyPollNs > 0 ? max(loopBusyPollNs, 200_000) : 0
        let moving = configuration.buses.filter { bus in configuration.joints.contains { $0.bus == bus.name } }
        if let faultBus, !moving.contains(where: { $0.name == faultBus }) {
            throw ValidationError(
                "--fault-bus \(faultBus): no such bus with servos in \(configuration.file) (its buses: "
                    + moving.map(\.name).joined(separator: ", ") + ")")
        }
        let faultedIDs = configuration.joints.filter { faultBus == nil || $0.bus == faultBus }.map { UInt8($0.servoID) }
        if let absent = faults.servoIDs.first(where: { !faultedIDs.contains($0) }) {
            throw ValidationError(
                "--fault names servo \(absent), which is on no bus"
                    + (faultBus.map { " \"\($0)\"" } ?? "") + " of \(configuration.file) (it serves IDs "
                    + faultedIDs.sorted().map(String.init).joined(separator: ", ") + ")")
        }
        // Start from the middle of each joint's range: a pose every robot can hold.
        var start = model.midRangePositions
        for joint in configuration.joints {
            if let j = model.jointIndex(named: joint.name), let p = joint.limits.positionRad {
                start[j] = min(max(start[j], p.lower), p.upper)
            }
        }
        var buses: [VirtualBus] = []
        var mappings: [JointServoMapping] = []
        var servoModels: [ServoModel] = []
        var locations: [(bus: Int, index: Int)] = []
        for bus in moving {
            let joints = configuration.joints.filter { $0.bus == bus.name }
            var servos: [ServoModel] = []
            for joint in joints {
                guard let servo = catalog.model(named: joint.servoModel) else {
                    throw CommandFailure("no servo table for \(joint.servoModel) (joint \(joint.name))")
                }
                servos.append(servo)
            }
            var options = VirtualBusOptions()
            options.baudRate = bus.baudRate
            options.wireTiming = wireTiming
            if faultBus == nil || faultBus == bus.name {
                options.faults = faults.restricted(to: joints.map { UInt8($0.servoID) })
            }
            let virtualBus = try VirtualBus(
                servos: zip(servos, joints).map { ($0, UInt8($1.servoID)) }, options: options)
            for (index, pair) in zip(joints, servos).enumerated() {
                mappings.append(pair.0.servoMapping(servo: pair.1))
                servoModels.append(pair.1)
                locations.append((buses.count, index))
            }
            buses.append(virtualBus)
        }
        let robot = try RobotJointDynamics(
            model: model, mappings: mappings, servoModels: servoModels, initialPositions: start)
        if let motion {
            do {
                try robot.play(motion)
            } catch {
                throw ValidationError("\(handMotion != nil ? "--hand" : "simulation.motion"): \(error)")
            }
        } else if manualHand {
            let held = configuration.joints.compactMap { model.jointIndex(named: $0.name) }
            let hand = try ManualHand(model: model, joints: held, initialPositionsRad: held.map { start[$0] })
            try robot.hold(with: hand)
            manualHands.append(hand)
        }
        var physics: any JointDynamics = robot
        if let (linkIMU, loopEnd) = try makeVirtualLinkIMU(configuration: configuration, robot: robot) {
            physics = linkIMU
            imu = linkIMU
            imuTransport = loopEnd
        }
        var group: VirtualBusGroup?
        if buses.count == 1 {
            buses[0].dynamics = physics
        } else if !buses.isEmpty {
            group = try VirtualBusGroup(buses: buses, dynamics: physics)
        }
        for (s, state) in robot.servoShaftStates().enumerated() {
            let place = locations[s]
            buses[place.bus].setJointState(
                index: place.index, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        var servers: [VirtualBusServer] = []
        if terminals {
            // A robot served for another process is found as it was left: powered, holding its pose (a
            // fresh servo's torque-off default would let the arm fall before anyone connects) — except a
            // leader arm (a motion in robot.yaml, or a hand): a person holds it, and its servos only read.
            if !handHeld {
                for bus in buses {
                    for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
                }
            }
            let links = moving.map { bus in linkDirectory.map { ($0 as NSString).appendingPathComponent(bus.name) } }
            let server = try VirtualBusServer.servePseudoTerminals(
                buses: buses, linkPaths: links, busyPollNanoseconds: serverBusyPollNs)
            servers.append(server)
            for (b, bus) in moving.enumerated() {
                terminalPaths.append((bus.name, server.paths[b] ?? "", links[b]))
            }
        } else if lockstep {
            let lockstepTransports = LockstepBusTransport.group(buses)
            clock = lockstepTransports.first
            for (bus, transport) in zip(moving, lockstepTransports) { transports[bus.name] = transport }
        } else if !buses.isEmpty {
            var deviceEnds: [any ByteTransport] = []
            for bus in moving {
                let (host, device) = BytePipe.makePair(baudRate: bus.baudRate)
                transports[bus.name] = host
                deviceEnds.append(device)
            }
            servers.append(
                try VirtualBusServer.serve(
                    buses: buses, transports: deviceEnds, busyPollNanoseconds: serverBusyPollNs))
        }
        self.buses = buses
        self.servers = servers
        self.dynamics = robot
        self.group = group
        servoLocations = locations
        self.manualHands = manualHands
    }

    func stop() {
        for server in servers { server.stop() }
    }
}

/// Opens the transports of a configuration's buses for the pty and serial backends.
func openTransports(
    configuration: RobotConfiguration, backend: Backend, port: String?
) throws -> [String: any ByteTransport] {
    var transports: [String: any ByteTransport] = [:]
    for bus in configuration.buses {
        let path: String
        var isDirectory: ObjCBool = false
        if let port, configuration.buses.count == 1 {
            path = port
        } else if let port, FileManager.default.fileExists(atPath: port, isDirectory: &isDirectory),
            isDirectory.boolValue
        {
            // One link per bus, named after it (`sinew virtual-bus --robot … --link-dir DIR` makes them).
            path = (port as NSString).appendingPathComponent(bus.name)
        } else if case .device(let device) = bus.port {
            path = device
        } else {
            throw ValidationError(
                "bus \"\(bus.name)\" has port `virtual` in \(configuration.file); give --port PATH (the path "
                    + "`sinew virtual-bus` printed, or /dev/ttyUSB0; for a robot with several buses a directory "
                    + "with one link per bus, named after it) or set the bus's port")
        }
        if let problem = portProblem(path) {
            throw CommandFailure("bus \"\(bus.name)\": cannot open \(path): \(problem)")
        }
        if backend == .serial, let warning = SerialPortTransport.ftdiLatencyWarning(path: path) {
            printError("warning: bus \"\(bus.name)\": \(warning)")
        }
        do {
            switch backend {
            case .pty: transports[bus.name] = try PseudoTerminalTransport(path: path, baudRate: bus.baudRate)
            case .serial: transports[bus.name] = try SerialPortTransport(path: path, baudRate: bus.baudRate)
            case .sim: break
            }
        } catch {
            throw CommandFailure("bus \"\(bus.name)\": cannot open \(path): \(error)")
        }
    }
    return transports
}

/// Why `path` cannot be a serial port or pseudo-terminal, said plainly (nil when it may be one): before the
/// transport's own open, whose errors for a path of the wrong kind read as "not found" or a bare errno.
func portProblem(_ path: String) -> String? {
    var info = stat()
    guard stat(path, &info) == 0 else {
        let code = errno
        if code == ENOENT {
            return "no such file (is the adapter plugged in? `sinew scan` lists the serial ports, and "
                + "`sinew virtual-bus` prints the path of the pseudo-terminal it serves)"
        }
        return String(cString: strerror(code)) + " (errno \(code))"
    }
    switch info.st_mode & S_IFMT {
    case S_IFCHR: break
    case S_IFDIR: return "it is a directory, not a serial port"
    case S_IFREG: return "it is a regular file, not a serial port"
    default: return "it is not a character device (a serial port or a pseudo-terminal)"
    }
    let fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
        let code = errno
        if code == EACCES {
            return "permission denied (add yourself to the dialout group, or install Hardware/udev's rule)"
        }
        return String(cString: strerror(code)) + " (errno \(code))"
    }
    defer { close(fd) }
    return isatty(fd) == 0 ? "it is a character device but not a terminal (e.g. /dev/null), so not a serial port" : nil
}
