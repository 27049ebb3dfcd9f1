import SinewBus
import SinewCore
import SinewFusion
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A serial IMU speaking MAVLink 2 (HIGHRES_IMU, the message flight controllers and IMU boards stream;
/// see `IMUProtocolMAVLink.swift` for why MAVLink) read inside the loop's estimate stage, and the
/// orientation of the link it is mounted on, estimated by the 6-D ``AHRS`` (no magnetometer: heading is
/// the gyroscope's, inclination is corrected by gravity).
///
/// ``poll()`` takes whatever bytes have arrived without waiting (deadline = now), decodes them, and runs
/// the AHRS once per sample. It allocates nothing and its cost is bounded by ``maximumBytesPerPoll``: a
/// backlog is worked off over the next ticks rather than in one.
///
/// Frames: the IMU's samples are converted from MAVLink's forward-right-down axes to forward-left-up;
/// the estimate maps the sensor (and the link) to an East-North-Up earth frame whose heading is arbitrary
/// (set by the first samples) — roll and pitch are absolute.
public final class IMUDriver: @unchecked Sendable {
    public let transport: any ByteTransport
    /// The URDF link the IMU is on, and the IMU's orientation in that link's frame.
    public let linkName: String
    public let mountingInLink: OrientationQuaternion
    /// Sample rate the AHRS's gains were computed for, Hz.
    public let sampleRateHz: Double
    /// Most bytes taken per ``poll()``: about 50 HIGHRES_IMU frames, far above one tick's worth at any
    /// IMU rate a loop tick keeps up with.
    public static let maximumBytesPerPoll = 4096

    // The loop's thread alone touches these (other threads read the `published…` atomics), so the run-time
    // exclusivity checks are off: the decoder's were one per received byte, 1.5 % of a lockstep run.
    @exclusivity(unchecked) public private(set) var ahrs: AHRS
    @exclusivity(unchecked) public private(set) var decoder = MAVLinkDecoder()
    /// The last sample received, in the IMU's forward-left-up axes.
    @exclusivity(unchecked) public private(set) var lastSample = IMUSensorSample(
        timestampSeconds: 0, angularVelocityRadPerS: .zero, specificForceMPerS2: .zero)
    @exclusivity(unchecked) public private(set) var samplesReceived = 0
    /// Transport failures (a vanished port): counted, the estimate then coasts on what it had.
    public private(set) var transportErrors = 0
    let buffer: UnsafeMutableRawBufferPointer
    var hasFlushedBacklog = false
    let published = PublishedOrientation()
    let publishedSamples = Atomic<Int>(0)
    let publishedSampleTime = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - mountingRPY: the IMU's orientation in the link frame, roll-pitch-yaw rad (fixed axes x-y-z).
    ///   - sampleRateHz: the IMU's output data rate.
    public init(
        transport: any ByteTransport, linkName: String, mountingRPY: SIMD3<Double> = .zero, sampleRateHz: Double,
        ahrsConfiguration: AHRSConfiguration = AHRSConfiguration()
    ) {
        self.transport = transport
        self.linkName = linkName
        mountingInLink = OrientationQuaternion(rollPitchYawRad: mountingRPY)
        self.sampleRateHz = sampleRateHz
        ahrs = AHRS(samplePeriodS: 1 / sampleRateHz, configuration: ahrsConfiguration)
        buffer = .allocate(byteCount: Self.maximumBytesPerPoll, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// The driver robot.yaml's `imu:` section asks for, on `transport`; nil without an `imu:` section or
    /// without a transport (e.g. a virtual IMU when the robot is not simulated in this process).
    /// Protocols: `mavlink` (MAVLink 2), or `virtual` (the simulator's IMU, which speaks MAVLink 2).
    public static func make(
        for configuration: RobotConfiguration, transport: (any ByteTransport)?
    ) throws(RobotLoopError) -> IMUDriver? {
        guard let imu = configuration.imu, let transport else { return nil }
        switch imu.imuProtocol.lowercased() {
        case "mavlink", "mavlink2", "virtual": break
        default:
            throw RobotLoopError(
                "imu (\(imu.location)): protocol \"\(imu.imuProtocol)\" is not supported; use mavlink (MAVLink 2 "
                    + "HIGHRES_IMU) or virtual")
        }
        guard imu.rateHz > 0, imu.rateHz.isFinite else {
            throw RobotLoopError("imu (\(imu.location)): rate_hz \(imu.rateHz) must be positive")
        }
        return IMUDriver(
            transport: transport, linkName: imu.link, mountingRPY: imu.mountingRPY, sampleRateHz: imu.rateHz)
    }

    /// Estimated orientation of the IMU (earth ← sensor).
    public var sensorOrientation: OrientationQuaternion { ahrs.orientation }
    /// Estimated orientation of the link (earth ← link).
    public var linkOrientation: OrientationQuaternion { ahrs.orientation * mountingInLink.conjugate }

    /// The link's estimated orientation as of the last poll, for other threads (a status line).
    public var publishedLinkOrientation: OrientationQuaternion { published.load() }
    /// Samples received as of the last poll, for other threads.
    public var publishedSampleCount: Int { publishedSamples.load(ordering: .relaxed) }
    /// Time stamp (s) of the last sample as of the last poll, for other threads.
    public var publishedSampleTimeS: Double { Double(bitPattern: publishedSampleTime.load(ordering: .relaxed)) }

    /// Lets the AHRS take its first orientation from a still sensor (not real-time: call it while the robot
    /// holds its pose, before the first tick). The AHRS averages its first second of samples to find "up";
    /// taken while the arm already moves, the mean linear acceleration over that second (Δv / 1 s, e.g.
    /// 0.5 m/s² for a gripper reaching 0.5 m/s) would tilt the start by ~3°, and that error would then
    /// only fade with the inclination time constant (3 s). Waits up to twice the AHRS's start-up duration
    /// for that many samples; returns the number received (0 when the IMU is silent).
    /// With a simulation clock (a lockstep run) the wait is simulated time: the clock is advanced in 2 ms steps
    /// (the simulated robot holding its pose meanwhile) instead of sleeping on the wall clock.
    @discardableResult
    public func settle(simulationClock: (any SimulationClock)? = nil) -> Int {
        hasFlushedBacklog = true
        try? transport.flushInput()
        let startup = ahrs.configuration.startupDurationS
        let wanted = samplesReceived + Int((startup * sampleRateHz).rounded())
        let start = MonotonicInstant.now()
        let simulatedStartNs = simulationClock?.nanoseconds ?? 0
        let limitNs = UInt64(2 * startup * 1e9)
        let before = samplesReceived
        while samplesReceived < wanted {
            if let simulationClock {
                guard simulationClock.nanoseconds - simulatedStartNs < limitNs else { break }
                simulationClock.advance(toNanoseconds: simulationClock.nanoseconds + 2_000_000)
                poll()
            } else {
                guard MonotonicInstant.now().nanoseconds(since: start) < limitNs else { break }
                poll()
                var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
                nanosleep(&pause, nil)
            }
        }
        return samplesReceived - before
    }

    /// Reads what has arrived (never waits), decodes it and updates the estimate. Real-time safe.
    public func poll() {
        if !hasFlushedBacklog {
            // What queued up while the robot was being configured is stale: start from the present.
            hasFlushedBacklog = true
            try? transport.flushInput()
        }
        let count: Int
        do {
            count = try transport.readAvailable(into: buffer)
        } catch {
            transportErrors &+= 1
            return
        }
        guard count > 0 else { return }
        for i in 0..<count {
            guard let frame = decoder.push(buffer[i]) else { continue }
            guard case .highResIMU(let message) = frame.message else { continue }
            let sample = IMUSensorSample(message)
            lastSample = sample
            samplesReceived &+= 1
            ahrs.update(gyroRadPerS: sample.angularVelocityRadPerS, accelerationMPerS2: sample.specificForceMPerS2)
        }
        published.store(linkOrientation)
        publishedSampleTime.store(lastSample.timestampSeconds.bitPattern, ordering: .relaxed)
        publishedSamples.store(samplesReceived, ordering: .relaxed)
    }
}
