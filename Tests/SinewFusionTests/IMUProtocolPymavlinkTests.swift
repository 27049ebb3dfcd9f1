import Foundation
import SinewFusion
import SinewTestSupport
import Testing

/// The repository's Python environment (`make pyenv`), where pymavlink lives.
/// glibc's pseudo-terminal calls, looked up at run time: Swift's Glibc module hides them behind
/// _XOPEN_SOURCE, and a test does not justify a C shim.
private struct PseudoTerminalFunctions {
    let openpt: @convention(c) (Int32) -> Int32
    let grantpt: @convention(c) (Int32) -> Int32
    let unlockpt: @convention(c) (Int32) -> Int32
    let ptsname_r: @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32

    init?() {
        let handle = dlopen(nil, RTLD_NOW)
        guard let a = dlsym(handle, "posix_openpt"), let b = dlsym(handle, "grantpt"),
            let c = dlsym(handle, "unlockpt"), let d = dlsym(handle, "ptsname_r")
        else { return nil }
        openpt = unsafeBitCast(a, to: (@convention(c) (Int32) -> Int32).self)
        grantpt = unsafeBitCast(b, to: (@convention(c) (Int32) -> Int32).self)
        unlockpt = unsafeBitCast(c, to: (@convention(c) (Int32) -> Int32).self)
        ptsname_r = unsafeBitCast(d, to: (@convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32).self)
    }
}

private func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-mavlink-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func floats(_ v: SIMD3<Float>) -> [Double] { [Double(v.x), Double(v.y), Double(v.z)] }

/// Field values of a message under the names of the MAVLink common dialect (as in the Python checker).
private func mavlinkFields(_ message: MAVLinkIMUMessage) -> [String: Any] {
    switch message {
    case .heartbeat(let m):
        return [
            "message": "HEARTBEAT", "type": Int(m.type), "autopilot": Int(m.autopilot), "base_mode": Int(m.baseMode),
            "custom_mode": Int(m.customMode), "system_status": Int(m.systemStatus),
            "mavlink_version": Int(m.mavlinkVersion),
        ]
    case .highResIMU(let m):
        let a = floats(m.accelerationMPerS2)
        let g = floats(m.angularVelocityRadPerS)
        let b = floats(m.magneticFieldGauss)
        return [
            "message": "HIGHRES_IMU", "time_usec": Int(m.timeMicroseconds), "xacc": a[0], "yacc": a[1], "zacc": a[2],
            "xgyro": g[0], "ygyro": g[1], "zgyro": g[2], "xmag": b[0], "ymag": b[1], "zmag": b[2],
            "abs_pressure": Double(m.absolutePressureHPa), "diff_pressure": Double(m.differentialPressureHPa),
            "pressure_alt": Double(m.pressureAltitudeM), "temperature": Double(m.temperatureCelsius),
            "fields_updated": Int(m.fieldsUpdated), "id": Int(m.sensorID),
        ]
    case .scaledIMU(let m):
        return [
            "message": "SCALED_IMU", "time_boot_ms": Int(m.timeBootMilliseconds),
            "xacc": Int(m.accelerationMilliG.x), "yacc": Int(m.accelerationMilliG.y),
            "zacc": Int(m.accelerationMilliG.z), "xgyro": Int(m.angularVelocityMilliradPerS.x),
            "ygyro": Int(m.angularVelocityMilliradPerS.y), "zgyro": Int(m.angularVelocityMilliradPerS.z),
            "xmag": Int(m.magneticFieldMilligauss.x), "ymag": Int(m.magneticFieldMilligauss.y),
            "zmag": Int(m.magneticFieldMilligauss.z), "temperature": Int(m.temperatureCentiCelsius),
        ]
    case .attitudeQuaternion(let m):
        let o = m.representationOffset
        return [
            "message": "ATTITUDE_QUATERNION", "time_boot_ms": Int(m.timeBootMilliseconds),
            "q1": Double(m.quaternion[0]), "q2": Double(m.quaternion[1]), "q3": Double(m.quaternion[2]),
            "q4": Double(m.quaternion[3]), "rollspeed": Double(m.bodyRatesRadPerS.x),
            "pitchspeed": Double(m.bodyRatesRadPerS.y), "yawspeed": Double(m.bodyRatesRadPerS.z),
            "repr_offset_q": [Double(o[0]), Double(o[1]), Double(o[2]), Double(o[3])],
        ]
    }
}

