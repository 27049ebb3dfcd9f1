import Foundation
import SinewRuntime
import Testing

/// robot.yaml sets each bus's reply margin and retries; out-of-range values are errors with their line.
@Suite struct BusTimingConfigurationTests {
    static let so101 = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Hardware/robots/so101").path

    static func parse(busLines: String) throws(ConfigurationError) -> RobotConfiguration {
        let shipped = (try? String(contentsOfFile: so101 + "/robot.yaml", encoding: .utf8)) ?? ""
        let text = shipped.replacingOccurrences(of: "    baud: 1000000\n", with: "    baud: 1000000\n" + busLines)
        return try RobotConfiguration.parse(text, file: "robot.yaml", baseDirectory: so101)
    }

    @Test func marginAndRetriesAreReadPerBus() throws {
        let defaults = try Self.parse(busLines: "")
        #expect(defaults.buses.first?.replyMarginMs == nil && defaults.buses.first?.retries == 1)
        let set = try Self.parse(busLines: "    reply_margin_ms: 5\n    retries: 3\n")
        #expect(set.buses.first?.replyMarginMs == 5 && set.buses.first?.retries == 3)
        for (lines, key) in [
            ("    reply_margin_ms: 0\n", "reply_margin_ms"), ("    reply_margin_ms: .inf\n", "reply_margin_ms"),
            ("    retries: 9\n", "retries"), ("    retries: -1\n", "retries"),
        ] {
            #expect(throws: ConfigurationError.self, "\(lines)") { try Self.parse(busLines: lines) }
            do {
                _ = try Self.parse(busLines: lines)
            } catch {
                #expect(error.keyPath == "buses[0].\(key)" && error.location.line == 14, "\(error)")
            }
        }
    }
}
