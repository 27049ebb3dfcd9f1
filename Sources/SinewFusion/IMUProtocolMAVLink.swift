// MAVLink 2 framing and the IMU messages of the "common" dialect, as specified at mavlink.io
// (serialization and message definitions). Why MAVLink: it is the de-facto serial protocol of flight
// controllers and many IMU/AHRS boards (Pixhawk, ArduPilot, PX4, VectorNav and others bridge to it), the
// specification is public and versioned, and `pymavlink` on PyPI is an independent, maintained decoder
// we can test our bytes against. HIGHRES_IMU carries SI floats (m/s², rad/s, gauss), so no scaling is lost.
//
// Frame: 0xFD, payload length, incompatibility flags, compatibility flags, sequence, system id,
// component id, message id (24-bit little-endian), payload (trailing zero bytes truncated), CRC-16/MCRF4XX
// over everything after 0xFD plus the message's CRC_EXTRA byte, then an optional 13-byte signature.
//
// Axes: MAVLink body axes are front-right-down; the codec carries the numbers as they are and leaves any
// change of axes to the device that produces or consumes them.

/// HIGHRES_IMU (#105): IMU readings in SI units.
public struct MAVLinkHighResIMU: Sendable, Equatable {
    /// Timestamp, µs (since boot or UNIX epoch, sender's choice).
    public var timeMicroseconds: UInt64
    /// Specific force (what the accelerometer reads), m/s², body axes.
    public var accelerationMPerS2: SIMD3<Float>
    /// Angular velocity, rad/s, body axes.
    public var angularVelocityRadPerS: SIMD3<Float>
    /// Magnetic field, gauss, body axes.
    public var magneticFieldGauss: SIMD3<Float>
    public var absolutePressureHPa: Float
    public var differentialPressureHPa: Float
    public var pressureAltitudeM: Float
    public var temperatureCelsius: Float
    /// Bitmap of the fields that hold new data (bit 0 = xacc … bit 12 = temperature).
    public var fieldsUpdated: UInt16
    /// Sensor instance (0 for the first IMU).
    public var sensorID: UInt8

    public init(
        timeMicroseconds: UInt64, accelerationMPerS2: SIMD3<Float>, angularVelocityRadPerS: SIMD3<Float>,
        magneticFieldGauss: SIMD3<Float> = .zero, absolutePressureHPa: Float = 0, differentialPressureHPa: Float = 0,
        pressureAltitudeM: Float = 0, temperatureCelsius: Float = 0, fieldsUpdated: UInt16 = 0x003F,
        sensorID: UInt8 = 0
    ) {
        self.timeMicroseconds = timeMicroseconds
        self.accelerationMPerS2 = accelerationMPerS2
        self.angularVelocityRadPerS = angularVelocityRadPerS
        self.magneticFieldGauss = magneticFieldGauss
        self.absolutePressureHPa = absolutePressureHPa
        self.differentialPressureHPa = differentialPressureHPa
        self.pressureAltitudeM = pressureAltitudeM
        self.temperatureCelsius = temperatureCelsius
        self.fieldsUpdated = fieldsUpdated
        self.sensorID = sensorID
    }
}

/// SCALED_IMU (#26): IMU readings as 16-bit integers in milli-units.
public struct MAVLinkScaledIMU: Sendable, Equatable {
    /// Time since boot, ms.
    public var timeBootMilliseconds: UInt32
    /// Specific force, mG (thousandths of standard gravity).
    public var accelerationMilliG: SIMD3<Int16>
    /// Angular velocity, mrad/s.
    public var angularVelocityMilliradPerS: SIMD3<Int16>
    /// Magnetic field, mgauss.
    public var magneticFieldMilligauss: SIMD3<Int16>
    /// Temperature, cdegC (0 = not available).
    public var temperatureCentiCelsius: Int16

    public init(
        timeBootMilliseconds: UInt32, accelerationMilliG: SIMD3<Int16>, angularVelocityMilliradPerS: SIMD3<Int16>,
        magneticFieldMilligauss: SIMD3<Int16> = .zero, temperatureCentiCelsius: Int16 = 0
    ) {
        self.timeBootMilliseconds = timeBootMilliseconds
        self.accelerationMilliG = accelerationMilliG
        self.angularVelocityMilliradPerS = angularVelocityMilliradPerS
        self.magneticFieldMilligauss = magneticFieldMilligauss
        self.temperatureCentiCelsius = temperatureCentiCelsius
    }
}