/// A virtual IMU's stream: 2 s at 400 Hz of HIGHRES_IMU from the datasheet model on a wobbling body, with
/// SCALED_IMU every 4th sample, ATTITUDE_QUATERNION every 10th and a HEARTBEAT every 200th.
private func virtualIMUStream() -> [MAVLinkIMUMessage] {
    var model = IMUSensorModel.consumerMEMS(sampleRateHz: 400, seed: 11)
    var messages: [MAVLinkIMUMessage] = []
    for k in 0..<800 {
        let t = Double(k) / 400
        let sample = model.sample(
            trueAngularVelocityRadPerS: SIMD3(sin(3 * t), 0.5 * cos(2 * t), 0.2),
            trueSpecificForceMPerS2: SIMD3(0.3 * sin(t), 0, -9.80665))
        if k % 200 == 0 { messages.append(.heartbeat(MAVLinkHeartbeat())) }
        messages.append(.highResIMU(MAVLinkHighResIMU(sample: sample)))
        if k % 4 == 0 {
            let a = sample.specificForceMPerS2 / 9.80665 * 1000
            let g = sample.angularVelocityRadPerS * 1000
            messages.append(
                .scaledIMU(
                    MAVLinkScaledIMU(
                        timeBootMilliseconds: UInt32(t * 1000),
                        accelerationMilliG: SIMD3(Int16(a.x.rounded()), Int16(a.y.rounded()), Int16(a.z.rounded())),
                        angularVelocityMilliradPerS: SIMD3(
                            Int16(g.x.rounded()), Int16(g.y.rounded()), Int16(g.z.rounded())),
                        temperatureCentiCelsius: 2512)))
        }
        if k % 10 == 0 {
            let half = Float(0.1 * t)
            messages.append(
                .attitudeQuaternion(
                    MAVLinkAttitudeQuaternion(
                        timeBootMilliseconds: UInt32(t * 1000), quaternion: SIMD4(cos(half), 0, 0, sin(half)),
                        bodyRatesRadPerS: SIMD3<Float>(sample.angularVelocityRadPerS))))
        }
    }
    return messages
}

@Suite(.serialized) struct IMUProtocolPymavlinkTests {
    static let script = estimationRepositoryRoot().appendingPathComponent("Tests/python/imu_decode_check.py").path

    @Test func pymavlinkDecodesOurVirtualIMUStream() throws {
        let python = try testPython(importing: ["pymavlink"])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var encoder = MAVLinkEncoder(systemID: 1, componentID: 200)
        var bytes: [UInt8] = []
        var expected: [[String: Any]] = []
        for message in virtualIMUStream() {
            var fields = mavlinkFields(message)
            fields["seq"] = Int(encoder.sequence)
            fields["sysid"] = 1
            fields["compid"] = 200
            expected.append(fields)
            bytes += try mavlinkEncodeFrame(&encoder, message)
        }
        let frames = directory.appendingPathComponent("frames.bin")
        let json = directory.appendingPathComponent("expected.json")
        try Data(bytes).write(to: frames)
        try JSONSerialization.data(withJSONObject: ["messages": expected]).write(to: json)
        let result = runProcess(python, [Self.script, "decode", frames.path, json.path])
        print(result.output, terminator: "")
        #expect(result.status == 0, "pymavlink check failed:\n\(result.output)")

        // The checker is not vacuous: one wrong expected value makes it fail.
        expected[5]["xgyro"] = 123.0
        try JSONSerialization.data(withJSONObject: ["messages": expected]).write(to: json)
        let negative = runProcess(python, [Self.script, "decode", frames.path, json.path])
        #expect(negative.status == 1, "a wrong expected value went unnoticed:\n\(negative.output)")
    }

    /// The same stream written live to a pseudo-terminal, as a serial IMU (or the simulator's virtual one)
    /// would send it, and read by pymavlink from the pty's device path.
    @Test func pymavlinkReadsTheVirtualIMUOnAPseudoTerminal() throws {
        let python = try testPython(importing: ["pymavlink"])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // 2 s of the virtual IMU at 400 Hz on a wobbling body; the expected values are rebuilt here from
        // the samples it reports, with MAVLink's axes (y and z negated) and a heartbeat every 400 samples.
        var device = MAVLinkVirtualIMU(sensor: IMUSensorModel.consumerMEMS(sampleRateHz: 400, seed: 17))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MAVLinkVirtualIMU.maximumStepBytes, alignment: 8)
        defer { buffer.deallocate() }
        var bytes: [UInt8] = []
        var expected: [[String: Any]] = []
        var sequence = 0
        for k in 0..<800 {
            let t = Double(k) / 400
            let (count, sample) = try device.step(
                trueAngularVelocityRadPerS: SIMD3(sin(3 * t), 0.5 * cos(2 * t), 0.2),
                trueSpecificForceMPerS2: SIMD3(0.3 * sin(t), 0, 9.80665), into: buffer)
            bytes += buffer[0..<count]
            if k % 400 == 0 {
                var heartbeat = mavlinkFields(.heartbeat(MAVLinkHeartbeat()))
                heartbeat["seq"] = sequence % 256
                expected.append(heartbeat)
                sequence += 1
            }
            let flip = SIMD3<Double>(1, -1, -1)
            let wire = IMUSensorSample(
                timestampSeconds: sample.timestampSeconds, angularVelocityRadPerS: sample.angularVelocityRadPerS * flip,
                specificForceMPerS2: sample.specificForceMPerS2 * flip)
            var fields = mavlinkFields(.highResIMU(MAVLinkHighResIMU(sample: wire)))
            fields["seq"] = sequence % 256
            expected.append(fields)
            sequence += 1
        }
        let json = directory.appendingPathComponent("expected.json")
        try JSONSerialization.data(withJSONObject: ["messages": expected]).write(to: json)

