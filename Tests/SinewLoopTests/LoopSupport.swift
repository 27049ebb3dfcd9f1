import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewFusion
import SinewKinematics
import SinewPolicy
import SinewRuntime
import SinewSim
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A shipped robot on the simulator: its virtual servos behind the robot's physics, served on an
/// in-process pipe, and the loop talking to them.
final class SimulatedRig {
    let configuration: RobotConfiguration
    let model: RobotModel
    let bus: VirtualBus
    let server: VirtualBusServer
    let robot: RobotJointDynamics
    let loop: RobotLoop
    /// The virtual IMU on the link robot.yaml names, when asked for (`withIMU`).
    let imu: VirtualLinkIMU?
    /// The serving (primary) side of the pseudo-terminal the bus is served on (`pseudoTerminal`).
    let primary: PseudoTerminalTransport?

    /// - Parameters:
    ///   - configurationPath: a robot.yaml to use instead of the shipped robot `name`'s.
    ///   - lockstep: the loop drives simulated time (no serving thread; the server exists but is not started).
    ///   - calibration: the loop's calibration (named "test-calibration.json" in errors).
    ///   - backlashRad: when above 0, every joint's reducer gets this much play (robot.yaml `backlash_rad`).
    ///   - pseudoTerminal: serve the bus on a pseudo-terminal (as `sinew virtual-bus` does) and connect the
    ///     loop through its secondary, as `--backend pty` does, instead of an in-process pipe.
    ///   - wrapTransport: puts a transport of the test's between the loop and the bus.
    init(
        robot name: String = "so101", configurationPath: String? = nil, wireTiming: Bool = false,
        faults: FaultInjection = .none, lockstep: Bool = false,
        runMarginNs: UInt64 = RobotLoop.defaultRunMarginNs, calibration: CalibrationFile? = nil,
        withIMU: Bool = false, backlashRad: Double = 0, pseudoTerminal: Bool = false,
        wrapTransport: ((any ByteTransport) -> any ByteTransport)? = nil, policy: (any Policy)? = nil,
        policyTransports: [String: any ByteTransport] = [:], alsoAdvancing otherClocks: [any SimulationClock] = []
    ) throws {
        var path = configurationPath ?? "\(repositoryRoot)/Hardware/robots/\(name)/robot.yaml"
        if backlashRad > 0 { path = try Self.shippedConfiguration(path, withBacklashRad: backlashRad) }
        let checked = try RobotConfiguration.loadChecked(contentsOf: path)
        if backlashRad > 0 { try? FileManager.default.removeItem(atPath: path) }
        configuration = checked.configuration
        model = checked.model
        let catalog = try ServoCatalog.load(directory: "\(repositoryRoot)/Hardware/servos")
        let busConfig = try #require(checked.configuration.buses.first)
        let joints = configuration.joints.filter { $0.bus == busConfig.name }
        let servos = try joints.map { joint in try #require(catalog.model(named: joint.servoModel)) }
        var options = VirtualBusOptions()
        options.baudRate = busConfig.baudRate
        options.wireTiming = wireTiming
        options.faults = faults
        bus = try VirtualBus(servos: zip(servos, joints).map { ($0, UInt8($1.servoID)) }, options: options)
        let mappings = zip(joints, servos).map { joint, servo in joint.servoMapping(servo: servo) }
        robot = try RobotJointDynamics(
            model: model, mappings: mappings, servoModels: servos, initialPositions: model.midRangePositions)
        // A leader arm: its joints follow the motion robot.yaml names, as a hand would move them.
        if let motion = configuration.simulation?.motion { try robot.play(motion) }
        bus.dynamics = robot
        var imuTransport: (any ByteTransport)?
        if withIMU, let declared = configuration.imu {
            let (loopEnd, deviceEnd) = BytePipe.makePair()
            let linkIMU = try VirtualLinkIMU(
                robot: robot, linkName: declared.link, mountingXYZ: declared.mountingXYZ,
                mountingRPY: declared.mountingRPY, sensor: .consumerMEMS(sampleRateHz: declared.rateHz, seed: 3),
                transport: deviceEnd)
            bus.dynamics = linkIMU
            imu = linkIMU
            imuTransport = loopEnd
        } else {
            imu = nil
        }
        for (i, state) in robot.servoShaftStates().enumerated() {
            bus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        let (pipeHost, device) = BytePipe.makePair(baudRate: busConfig.baudRate)
        var host: any ByteTransport = pipeHost
        var terminal: PseudoTerminalTransport?
        if pseudoTerminal && !lockstep {
            let created = try PseudoTerminalTransport.createPair(baudRate: busConfig.baudRate)
            terminal = created
            host = try PseudoTerminalTransport(path: created.path, baudRate: busConfig.baudRate)
        }
        primary = terminal
        if lockstep {
            server = VirtualBusServer(bus: bus, transport: device)
            let transport = LockstepBusTransport(bus: bus)
            loop = try RobotLoop(
                configuration: configuration, model: model, catalog: catalog,
                transports: [busConfig.name: wrapTransport?(transport) ?? transport],
                calibration: calibration, calibrationSource: "test-calibration.json",
                simulationClock: otherClocks.isEmpty ? transport : SimulationClockGroup([transport] + otherClocks),
                runMarginNs: RobotLoop.lockstepRunMarginNs, imuTransport: imuTransport, policy: policy,
                policyTransports: policyTransports)
        } else {
            server = VirtualBusServer.serve(bus: bus, transport: terminal ?? device)
            if let wrapTransport { host = wrapTransport(host) }
            loop = try RobotLoop(
                configuration: configuration, model: model, catalog: catalog, transports: [busConfig.name: host],
                calibration: calibration, calibrationSource: "test-calibration.json", runMarginNs: runMarginNs,
                imuTransport: imuTransport, policy: policy, policyTransports: policyTransports)
        }
    }

    deinit { server.stop() }

    /// A copy of a shipped robot.yaml (in a temporary directory, its model path made absolute) whose every
    /// joint has a reducer with `backlashRad` of play.
    static func shippedConfiguration(_ path: String, withBacklashRad backlashRad: Double) throws -> String {
        let directory = (path as NSString).deletingLastPathComponent
        var lines: [String] = []
        for line in try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n") {
            if line.hasPrefix("model: ") {
                lines.append("model: \(directory)/\(line.dropFirst("model: ".count))")
            } else {
                lines.append(line)
            }
            if line.hasPrefix("    servo: ") { lines.append("    reducer: {backlash_rad: \(backlashRad)}") }
        }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-backlash-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).yaml"
        ).path
        try lines.joined(separator: "\n").write(toFile: copy, atomically: true, encoding: .utf8)
        return copy
    }

    /// Moves joint `j` (the model's index, `model.jointIndex(named:)`) of the simulated robot at once (as a
    /// hand would), keeping its position unless given.
    func move(joint j: Int, to positionRad: Double? = nil, velocityRadPerS: Double = 0) {
        let name = model.joints[j].name
        server.withBus { bus in
            robot.setJointState(
                joint: j, positionRad: positionRad ?? robot.positions[j], velocityRadPerS: velocityRadPerS)
            for s in robot.mappings.indices where robot.mappings[s].jointName == name {
                let state = robot.shaftState(forServo: s)
                bus.setJointState(index: s, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
            }
        }
    }
}

/// The loop threads of these tests ask for SCHED_FIFO (granted to root, refused quietly otherwise), as
/// `sinew run` does: other tests running in parallel must not starve a 500 Hz loop into bus timeouts.
let loopTestPriority = 60

/// Runs `attempt` up to three times while it reports (returning false, after printing why) that the machine
/// stalled the loop thread — a measured stall, never a safety cause alone; the last attempt is scored
/// whatever happened. Only for tests about real time: the others run in lockstep and need no retry.
func retryingDisturbedRuns(_ attempt: (_ isLastAttempt: Bool) throws -> Bool) rethrows {
    for index in 1...3 where try attempt(index == 3) { return }
}
