/// One decoded MAVLink 2 frame.
public struct MAVLinkFrame: Sendable, Equatable {
    public var sequence: UInt8
    public var systemID: UInt8
    public var componentID: UInt8
    public var message: MAVLinkIMUMessage
}

/// Streaming MAVLink 2 decoder for the messages of `MAVLinkIMUMessage`: feed it bytes as they come from
/// the serial port, one at a time; it returns a frame when one completes with a valid checksum. Fixed
/// storage (one 280-byte frame), no allocation, constant work per byte. Bytes before a start byte, frames
/// with a bad checksum and frames of unknown messages are skipped and counted. Like the reference C
/// parser it resynchronises on the next start byte after a bad frame, so a corrupted length byte can
/// also cost the frame that follows. Signed frames are accepted without checking the signature.
public struct MAVLinkDecoder: Sendable {
    private enum Phase: Sendable {
        case idle
        case header
        case payloadAndChecksum
    }

    private var frame = InlineArray<280, UInt8>(repeating: 0)
    private var phase = Phase.idle
    private var received = 0
    private var expected = 0

    /// Frames decoded successfully.
    public private(set) var framesDecoded = 0
    /// Frames dropped because the checksum did not match.
    public private(set) var checksumErrors = 0
    /// Frames of message ids this decoder does not know (their checksum cannot be verified).
    public private(set) var unknownMessages = 0
    /// Frames whose payload is longer than the message allows, or with unknown incompatibility flags.
    public private(set) var malformedFrames = 0
    /// Bytes outside any frame (line noise, MAVLink 1 traffic).
    public private(set) var bytesSkipped = 0
    /// Number of frames lost according to the sequence numbers (per stream, not per sender).
    public private(set) var sequenceGaps = 0
    private var lastSequence: Int = -1

    public init() {}

    /// Consumes one byte; returns a frame when this byte completes a valid one.
    public mutating func push(_ byte: UInt8) -> MAVLinkFrame? {
        switch phase {
        case .idle:
            guard byte == MAVLinkFraming.startByte else {
                bytesSkipped += 1
                return nil
            }
            frame[0] = byte
            received = 1
            phase = .header
            return nil
        case .header:
            frame[received] = byte
            received += 1
            if received == MAVLinkFraming.headerLength {
                let signed = frame[2] & MAVLinkFraming.signedFlag != 0
                guard frame[2] & ~MAVLinkFraming.signedFlag == 0 else {
                    malformedFrames += 1
                    phase = .idle
                    return nil
                }
                expected =
                    MAVLinkFraming.headerLength + Int(frame[1]) + MAVLinkFraming.checksumLength
                    + (signed ? MAVLinkFraming.signatureLength : 0)
                phase = .payloadAndChecksum
            }
            return nil
        case .payloadAndChecksum:
            frame[received] = byte
            received += 1
            guard received == expected else { return nil }
            phase = .idle
            return finishFrame()
        }
    }

    /// Consumes a block of bytes, calling `onFrame` for each complete frame in order.
    public mutating func push(_ bytes: UnsafeRawBufferPointer, onFrame: (MAVLinkFrame) -> Void) {
        for byte in bytes {
            if let frame = push(byte) { onFrame(frame) }
        }
    }

