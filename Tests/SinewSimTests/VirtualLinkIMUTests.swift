import Foundation
import SinewBus
import SinewDrivers
import SinewFusion
import SinewKinematics
import SinewSim
import SinewTestSupport
import Testing

/// The SO-101 arm under its servos' position control with a virtual MAVLink IMU on `gripper_link`.
private struct ArmWithIMU {
    let bus: VirtualBus
    let robot: RobotJointDynamics
    let imu: VirtualLinkIMU
    let model: RobotModel

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    init(sensor: IMUSensorModel, transport: any ByteTransport, mountingRPY: SIMD3<Double> = .zero) throws {
        model = try RobotModel(urdf: Self.repository + "/Hardware/robots/so101/so101.urdf")
        let sts = try loadModel("sts3215")
        let names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
        let mappings = names.enumerated().map { i, name in
            JointServoMapping(jointName: name, servoID: UInt8(i + 1), servo: sts)
        }
        bus = try VirtualBus(model: sts, ids: [1, 2, 3, 4, 5, 6])
        robot = try RobotJointDynamics(
            model: model, mappings: mappings, servoModels: Array(repeating: sts, count: 6),
            initialPositions: model.midRangePositions)
        imu = try VirtualLinkIMU(
            robot: robot, linkName: "gripper_link", mountingXYZ: SIMD3(0.01, -0.02, 0.03), mountingRPY: mountingRPY,
            sensor: sensor, transport: transport)
        bus.dynamics = imu
        for (i, state) in robot.servoShaftStates().enumerated() {
            bus.setJointState(index: i, positionRad: state.positionRad, velocityRadPerS: state.velocityRadPerS)
        }
        for servo in bus.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
    }

    /// Commands a pose (rad, URDF joint order of the six servos' joints).
    func command(_ goal: [Double]) {
        for (i, servo) in bus.servos.enumerated() {
            servo.setRegisterValue(named: "Goal Position", robot.mappings[i].counts(forJointPositionRad: goal[i]))
        }
    }
}

/// A sensor without errors, so the truth the physics hands it can be checked exactly.
private func idealSensor(rateHz: Double) -> IMUSensorModel {
    IMUSensorModel(
        gyroscope: IMUAxisModel(noiseDensity: 0), accelerometer: IMUAxisModel(noiseDensity: 0), sampleRateHz: rateHz)
}

/// Records what the IMU writes (a test's serial line).
private final class RecordingTransport: ByteTransport {
    var bytes: [UInt8] = []
    let baudRate = 0
    func write(_ data: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        bytes.append(contentsOf: data)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        0
    }
    func flushInput() throws(TransportError) {}
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) {}
}

/// Writes to another transport, waiting up to a second for room (a reader on a pty that is catching up).
private final class PatientTransport: ByteTransport {
    let inner: any ByteTransport
    var failures = 0
    init(_ inner: any ByteTransport) { self.inner = inner }
    var baudRate: Int { inner.baudRate }
    func write(_ data: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        do {
            try inner.write(data, deadline: MonotonicInstant.now().advanced(byNanoseconds: 1_000_000_000))
        } catch {
            failures += 1
            throw error
        }
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        try inner.read(into: buffer, deadline: deadline)
    }
    func flushInput() throws(TransportError) { try inner.flushInput() }
    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { try inner.setBaudRate(bitsPerSecond) }
}

private func decodeSamples(_ bytes: [UInt8]) -> (samples: [IMUSensorSample], heartbeats: Int, errors: Int) {
    var decoder = MAVLinkDecoder()
    var samples: [IMUSensorSample] = []
    var heartbeats = 0
    for byte in bytes {
        guard let frame = decoder.push(byte) else { continue }
        switch frame.message {
        case .highResIMU(let message): samples.append(IMUSensorSample(message))
        case .heartbeat: heartbeats += 1
        default: break
        }
    }
    return (samples, heartbeats, decoder.checksumErrors + decoder.malformedFrames + decoder.bytesSkipped)
}

