import SinewPolicy

extension RobotLoop {
    /// A policy the loop can run: it commands joints of this robot, each once, by position (the act stage
    /// writes position goals; velocity and effort goals need the servos' other operating modes, not yet
    /// configured), and an asynchronous one runs at a rate in (0, loop rate].
    static func checkPolicy(_ policy: any Policy, configuration: RobotConfiguration) throws(RobotLoopError) {
        let names = Set(configuration.joints.map(\.name))
        var seen: Set<String> = []
        for command in policy.commands {
            guard names.contains(command.joint) else {
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
            guard command.kind == .position else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\" commands joint \"\(command.joint)\" by \(command.kind.rawValue); "
                        + "this version of Sinew drives servos by position only",
                    location: RobotErrorLocation(joint: command.joint))
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
}
