import SinewBus
import SinewCore
import SinewFusion
import SinewKinematics
import Synchronization

/// A serial IMU rigidly mounted on a link of the simulated robot, speaking MAVLink 2 (HIGHRES_IMU plus a
/// 1 Hz HEARTBEAT) on a byte transport, like a real one on a UART.
///
/// Install it as the virtual bus's dynamics in place of the robot: each physics step it steps the robot,
/// and every 1/`sampleRateHz` of physics time it takes the sensor's true motion from the robot's joint
/// state (forward kinematics and the link's Jacobian) and writes one sample through the datasheet model
/// (`IMUSensorModel`: noise, bias, scale, misalignment, saturation, quantisation).
///
/// The truth is what an ideal integrating sensor would measure over the sample period: the mean angular
/// velocity (from the rotation between the last two sample instants) and the mean specific force (the
/// change of the mounting point's velocity over the period, minus gravity), both in the sensor frame
/// (x forward, y left, z up as mounted). A sample rate above the physics rate gives one sample per step.
///
/// `step` runs on the simulation thread and allocates nothing; the bytes are written without waiting
/// (deadline = now): when the reader is behind and the transport is full the rest is dropped, as a
/// UART's receive buffer would overflow.
public final class VirtualLinkIMU: JointDynamics, @unchecked Sendable {
    public let robot: RobotJointDynamics
    /// Link index (in `robot.model.links`) the IMU is mounted on.
    public let link: Int
    /// Pose of the IMU frame in the link frame.
    public let mounting: RigidTransform
    public let transport: any ByteTransport
    public private(set) var device: MAVLinkVirtualIMU
    /// The last sample written, in the IMU's forward-left-up axes (read it on the simulation thread).
    public private(set) var lastSample = IMUSensorSample(
        timestampSeconds: 0, angularVelocityRadPerS: .zero, specificForceMPerS2: .zero)
    let workspace: KinematicsWorkspace
    let mountingRotation: OrientationQuaternion
    let frameBuffer: UnsafeMutableRawBufferPointer
    let samplePeriodS: Double
    /// Physics time since the last sample (the period the truth is averaged over), and the sampling
    /// clock's phase, which keeps the average rate exact when the period is not a whole number of steps.
    var sinceSampleS = 0.0
    var samplingPhaseS = 0.0
    var hasPreviousSample = false
    var previousSensorOrientation = OrientationQuaternion.identity
    var previousPointVelocity = SIMD3<Double>.zero

    /// Samples written so far, bytes that did not fit the transport, and the true orientations (earth ←
    /// sensor and earth ← link, world frame of the URDF: z up) at the last sample, for other threads.
    let samplesBits = Atomic<Int>(0)
    let droppedBytesBits = Atomic<Int>(0)
    let publishedSensorTruth = PublishedOrientation()
    let publishedLinkTruth = PublishedOrientation()
    /// The link's true orientation at each of the last `truthHistoryCount` samples, by sample number.
    let linkTruthHistory: [PublishedOrientation]
    static let truthHistoryCount = 1024

    /// - Parameters:
    ///   - linkName: a link of `robot.model`.
    ///   - mountingXYZ: position of the IMU in the link frame, m; `mountingRPY`: its orientation there,
    ///     roll-pitch-yaw in rad (fixed axes x-y-z, as URDF origins).
    ///   - sensor: the datasheet model; its `sampleRateHz` is the output data rate.
    public init(
        robot: RobotJointDynamics, linkName: String, mountingXYZ: SIMD3<Double> = .zero,
        mountingRPY: SIMD3<Double> = .zero, sensor: IMUSensorModel, transport: any ByteTransport
    ) throws(RobotSimulationError) {
        guard let link = robot.model.linkIndex(named: linkName) else {
            throw RobotSimulationError("the IMU's link \"\(linkName)\" is not a link of \(robot.model.file)")
        }
        guard sensor.sampleRateHz > 0, sensor.sampleRateHz.isFinite else {
            throw RobotSimulationError("IMU sample rate \(sensor.sampleRateHz) Hz must be positive")
        }
        self.robot = robot
        self.link = link
        self.transport = transport
        mounting = RigidTransform(
            xyz: (mountingXYZ.x, mountingXYZ.y, mountingXYZ.z), rpy: (mountingRPY.x, mountingRPY.y, mountingRPY.z))
        mountingRotation = OrientationQuaternion(mounting)
        device = MAVLinkVirtualIMU(sensor: sensor)
        workspace = KinematicsWorkspace(model: robot.model)
        frameBuffer = .allocate(byteCount: MAVLinkVirtualIMU.maximumStepBytes, alignment: 8)
        samplePeriodS = 1 / sensor.sampleRateHz
        linkTruthHistory = (0..<Self.truthHistoryCount).map { _ in PublishedOrientation() }
    }

