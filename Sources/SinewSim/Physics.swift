import Foundation
import SinewDrivers

/// What one actuator puts on its output shaft during a physics step: the torque at the current state and
/// how that torque falls with speed (its linearised damping, from back-EMF and friction). Physics that
/// integrates implicitly in velocity uses the damping to stay stable with stiff gearmotors; explicit
/// integrators may ignore it.
public struct ActuatorOutput: Sendable, Equatable {
    /// Torque on the output shaft, N·m, positive in the joint's positive direction.
    public var torqueNm: Double
    /// −∂torque/∂velocity at the current state, N·m·s/rad (≥ 0).
    public var dampingNmsPerRad: Double
    /// Whether the servo's torque is switched on: a hand holding the joint lets go of a joint whose servo holds
    /// it (``RobotJointDynamics``).
    public var isTorqueEnabled: Bool

    public init(torqueNm: Double, dampingNmsPerRad: Double, isTorqueEnabled: Bool = false) {
        self.torqueNm = torqueNm
        self.dampingNmsPerRad = dampingNmsPerRad
        self.isTorqueEnabled = isTorqueEnabled
    }
}

/// The mechanical world the servos drive. The virtual bus asks each servo for its ``ActuatorOutput`` at
/// the joints' present state, then calls ``step(outputs:dtS:positionsRad:velocitiesRadPerS:)`` once per
/// physics step. Replace ``FreeSpinningJoints`` with a robot's rigid-body dynamics to simulate a robot.
public protocol JointDynamics: AnyObject {
    /// Advances every joint by `dtS` seconds under the actuators' output torques. Arrays are indexed
    /// like the bus's servos; positions are output-shaft angles in rad, velocities in rad/s.
    /// Called on the simulation thread inside the physics loop: must not allocate.
    func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double,
        positionsRad: UnsafeMutableBufferPointer<Double>, velocitiesRadPerS: UnsafeMutableBufferPointer<Double>)
}

/// Each output shaft turns freely: an inertia (the reflected rotor plus an optional load) and nothing else
/// (friction is part of the actuator's torque). Integrated semi-implicitly in velocity.
public final class FreeSpinningJoints: JointDynamics {
    /// Inertia seen at each output shaft, kg·m².
    public private(set) var inertiasKgM2: [Double]

    /// - Parameter inertiasKgM2: per joint, output-side inertia (use ``DCMotorGearModel/reflectedRotorInertiaKgM2``
    ///   plus whatever hangs on the horn).
    public init(inertiasKgM2: [Double]) {
        self.inertiasKgM2 = inertiasKgM2
    }

    public func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double,
        positionsRad: UnsafeMutableBufferPointer<Double>, velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        let count = min(outputs.count, positionsRad.count, velocitiesRadPerS.count, inertiasKgM2.count)
        for index in 0..<count {
            let inertia = inertiasKgM2[index]
            let output = outputs[index]
            let velocity = velocitiesRadPerS[index]
            // Implicit in the damping term: v' = (v + dt·(τ + b·v)/J) / (1 + dt·b/J), where τ already
            // contains −b·v; stable for any damping at the fixed step.
            let gain = dtS / inertia
            let newVelocity =
                (velocity + gain * (output.torqueNm + output.dampingNmsPerRad * velocity))
                / (1 + gain * output.dampingNmsPerRad)
            velocitiesRadPerS[index] = newVelocity
            positionsRad[index] += newVelocity * dtS
        }
    }
}

/// A brushed DC motor behind a gearbox, with the winding's inductance neglected (its electrical time
/// constant is far below a 1 ms step): current follows from applied voltage and back-EMF. Values come
/// from a servo table's physical parameters.
public struct DCMotorGearModel: Sendable {
    public var windingResistanceOhm: Double
    /// Motor-side torque constant = back-EMF constant, N·m/A = V·s/rad.
    public var torqueConstantNmPerA: Double
    public var gearRatio: Double
    public var gearEfficiency: Double
    /// Coulomb friction at the output shaft, N·m (from the no-load current).
    public var coulombFrictionNm: Double
    /// Speed below which friction is blended linearly to zero, rad/s (keeps the model smooth at rest).
    public var frictionBlendSpeedRadPerS: Double
    public var reflectedRotorInertiaKgM2: Double

    public init(_ physical: ServoPhysicalParameters) {
        windingResistanceOhm = physical.windingResistanceOhm
        torqueConstantNmPerA = physical.torqueConstantNmPerA
        gearRatio = physical.gearRatio
        gearEfficiency = physical.gearEfficiency
        coulombFrictionNm = physical.noLoadCurrentA * physical.torqueConstantNmPerA * physical.gearRatio
        frictionBlendSpeedRadPerS = 0.05
        reflectedRotorInertiaKgM2 = physical.rotorInertiaKgM2 * physical.gearRatio * physical.gearRatio
    }

    /// Output-shaft back-EMF constant, V·s/rad.
    @inlinable public var outputEMFConstant: Double { torqueConstantNmPerA * gearRatio }

    /// Winding current for a voltage across the motor at an output speed, A.
    @inlinable
    public func currentA(voltageV: Double, outputVelocityRadPerS: Double) -> Double {
        (voltageV - outputEMFConstant * outputVelocityRadPerS) / windingResistanceOhm
    }

    /// The voltage that drives `currentA` through the winding at an output speed, V.
    @inlinable
    public func voltageV(forCurrentA current: Double, outputVelocityRadPerS: Double) -> Double {
        current * windingResistanceOhm + outputEMFConstant * outputVelocityRadPerS
    }

    /// Output torque of a winding current, N·m (before friction).
    @inlinable
    public func outputTorqueNm(currentA: Double) -> Double {
        currentA * torqueConstantNmPerA * gearRatio * gearEfficiency
    }

    /// Friction torque at an output speed, N·m, and its slope (damping, N·m·s/rad).
    @inlinable
    public func friction(outputVelocityRadPerS velocity: Double) -> (torqueNm: Double, dampingNmsPerRad: Double) {
        let blend = frictionBlendSpeedRadPerS
        if velocity > blend { return (-coulombFrictionNm, 0) }
        if velocity < -blend { return (coulombFrictionNm, 0) }
        let slope = coulombFrictionNm / blend
        return (-slope * velocity, slope)
    }
}

/// One-node thermal model of the winding and case: C·dT/dt = P − (T − T_ambient)/R_th.
public struct ThermalModel: Sendable {
    public var temperatureC: Double
    public var ambientC: Double
    public var thermalResistanceKPerW: Double
    public var timeConstantS: Double

    public init(ambientC: Double = 25, thermalResistanceKPerW: Double, timeConstantS: Double) {
        self.temperatureC = ambientC
        self.ambientC = ambientC
        self.thermalResistanceKPerW = thermalResistanceKPerW
        self.timeConstantS = timeConstantS
    }

    /// Advances by `dtS` with `powerW` dissipated; exact for constant power over the step.
    @inlinable
    public mutating func step(powerW: Double, dtS: Double) {
        let steady = ambientC + powerW * thermalResistanceKPerW
        let decay = exp(-dtS / timeConstantS)
        temperatureC = steady + (temperatureC - steady) * decay
    }
}