@Suite(.serialized) struct VirtualLinkIMUTests {
    /// The truth comes from the physics: an ideal IMU on the moving arm reads gravity in its own frame at
    /// rest, and its gyroscope integrates to the link's true rotation over a 2 s move of every joint.
    @Test func idealIMUReadsTheLinksMotionFromThePhysics() throws {
        let line = RecordingTransport()
        let arm = try ArmWithIMU(sensor: idealSensor(rateHz: 200), transport: line, mountingRPY: SIMD3(0.3, -0.2, 1.0))
        // Settle at the start pose, then move every joint at once.
        let startPose = try arm.robot.mappings.map { mapping throws -> Double in
            let j = try #require(arm.model.jointIndex(named: mapping.jointName))
            return arm.robot.positions[j]
        }
        arm.command(startPose)
        arm.bus.advance(toNs: 1_000_000_000)
        let restBytes = line.bytes.count
        let startOrientation = arm.imu.trueSensorOrientation
        arm.command([0.8, -0.9, 0.9, 1.2, 1.0, 0.5])
        arm.bus.advance(toNs: 3_000_000_000)
        let endOrientation = arm.imu.trueSensorOrientation

        let (samples, heartbeats, errors) = decodeSamples(line.bytes)
        #expect(errors == 0)
        #expect(samples.count == 600, "200 Hz over 3 s of physics")
        #expect(heartbeats == 3)
        #expect(arm.imu.samplesWritten == 600 && arm.imu.droppedBytes == 0)

        // At rest after settling: the specific force is gravity's reaction, +9.81 m/s² along earth-up, seen
        // in the sensor frame; no rotation.
        let rest = try #require(decodeSamples(Array(line.bytes[0..<restBytes])).samples.last)
        let up = startOrientation.inverseRotate(SIMD3(0, 0, 9.81))
        let restError = rest.specificForceMPerS2 - up
        print(
            "IMU at rest: specific force \(rest.specificForceMPerS2), expected \(up); gyro \(rest.angularVelocityRadPerS)"
        )
        #expect((restError * restError).sum().squareRoot() < 0.02)
        #expect((rest.angularVelocityRadPerS * rest.angularVelocityRadPerS).sum().squareRoot() < 1e-3)

        // The gyroscope, integrated over the move (float32 on the wire), ends where the link really is.
        var integrated = startOrientation
        var peakRate = 0.0
        var peakAcceleration = 0.0
        try #require(samples.count >= 200)
        for sample in samples[200...] {
            integrated = integrated * OrientationQuaternion(rotationVectorRad: sample.angularVelocityRadPerS / 200)
            peakRate = max(peakRate, (sample.angularVelocityRadPerS * sample.angularVelocityRadPerS).sum().squareRoot())
            let f = sample.specificForceMPerS2
            peakAcceleration = max(peakAcceleration, abs((f * f).sum().squareRoot() - 9.81))
        }
        let driftDeg = integrated.angleRad(to: endOrientation) * 180 / .pi
        let turnedDeg = startOrientation.angleRad(to: endOrientation) * 180 / .pi
        print(
            "IMU on the moving arm: link turned \(turnedDeg)°, gyro integration off by \(driftDeg)°, peak rate "
                + "\(peakRate) rad/s, peak |f| − g \(peakAcceleration) m/s²")
        #expect(turnedDeg > 30, "the move turns the link")
        #expect(driftDeg < 0.2)
        #expect(peakAcceleration > 0.1, "the move accelerates the sensor")
    }

    /// Same seed, same motion, same bytes: the simulated IMU is deterministic.
    @Test func theStreamIsDeterministic() throws {
        func run() throws -> [UInt8] {
            let line = RecordingTransport()
            let arm = try ArmWithIMU(sensor: .consumerMEMS(sampleRateHz: 250, seed: 5), transport: line)
            arm.command([0.5, -0.5, 0.6, 0.9, 0.4, 0.3])
            arm.bus.advance(toNs: 1_000_000_000)
            return line.bytes
        }
        let first = try run()
        #expect(first.count > 250 * 70)
        #expect(first == (try run()))
    }