/// ATTITUDE_QUATERNION (#31): an orientation estimate (body → local NED) and body rates.
public struct MAVLinkAttitudeQuaternion: Sendable, Equatable {
    /// Time since boot, ms.
    public var timeBootMilliseconds: UInt32
    /// Unit quaternion as MAVLink orders it: element 0 = w (q1), then x, y, z (q2…q4). Note that SIMD4.w
    /// is element 3, i.e. z.
    public var quaternion: SIMD4<Float>
    /// Roll, pitch, yaw rates, rad/s.
    public var bodyRatesRadPerS: SIMD3<Float>
    /// Rotation offset of the reporting frame (w, x, y, z); all zero when unused.
    public var representationOffset: SIMD4<Float>

    public init(
        timeBootMilliseconds: UInt32, quaternion: SIMD4<Float>, bodyRatesRadPerS: SIMD3<Float>,
        representationOffset: SIMD4<Float> = .zero
    ) {
        self.timeBootMilliseconds = timeBootMilliseconds
        self.quaternion = quaternion
        self.bodyRatesRadPerS = bodyRatesRadPerS
        self.representationOffset = representationOffset
    }
}

/// HEARTBEAT (#0): announces the device; ground tools expect it about once a second.
public struct MAVLinkHeartbeat: Sendable, Equatable {
    public var customMode: UInt32
    /// MAV_TYPE (e.g. 18 = onboard controller, 0 = generic).
    public var type: UInt8
    /// MAV_AUTOPILOT (8 = invalid: not an autopilot).
    public var autopilot: UInt8
    public var baseMode: UInt8
    /// MAV_STATE (4 = active).
    public var systemStatus: UInt8
    public var mavlinkVersion: UInt8

    public init(
        customMode: UInt32 = 0, type: UInt8 = 18, autopilot: UInt8 = 8, baseMode: UInt8 = 0, systemStatus: UInt8 = 4,
        mavlinkVersion: UInt8 = 3
    ) {
        self.customMode = customMode
        self.type = type
        self.autopilot = autopilot
        self.baseMode = baseMode
        self.systemStatus = systemStatus
        self.mavlinkVersion = mavlinkVersion
    }
}

/// The messages this codec understands.
public enum MAVLinkIMUMessage: Sendable, Equatable {
    case heartbeat(MAVLinkHeartbeat)
    case highResIMU(MAVLinkHighResIMU)
    case scaledIMU(MAVLinkScaledIMU)
    case attitudeQuaternion(MAVLinkAttitudeQuaternion)

    /// MAVLink message id.
    public var messageID: UInt32 {
        switch self {
        case .heartbeat: MAVLinkMessageInfo.heartbeat.id
        case .highResIMU: MAVLinkMessageInfo.highResIMU.id
        case .scaledIMU: MAVLinkMessageInfo.scaledIMU.id
        case .attitudeQuaternion: MAVLinkMessageInfo.attitudeQuaternion.id
        }
    }
}

/// Id, CRC_EXTRA and full payload length of each supported message (from the common dialect).
public struct MAVLinkMessageInfo: Sendable, Equatable {
    public var id: UInt32
    public var crcExtra: UInt8
    public var payloadLength: Int

    public static let heartbeat = MAVLinkMessageInfo(id: 0, crcExtra: 50, payloadLength: 9)
    public static let scaledIMU = MAVLinkMessageInfo(id: 26, crcExtra: 170, payloadLength: 24)
    public static let attitudeQuaternion = MAVLinkMessageInfo(id: 31, crcExtra: 246, payloadLength: 48)
    public static let highResIMU = MAVLinkMessageInfo(id: 105, crcExtra: 93, payloadLength: 63)

    /// Info for a message id, or nil when this codec does not know it.
    public static func forID(_ id: UInt32) -> MAVLinkMessageInfo? {
        switch id {
        case 0: heartbeat
        case 26: scaledIMU
        case 31: attitudeQuaternion
        case 105: highResIMU
        default: nil
        }
    }
}

/// MAVLink framing constants.
public enum MAVLinkFraming {
    public static let startByte: UInt8 = 0xFD
    public static let headerLength = 10
    public static let checksumLength = 2
    public static let signatureLength = 13
    /// Largest frame: header, 255-byte payload, checksum, signature.
    public static let maximumFrameLength = 280
    /// Incompatibility flag: a signature follows the checksum.
    public static let signedFlag: UInt8 = 0x01

    /// CRC-16/MCRF4XX (the "X.25" accumulate of the MAVLink specification) of one byte into `crc`.
    @inline(__always)
    public static func accumulate(_ byte: UInt8, into crc: inout UInt16) {
        var t = byte ^ UInt8(truncatingIfNeeded: crc)
        t ^= t << 4
        let t16 = UInt16(t)
        crc = (crc >> 8) ^ (t16 << 8) ^ (t16 << 3) ^ (t16 >> 4)
    }
}

/// Why a frame could not be encoded.
public enum MAVLinkEncodeError: Error, Sendable, Equatable {
    /// The output buffer holds `available` bytes, the frame needs `needed`.
    case bufferTooSmall(needed: Int, available: Int)
}