    deinit { frameBuffer.deallocate() }

    /// Samples written to the transport so far.
    public var samplesWritten: Int { samplesBits.load(ordering: .relaxed) }
    /// Bytes dropped because the transport was full (the reader fell behind).
    public var droppedBytes: Int { droppedBytesBits.load(ordering: .relaxed) }

    /// The true orientation of the IMU (earth ← sensor) at the last sample; safe from any thread.
    public var trueSensorOrientation: OrientationQuaternion { publishedSensorTruth.load() }
    /// The true orientation of the link (earth ← link) at the last sample; safe from any thread.
    public var trueLinkOrientation: OrientationQuaternion { publishedLinkTruth.load() }

    /// The true orientation of the link (earth ← link) when the sample stamped `timestampSeconds` was
    /// taken, to compare an estimate with the truth of the same instant; nil when that sample is older
    /// than the last ~1000 or not taken yet. Safe from any thread.
    public func trueLinkOrientation(atSampleTimeS timestampSeconds: Double) -> OrientationQuaternion? {
        let number = Int((timestampSeconds / samplePeriodS).rounded())
        let latest = samplesWritten
        guard number >= 1, number <= latest, latest - number < Self.truthHistoryCount - 16 else { return nil }
        return linkTruthHistory[number % Self.truthHistoryCount].load()
    }

    public func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        robot.step(outputs: outputs, dtS: dtS, positionsRad: positionsRad, velocitiesRadPerS: velocitiesRadPerS)
        sinceSampleS += dtS
        samplingPhaseS += dtS
        // Sample at the step nearest each sample instant (half a step of tolerance either way).
        if samplingPhaseS + 0.5 * dtS >= samplePeriodS {
            samplingPhaseS -= samplePeriodS
            sample()
        }
    }

    /// Takes one sample of the link's motion now and writes it out.
    func sample() {
        let periodS = sinceSampleS
        sinceSampleS = 0
        let positions = UnsafeBufferPointer(robot.positions)
        workspace.forwardKinematics(positions)
        let linkPose = workspace.linkPose(link)
        let linkRotation = OrientationQuaternion(linkPose)
        let sensorRotation = linkRotation * mountingRotation
        workspace.frameJacobian(positions, link: link)
        var originVelocity = SIMD3<Double>.zero
        var angularVelocity = SIMD3<Double>.zero
        let jacobian = workspace.jacobian
        for j in 0..<robot.model.dofCount {
            let qd: Double = robot.velocities[j]
            let column: Int = 6 * j
            let linear = SIMD3<Double>(jacobian[column], jacobian[column + 1], jacobian[column + 2])
            let angular = SIMD3<Double>(jacobian[column + 3], jacobian[column + 4], jacobian[column + 5])
            originVelocity += linear * qd
            angularVelocity += angular * qd
        }
        let t = mounting.translation
        let lever = linkRotation.rotate(SIMD3(t.0, t.1, t.2))
        let pointVelocity = originVelocity + cross(angularVelocity, lever)

        var meanAngularVelocity = sensorRotation.inverseRotate(angularVelocity)
        var acceleration = SIMD3<Double>.zero
        if hasPreviousSample, periodS > 0 {
            let relative = previousSensorOrientation.conjugate * sensorRotation
            meanAngularVelocity = relative.rotationVectorRad / periodS
            acceleration = (pointVelocity - previousPointVelocity) / periodS
        }
        hasPreviousSample = true
        previousSensorOrientation = sensorRotation
        previousPointVelocity = pointVelocity
        let g = robot.model.gravity
        let specificForce = sensorRotation.inverseRotate(acceleration - SIMD3(g.0, g.1, g.2))

        publishedSensorTruth.store(sensorRotation)
        publishedLinkTruth.store(linkRotation)
        let count: Int
        do {
            let output = try device.step(
                trueAngularVelocityRadPerS: meanAngularVelocity, trueSpecificForceMPerS2: specificForce,
                into: frameBuffer)
            count = output.byteCount
            lastSample = output.sample
            let number = Int((output.sample.timestampSeconds / samplePeriodS).rounded())
            linkTruthHistory[number % Self.truthHistoryCount].store(linkRotation)
        } catch {
            return
        }
        do {
            try transport.write(
                UnsafeRawBufferPointer(rebasing: frameBuffer[0..<count]), deadline: MonotonicInstant.now())
        } catch {
            if case .writeTimeout(let written) = error {
                droppedBytesBits.add(count - written, ordering: .relaxed)
            } else {
                droppedBytesBits.add(count, ordering: .relaxed)
            }
        }
        samplesBits.add(1, ordering: .relaxed)
    }
}

@inline(__always) private func cross(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> SIMD3<Double> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}
