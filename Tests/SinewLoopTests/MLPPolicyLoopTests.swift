import Foundation
import SinewPolicy
import SinewRuntime
import Testing

/// The `mlp` policy named in robot.yaml, end to end on the simulated SO-101 in lockstep.
@Suite(.serialized) struct MLPPolicyLoopTests {
    /// A copy of the SO-101's robot.yaml in a fresh directory, its policy replaced by `policy` (lines, indented
    /// two spaces under `policy:`), with `files` written beside it.
    static func robotYAML(policy: [String], files: [String: [UInt8]] = [:]) throws -> (path: String, directory: URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-mlp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let shipped = try String(contentsOfFile: "\(repositoryRoot)/Hardware/robots/so101/robot.yaml", encoding: .utf8)
        var lines = shipped.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "policy:"))
        let end = try #require(lines[start...].firstIndex(of: ""))
        lines.replaceSubrange(start..<end, with: ["policy:"] + policy.map { "  " + $0 })
        let text = lines.joined(separator: "\n").replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        let path = directory.appendingPathComponent("robot.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        for (name, bytes) in files { try Data(bytes).write(to: directory.appendingPathComponent(name)) }
        return (path, directory)
    }

    /// A one-layer network with zero weights whose bias is `target`: it commands that pose whatever it sees.
    static func constantNetwork(inputs: Int, target: [Double]) -> [UInt8] {
        SafeTensorsFile.encode(
            [
                .init(
                    name: "layers.0.weight", shape: [target.count, inputs],
                    values: [Double](repeating: 0, count: target.count * inputs)),
                .init(name: "layers.0.bias", shape: [target.count], values: target),
            ], metadata: ["activation": "identity"])
    }

    /// The network's command reaches the servos: a network of the phase (sin, cos of 2πt / 4 s) that sweeps
    /// every joint by ±0.15 rad about the simulated arm's starting pose, inferred at 50 Hz, moves the arm along
    /// its sweep: a quarter period in, each joint is 0.15 rad from where it started.
    @Test func anMLPNamedInRobotYAMLDrivesTheArm() throws {
        let probe = try SimulatedRig(lockstep: true)
        let start = probe.configuration.joints.map {
            probe.model.midRangePositions[probe.model.jointIndex(named: $0.name)!]
        }
        let amplitude = [0.15, -0.15, 0.15, 0.15, 0.15, -0.15]
        var weights: [Double] = []
        for a in amplitude { weights += [a, 0] }
        let network = SafeTensorsFile.encode(
            [
                .init(name: "layers.0.weight", shape: [6, 2], values: weights),
                .init(name: "layers.0.bias", shape: [6], values: start),
            ], metadata: ["activation": "identity"])
        let (path, directory) = try Self.robotYAML(
            policy: ["type: mlp", "file: net.safetensors", "rate_hz: 50", "observation: [{phase: {period_s: 4}}]"],
            files: ["net.safetensors": network])
        defer { try? FileManager.default.removeItem(at: directory) }
        let rig = try SimulatedRig(configurationPath: path, lockstep: true)
        #expect(rig.loop.policy.typeName == "mlp")
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let body = ProbeBody(loop: rig.loop)
        body.stopAtTick = 500
        _ = try Scheduler(configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 510), body: body)
            .run()
        let events = rig.loop.supervisor.events.events.map(rig.loop.supervisor.describe)
        #expect(events.isEmpty, "\(events)")
        let moved = (0..<6).map { rig.loop.supervisor.measuredPositionRad[$0] - start[$0] }
        print("mlp from robot.yaml: moved \(moved) rad a quarter period in (amplitude \(amplitude))")
        // Within 50 mrad: the STS3215's own position loop gives ~30 mrad at the shoulder under the arm's weight.
        for j in 0..<6 { #expect(abs(moved[j] - amplitude[j]) < 0.05, "joint \(j)") }
        try rig.loop.lifecycle.shutdown()
    }

    /// A network that does not fit the layout, and a rate that does not divide the loop's, are refused at load
    /// with the line of the key.
    @Test func aNetworkThatDoesNotFitIsRefusedAtLoad() throws {
        let wrong = try Self.robotYAML(
            policy: ["type: mlp", "file: net.safetensors", "observation: [{joint_positions: all}]"],
            files: ["net.safetensors": Self.constantNetwork(inputs: 12, target: [0, 0, 0, 0, 0, 0])])
        defer { try? FileManager.default.removeItem(at: wrong.directory) }
        #expect {
            _ = try RobotConfiguration.loadChecked(contentsOf: wrong.path)
        } throws: { error in
            print("mlp layout: \(error)")
            return "\(error)".contains("policy.file") && "\(error)".contains("robot.yaml:")
        }
        let rate = try Self.robotYAML(
            policy: [
                "type: mlp", "file: net.safetensors", "rate_hz: 70",
                "observation: [{joint_positions: all}, previous_action]",
            ],
            files: ["net.safetensors": Self.constantNetwork(inputs: 12, target: [0, 0, 0, 0, 0, 0])])
        defer { try? FileManager.default.removeItem(at: rate.directory) }
        #expect {
            _ = try RobotConfiguration.loadChecked(contentsOf: rate.path)
        } throws: { error in
            print("mlp rate: \(error)")
            return "\(error)".contains("policy.rate_hz")
        }
    }
}