    private mutating func finishFrame() -> MAVLinkFrame? {
        let length = Int(frame[1])
        let id = UInt32(frame[7]) | UInt32(frame[8]) << 8 | UInt32(frame[9]) << 16
        guard let info = MAVLinkMessageInfo.forID(id) else {
            unknownMessages += 1
            return nil
        }
        guard length <= info.payloadLength else {
            malformedFrames += 1
            return nil
        }
        var crc: UInt16 = 0xFFFF
        for i in 1..<(MAVLinkFraming.headerLength + length) { MAVLinkFraming.accumulate(frame[i], into: &crc) }
        MAVLinkFraming.accumulate(info.crcExtra, into: &crc)
        let end = MAVLinkFraming.headerLength + length
        let received = UInt16(frame[end]) | UInt16(frame[end + 1]) << 8
        guard received == crc else {
            checksumErrors += 1
            return nil
        }
        // Restore the truncated trailing zeros (the checksum bytes sit there now).
        for i in end..<(MAVLinkFraming.headerLength + info.payloadLength) { frame[i] = 0 }
        var reader = MAVLinkPayloadReader(offset: MAVLinkFraming.headerLength)
        let message: MAVLinkIMUMessage
        switch id {
        case MAVLinkMessageInfo.heartbeat.id:
            message = .heartbeat(
                MAVLinkHeartbeat(
                    customMode: reader.u32(frame), type: reader.u8(frame), autopilot: reader.u8(frame),
                    baseMode: reader.u8(frame), systemStatus: reader.u8(frame), mavlinkVersion: reader.u8(frame)))
        case MAVLinkMessageInfo.highResIMU.id:
            message = .highResIMU(
                MAVLinkHighResIMU(
                    timeMicroseconds: reader.u64(frame), accelerationMPerS2: reader.float3(frame),
                    angularVelocityRadPerS: reader.float3(frame), magneticFieldGauss: reader.float3(frame),
                    absolutePressureHPa: reader.float(frame), differentialPressureHPa: reader.float(frame),
                    pressureAltitudeM: reader.float(frame), temperatureCelsius: reader.float(frame),
                    fieldsUpdated: reader.u16(frame), sensorID: reader.u8(frame)))
        case MAVLinkMessageInfo.scaledIMU.id:
            message = .scaledIMU(
                MAVLinkScaledIMU(
                    timeBootMilliseconds: reader.u32(frame), accelerationMilliG: reader.int3(frame),
                    angularVelocityMilliradPerS: reader.int3(frame), magneticFieldMilligauss: reader.int3(frame),
                    temperatureCentiCelsius: Int16(bitPattern: reader.u16(frame))))
        default:
            let time = reader.u32(frame)
            let q = SIMD4(reader.float(frame), reader.float(frame), reader.float(frame), reader.float(frame))
            let rates = reader.float3(frame)
            let offset = SIMD4(reader.float(frame), reader.float(frame), reader.float(frame), reader.float(frame))
            message = .attitudeQuaternion(
                MAVLinkAttitudeQuaternion(
                    timeBootMilliseconds: time, quaternion: q, bodyRatesRadPerS: rates, representationOffset: offset))
        }
        let sequence = frame[4]
        if lastSequence >= 0 {
            sequenceGaps += Int(sequence &- UInt8(truncatingIfNeeded: lastSequence) &- 1)
        }
        lastSequence = Int(sequence)
        framesDecoded += 1
        return MAVLinkFrame(sequence: sequence, systemID: frame[5], componentID: frame[6], message: message)
    }
}

/// Little-endian field reader over a frame buffer.
private struct MAVLinkPayloadReader {
    var offset: Int

    mutating func u8(_ frame: InlineArray<280, UInt8>) -> UInt8 {
        defer { offset += 1 }
        return frame[offset]
    }

    mutating func u16(_ frame: InlineArray<280, UInt8>) -> UInt16 {
        UInt16(u8(frame)) | UInt16(u8(frame)) << 8
    }

    mutating func u32(_ frame: InlineArray<280, UInt8>) -> UInt32 {
        UInt32(u16(frame)) | UInt32(u16(frame)) << 16
    }

    mutating func u64(_ frame: InlineArray<280, UInt8>) -> UInt64 {
        UInt64(u32(frame)) | UInt64(u32(frame)) << 32
    }

    mutating func float(_ frame: InlineArray<280, UInt8>) -> Float { Float(bitPattern: u32(frame)) }

    mutating func float3(_ frame: InlineArray<280, UInt8>) -> SIMD3<Float> {
        SIMD3(float(frame), float(frame), float(frame))
    }

    mutating func int3(_ frame: InlineArray<280, UInt8>) -> SIMD3<Int16> {
        SIMD3(Int16(bitPattern: u16(frame)), Int16(bitPattern: u16(frame)), Int16(bitPattern: u16(frame)))
    }
}