/// Writes MAVLink 2 frames (unsigned) into caller-owned memory; no allocation.
public struct MAVLinkEncoder: Sendable {
    public var systemID: UInt8
    public var componentID: UInt8
    /// Sequence number of the next frame (wraps at 256).
    public var sequence: UInt8

    /// - Parameters:
    ///   - systemID: MAVLink system id of the sender (1…255).
    ///   - componentID: component id; 200 is MAV_COMP_ID_IMU.
    public init(systemID: UInt8 = 1, componentID: UInt8 = 200, sequence: UInt8 = 0) {
        self.systemID = systemID
        self.componentID = componentID
        self.sequence = sequence
    }

    /// Encodes one frame at the start of `buffer` and returns its length in bytes (at most
    /// `MAVLinkFraming.maximumFrameLength`).
    public mutating func encode(_ message: MAVLinkIMUMessage, into buffer: UnsafeMutableRawBufferPointer)
        throws(MAVLinkEncodeError) -> Int
    {
        let info: MAVLinkMessageInfo
        switch message {
        case .heartbeat: info = .heartbeat
        case .highResIMU: info = .highResIMU
        case .scaledIMU: info = .scaledIMU
        case .attitudeQuaternion: info = .attitudeQuaternion
        }
        let needed = MAVLinkFraming.headerLength + info.payloadLength + MAVLinkFraming.checksumLength
        guard buffer.count >= needed else {
            throw .bufferTooSmall(needed: needed, available: buffer.count)
        }
        var writer = MAVLinkPayloadWriter(buffer: buffer, offset: MAVLinkFraming.headerLength)
        switch message {
        case .heartbeat(let m):
            writer.put(m.customMode)
            writer.put(m.type)
            writer.put(m.autopilot)
            writer.put(m.baseMode)
            writer.put(m.systemStatus)
            writer.put(m.mavlinkVersion)
        case .highResIMU(let m):
            writer.put(m.timeMicroseconds)
            writer.put(m.accelerationMPerS2)
            writer.put(m.angularVelocityRadPerS)
            writer.put(m.magneticFieldGauss)
            writer.put(m.absolutePressureHPa)
            writer.put(m.differentialPressureHPa)
            writer.put(m.pressureAltitudeM)
            writer.put(m.temperatureCelsius)
            writer.put(m.fieldsUpdated)
            writer.put(m.sensorID)
        case .scaledIMU(let m):
            writer.put(m.timeBootMilliseconds)
            writer.put(m.accelerationMilliG)
            writer.put(m.angularVelocityMilliradPerS)
            writer.put(m.magneticFieldMilligauss)
            writer.put(m.temperatureCentiCelsius)
        case .attitudeQuaternion(let m):
            writer.put(m.timeBootMilliseconds)
            writer.put(m.quaternion)
            writer.put(m.bodyRatesRadPerS)
            writer.put(m.representationOffset)
        }
        // MAVLink 2 drops trailing zero bytes of the payload but always sends at least one.
        var length = info.payloadLength
        while length > 1, buffer[MAVLinkFraming.headerLength + length - 1] == 0 { length -= 1 }
        buffer[0] = MAVLinkFraming.startByte
        buffer[1] = UInt8(length)
        buffer[2] = 0
        buffer[3] = 0
        buffer[4] = sequence
        buffer[5] = systemID
        buffer[6] = componentID
        buffer[7] = UInt8(truncatingIfNeeded: info.id)
        buffer[8] = UInt8(truncatingIfNeeded: info.id >> 8)
        buffer[9] = UInt8(truncatingIfNeeded: info.id >> 16)
        var crc: UInt16 = 0xFFFF
        for i in 1..<(MAVLinkFraming.headerLength + length) { MAVLinkFraming.accumulate(buffer[i], into: &crc) }
        MAVLinkFraming.accumulate(info.crcExtra, into: &crc)
        let end = MAVLinkFraming.headerLength + length
        buffer[end] = UInt8(truncatingIfNeeded: crc)
        buffer[end + 1] = UInt8(truncatingIfNeeded: crc >> 8)
        sequence &+= 1
        return end + MAVLinkFraming.checksumLength
    }
}

/// Little-endian field writer over the payload area of a frame buffer.
private struct MAVLinkPayloadWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var offset: Int

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    mutating func put(_ value: Float) { put(value.bitPattern) }

    mutating func put(_ v: SIMD3<Float>) {
        put(v.x)
        put(v.y)
        put(v.z)
    }

    mutating func put(_ v: SIMD4<Float>) {
        put(v.x)
        put(v.y)
        put(v.z)
        put(v.w)
    }

    mutating func put(_ v: SIMD3<Int16>) {
        put(v.x)
        put(v.y)
        put(v.z)
    }
}
