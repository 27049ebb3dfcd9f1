import SinewDrivers
import SinewPolicy
import SinewRuntime
import SinewSim

/// A robot.yaml's robot on Sinew's simulator, stepped in lockstep: its servos are virtual ones built from their
/// control tables (Hardware/servos), moved by the URDF's rigid-body physics, and the loop talks to them in the
/// same bytes as to the real ones. The loop drives the simulated clock tick by tick, so a run goes as fast as
/// the machine allows and gives the same result every time.
struct SimulatedRobot {
    let loop: RobotLoop

    /// - Parameter policy: the policy to run; nil runs the one the robot.yaml names.
    init(_ checked: CheckedRobotConfiguration, catalog: ServoCatalog, policy: (any Policy)? = nil) throws {
        let configuration = checked.configuration
        guard let bus = configuration.buses.first, configuration.buses.count == 1 else {
            throw SimulationSetupError("\(configuration.file): this example simulates robots on one bus")
        }
        let joints = configuration.joints
        var servos: [ServoModel] = []
        for joint in joints {
            guard let servo = catalog.model(named: joint.servoModel) else {
                throw SimulationSetupError("no servo table for \(joint.servoModel) (joint \(joint.name))")
            }
            servos.append(servo)
        }
        var options = VirtualBusOptions()
        options.baudRate = bus.baudRate
        let virtualBus = try VirtualBus(servos: zip(servos, joints).map { ($0, UInt8($1.servoID)) }, options: options)
        // The arm starts in the middle of each joint's range, as `sinew run` simulates it.
        let dynamics = try RobotJointDynamics(
            model: checked.model, mappings: zip(joints, servos).map { $0.servoMapping(servo: $1) },
            servoModels: servos, initialPositions: checked.model.midRangePositions)
        virtualBus.dynamics = dynamics
        for (i, state) in dynamics.servoShaftStates().enumerated() {
            virtualBus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        // One transport is both the bus and the simulated clock.
        let lockstep = LockstepBusTransport(bus: virtualBus)
        loop = try RobotLoop(
            configuration: configuration, model: checked.model, catalog: catalog, transports: [bus.name: lockstep],
            simulationClock: lockstep, runMarginNs: RobotLoop.lockstepRunMarginNs, policy: policy)
    }
}

struct SimulationSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
