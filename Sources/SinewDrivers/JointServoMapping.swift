import Foundation

/// How one joint of the robot maps onto one servo: the reducer between the servo's output shaft and the
/// joint, the mounting direction, the zero, and the register units of the servo model. Converts both ways
/// between raw register values and SI joint quantities (rad, rad/s, N·m, A, V, °C). Immutable; every
/// conversion is a few arithmetic operations and allocation-free, for use inside the control tick.
///
/// Positions: `joint = offsetRad + direction · (counts − zeroCounts) / countsPerRad / reducerRatio`.
/// The servo's shaft angle, as the simulator's virtual servo holds it, is `counts / countsPerRad`.
/// Backlash is a property of the mechanism: the simulator models it (the servo reads its own shaft, up to
/// half the play from the joint) and the safety supervisor widens the joint's command margin by half of it.
/// It does not enter the conversions.
public struct JointServoMapping: Sendable {
    /// URDF name of the joint.
    public var jointName: String
    public var servoID: UInt8
    public var servoModelName: String
    /// What the servo must report as its model number (checked at configure time).
    public var expectedModelNumber: UInt16
    /// Servo output-shaft turns per joint turn (or per metre ÷ 2π for a prismatic joint); 1 for direct drive.
    public var reducerRatio: Double
    /// Mechanical efficiency of the reducer, 0…1.
    public var reducerEfficiency: Double
    /// Free play at the joint, rad.
    public var backlashRad: Double
    /// +1 when the servo and the joint turn the same way, −1 otherwise.
    public var direction: Double
    /// Joint position when the servo reads `zeroCounts`, rad.
    public var offsetRad: Double
    /// Servo reading at the joint's calibrated zero (default: the middle of the encoder's turn).
    public var zeroCounts: Double
    public let countsPerRad: Double
    /// rad/s at the servo's output per raw Present Velocity unit.
    public let velocityRadPerSPerUnit: Double
    /// A per raw Present Current unit.
    public let currentAPerUnit: Double
    /// V per raw voltage unit.
    public let voltageVPerUnit: Double
    /// Joint torque per ampere of winding current: Kt · servo gear ratio · servo gear efficiency ·
    /// reducer ratio · reducer efficiency, N·m/A.
    public let jointTorquePerAmpere: Double

    public init(
        jointName: String, servoID: UInt8, servo: ServoModel, reducerRatio: Double = 1, reducerEfficiency: Double = 1,
        backlashRad: Double = 0, direction: Double = 1, offsetRad: Double = 0, zeroCounts: Double? = nil
    ) {
        self.jointName = jointName
        self.servoID = servoID
        servoModelName = servo.name
        expectedModelNumber = servo.modelNumber
        self.reducerRatio = reducerRatio
        self.reducerEfficiency = reducerEfficiency
        self.backlashRad = backlashRad
        self.direction = direction < 0 ? -1 : 1
        self.offsetRad = offsetRad
        self.zeroCounts = zeroCounts ?? Double(servo.countsPerTurn / 2)
        countsPerRad = Double(servo.countsPerTurn) / (2 * Double.pi)
        let velocity = servo.register(named: "Present Velocity")
        switch velocity?.unit {
        case "rev/min": velocityRadPerSPerUnit = (velocity?.scale ?? 1) * 2 * Double.pi / 60
        default: velocityRadPerSPerUnit = (velocity?.scale ?? 1) / (Double(servo.countsPerTurn) / (2 * Double.pi))
        }
        let current = servo.register(named: "Present Current")
        currentAPerUnit = (current?.scale ?? 1) / 1000
        let voltage = servo.register(named: "Present Input Voltage") ?? servo.register(named: "Present Voltage")
        voltageVPerUnit = voltage?.scale ?? 0.1
        let p = servo.physical
        jointTorquePerAmpere =
            p.torqueConstantNmPerA * p.gearRatio * p.gearEfficiency * reducerRatio * reducerEfficiency
    }

    // MARK: Position

    /// Joint position (rad) from a Present Position reading.
    @inlinable public func jointPositionRad(counts: Int64) -> Double {
        offsetRad + direction * (Double(counts) - zeroCounts) / countsPerRad / reducerRatio
    }

    /// Goal Position counts that put the joint at `positionRad` (rounded to the nearest count).
    @inlinable public func counts(forJointPositionRad positionRad: Double) -> Int64 {
        Int64((zeroCounts + direction * (positionRad - offsetRad) * reducerRatio * countsPerRad).rounded())
    }

    /// The servo's output-shaft angle (rad, the simulator's convention: counts / countsPerRad) for a joint
    /// position.
    @inlinable public func shaftAngleRad(forJointPositionRad positionRad: Double) -> Double {
        zeroCounts / countsPerRad + direction * (positionRad - offsetRad) * reducerRatio
    }

    /// Joint position (rad) for a servo output-shaft angle.
    @inlinable public func jointPositionRad(shaftAngleRad: Double) -> Double {
        offsetRad + direction * (shaftAngleRad - zeroCounts / countsPerRad) / reducerRatio
    }

    // MARK: Velocity, effort, electrical

    /// Joint velocity (rad/s) from a Present Velocity reading.
    @inlinable public func jointVelocityRadPerS(raw: Int64) -> Double {
        direction * Double(raw) * velocityRadPerSPerUnit / reducerRatio
    }

    /// Goal Velocity units for a joint velocity.
    @inlinable public func rawVelocity(forJointVelocityRadPerS velocity: Double) -> Int64 {
        Int64((direction * velocity * reducerRatio / velocityRadPerSPerUnit).rounded())
    }

    /// Winding current (A) from a Present Current reading, signed as the servo reports it.
    @inlinable public func currentA(raw: Int64) -> Double { Double(raw) * currentAPerUnit }

    /// Goal Current units for a winding current (A).
    @inlinable public func rawCurrent(forCurrentA current: Double) -> Int64 {
        Int64((current / currentAPerUnit).rounded())
    }

    /// Joint torque (N·m) from a Present Current reading, in the joint's direction.
    @inlinable public func jointEffortNm(currentRaw: Int64) -> Double {
        direction * currentA(raw: currentRaw) * jointTorquePerAmpere
    }

    /// Winding current (A) that produces a joint torque (N·m).
    @inlinable public func currentA(forJointEffortNm effort: Double) -> Double {
        direction * effort / jointTorquePerAmpere
    }

    /// Supply voltage (V) from a voltage reading.
    @inlinable public func voltageV(raw: Int64) -> Double { Double(raw) * voltageVPerUnit }

    /// Temperature (°C) from a Present Temperature reading (1 °C per unit on every supported model).
    @inlinable public func temperatureC(raw: Int64) -> Double { Double(raw) }
}
