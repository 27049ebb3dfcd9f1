import CAllocCounter
import Foundation
import SinewFusion
import Testing

private func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

func mavlinkEncodeFrame(_ encoder: inout MAVLinkEncoder, _ message: MAVLinkIMUMessage) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0xAA, count: MAVLinkFraming.maximumFrameLength)
    let length = try buffer.withUnsafeMutableBytes { try encoder.encode(message, into: $0) }
    return Array(buffer[0..<length])
}

func mavlinkDecodeAll(_ bytes: [UInt8], _ decoder: inout MAVLinkDecoder) -> [MAVLinkFrame] {
    var frames: [MAVLinkFrame] = []
    for byte in bytes { if let frame = decoder.push(byte) { frames.append(frame) } }
    return frames
}

@Suite struct IMUProtocolMAVLinkTests {
    // Frames produced by pymavlink 2.4.50 (common dialect) for the same values, system 1, component 200.
    static let pymavlinkHeartbeat = "fd0900000701c80000000000000012080004036d34"
    static let pymavlinkHighResIMU =
        "fd3d00000801c869000015cd5b07000000000000003f000080be00001c410ad7233c0ad7a3bc8fc2f53c0000000000000000"
        + "000000000000000000000000000000000000cc413f964c"

    @Test func encoderMatchesPymavlinkBytes() throws {
        var encoder = MAVLinkEncoder(systemID: 1, componentID: 200, sequence: 7)
        let heartbeat = try mavlinkEncodeFrame(&encoder, .heartbeat(MAVLinkHeartbeat()))
        #expect(heartbeat == hexBytes(Self.pymavlinkHeartbeat))
        let imu = MAVLinkHighResIMU(
            timeMicroseconds: 123_456_789, accelerationMPerS2: SIMD3(0.5, -0.25, 9.75),
            angularVelocityRadPerS: SIMD3(0.01, -0.02, 0.03), temperatureCelsius: 25.5, fieldsUpdated: 0x3F)
        let frame = try mavlinkEncodeFrame(&encoder, .highResIMU(imu))
        #expect(frame == hexBytes(Self.pymavlinkHighResIMU))
        // Two trailing zero bytes (sensor id, high byte of the field bitmap) are truncated.
        try #require(frame.count > 1)
        #expect(frame[1] == 61)
        #expect(encoder.sequence == 9)
    }

    @Test func decoderReadsPymavlinkBytes() {
        var decoder = MAVLinkDecoder()
        let frames = mavlinkDecodeAll(hexBytes(Self.pymavlinkHeartbeat + Self.pymavlinkHighResIMU), &decoder)
        #expect(frames.count == 2)
        #expect(frames.first?.message == .heartbeat(MAVLinkHeartbeat()))
        guard frames.count == 2, case .highResIMU(let imu) = frames[1].message else {
            Issue.record("no HIGHRES_IMU")
            return
        }
        #expect(frames[1].sequence == 8 && frames[1].systemID == 1 && frames[1].componentID == 200)
        #expect(imu.timeMicroseconds == 123_456_789)
        #expect(imu.accelerationMPerS2 == SIMD3(0.5, -0.25, 9.75))
        #expect(imu.angularVelocityRadPerS == SIMD3(0.01, -0.02, 0.03))
        #expect(imu.temperatureCelsius == 25.5 && imu.fieldsUpdated == 0x3F && imu.sensorID == 0)
        #expect(decoder.framesDecoded == 2 && decoder.sequenceGaps == 0)
    }

    @Test func everyMessageRoundTripsThroughNoiseAndCorruption() throws {
        let messages: [MAVLinkIMUMessage] = [
            .heartbeat(MAVLinkHeartbeat(customMode: 7, type: 0, autopilot: 8, baseMode: 1, systemStatus: 3)),
            .highResIMU(
                MAVLinkHighResIMU(
                    timeMicroseconds: 1 << 40, accelerationMPerS2: SIMD3(-1, 2, -9.8),
                    angularVelocityRadPerS: SIMD3(3, -2, 1), magneticFieldGauss: SIMD3(0.2, -0.1, 0.4),
                    absolutePressureHPa: 1013.25, differentialPressureHPa: 0.5, pressureAltitudeM: 120,
                    temperatureCelsius: -5, fieldsUpdated: 0x1FFF, sensorID: 2)),
            .scaledIMU(
                MAVLinkScaledIMU(
                    timeBootMilliseconds: 4_000_000_000, accelerationMilliG: SIMD3(-1000, 32767, -32768),
                    angularVelocityMilliradPerS: SIMD3(5, -6, 7), magneticFieldMilligauss: SIMD3(100, 0, -100),
                    temperatureCentiCelsius: -1234)),
            .scaledIMU(
                MAVLinkScaledIMU(
                    timeBootMilliseconds: 0, accelerationMilliG: .zero, angularVelocityMilliradPerS: .zero)),
            .attitudeQuaternion(
                MAVLinkAttitudeQuaternion(
                    timeBootMilliseconds: 42, quaternion: SIMD4(0.7071068, 0, 0.7071068, 0),
                    bodyRatesRadPerS: SIMD3(0.1, 0.2, -0.3))),
            .attitudeQuaternion(
                MAVLinkAttitudeQuaternion(
                    timeBootMilliseconds: 43, quaternion: SIMD4(1, 0, 0, 0), bodyRatesRadPerS: .zero,
                    representationOffset: SIMD4(0.5, 0.5, 0.5, 0.5))),
        ]
        var encoder = MAVLinkEncoder(systemID: 3, componentID: 200, sequence: 250)
        var stream: [UInt8] = [0x00, 0xFE, 0x13]  // leading noise, including a MAVLink 1 start byte
        var frames: [[UInt8]] = []
        for message in messages {
            let frame = try mavlinkEncodeFrame(&encoder, message)
            frames.append(frame)
            stream += frame
            stream += [0x55]  // inter-frame noise
        }
        // A copy of the second frame with one payload bit flipped must be rejected.
        var corrupted = frames[1]
        try #require(corrupted.count > 12)
        corrupted[12] ^= 0x10
        stream += corrupted
        var decoder = MAVLinkDecoder()
        let decoded = mavlinkDecodeAll(stream, &decoder)
        #expect(decoded.map(\.message) == messages)
        #expect(decoded.map(\.sequence) == [250, 251, 252, 253, 254, 255])
        #expect(decoder.checksumErrors == 1)
        #expect(decoder.framesDecoded == messages.count)
        #expect(decoder.sequenceGaps == 0)
        // An all-zero SCALED_IMU still sends one payload byte.
        try #require(frames[3].count > 1)
        #expect(frames[3][1] == 1)
    }

