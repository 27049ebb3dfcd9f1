import SinewDrivers
import SinewPolicy

extension RobotLoop {
    /// A policy the loop can run: it commands joints of this robot, each once, by a kind every servo of the
    /// joint has an operating mode for (position on all; velocity and effort where the servo table says so;
    /// a coupled joint by position only), and an asynchronous one runs at a rate in (0, loop rate].
    static func checkPolicy(_ policy: any Policy, configuration: RobotConfiguration, catalog: ServoCatalog)
        throws(RobotLoopError)
    {
        let names = Set(configuration.joints.map(\.name))
        var seen: Set<String> = []
        for command in policy.commands {
            guard names.contains(command.joint),
                let joint = configuration.joints.first(where: { $0.name == command.joint })
            else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(command.joint)\", which \(configuration.file) "
                        + "does not have (joints: \(configuration.joints.map(\.name).joined(separator: ", ")))",
                    location: RobotErrorLocation(joint: command.joint))
            }
            guard seen.insert(command.joint).inserted else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(command.joint)\" twice",
                    location: RobotErrorLocation(joint: command.joint))
            }
            let mode = controlMode(for: command.kind)
            guard mode != .position else { continue }
            let location = RobotErrorLocation(bus: joint.bus, servoID: joint.servoID, joint: joint.name)
            guard joint.coupled == nil else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(joint.name)\" by \(command.kind.rawValue); a joint "
                        + "driven by two servos (coupled) is commanded by position only",
                    location: location)
            }
            guard let servo = catalog.model(named: joint.servoModel), servo.operatingModeValue(for: mode) != nil
            else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(joint.name)\" by \(command.kind.rawValue), but its "
                        + "servo (\(joint.servoModel), ID \(joint.servoID)) has no \(mode.word) control mode"
                        + (mode == .current ? " (Dynamixel X-series servos such as the XM430 and XL330 have one)" : ""),
                    location: location)
            }
        }
        if case .asynchronous(let rateHz) = policy.execution {
            let loopHz = configuration.loop.rateHz
            guard rateHz > 0 && rateHz <= loopHz else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" runs at \(rateHz) Hz; an asynchronous policy runs at a rate "
                        + "above 0 and at most the loop's \(loopHz) Hz")
            }
        }
    }

    /// The servo mode a command kind needs.
    static func controlMode(for kind: JointCommandKind) -> ServoControlMode {
        switch kind {
        case .position: .position
        case .velocity: .velocity
        case .effort: .current
        }
    }
}
