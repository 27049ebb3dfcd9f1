import Foundation
import SinewTestSupport
import Testing

@Suite("sinew bench loop")
struct BenchLoopCommandTests {
    /// The figures are machine-dependent: the test checks that every figure is reported and plausible,
    /// never how fast the loop is.
    @Test func jsonReportsEveryFigure() throws {
        let result = try runSinew(["bench", "loop", "--duration", "1", "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let object = try #require(jsonObject(result.stdout), "not one JSON object: \(result.stdout)")
        for key in [
            "wake_p50_us", "wake_p99_us", "wake_p999_us", "bare_wake_p99_us", "compute_p99_us", "achieved_hz",
            "wire_limit_hz", "sense_p99_us", "act_p99_us",
        ] {
            let value = try #require(object[key] as? Double, "\(key) missing or not a number in \(result.stdout)")
            #expect(value > 0, "\(key) = \(value)")
        }
        let overruns = try #require(object["overruns"] as? Int, "overruns missing in \(result.stdout)")
        #expect(overruns >= 0)
        #expect(object["robot"] as? String == "so101")
        // The shipped SO-101: six STS3215 on one Feetech bus at 1 Mbit/s; read 15 bytes and write 2 per servo.
        #expect(object["wire_bytes_per_cycle"] as? Int == 166)
        #expect(object["wake_p99_us"] as? Double ?? 0 >= object["wake_p50_us"] as? Double ?? 0)
    }

    @Test func syntheticRobotOfTwelveDynamixelServos() throws {
        let result = try runSinew([
            "bench", "loop", "--servos", "12", "--protocol", "dynamixel", "--baud", "4000000", "--rate", "250",
            "--duration", "0.5", "--json",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let object = try #require(jsonObject(result.stdout), "not one JSON object: \(result.stdout)")
        #expect(object["joints"] as? Int == 12)
        #expect(object["target_hz"] as? Double == 250)
        // Dynamixel, 12 servos reading 10 bytes and writing 4: (14 + 12) + 12 · 21 + 14 + 12 · 5 = 352 bytes.
        #expect(object["wire_bytes_per_cycle"] as? Int == 352)
        let wireLimit = try #require(object["wire_limit_hz"] as? Double)
        #expect(abs(wireLimit - 4_000_000 / 3520) < 0.01)
        #expect((object["achieved_hz"] as? Double ?? 0) > 0)
    }

    /// Asked for far more than the wire allows, the loop overruns every tick and skips to the next deadline:
    /// the emulated wire, not the rate, bounds what it achieves.
    @Test func rateAboveTheWireLimitIsBoundByTheWire() throws {
        let (result, parsed) = try runSinewRetryingMachineStalls([
            "bench", "loop", "--rate", "5000", "--duration", "0.5", "--json",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let object = try #require(parsed, "not one JSON object: \(result.stdout)")
        #expect(object["wire_is_bottleneck"] as? Bool == true)
        let wireLimit = try #require(object["wire_limit_hz"] as? Double)
        let achieved = try #require(object["achieved_hz"] as? Double)
        #expect(achieved > 0)
        #expect(achieved < wireLimit * 1.02)
        #expect((object["overruns"] as? Int ?? 0) > 0)
        #expect((object["skipped_deadlines"] as? Int ?? 0) > 0)
        // Overrunning on purpose is not a fault here: the overrun rule is off, so the loop stays active.
        #expect(object["final_state"] as? String == "active")
    }

    @Test func rejectsConflictingOptions() throws {
        let result = try runSinew(["bench", "loop", "--servos", "3", "--robot", "x.yaml"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--servos"))
    }
}
