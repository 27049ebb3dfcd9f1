import SinewDrivers

extension RobotConfiguration.Joint {
    /// The joint layer's mapping for this joint's (first) servo: its reducer, direction and offset from
    /// robot.yaml, the register units of `servo`, and the zero from a calibration when there is one.
    public func servoMapping(servo: ServoModel, zeroCounts: Double? = nil) -> JointServoMapping {
        JointServoMapping(
            jointName: name, servoID: UInt8(servoID), servo: servo, reducerRatio: reducer.ratio,
            reducerEfficiency: reducer.efficiency, backlashRad: reducer.backlashRad, direction: Double(direction),
            offsetRad: offsetRad, zeroCounts: zeroCounts)
    }
}
