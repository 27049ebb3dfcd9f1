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

/// The simulated robot behind a configuration: per bus, virtual servos driven by the robot's rigid-body
/// physics, served on an in-process byte pipe with wire-time emulation.
///
/// When robot.yaml has `simulation: {motion: FILE}` (or `handMotion` is given, `sinew virtual-bus --hand FILE`)
/// the robot is an arm in a person's hand: its joints follow the motion (``RobotJointDynamics/play(_:)``,
/// looping, from the motion's first row when the robot is built) while their servos' torque is off, and its
/// servos start with torque off, however they are served. With `manualHand` (`--hand keys`) the hand holds
/// every configured joint where it is and moves it as ``manualHands`` is told.
final class SimulatedRobot {
    let buses: [VirtualBus]
    let servers: [VirtualBusServer]
    let dynamics: [RobotJointDynamics]
    /// With `manualHand`, per bus, the hand holding its joints (column order: the bus's joints in robot.yaml).
    let manualHands: [ManualHand]
    var transports: [String: any ByteTransport] = [:]
    /// In lockstep mode, the simulated clock the loop drives.
    var clock: LockstepBusTransport?
    /// The IMU robot.yaml declares on a link (`port: virtual`), and the pipe end the loop reads it from.
    var imu: VirtualLinkIMU?
    var imuTransport: (any ByteTransport)?

    /// - Parameter lockstep: run in simulated time (as fast as the loop goes) instead of serving the bus in
    ///   real time on its own thread.
    /// Pseudo-terminal path of each bus, by bus name, when served on pseudo-terminals.
    var terminalPaths: [(bus: String, path: String, link: String?)] = []

    /// - Parameter terminals: serve every bus on its own pseudo-terminal (with a link DIR/<bus name> when a
    ///   directory is given) instead of an in-process pipe, for other processes to drive.
    ///
    /// The virtual buses busy-poll (``VirtualBusServer``, at least 200 µs) when the robot's loop does
    /// (`loop.busy_poll_us`), and sleep between packets otherwise.
    init(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog, wireTiming: Bool = true,
        faults: FaultInjection = .none, lockstep: Bool = false, terminals: Bool = false,
        linkDirectory: String? = nil, handMotion: JointMotion? = nil, manualHand: Bool = false
    ) throws {
        let motion = handMotion ?? configuration.simulation?.motion
        let handHeld = motion != nil || manualHand
        var manualHands: [ManualHand] = []
        let loopBusyPollNs = configuration.loop.busyPollNanoseconds
        let serverBusyPollNs = loopBusyPollNs > 0 ? max(loopBusyPollNs, 200_000) : 0
        var buses: [VirtualBus] = []
        var servers: [VirtualBusServer] = []
        var dynamics: [RobotJointDynamics] = []
        let moving = configuration.buses.filter { bus in configuration.joints.contains { $0.bus == bus.name } }
        guard moving.count <= 1 else {
            throw CommandFailure(
                "the simulator drives one bus per robot for now; \(configuration.file) has \(moving.count) "
                    + "(\(moving.map(\.name).joined(separator: ", "))). Run the buses with --backend pty or serial.")
        }
        // Start from the middle of each joint's range: a pose every robot can hold.
        var start = model.midRangePositions
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
            options.faults = faults
            let virtualBus = try VirtualBus(
                servos: zip(servos, joints).map { ($0, UInt8($1.servoID)) }, options: options)
            let mappings = zip(joints, servos).map { joint, servo in joint.servoMapping(servo: servo) }
            for joint in joints {
                if let j = model.jointIndex(named: joint.name), let p = joint.limits.positionRad {
                    start[j] = min(max(start[j], p.lower), p.upper)
                }
            }
            let robot = try RobotJointDynamics(
                model: model, mappings: mappings, servoModels: servos, initialPositions: start)
            if let motion {
                do {
                    try robot.play(motion)
                } catch {
                    throw ValidationError("\(handMotion != nil ? "--hand" : "simulation.motion"): \(error)")
                }
            } else if manualHand {
                let held = joints.compactMap { model.jointIndex(named: $0.name) }
                let hand = try ManualHand(model: model, joints: held, initialPositionsRad: held.map { start[$0] })
                try robot.hold(with: hand)
                manualHands.append(hand)
            }
            virtualBus.dynamics = robot
            if let (linkIMU, loopEnd) = try makeVirtualLinkIMU(configuration: configuration, robot: robot) {
                virtualBus.dynamics = linkIMU
                imu = linkIMU
                imuTransport = loopEnd
            }
            for (i, state) in robot.servoShaftStates().enumerated() {
                virtualBus.setJointState(
                    index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
            }
            if terminals {
                // A robot served for another process is found as it was left: powered, holding its pose (a
                // fresh servo's torque-off default would let the arm fall before anyone connects) — except a
                // leader arm (a motion in robot.yaml, or a hand): a person holds it, and its servos only read.
                if !handHeld {
                    for servo in virtualBus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
                }
                let link = linkDirectory.map { ($0 as NSString).appendingPathComponent(bus.name) }
                let server = try VirtualBusServer.servePseudoTerminal(
                    bus: virtualBus, linkPath: link, busyPollNanoseconds: serverBusyPollNs)
                servers.append(server)
                terminalPaths.append((bus.name, server.path ?? "", link))
            } else if lockstep {
                let transport = LockstepBusTransport(bus: virtualBus)
                clock = transport
                transports[bus.name] = transport
            } else {
                let (host, device) = BytePipe.makePair(baudRate: bus.baudRate)
                servers.append(
                    VirtualBusServer.serve(bus: virtualBus, transport: device, busyPollNanoseconds: serverBusyPollNs))
                transports[bus.name] = host
            }
            buses.append(virtualBus)
            dynamics.append(robot)
        }
        self.buses = buses
        self.servers = servers
        self.dynamics = dynamics
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
        if let port, configuration.buses.count == 1 {
            path = port
        } else if case .device(let device) = bus.port {
            path = device
        } else {
            throw ValidationError(
                "bus \"\(bus.name)\" has port `virtual` in \(configuration.file); give --port PATH (the path "
                    + "`sinew virtual-bus` printed, or /dev/ttyUSB0) or set the bus's port")
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
