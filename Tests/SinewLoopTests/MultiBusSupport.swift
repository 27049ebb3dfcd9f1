import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewRuntime
import SinewSim
import Testing

/// A shipped robot with several buses on the simulator: every bus's virtual servos behind one physics of the
/// whole robot (a ``VirtualBusGroup``), served from one thread on in-process pipes in real time, or driven in
/// lockstep on one simulated clock; and the loop talking to them, reading the buses as `busIO` says.
final class MultiBusRig {
    let configuration: RobotConfiguration
    let model: RobotModel
    /// The buses with servos, in robot.yaml's order, and their names.
    let buses: [VirtualBus]
    let busNames: [String]
    let group: VirtualBusGroup
    let robot: RobotJointDynamics
    /// The server of the real-time rig (nil in lockstep).
    let server: VirtualBusServer?
    let loop: RobotLoop

    /// - Parameters:
    ///   - busIO: how the loop reads the buses (robot.yaml's when nil).
    ///   - faults: faults injected on the named buses.
    ///   - wrapTransport: puts a transport of the test's between the loop and the named bus.
    init(
        robot name: String = "so101-bimanual", busIO: RobotConfiguration.BusIO? = nil, wireTiming: Bool = false,
        faults: [String: FaultInjection] = [:], lockstep: Bool = false,
        runMarginNs: UInt64 = RobotLoop.defaultRunMarginNs,
        wrapTransport: ((String, any ByteTransport) -> any ByteTransport)? = nil
    ) throws {
        let checked = try RobotConfiguration.loadChecked(
            contentsOf: "\(repositoryRoot)/Hardware/robots/\(name)/robot.yaml")
        configuration = busIO.map { checked.configuration.replacingBusIO($0) } ?? checked.configuration
        model = checked.model
        let catalog = try ServoCatalog.load(directory: "\(repositoryRoot)/Hardware/servos")
        var buses: [VirtualBus] = []
        var names: [String] = []
        var mappings: [JointServoMapping] = []
        var servoModels: [ServoModel] = []
        for busConfig in configuration.buses {
            let joints = configuration.joints.filter { $0.bus == busConfig.name }
            guard !joints.isEmpty else { continue }
            let servos = try joints.map { joint in try #require(catalog.model(named: joint.servoModel)) }
            var options = VirtualBusOptions()
            options.baudRate = busConfig.baudRate
            options.wireTiming = wireTiming
            options.faults = faults[busConfig.name] ?? .none
            buses.append(
                try VirtualBus(servos: zip(servos, joints).map { ($0, UInt8($1.servoID)) }, options: options))
            names.append(busConfig.name)
            mappings += zip(joints, servos).map { joint, servo in joint.servoMapping(servo: servo) }
            servoModels += servos
        }
        self.buses = buses
        busNames = names
        robot = try RobotJointDynamics(
            model: model, mappings: mappings, servoModels: servoModels, initialPositions: model.midRangePositions)
        group = try VirtualBusGroup(buses: buses, dynamics: robot)
        for (s, state) in robot.servoShaftStates().enumerated() {
            let (b, index) = Self.location(ofServo: s, in: buses)
            buses[b].setJointState(index: index, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        var transports: [String: any ByteTransport] = [:]
        if lockstep {
            let lockstepTransports = LockstepBusTransport.group(buses)
            for (b, transport) in lockstepTransports.enumerated() {
                transports[names[b]] = wrapTransport?(names[b], transport) ?? transport
            }
            server = nil
            loop = try RobotLoop(
                configuration: configuration, model: model, catalog: catalog, transports: transports,
                simulationClock: lockstepTransports[0], runMarginNs: RobotLoop.lockstepRunMarginNs)
        } else {
            var deviceEnds: [any ByteTransport] = []
            for (b, busConfig) in configuration.buses.enumerated() where b < names.count {
                let (host, device) = BytePipe.makePair(baudRate: busConfig.baudRate)
                transports[names[b]] = wrapTransport?(names[b], host) ?? host
                deviceEnds.append(device)
            }
            server = try VirtualBusServer.serve(buses: buses, transports: deviceEnds)
            loop = try RobotLoop(
                configuration: configuration, model: model, catalog: catalog, transports: transports,
                runMarginNs: runMarginNs)
        }
    }

    deinit { server?.stop() }

    /// Bus and index on it of the group's servo `s` (servos are numbered bus after bus).
    static func location(ofServo s: Int, in buses: [VirtualBus]) -> (bus: Int, index: Int) {
        var rest = s
        for (b, bus) in buses.enumerated() {
            if rest < bus.servos.count { return (b, rest) }
            rest -= bus.servos.count
        }
        return (-1, -1)
    }

    /// Runs `body` with the buses to itself (the serving thread waits meanwhile in real time).
    func withBuses<Result>(_ body: ([VirtualBus]) throws -> Result) rethrows -> Result {
        if let server { return try server.withBuses(body) }
        return try body(buses)
    }

    /// Makes every servo of bus `b` silent (or not) at once. Allocation-free.
    func silence(bus b: Int, _ silent: Bool = true) {
        if let server {
            server.withBus(at: b) { bus in for servo in bus.servos { servo.isSilent = silent } }
        } else {
            for servo in buses[b].servos { servo.isSilent = silent }
        }
    }

    /// Configuration indices of the joints on bus `name`.
    func joints(onBus name: String) -> [Int] { configuration.joints(onBus: name).map(\.index) }

    /// The simulator's true position of configuration joint `j`, rad.
    func truePositionRad(joint j: Int) -> Double {
        robot.positions[model.jointIndex(named: configuration.joints[j].name)!]
    }
}

/// Runs the loop's stages and records, per tick, which joints had a fresh reading and how much simulated
/// time (lockstep) or wall time the sense stage took; stops at `lastTick`.
final class BusWatchBody: ControlTickBody, @unchecked Sendable {
    let loop: RobotLoop
    let lastTick: Int64
    var onTick: ((Int64) -> Void)?
    /// Per tick: whether every joint of `watched` had a fresh reading.
    let watched: [Int]
    private(set) var staleWatchedTicks: [Int64] = []
    /// Sense-stage durations, ns (on the simulation clock when there is one).
    private(set) var senseNs: [UInt64] = []
    private(set) var firstSafeTick: Int64 = -1

    init(loop: RobotLoop, lastTick: Int64, watched: [Int]) {
        self.loop = loop
        self.lastTick = lastTick
        self.watched = watched
        staleWatchedTicks.reserveCapacity(Int(lastTick) + 10)
        senseNs.reserveCapacity(Int(lastTick) + 10)
    }

    func now() -> UInt64 {
        loop.simulationClock?.nanoseconds ?? MonotonicInstant.now().nanoseconds
    }

    func loopDidStart(_ tick: TickInfo) { loop.loopDidStart(tick) }
    func sense(_ tick: inout TickInfo) {
        onTick?(tick.index)
        let before = now()
        loop.sense(&tick)
        let after = now()
        // In lockstep the stage first moves the clock to the tick's start, unless the clock is past it already
        // (the buses took longer than a period): the stage starts at the later of the two.
        senseNs.append(after - max(before, loop.simulationClock == nil ? 0 : loop.tickStartSimulatedNs))
        for j in watched where !loop.supervisor.readingFresh[j] {
            staleWatchedTicks.append(tick.index)
            break
        }
    }
    func estimate(_ tick: inout TickInfo) { loop.estimate(&tick) }
    func decide(_ tick: inout TickInfo) { loop.decide(&tick) }
    func guardCommands(_ tick: inout TickInfo) {
        loop.guardCommands(&tick)
        if firstSafeTick < 0 && loop.lifecycle.state == .safe { firstSafeTick = tick.index }
    }
    func act(_ tick: inout TickInfo) { loop.act(&tick) }
    func record(_ tick: inout TickInfo) {
        loop.record(&tick)
        if tick.index >= lastTick { tick.stopRequested = true }
    }
}
