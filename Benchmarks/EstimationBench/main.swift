// Prints the cost of the estimation hot paths (run in release):
//   swift run -c release sinew-bench-estimation
// Figures are medians of several rounds on this machine; compare runs on the same machine only.
import Foundation
import SinewFusion

func nanoseconds(_ iterations: Int, rounds: Int = 7, _ body: () -> Void) -> Double {
    var results: [Double] = []
    for _ in 0..<rounds {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let end = DispatchTime.now().uptimeNanoseconds
        results.append(Double(end - start) / Double(iterations))
    }
    results.sort()
    return results[rounds / 2]
}

func report(_ name: String, _ ns: Double) {
    print(name.padding(toLength: 58, withPad: " ", startingAt: 0) + String(format: "%10.1f ns", ns))
}

func runBenchmarks() {
    // Joint filter: one joint, predict + encoder update (+ servo velocity).
    var joint = JointStateFilter()
    var sink = 0.0
    let jointIterations = 1_000_000
    report(
        "joint filter step (predict + encoder)",
        nanoseconds(jointIterations) {
            for k in 0..<jointIterations {
                joint.predict(dtSeconds: 0.002)
                joint.updateEncoderCounts(Int32(truncatingIfNeeded: k >> 3))
            }
            sink += joint.velocityRadPerS
        })
    report(
        "joint filter step (predict + encoder + servo velocity)",
        nanoseconds(jointIterations) {
            for k in 0..<jointIterations {
                joint.predict(dtSeconds: 0.002)
                joint.updateEncoderCounts(Int32(truncatingIfNeeded: k >> 3))
                joint.updateVelocity(0.1, varianceRad2PerS2: 1e-4)
            }
            sink += joint.velocityRadPerS
        })

    // EKF.
    let filter = RigidBodyEKF(
        configuration: RigidBodyEKFConfiguration(
            gyroNoiseDensity: 3e-4, accelNoiseDensity: 2e-3, gyroBiasRandomWalk: 2e-5, accelBiasRandomWalk: 3e-4),
        initialState: RigidBodyNominalState(), initialStandardDeviations: (0.05, 0.05, 0.1, 0.005, 0.05))
    var time = 0.0
    func imu() {
        time += 0.005
        filter.propagate(
            gyroRadPerS: SIMD3(0.1 * sin(time), 0.2, 0), specificForceMPerS2: SIMD3(0, 0.1, 9.80665),
            timestampSeconds: time
        )
    }
    let ekfIterations = 100_000
    report("EKF propagate (one IMU sample)", nanoseconds(ekfIterations) { for _ in 0..<ekfIterations { imu() } })
    report(
        "EKF position update, on time (3-D)",
        nanoseconds(ekfIterations) {
            for _ in 0..<ekfIterations {
                filter.update(.position(.zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: time))
            }
        })
    for _ in 0..<200 { imu() }
    report(
        "EKF pose update, on time (6-D)",
        nanoseconds(ekfIterations) {
            for _ in 0..<ekfIterations {
                filter.update(
                    .pose(
                        positionM: .zero, orientation: (1, 0, 0, 0), standardDeviationM: SIMD3(repeating: 0.02),
                        standardDeviationRad: SIMD3(repeating: 0.02), timestampSeconds: time))
            }
        })
    let lateIterations = 2_000
    report(
        "EKF position update, 100 ms late (20 IMU steps replayed)",
        nanoseconds(lateIterations) {
            for _ in 0..<lateIterations {
                imu()
                filter.update(
                    .position(.zero, standardDeviationM: SIMD3(repeating: 0.02), timestampSeconds: time - 0.0975))
            }
        })

    // MAVLink.
    var encoder = MAVLinkEncoder()
    var decoder = MAVLinkDecoder()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MAVLinkFraming.maximumFrameLength, alignment: 8)
    let message = MAVLinkIMUMessage.highResIMU(
        MAVLinkHighResIMU(
            timeMicroseconds: 1, accelerationMPerS2: SIMD3(0.1, 0.2, 9.8),
            angularVelocityRadPerS: SIMD3(0.01, 0.02, 0.03)))
    let frameIterations = 200_000
    var frameLength = 0
    report(
        "MAVLink HIGHRES_IMU encode",
        nanoseconds(frameIterations) {
            for _ in 0..<frameIterations { frameLength = (try? encoder.encode(message, into: buffer)) ?? 0 }
        })
    report(
        "MAVLink HIGHRES_IMU decode (byte by byte)",
        nanoseconds(frameIterations) {
            for _ in 0..<frameIterations {
                for i in 0..<frameLength where decoder.push(buffer[i]) != nil { sink += 1 }
            }
        })
    var model = IMUSensorModel.consumerMEMS()
    report(
        "virtual IMU sample (datasheet model)",
        nanoseconds(frameIterations) {
            for _ in 0..<frameIterations {
                sink +=
                    model.sample(
                        trueAngularVelocityRadPerS: SIMD3(0.1, 0, 0), trueSpecificForceMPerS2: SIMD3(0, 0, 9.8)
                    )
                    .angularVelocityRadPerS.x
            }
        })
    buffer.deallocate()
    if sink == 42 { print("") }  // keeps the results alive
}

runBenchmarks()
