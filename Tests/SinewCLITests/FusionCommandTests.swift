import Foundation
import SinewTestSupport
import Testing

@Suite struct FusionCommandTests {
    @Test func evalPrintsPerTrialAndMeanErrorsAndWritesEstimates() throws {
        let trial = try fixture("imu/broad/16_undisturbed_fast_translation_B.csv")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-fusion-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try runSinew(["fusion", "eval", trial, "--json", "--output", dir])
        #expect(result.status == 0, "\(result.stderr)")
        let output = try #require(jsonObject(result.stdout))
        let trials = try #require(output["trials"] as? [[String: Any]])
        try #require(trials.count == 1)
        #expect(trials[0]["name"] as? String == "16_undisturbed_fast_translation_B")
        let mean = try #require(output["mean"] as? [String: Double])
        for key in ["total_deg", "heading_deg", "inclination_deg"] { #expect((mean[key] ?? 99) < 3, "\(key)") }
        let estimates = try String(contentsOfFile: dir + "/16_undisturbed_fast_translation_B.csv", encoding: .utf8)
        #expect(estimates.hasPrefix("t_s,q_w,q_x,q_y,q_z\n"))
        let missing = try runSinew(["fusion", "eval", "/nonexistent/trial.csv"])
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent/trial.csv"))
    }
}
