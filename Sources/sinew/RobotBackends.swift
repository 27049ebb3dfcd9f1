import ArgumentParser
import Foundation
import SinewBus
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
final class SimulatedRobot {
    let buses: [VirtualBus]
    let servers: [VirtualBusServer]
    let dynamics: [RobotJointDynamics]
    var transports: [String: any ByteTransport] = [:]
    /// The IMU robot.yaml declares on a link (`port: virtual`), and the pipe end the loop reads it from.
    var imu: VirtualLinkIMU?
    var imuTransport: (any ByteTransport)?

    init(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog, wireTiming: Bool = true,
        faults: FaultInjection = .none
    ) throws {
        var buses: [VirtualBus] = []
        var servers: [VirtualBusServer] = []
        var dynamics: [RobotJointDynamics] = []
        let moving = configuration.buses.filter { bus in configuration.joints.contains { $0.bus == bus.name } }
        guard moving.count <= 1 else {
            throw ValidationError(
                "the simulator drives one bus per robot for now; \(configuration.file) has \(moving.count) "
                    + "(\(moving.map(\.name).joined(separator: ", "))). Run the buses with --backend pty or serial.")
        }
        // Start from the middle of each joint's range: a pose every robot can hold.
        var start = model.midRangePositions
        for bus in moving {
            let joints = configuration.joints.filter { $0.bus == bus.name }
            guard let servo = catalog.model(named: joints[0].servoModel) else {
                throw ValidationError("no servo table for \(joints[0].servoModel)")
            }
            if let other = joints.first(where: { $0.servoModel != servo.name }) {
                throw ValidationError(
                    "the simulator models one servo type per bus; bus \"\(bus.name)\" has \(servo.name) and "
                        + "\(other.servoModel)")
            }
            var options = VirtualBusOptions()
            options.baudRate = bus.baudRate
            options.wireTiming = wireTiming
            options.faults = faults
            let ids = joints.map { UInt8($0.servoID) }
            let virtualBus = try VirtualBus(model: servo, ids: ids, options: options)
            let mappings = joints.map { joint in
                JointServoMapping(
                    jointName: joint.name, servoID: UInt8(joint.servoID), servo: servo,
                    reducerRatio: joint.reducer.ratio, reducerEfficiency: joint.reducer.efficiency,
                    backlashRad: joint.reducer.backlashRad, direction: Double(joint.direction),
                    offsetRad: joint.offsetRad)
            }
            for joint in joints {
                if let j = model.jointIndex(named: joint.name), let p = joint.limits.positionRad {
                    start[j] = min(max(start[j], p.lower), p.upper)
                }
            }
            let robot = try RobotJointDynamics(
                model: model, mappings: mappings, servoModels: joints.map { _ in servo }, initialPositions: start)
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
            let (host, device) = BytePipe.makePair(baudRate: bus.baudRate)
            servers.append(VirtualBusServer.serve(bus: virtualBus, transport: device))
            transports[bus.name] = host
            buses.append(virtualBus)
            dynamics.append(robot)
        }
        self.buses = buses
        self.servers = servers
        self.dynamics = dynamics
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
        do {
            switch backend {
            case .pty: transports[bus.name] = try PseudoTerminalTransport(path: path, baudRate: bus.baudRate)
            case .serial: transports[bus.name] = try SerialPortTransport(path: path, baudRate: bus.baudRate)
            case .sim: break
            }
        } catch {
            throw ValidationError("bus \"\(bus.name)\": cannot open \(path): \(error)")
        }
    }
    return transports
}

func loadServoCatalog() throws -> ServoCatalog {
    try ServoCatalog.load(directory: HardwareDirectory.locate() + "/servos")
}
