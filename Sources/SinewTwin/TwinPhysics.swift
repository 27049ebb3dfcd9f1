import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy
import SinewRuntime
import SinewSim

/// The robot's URDF with an episode's mass, inertia, damping and friction draws applied: the physics the
/// simulator integrates (the controller keeps the nominal model, as on a real arm).
func perturbedModel(
    _ description: RobotDescription, sample: DomainRandomization.Sample, configuration: RobotConfiguration
) throws(RobotDescriptionError) -> RobotModel {
    var description = description
    for l in description.links.indices {
        guard var inertial = description.links[l].inertial else { continue }
        let mass = l < sample.linkMassScale.count ? sample.linkMassScale[l] : 1
        let rotational = mass * (l < sample.linkInertiaScale.count ? sample.linkInertiaScale[l] : 1)
        inertial.mass *= mass
        inertial.ixx *= rotational
        inertial.ixy *= rotational
        inertial.ixz *= rotational
        inertial.iyy *= rotational
        inertial.iyz *= rotational
        inertial.izz *= rotational
        description.links[l].inertial = inertial
    }
    for (j, joint) in configuration.joints.enumerated() {
        guard let d = description.joints.firstIndex(where: { $0.name == joint.name }) else { continue }
        description.joints[d].friction *= sample.jointFrictionScale[j]
        description.joints[d].damping += sample.jointDampingNmsPerRad[j]
    }
    return try RobotModel(description)
}

/// Encoders that read their shaft with white noise (`encoder_noise_counts`): every physics step, each servo's
/// shaft angle as the servo sees it gets a Gaussian draw added, so the firmware's own position loop and what it
/// reports both see the noise. The true state stays in the robot's dynamics. Allocation-free.
final class NoisyEncoders: JointDynamics {
    let inner: any JointDynamics
    let sigmaRad: Double
    var random: SplitMix64
    var spare: Double?

    init(inner: any JointDynamics, sigmaRad: Double, seed: UInt64) {
        self.inner = inner
        self.sigmaRad = sigmaRad
        random = SplitMix64(seed: seed)
    }

    func gaussian() -> Double {
        if let spare {
            self.spare = nil
            return spare
        }
        // Box–Muller: two uniform draws give two independent normal ones.
        let u = max(random.uniform(0...1), 1e-300)
        let v = random.uniform(0...1)
        let radius = (-2 * Foundation.log(u)).squareRoot()
        spare = radius * Foundation.sin(2 * Double.pi * v)
        return radius * Foundation.cos(2 * Double.pi * v)
    }

    func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        inner.step(outputs: outputs, dtS: dtS, positionsRad: positionsRad, velocitiesRadPerS: velocitiesRadPerS)
        for s in 0..<positionsRad.count { positionsRad[s] += sigmaRad * gaussian() }
    }
}

/// The loop's clock in lockstep with timing jitter (`loop_jitter_us`): each tick wakes up to `maxLatenessNs`
/// late (uniform), so the time between ticks varies as a real scheduler's does; the loop reads its time from
/// here, so the policy and the supervisor see the lateness too. Allocation-free.
final class JitteredClock: SimulationClock {
    let inner: any SimulationClock
    let maxLatenessNs: UInt64
    var random: SplitMix64

    init(inner: any SimulationClock, maxLatenessNs: UInt64, seed: UInt64) {
        self.inner = inner
        self.maxLatenessNs = maxLatenessNs
        random = SplitMix64(seed: seed)
    }

    func advance(toNanoseconds nanoseconds: UInt64) {
        let late = maxLatenessNs > 0 ? UInt64(random.uniform(0...1) * Double(maxLatenessNs)) : 0
        inner.advance(toNanoseconds: nanoseconds + late)
    }

    var nanoseconds: UInt64 { inner.nanoseconds }
}
