// Runs a user-written policy (SineSweepPolicy.swift) on the simulated SO-101, twice: handed to the loop in Swift,
// and named in a robot.yaml as `policy: {type: sine_sweep, …}`. Exits 1 if either run misbehaves.
//
//   swift run --package-path Examples/CustomPolicy [ROBOT.yaml]   (default: Hardware/robots/so101/robot.yaml)
import Foundation
import SinewDrivers
import SinewPolicy
import SinewRuntime

/// The Sinew checkout this package sits in (Examples/CustomPolicy/Sources/CustomPolicy/main.swift).
let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let robotPath = CommandLine.arguments.dropFirst().first ?? checkout + "/Hardware/robots/so101/robot.yaml"
/// The types robot.yaml's `policy.type` may name: the built-in ones and ours.
let policyTypes = PolicyTypes.builtin + [SineSweepPolicyType()]
let seconds = 3.0

/// Runs `loop` for `seconds` of simulated time through the runtime's session (configure, activate, run, safe
/// shutdown), prints the final positions and the tracking error, and says whether the run ended as planned.
func run(_ loop: RobotLoop, sweep: SineSweepPolicy) throws -> Bool {
    let session = try RobotSession(loop: loop, fast: true, durationS: seconds)
    session.monitorIntervalS = 0.02
    let outcome = try session.run(started: { _ in }, monitor: { _ in })
    let names = loop.configuration.joints.map(\.name)
    let positions = names.indices.map { String(format: "%@ %+.3f", names[$0], loop.supervisor.measuredPositionRad[$0]) }
    print("  final positions (rad): " + positions.joined(separator: ", "))
    print(
        String(
            format: "  tracking error (RMS over joints and ticks) %.2f mrad; %@ swung ±%.3f rad of the commanded ±%.3f",
            1000 * loop.trackingRMSRad, sweep.joint, sweep.largestExcursionRad, sweep.amplitudeRad))
    let events = loop.supervisor.events.events.map { loop.supervisor.describe($0) }
    print(
        "  ended \(outcome.stop) in state \(outcome.finalState); safety events: \(events.isEmpty ? "none" : "\(events)")"
    )
    return outcome.finalState == .active && events.isEmpty && sweep.largestExcursionRad > 0.8 * sweep.amplitudeRad
}

/// A copy of the robot.yaml at `path` whose `policy:` block is `policy` (its model path made absolute), in a
/// temporary directory: a robot.yaml of the user's own would simply say so.
func robotYAML(from path: String, policy: [String]) throws -> String {
    var lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
    guard let start = lines.firstIndex(of: "policy:") else { throw SimulationSetupError("\(path) has no policy:") }
    let end = lines[(start + 1)...].firstIndex { !$0.hasPrefix(" ") && !$0.hasPrefix("#") } ?? lines.count
    lines.replaceSubrange(start..<end, with: policy + [""])
    let directory = (path as NSString).deletingLastPathComponent
    for (i, line) in lines.enumerated() where line.hasPrefix("model: ") && !line.hasPrefix("model: /") {
        lines[i] = "model: " + directory + "/" + line.dropFirst("model: ".count)
    }
    let copy = FileManager.default.temporaryDirectory.appendingPathComponent(
        "sinew-custom-policy-\(UUID().uuidString).yaml"
    ).path
    try lines.joined(separator: "\n").write(toFile: copy, atomically: true, encoding: .utf8)
    return copy
}

do {
    let catalog = try ServoCatalog.load(directory: checkout + "/Hardware/servos")
    var ok = true

    // 1. The shipped robot.yaml, and our policy made in Swift and handed to the loop instead of the one it names.
    let checked = try RobotConfiguration.loadChecked(contentsOf: robotPath, policyTypes: policyTypes)
    let names = checked.configuration.joints.map(\.name)
    let sweep = try SineSweepPolicy(jointNames: names, joint: names[0], amplitudeRad: 0.3, periodS: 1.5)
    print("\(checked.configuration.name), simulated \(seconds) s in lockstep: \(sweep.notices.joined(separator: "; "))")
    ok = try run(SimulatedRobot(checked, catalog: catalog, policy: sweep).loop, sweep: sweep) && ok

    // 2. The same policy named by a robot.yaml, as a type registered beside the built-in ones.
    let block = ["policy:", "  type: sine_sweep", "  joint: \(names[2])", "  amplitude_rad: 0.25", "  period_s: 2.0"]
    let yaml = try robotYAML(from: robotPath, policy: block)
    defer { try? FileManager.default.removeItem(atPath: yaml) }
    let named = try RobotConfiguration.loadChecked(contentsOf: yaml, policyTypes: policyTypes)
    let robot = try SimulatedRobot(named, catalog: catalog)
    guard let fromYAML = robot.loop.policy as? SineSweepPolicy else {
        throw SimulationSetupError("the robot.yaml's policy is \(robot.loop.policy.typeName), not sine_sweep")
    }
    print("robot.yaml saying\n    " + block.joined(separator: "\n    ") + "\nruns: \(fromYAML.notices[0])")
    ok = try run(robot.loop, sweep: fromYAML) && ok

    // 3. A mistake in that block is found when the file is loaded, before anything moves.
    let typo = try robotYAML(
        from: robotPath, policy: block.map { $0.replacingOccurrences(of: "period_s", with: "periods") })
    defer { try? FileManager.default.removeItem(atPath: typo) }
    do {
        _ = try RobotConfiguration.loadChecked(contentsOf: typo, policyTypes: policyTypes)
        print("a misspelt key was accepted")
        ok = false
    } catch {
        print("with a misspelt key it is refused: \(error)")
        ok = ok && "\(error)".contains("period_s")
    }
    exit(ok ? 0 : 1)
} catch {
    print("error: \(error)")
    exit(1)
}