        let pty = try #require(PseudoTerminalFunctions(), "posix_openpt/grantpt/unlockpt/ptsname_r not found in libc")
        let master = pty.openpt(O_RDWR | O_NOCTTY)
        try #require(master >= 0, "posix_openpt failed: errno \(errno)")
        defer { close(master) }
        try #require(pty.grantpt(master) == 0 && pty.unlockpt(master) == 0)
        var name = [CChar](repeating: 0, count: 128)
        try #require(pty.ptsname_r(master, &name, name.count) == 0)
        let slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // Raw mode on the slave side (no newline translation, no echo) before any byte is written; our own
        // descriptor stays open so the line stays up while Python connects.
        let slave = open(slavePath, O_RDWR | O_NOCTTY)
        try #require(slave >= 0, "cannot open \(slavePath): errno \(errno)")
        defer { close(slave) }
        var settings = termios()
        try #require(tcgetattr(slave, &settings) == 0)
        cfmakeraw(&settings)
        try #require(tcsetattr(slave, TCSANOW, &settings) == 0)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Self.script, "stream", slavePath, json.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // Write in serial-sized chunks. The master is non-blocking so a reader that died cannot hang the
        // test: while the pty buffer is full, wait for Python to drain it, up to 20 s.
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        var offset = 0
        let deadline = Date().addingTimeInterval(20)
        while offset < bytes.count, Date() < deadline {
            let chunk = min(512, bytes.count - offset)
            let written = bytes[offset..<(offset + chunk)].withUnsafeBytes { write(master, $0.baseAddress, chunk) }
            if written > 0 {
                offset += written
            } else if errno == EAGAIN, process.isRunning {
                usleep(1000)
            } else {
                break
            }
        }
        #expect(offset == bytes.count, "only \(offset) of \(bytes.count) bytes reached the pty")
        if offset < bytes.count { process.terminate() }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print("pty \(slavePath): " + output, terminator: "")
        #expect(process.terminationStatus == 0, "pymavlink on the pty failed:\n\(output)")
    }

    @Test func weDecodePymavlinkEncodedStream() throws {
        let python = try testPython(importing: ["pymavlink"])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let frames = directory.appendingPathComponent("frames.bin")
        let json = directory.appendingPathComponent("expected.json")
        let result = runProcess(python, [Self.script, "encode", frames.path, json.path])
        print(result.output, terminator: "")
        try #require(result.status == 0, "pymavlink encoding failed:\n\(result.output)")
        let bytes = [UInt8](try Data(contentsOf: frames))
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
        let expected = try #require(object?["messages"] as? [[String: Any]])
        var decoder = MAVLinkDecoder()
        let decoded = mavlinkDecodeAll(bytes, &decoder)
        #expect(decoded.count == expected.count)
        #expect(decoder.checksumErrors == 0 && decoder.unknownMessages == 0 && decoder.malformedFrames == 0)
        var mismatches: [String] = []
        for (index, (frame, want)) in zip(decoded, expected).enumerated() {
            let got = mavlinkFields(frame.message)
            if (want["seq"] as? Int) != Int(frame.sequence) || (want["sysid"] as? Int) != Int(frame.systemID) {
                mismatches.append("#\(index) header")
            }
            for (key, value) in got {
                switch value {
                case let s as String: if (want[key] as? String) != s { mismatches.append("#\(index) \(key)") }
                case let i as Int:
                    if (want[key] as? NSNumber)?.int64Value != Int64(i) { mismatches.append("#\(index) \(key)") }
                case let d as Double:
                    if let w = (want[key] as? NSNumber)?.doubleValue, abs(w - d) <= 1e-6 * max(1, abs(w)) {
                    } else {
                        mismatches.append("#\(index) \(key)")
                    }
                case let array as [Double]:
                    let w = (want[key] as? [NSNumber])?.map(\.doubleValue) ?? []
                    let close =
                        w.count == array.count && zip(w, array).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($0)) }
                    if !close { mismatches.append("#\(index) \(key)") }
                default: mismatches.append("#\(index) \(key): unexpected type")
                }
            }
        }
        print(
            "Sinew decoded \(decoded.count) pymavlink frames; \(mismatches.count) mismatches \(mismatches.prefix(10))")
        #expect(mismatches.isEmpty)
    }
}
