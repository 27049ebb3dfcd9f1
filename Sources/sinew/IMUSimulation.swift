import ArgumentParser
import Foundation
import SinewBus
import SinewFusion
import SinewRuntime
import SinewSim

/// The simulated robot's IMU, when robot.yaml declares `imu: {port: virtual, link: …}`: a MAVLink 2 IMU
/// on the link, fed by the physics, behind an in-process pipe whose other end the loop reads.
func makeVirtualLinkIMU(
    configuration: RobotConfiguration, robot: RobotJointDynamics
) throws -> (imu: VirtualLinkIMU, loopEnd: any ByteTransport)? {
    guard let declared = configuration.imu, declared.port == .virtual else { return nil }
    let (loopEnd, deviceEnd) = BytePipe.makePair()
    let imu = try VirtualLinkIMU(
        robot: robot, linkName: declared.link, mountingXYZ: declared.mountingXYZ, mountingRPY: declared.mountingRPY,
        sensor: .consumerMEMS(sampleRateHz: declared.rateHz, seed: 1), transport: deviceEnd)
    return (imu, loopEnd)
}

/// The IMU's port for the pty and serial backends; nil (with a note) for `port: virtual`, which only the
/// simulator in this process provides.
func openIMUTransport(configuration: RobotConfiguration, backend: Backend) throws -> (any ByteTransport)? {
    guard let declared = configuration.imu else { return nil }
    guard case .device(let path) = declared.port else {
        printError("note: imu port `virtual` exists only with --backend sim; running without the IMU")
        return nil
    }
    do {
        switch backend {
        case .serial: return try SerialPortTransport(path: path, baudRate: declared.baudRate)
        case .pty, .sim: return try PseudoTerminalTransport(path: path, baudRate: declared.baudRate)
        }
    } catch {
        throw ValidationError("imu: cannot open \(path): \(error)")
    }
}

/// Estimated against true orientation of the IMU's link over a run, compared through inclination (the
/// angle between the estimated and the true "up" seen from the link), which a 6-D estimate makes absolute
/// while its heading is arbitrary.
struct IMUComparison {
    var samples = 0
    var squaresDeg2 = 0.0
    var maximumDeg = 0.0
    var lastDeg = 0.0
    var lastEstimatedRollPitchDeg = SIMD2<Double>.zero
    var lastTrueRollPitchDeg = SIMD2<Double>.zero

    mutating func observe(estimate: OrientationQuaternion, truth: OrientationQuaternion) {
        let errorDeg = estimate.errorAnglesRad(relativeTo: truth).inclinationRad * 180 / .pi
        samples += 1
        squaresDeg2 += errorDeg * errorDeg
        maximumDeg = max(maximumDeg, errorDeg)
        lastDeg = errorDeg
        let e = estimate.rollPitchYawRad * (180 / .pi)
        let t = truth.rollPitchYawRad * (180 / .pi)
        lastEstimatedRollPitchDeg = SIMD2(e.x, e.y)
        lastTrueRollPitchDeg = SIMD2(t.x, t.y)
    }

    var rmsDeg: Double { samples > 0 ? (squaresDeg2 / Double(samples)).squareRoot() : 0 }

    func summary(link: String, samplesReceived: Int) -> String {
        String(
            format:
                "  IMU on %@ (%d samples): roll/pitch estimated %.1f°/%.1f°, true %.1f°/%.1f°; inclination error "
                + "final %.2f°, RMS %.2f°, max %.2f°",
            link, samplesReceived, lastEstimatedRollPitchDeg.x, lastEstimatedRollPitchDeg.y, lastTrueRollPitchDeg.x,
            lastTrueRollPitchDeg.y, lastDeg, rmsDeg, maximumDeg)
    }

    var json: JSONValue {
        .object([
            ("inclination_error_final_deg", .number(lastDeg)), ("inclination_error_rms_deg", .number(rmsDeg)),
            ("inclination_error_max_deg", .number(maximumDeg)),
        ])
    }
}
