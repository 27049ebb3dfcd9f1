import SinewDrivers
import SinewKinematics
import SinewPolicy

/// What the guard stage needs from robot.yaml and the URDF, built once for a loop or a replay.
struct SafetySetup {
    let configuration: SafetyConfiguration
    /// The URDF link of each workspace box's frame, in the boxes' order.
    let boxLinks: [Int]
}

extension RobotConfiguration {
    /// The supervisor's configuration: the joints' limits, the workspace boxes, the watchdog and the budgets.
    /// - Parameters:
    ///   - busNames: the loop's buses in order (events name them by index).
    ///   - commandSourceName: what the watchdog times, for `staleCommand` events.
    func safetySetup(
        model: RobotModel, jointLimits: [JointSafetyLimits], busNames: [String], overrunBudget: Int?,
        commandSourceName: String
    ) throws(RobotLoopError) -> SafetySetup {
        var boxes: [SinewRuntime.WorkspaceBox] = []
        var boxLinks: [Int] = []
        for box in safety.workspace {
            guard let link = model.linkIndex(named: box.frame) else {
                throw RobotLoopError(
                    "workspace frame \"\(box.frame)\" (\(box.location)) is not a link of \(model.file)")
            }
            boxLinks.append(link)
            boxes.append(
                SinewRuntime.WorkspaceBox(
                    frameName: box.frame, minM: (box.minM.x, box.minM.y, box.minM.z),
                    maxM: (box.maxM.x, box.maxM.y, box.maxM.z)))
        }
        return SafetySetup(
            configuration: SafetyConfiguration(
                jointNames: joints.map(\.name), joints: jointLimits, workspaceBoxes: boxes,
                commandTimeoutNs: Int64(safety.watchdogMs * 1e6), busErrorBudget: safety.busErrorBudget,
                overrunBudget: overrunBudget, jointServoIDs: joints.map(\.servoID),
                jointBusIndices: joints.map { joint in busNames.firstIndex(of: joint.bus) ?? -1 }, busNames: busNames,
                commandSourceName: commandSourceName),
            boxLinks: boxLinks)
    }
}

extension SafetySupervisor {
    /// The decide stage's hand-over: the policy's command becomes the guard's input (and `targets` the policy's
    /// position targets, for tracking). A joint driven by velocity or effort holds, should the guard stop it, the
    /// position it is at.
    @inline(__always)
    func takeCommand(_ command: PolicyCommand, targets: UnsafeMutableBufferPointer<Double>) {
        for j in 0..<jointCount {
            targets[j] = command.positionRad[j]
            if jointControlMode[j] == ServoControlMode.position.rawValue {
                commandedPositionRad[j] = command.positionRad[j]
            } else {
                commandedPositionRad[j] = measuredPositionRad[j]
                commandedVelocityRadPerS[j] = command.velocityRadPerS[j]
                commandedEffortNm[j] = command.effortNm[j]
            }
        }
    }

    /// The policy's first command (activation, recovery) as the guard's starting point.
    func takeStartCommand(_ command: PolicyCommand, targets: UnsafeMutableBufferPointer<Double>) {
        for j in 0..<jointCount {
            targets[j] = command.positionRad[j]
            commandedPositionRad[j] =
                jointControlMode[j] == ServoControlMode.position.rawValue
                ? command.positionRad[j] : measuredPositionRad[j]
        }
    }
}
