import Foundation
import Testing

@Suite("sinew bench policy")
struct BenchPolicyCommandTests {
    static let policies = [
        "hold", "trajectory", "cartesian", "impedance", "gravity_compensation", "jog", "mlp", "bridge_latest",
        "bridge_temporal_ensemble", "bridge_weighted_average", "bridge_prefix_freeze",
    ]
    static let bridgeModes = [
        "latest", "temporal_ensemble", "weighted_average", "prefix_freeze", "sample_and_hold_30hz",
    ]

    /// Every figure is reported, finite and positive; how fast the policies are is the benchmark's to say, not
    /// the test's. The bridge's time series goes to the CSV file the plot script reads.
    @Test func jsonReportsEveryFigureAndTheCSVIsWritten() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-bench-policy-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let csv = directory.appendingPathComponent("bridge.csv").path
        let result = try runSinew(["bench", "policy", "--json", "--ticks", "10000", "--bridge-csv", csv])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let object = try #require(jsonObject(result.stdout), "not one JSON object: \(result.stdout)")
        for key in ["decide_p99_us", "decide_p50_us", "decide_max_us", "decide_goal_us"] {
            let figures = try #require(object[key] as? [String: Any], "\(key) missing in \(result.stdout)")
            #expect(Set(figures.keys) == Set(Self.policies), "\(key): \(figures.keys.sorted())")
            for (policy, value) in figures {
                let us = try #require(value as? Double, "\(key).\(policy) is not a number")
                #expect(us.isFinite && us > 0, "\(key).\(policy) = \(us)")
            }
        }
        for key in ["mlp_p99_us", "mlp_p50_us", "mlp_max_us"] {
            let us = try #require(object[key] as? Double, "\(key) missing or not a number in \(result.stdout)")
            #expect(us.isFinite && us > 0, "\(key) = \(us)")
        }
        #expect(object["calls"] as? Int == 10_000)
        let bridge = try #require(object["bridge"] as? [String: Any], "bridge missing in \(result.stdout)")
        #expect(Set(bridge.keys) == Set(Self.bridgeModes), "\(bridge.keys.sorted())")
        for (mode, value) in bridge {
            let row = try #require(value as? [String: Any], "bridge.\(mode) is not an object")
            #expect(Set(row.keys) == ["rms_jerk", "max_step_rad"], "bridge.\(mode): \(row.keys.sorted())")
            for (key, figure) in row {
                let x = try #require(figure as? Double, "bridge.\(mode).\(key) is not a number")
                #expect(x.isFinite && x > 0, "bridge.\(mode).\(key) = \(x)")
            }
        }
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        #expect(text.hasPrefix("t,mode,joint0\n"))
        for mode in Self.bridgeModes + ["reference", "chunk_0"] {
            #expect(text.contains(",\(mode),"), "no \(mode) rows in the CSV")
        }
    }

    /// The table prints each figure beside its goal.
    @Test func tablePrintsTheGoals() throws {
        let result = try runSinew(["bench", "policy", "--ticks", "10000"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        for line in ["cartesian", "bridge_prefix_freeze", "mlp network alone", "sample_and_hold_30hz"] {
            #expect(result.stdout.contains(line), "no \(line) in:\n\(result.stdout)")
        }
        #expect(result.stdout.contains("≤ 20"))
        #expect(result.stdout.contains("≤ 10"))
    }

    @Test func refusesTooFewTicks() throws {
        let result = try runSinew(["bench", "policy", "--ticks", "100"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--ticks"))
    }
}