    /// pymavlink (PyPI, an independent decoder) reads the virtual link IMU's stream from a pseudo-terminal:
    /// every HIGHRES_IMU the arm's IMU wrote (datasheet errors included), with its values, in order.
    @Test func pymavlinkReadsTheLinkIMUOnAPseudoTerminal() throws {
        let python = try testPython(importing: ["pymavlink"])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-link-imu-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func move(_ arm: ArmWithIMU) {
            arm.command([0.6, -0.7, 0.8, 1.0, 0.5, 0.4])
            arm.bus.advance(toNs: 1_500_000_000)
        }
        // First run: what the IMU sends, sample by sample, in MAVLink's axes.
        let line = RecordingTransport()
        let reference = try ArmWithIMU(sensor: .consumerMEMS(sampleRateHz: 400, seed: 9), transport: line)
        move(reference)
        var expected: [[String: Any]] = []
        var encoder = MAVLinkEncoder(systemID: 1, componentID: 200)
        var decoder = MAVLinkDecoder()
        for byte in line.bytes {
            guard let frame = decoder.push(byte) else { continue }
            expected.append(fields(frame.message, sequence: Int(encoder.sequence)))
            encoder.sequence &+= 1
        }
        #expect(expected.count == 600 + 2)
        let json = directory.appendingPathComponent("expected.json")
        try JSONSerialization.data(withJSONObject: ["messages": expected]).write(to: json)

        // Second run, identical (deterministic), live onto a pty that pymavlink reads.
        let terminal = try PseudoTerminalTransport.createPair(baudRate: 921_600)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            ArmWithIMU.repository + "/Tests/python/imu_decode_check.py", "stream", terminal.path, json.path,
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        Thread.sleep(forTimeInterval: 1.0)  // let Python open the device before the first byte
        let patient = PatientTransport(terminal)
        let live = try ArmWithIMU(sensor: .consumerMEMS(sampleRateHz: 400, seed: 9), transport: patient)
        move(live)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print("pty \(terminal.path): " + output, terminator: "")
        #expect(patient.failures == 0)
        #expect(process.terminationStatus == 0, "pymavlink on the pty failed:\n\(output)")
    }
}

/// Field values of a message under the MAVLink common dialect's names (as the Python checker uses).
private func fields(_ message: MAVLinkIMUMessage, sequence: Int) -> [String: Any] {
    func floats(_ v: SIMD3<Float>) -> [Double] { [Double(v.x), Double(v.y), Double(v.z)] }
    var result: [String: Any] = ["seq": sequence % 256, "sysid": 1, "compid": 200]
    switch message {
    case .heartbeat(let m):
        result.merge(
            [
                "message": "HEARTBEAT", "type": Int(m.type), "autopilot": Int(m.autopilot),
                "base_mode": Int(m.baseMode),
                "custom_mode": Int(m.customMode), "system_status": Int(m.systemStatus),
                "mavlink_version": Int(m.mavlinkVersion),
            ]
        ) { $1 }
    case .highResIMU(let m):
        let a = floats(m.accelerationMPerS2)
        let g = floats(m.angularVelocityRadPerS)
        let b = floats(m.magneticFieldGauss)
        result.merge(
            [
                "message": "HIGHRES_IMU", "time_usec": Int(m.timeMicroseconds), "xacc": a[0], "yacc": a[1],
                "zacc": a[2], "xgyro": g[0], "ygyro": g[1], "zgyro": g[2], "xmag": b[0], "ymag": b[1], "zmag": b[2],
                "abs_pressure": Double(m.absolutePressureHPa), "diff_pressure": Double(m.differentialPressureHPa),
                "pressure_alt": Double(m.pressureAltitudeM), "temperature": Double(m.temperatureCelsius),
                "fields_updated": Int(m.fieldsUpdated), "id": Int(m.sensorID),
            ]
        ) { $1 }
    default: break
    }
    return result
}
