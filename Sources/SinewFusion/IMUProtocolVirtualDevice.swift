/// A virtual serial IMU: the datasheet sensor model behind a MAVLink 2 encoder. Each `step` turns the
/// true motion of the link it is attached to into one HIGHRES_IMU frame (plus a HEARTBEAT once per
/// `heartbeatPeriodSamples`), ready to be written to a pty or a byte transport. No allocation.
///
/// Axes: Sinew bodies use x forward, y left, z up (URDF); MAVLink uses x forward, y right, z down. With
/// `convertsForwardLeftUpToMAVLink` (the default) y and z are negated on the way out, so a level IMU at
/// rest sends zacc ≈ −9.81 m/s² as MAVLink devices do.
public struct MAVLinkVirtualIMU: Sendable {
    public var sensor: IMUSensorModel
    public var encoder: MAVLinkEncoder
    /// Samples between heartbeats (e.g. the sample rate, for 1 Hz); 0 sends none.
    public var heartbeatPeriodSamples: Int
    public var convertsForwardLeftUpToMAVLink: Bool
    public var sensorID: UInt8
    private var samplesSinceHeartbeat = 0

    /// Largest output of one `step`: a heartbeat and an IMU frame.
    public static let maximumStepBytes = 2 * MAVLinkFraming.maximumFrameLength

    public init(
        sensor: IMUSensorModel, encoder: MAVLinkEncoder = MAVLinkEncoder(systemID: 1, componentID: 200),
        heartbeatPeriodSamples: Int? = nil, convertsForwardLeftUpToMAVLink: Bool = true, sensorID: UInt8 = 0
    ) {
        self.sensor = sensor
        self.encoder = encoder
        self.heartbeatPeriodSamples = heartbeatPeriodSamples ?? Int(sensor.sampleRateHz.rounded())
        self.convertsForwardLeftUpToMAVLink = convertsForwardLeftUpToMAVLink
        self.sensorID = sensorID
    }

    /// Samples the sensor for the true body angular velocity (rad/s) and specific force (m/s²), both in
    /// the IMU's own axes, and writes the frames to `buffer`; returns the byte count and the sample
    /// (in the IMU's axes, before any axis change).
    public mutating func step(
        trueAngularVelocityRadPerS: SIMD3<Double>, trueSpecificForceMPerS2: SIMD3<Double>,
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(MAVLinkEncodeError) -> (byteCount: Int, sample: IMUSensorSample) {
        let sample = sensor.sample(
            trueAngularVelocityRadPerS: trueAngularVelocityRadPerS, trueSpecificForceMPerS2: trueSpecificForceMPerS2)
        var written = 0
        if heartbeatPeriodSamples > 0 {
            if samplesSinceHeartbeat == 0 {
                written += try encoder.encode(.heartbeat(MAVLinkHeartbeat()), into: buffer)
            }
            samplesSinceHeartbeat = (samplesSinceHeartbeat + 1) % heartbeatPeriodSamples
        }
        var outgoing = sample
        if convertsForwardLeftUpToMAVLink {
            outgoing.angularVelocityRadPerS *= SIMD3(1, -1, -1)
            outgoing.specificForceMPerS2 *= SIMD3(1, -1, -1)
        }
        let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[written...])
        written += try encoder.encode(.highResIMU(MAVLinkHighResIMU(sample: outgoing, sensorID: sensorID)), into: rest)
        return (written, sample)
    }
}

extension IMUSensorSample {
    /// A received HIGHRES_IMU as a sample in Sinew's forward-left-up axes (or as sent, when
    /// `convertingFromMAVLinkAxes` is false). The timestamp is the message's, in seconds.
    public init(_ message: MAVLinkHighResIMU, convertingFromMAVLinkAxes: Bool = true) {
        let sign = convertingFromMAVLinkAxes ? SIMD3<Double>(1, -1, -1) : SIMD3<Double>(1, 1, 1)
        self.init(
            timestampSeconds: Double(message.timeMicroseconds) * 1e-6,
            angularVelocityRadPerS: SIMD3<Double>(message.angularVelocityRadPerS) * sign,
            specificForceMPerS2: SIMD3<Double>(message.accelerationMPerS2) * sign)
    }
}