    @Test func reportsTooSmallBufferAndSkipsUnknownMessages() {
        var encoder = MAVLinkEncoder()
        var small = [UInt8](repeating: 0, count: 20)
        #expect(throws: MAVLinkEncodeError.bufferTooSmall(needed: 75, available: 20)) {
            _ = try small.withUnsafeMutableBytes {
                try encoder.encode(
                    .highResIMU(
                        MAVLinkHighResIMU(timeMicroseconds: 0, accelerationMPerS2: .zero, angularVelocityRadPerS: .zero)
                    ), into: $0)
            }
        }
        // A frame of message 30 (ATTITUDE), which this decoder does not know: skipped, counted.
        var decoder = MAVLinkDecoder()
        let unknown: [UInt8] = [0xFD, 2, 0, 0, 0, 1, 1, 30, 0, 0, 9, 9, 0x12, 0x34]
        #expect(mavlinkDecodeAll(unknown, &decoder).isEmpty)
        #expect(decoder.unknownMessages == 1)
    }

    @Test func encodeAndDecodeAllocateNothing() throws {
        var encoder = MAVLinkEncoder()
        var decoder = MAVLinkDecoder()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MAVLinkFraming.maximumFrameLength, alignment: 8)
        defer { buffer.deallocate() }
        var model = IMUSensorModel.consumerMEMS()
        var decodedCount = 0
        func once() throws {
            let sample = model.sample(
                trueAngularVelocityRadPerS: SIMD3(0.1, 0.2, 0.3), trueSpecificForceMPerS2: SIMD3(0, 0, 9.8))
            let length = try encoder.encode(.highResIMU(MAVLinkHighResIMU(sample: sample)), into: buffer)
            for i in 0..<length where decoder.push(buffer[i]) != nil { decodedCount += 1 }
        }
        var device = MAVLinkVirtualIMU(sensor: IMUSensorModel.consumerMEMS(seed: 3))
        let deviceBuffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: MAVLinkVirtualIMU.maximumStepBytes, alignment: 8)
        defer { deviceBuffer.deallocate() }
        var deviceBytes = 0
        func deviceStep() throws {
            deviceBytes += try device.step(
                trueAngularVelocityRadPerS: SIMD3(0.1, 0, 0), trueSpecificForceMPerS2: SIMD3(0, 0, 9.8),
                into: deviceBuffer
            ).byteCount
        }
        try once()
        try deviceStep()
        let before = sinew_thread_allocations()
        for _ in 0..<10_000 {
            try once()
            try deviceStep()
        }
        let delta = sinew_thread_allocations() - before
        #expect(delta == 0)
        #expect(decodedCount == 10_001)
        #expect(deviceBytes > 10_000 * 60)
    }
}

@Suite struct MAVLinkVirtualIMUTests {
    @Test func emitsHeartbeatAndIMUFramesInMAVLinkAxes() throws {
        var device = MAVLinkVirtualIMU(sensor: IMUSensorModel.consumerMEMS(sampleRateHz: 100, seed: 2))
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: MAVLinkVirtualIMU.maximumStepBytes, alignment: 8)
        defer { buffer.deallocate() }
        var decoder = MAVLinkDecoder()
        var heartbeats = 0
        var imuFrames = 0
        var worst = 0.0
        for k in 0..<250 {
            let omega = SIMD3(0.3, -0.2, 0.1 * Double(k % 7))
            let force = SIMD3(0.1, 0.2, 9.80665)
            let (count, sample) = try device.step(
                trueAngularVelocityRadPerS: omega, trueSpecificForceMPerS2: force, into: buffer)
            for i in 0..<count {
                guard let frame = decoder.push(buffer[i]) else { continue }
                switch frame.message {
                case .heartbeat: heartbeats += 1
                case .highResIMU(let message):
                    imuFrames += 1
                    // MAVLink front-right-down on the wire: a level IMU reads zacc ≈ −g.
                    #expect(message.accelerationMPerS2.z < -9)
                    let back = IMUSensorSample(message)
                    let d = back.angularVelocityRadPerS - sample.angularVelocityRadPerS
                    let e = back.specificForceMPerS2 - sample.specificForceMPerS2
                    worst = max(worst, abs(d.x), abs(d.y), abs(d.z), abs(e.x), abs(e.y), abs(e.z))
                    #expect(abs(back.timestampSeconds - sample.timestampSeconds) < 1e-6)
                default: Issue.record("unexpected \(frame.message)")
                }
            }
        }
        #expect(imuFrames == 250)
        #expect(heartbeats == 3)  // at samples 0, 100, 200
        #expect(worst < 1e-5)  // float32 on the wire
        #expect(decoder.checksumErrors == 0 && decoder.sequenceGaps == 0)
    }
}
