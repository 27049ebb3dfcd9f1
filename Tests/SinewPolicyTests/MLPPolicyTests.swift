import CAllocCounter
import Foundation
import SinewPolicy
import SinewTestSupport
import Testing

/// One case of Tests/python/mlp_reference.py's output (cases.json).
private struct ReferenceCase: Decodable {
    struct Side: Decodable {
        var mode: String?
        var feature: String
        var stats_file: String?
        var stats: [String: [Double]]?
    }
    struct Tick: Decodable {
        var time_ns: Int64
        var q: [Double]
        var qd: [Double]
    }
    var name: String
    var model: String
    var activation: String?
    var observation_normalization: Side
    var action_normalization: Side
    var action_mode: String
    var ticks_per_inference: Int
    var period_s: Double
    var joints: [String]
    var positions_of: [String]
    var velocities_of: [String]
    var action_joints: [String]
    var ticks: [Tick]
    var expected: [[Double]]
    var expected_float32: [[Double]]
}

private struct ReferenceCases: Decodable { var cases: [ReferenceCase] }

private func temporaryDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func normalization(_ side: ReferenceCase.Side) -> MLPNormalization {
    MLPNormalization(
        mode: side.mode.flatMap { MLPNormalizationMode(name: $0) }, feature: side.feature, statsFile: side.stats_file,
        stats: side.stats.map {
            MLPNormalizationStats(mean: $0["mean"], std: $0["std"], min: $0["min"], max: $0["max"])
        })
}

struct MLPReferenceTests {
    /// Models written by numpy + safetensors (every activation, both of LeRobot's normalisation modes, F32 and
    /// F64 weights, statistics in the model, in a separate file or in the settings, under LeRobot's processor
    /// and legacy names, absolute and delta actions, every tick and every 3 ticks) run through Sinew's
    /// `mlp` policy and through numpy on the same observations: every target agrees with numpy's float64
    /// math to 1e-6 rad (Sinew computes in float64; the agreement with numpy's float32 math is printed).
    @Test func theMLPPolicyAgreesWithNumpy() throws {
        let python = try testPython(importing: ["numpy", "safetensors"])
        let directory = try temporaryDirectory("mlp-reference")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = runProcess(python, [repositoryRoot + "/Tests/python/mlp_reference.py", directory.path])
        try #require(result.status == 0, "mlp_reference.py failed:\n\(result.output)")
        let data = try Data(contentsOf: directory.appendingPathComponent("cases.json"))
        let cases = try JSONDecoder().decode(ReferenceCases.self, from: data).cases
        try #require(cases.count == 10)
        var seenActivations: Set<String> = []
        var seenModes: Set<MLPNormalizationMode> = []
        for reference in cases {
            let settings = MLPPolicy.Settings(
                file: reference.model,
                observation: [
                    .jointPositions(reference.positions_of), .jointVelocities(reference.velocities_of), .previousAction,
                    .phase(periodS: reference.period_s),
                ],
                actionJoints: reference.action_joints,
                actionMode: MLPPolicy.ActionMode(rawValue: reference.action_mode)!,
                ticksPerInference: reference.ticks_per_inference,
                activation: reference.activation.flatMap { MLPActivation(name: $0) },
                observationNormalization: normalization(reference.observation_normalization),
                actionNormalization: normalization(reference.action_normalization))
            let policy: MLPPolicy
            do {
                policy = try MLPPolicy(settings: settings, jointNames: reference.joints, baseDirectory: directory.path)
            } catch {
                Issue.record("\(reference.name): \(error)")
                continue
            }
            seenActivations.insert(policy.network.activations[0].rawValue)
            seenModes.insert(policy.observationNormalizationMode)
            #expect(policy.observationNormalizationMode == policy.actionNormalizationMode)
            #expect(policy.observationNormalizationMode != .identity, "\(reference.name)")

            let observation = PolicyObservation(jointNames: reference.joints)
            let command = PolicyCommand(jointCount: reference.joints.count)
            let untouched = reference.joints.firstIndex { !reference.action_joints.contains($0) }!
            var worst = 0.0
            var worst32 = 0.0
            for (k, tick) in reference.ticks.enumerated() {
                observation.timeNs = tick.time_ns
                for j in 0..<reference.joints.count {
                    observation.positionRad[j] = tick.q[j]
                    observation.velocityRadPerS[j] = tick.qd[j]
                }
                if k == 0 {
                    policy.reset(from: observation, into: command)
                    command.positionRad[untouched] = 42
                }
                command.computedForNs = observation.timeNs
                policy.compute(observation, into: command)
                let inferredAt = reference.ticks[k - k % reference.ticks_per_inference].time_ns
                #expect(command.computedForNs == inferredAt, "\(reference.name) tick \(k)")
                for (a, joint) in reference.action_joints.enumerated() {
                    let j = reference.joints.firstIndex(of: joint)!
                    worst = max(worst, abs(command.positionRad[j] - reference.expected[k][a]))
                    worst32 = max(worst32, abs(command.positionRad[j] - reference.expected_float32[k][a]))
                }
                #expect(command.positionRad[untouched] == 42, "an uncommanded joint was written")
            }
            print("mlp \(reference.name): |Sinew − numpy float64| ≤ \(worst), |Sinew − numpy float32| ≤ \(worst32)")
            #expect(worst <= 1e-6, "\(reference.name): Sinew and numpy differ by \(worst) rad")
            #expect(
                policy.inferenceCount == (reference.ticks.count + reference.ticks_per_inference - 1)
                    / reference.ticks_per_inference)
        }
        #expect(seenActivations == ["relu", "tanh", "elu", "gelu", "gelu_tanh"])
        #expect(seenModes == [.meanStd, .minMax])
    }
}

/// A small model in memory: 2 joints' positions and velocities and a phase in, 2 targets out.
private func smallModel(
    activation: MLPActivation = .tanh, inputs: Int = 6, outputs: Int = 2, extra: [SafeTensorsFile.TensorToWrite] = [],
    metadata: [String: String]? = nil, scale: Double = 0.5
) -> SafeTensorsFile {
    var random = TestRandom(seed: 7)
    let hidden = 8
    let tensors: [SafeTensorsFile.TensorToWrite] = [
        .init(
            name: "layers.0.weight", dtype: .f64, shape: [hidden, inputs],
            values: (0..<(hidden * inputs)).map { _ in random.uniform(-scale, scale) }),
        .init(
            name: "layers.0.bias", dtype: .f64, shape: [hidden],
            values: (0..<hidden).map { _ in random.uniform(-scale, scale) }),
        .init(
            name: "layers.2.weight", dtype: .f64, shape: [outputs, hidden],
            values: (0..<(hidden * outputs)).map { _ in random.uniform(-scale, scale) }),
    ]
    return try! SafeTensorsFile(
        bytes: SafeTensorsFile.encode(tensors + extra, metadata: metadata ?? ["activation": activation.rawValue]),
        file: "small.safetensors")
}

struct MLPPolicyTests {
    static let joints = ["j1", "j2", "j3"]

    static func settings(
        observation: [MLPPolicy.ObservationItem] = [
            .jointPositions(["j1", "j3"]), .jointVelocities(["j3", "j1"]), .phase(periodS: 0.5),
        ],
        ticksPerInference: Int = 1, mode: MLPPolicy.ActionMode = .absolute
    ) -> MLPPolicy.Settings {
        MLPPolicy.Settings(
            file: "small.safetensors", observation: observation, actionJoints: ["j3", "j1"], actionMode: mode,
            ticksPerInference: ticksPerInference)
    }

    static func observation(_ q: [Double], _ qd: [Double], timeNs: Int64) -> PolicyObservation {
        let o = PolicyObservation(jointNames: joints)
        for j in 0..<joints.count {
            o.positionRad[j] = q[j]
            o.velocityRadPerS[j] = qd[j]
        }
        o.timeNs = timeNs
        return o
    }

    /// The observation vector is gathered in the declared order from the named joints, the phase is sin and
    /// cos of 2π t / period, and the outputs land on the action joints (absolute; delta adds the measured
    /// position), checked against the network evaluated by hand.
    @Test func theLayoutGathersWhatItDeclares() throws {
        let model = smallModel()
        let network = try MLPNetwork.load(from: model)
        for mode in MLPPolicy.ActionMode.allCases {
            let policy = try MLPPolicy(settings: Self.settings(mode: mode), jointNames: Self.joints, model: model)
            #expect(policy.commands.map(\.joint) == ["j3", "j1"])
            let o = Self.observation([0.1, 0.2, 0.3], [-1, -2, -3], timeNs: 1_125_000_000)
            let command = PolicyCommand(jointCount: 3)
            policy.reset(from: o, into: command)
            policy.compute(o, into: command)
            let angle = 2 * Double.pi * 1.125 / 0.5
            let y = network.evaluate([0.1, 0.3, -3, -1, sin(angle), cos(angle)])
            let base = mode == .delta ? [0.3, 0.1] : [0, 0]
            #expect(abs(command.positionRad[2] - (base[0] + y[0])) < 1e-12)
            #expect(abs(command.positionRad[0] - (base[1] + y[1])) < 1e-12)
            #expect(command.positionRad[1] == 0.2, "j2 is not commanded and keeps the held pose")
        }
    }

    /// At a sub-rate the targets are held between inferences and the command keeps the time of the
    /// observation they answer; previous_action feeds the last action back (the activation pose first).
    @Test func aSubRatePolicyHoldsItsTargetsAndTheirTime() throws {
        let model = smallModel(inputs: 4)
        let policy = try MLPPolicy(
            settings: Self.settings(
                observation: [.jointPositions(["j1", "j2"]), .previousAction], ticksPerInference: 4),
            jointNames: Self.joints, model: model)
        let network = try MLPNetwork.load(from: model)
        let command = PolicyCommand(jointCount: 3)
        let start = Self.observation([0.5, -0.5, 0.25], [0, 0, 0], timeNs: 0)
        policy.reset(from: start, into: command)
        #expect(policy.lastAction == [0.25, 0.5])
        var previous = [0.25, 0.5]
        var held: [Double] = []
        for k in 0..<12 {
            let o = Self.observation([0.5 + 0.01 * Double(k), -0.5, 0.25], [0, 0, 0], timeNs: Int64(k) * 2_000_000)
            command.computedForNs = o.timeNs
            policy.compute(o, into: command)
            if k % 4 == 0 {
                let y = network.evaluate([o.positionRad[0], o.positionRad[1]] + previous)
                #expect(abs(command.positionRad[2] - y[0]) < 1e-12 && abs(command.positionRad[0] - y[1]) < 1e-12)
                previous = y
                held = [command.positionRad[2], command.positionRad[0]]
            }
            #expect([command.positionRad[2], command.positionRad[0]] == held)
            #expect(command.computedForNs == Int64(k - k % 4) * 2_000_000)
        }
        #expect(policy.inferenceCount == 3)
        #expect(try MLPPolicy.ticksPerInference(rateHz: 50, loopRateHz: 500) == 10)
        #expect(throws: MLPPolicyError.self) { try MLPPolicy.ticksPerInference(rateHz: 30, loopRateHz: 500) }
        #expect(throws: MLPPolicyError.self) { try MLPPolicy.ticksPerInference(rateHz: 600, loopRateHz: 500) }
    }

    /// An output that is not finite is not commanded: the last targets stay, the command ages, and it is
    /// counted.
    @Test func aNonFiniteOutputIsNotCommanded() throws {
        let policy = try MLPPolicy(
            settings: Self.settings(observation: [.jointPositions(["j1", "j2", "j3", "j1", "j2", "j3"])]),
            jointNames: Self.joints, model: smallModel())
        let command = PolicyCommand(jointCount: 3)
        let good = Self.observation([0.1, 0.2, 0.3], [0, 0, 0], timeNs: 0)
        policy.reset(from: good, into: command)
        policy.compute(good, into: command)
        let targets = policy.currentTargetsRad
        let bad = Self.observation([.nan, 0.2, 0.3], [0, 0, 0], timeNs: 2_000_000)
        command.computedForNs = bad.timeNs
        policy.compute(bad, into: command)
        #expect(policy.currentTargetsRad == targets)
        #expect(command.positionRad[2] == targets[0] && command.positionRad[0] == targets[1])
        #expect(command.computedForNs == 0)
        #expect(policy.nonFiniteOutputCount == 1)
    }

    /// 10,000 decisions of the mlp policy, for each activation, every tick and every 3 ticks, with
    /// normalisation, a phase and the previous action: no heap allocation.
    @Test func theMLPPolicyDecidesWithoutAllocating() throws {
        for activation in MLPActivation.allCases {
            for ticks in [1, 3] {
                let model = smallModel(
                    activation: activation, inputs: 7,
                    extra: [
                        .init(name: "observation.state.mean", shape: [7], values: .init(repeating: 0.1, count: 7)),
                        .init(name: "observation.state.std", shape: [7], values: .init(repeating: 2, count: 7)),
                        .init(name: "action.min", shape: [2], values: [-1, -2]),
                        .init(name: "action.max", shape: [2], values: [1, 2]),
                    ])
                let policy = try MLPPolicy(
                    settings: Self.settings(
                        observation: [
                            .jointPositions(["j1", "j2"]), .jointVelocities(["j3"]), .previousAction,
                            .phase(periodS: 1),
                        ],
                        ticksPerInference: ticks, mode: .delta),
                    jointNames: Self.joints, model: model)
                #expect(policy.observationNormalizationMode == .meanStd && policy.actionNormalizationMode == .minMax)
                let observation = Self.observation([0.1, 0.2, 0.3], [0.5, 0.5, 0.5], timeNs: 0)
                let command = PolicyCommand(jointCount: 3)
                policy.reset(from: observation, into: command)
                for k in 0..<100 {
                    observation.timeNs = Int64(k) * 2_000_000
                    policy.compute(observation, into: command)
                }
                let before = sinew_thread_allocations()
                for k in 0..<10_000 {
                    observation.timeNs = Int64(k) * 2_000_000
                    observation.positionRad[0] = 0.1 + 1e-5 * Double(k % 100)
                    command.computedForNs = observation.timeNs
                    policy.compute(observation, into: command)
                }
                let allocations = sinew_thread_allocations() - before
                #expect(allocations == 0, "\(activation) every \(ticks) ticks: \(allocations) allocations")
                #expect(policy.nonFiniteOutputCount == 0)
            }
        }
    }

    /// Settings and files that do not fit are refused with what is wrong: an unknown joint, a layout of the
    /// wrong width, a missing activation, statistics of the wrong length, both pairs with no mode named, a
    /// layer prefix that matches nothing, a missing model file.
    @Test func misfitsAreRefusedWithTheirReason() {
        func message(
            _ settings: MLPPolicy.Settings, _ model: SafeTensorsFile = smallModel()
        ) -> String {
            do {
                _ = try MLPPolicy(settings: settings, jointNames: Self.joints, model: model)
                return "accepted"
            } catch {
                return error.description
            }
        }
        var unknownJoint = Self.settings()
        unknownJoint.actionJoints = ["j3", "elbow"]
        #expect(message(unknownJoint).contains("mlp action: no joint \"elbow\" (joints: j1, j2, j3)"))
        #expect(
            message(Self.settings(observation: [.jointPositions(["j1"])])).contains(
                "small.safetensors: the network takes 6 inputs but the observation layout gives 1 (joint_positions 1)"))
        #expect(
            message(Self.settings(), smallModel(metadata: [:])).contains(
                "no activation: the file's __metadata__ has no \"activation\""))
        #expect(
            message(Self.settings(), smallModel(metadata: ["activation": "swish"])).contains(
                "__metadata__ \"activation\" is \"swish\"; known: identity, relu, tanh, elu, gelu, gelu_tanh"))
        let shortStats = smallModel(extra: [
            .init(name: "action.mean", shape: [3], values: [0, 0, 0]),
            .init(name: "action.std", shape: [3], values: [1, 1, 1]),
        ])
        #expect(
            message(Self.settings(), shortStats).contains(
                "action statistics \"action\" have 3 and 3 entries; the action has 2"))
        let both = smallModel(extra: [
            .init(name: "action.mean", shape: [2], values: [0, 0]),
            .init(name: "action.std", shape: [2], values: [1, 1]),
            .init(name: "action.min", shape: [2], values: [0, 0]),
            .init(name: "action.max", shape: [2], values: [1, 1]),
        ])
        #expect(message(Self.settings(), both).contains("hold both mean/std and min/max: name the mode"))
        var prefixed = Self.settings()
        prefixed.layerPrefix = "actor."
        #expect(message(prefixed).contains("no layer weights named \"actor.<k>.weight\" (the file has layers.0.weight"))
        var delta = Self.settings()
        delta.actionNormalization.mode = .minMax
        #expect(message(delta).contains("action normalisation MIN_MAX needs min and max of \"action\""))
        do {
            _ = try MLPPolicy(settings: Self.settings(), jointNames: Self.joints, baseDirectory: "/nonexistent")
            Issue.record("a missing model file was accepted")
        } catch {
            #expect(error.description == "/nonexistent/small.safetensors: no such file")
        }
    }

    /// The benchmark's public entry points run (the figures themselves are printed by `make bench-mlp`).
    @Test func theBenchmarkMeasures() throws {
        let (p50, p99) = MLPBenchmark.measure(calls: 200)
        #expect(p50 > 0 && p99 >= p50)
        let policy = try MLPPolicy(
            settings: MLPBenchmark.referenceSettings(), jointNames: MLPBenchmark.referenceJointNames,
            model: MLPBenchmark.referenceModel())
        let decide = MLPBenchmark.measureDecide(
            policy: policy, jointNames: MLPBenchmark.referenceJointNames, calls: 200)
        #expect(decide.calls == 200 && decide.p99Us >= decide.p50Us)
    }
}

/// The task's observation as network input, and the slew limit on the command.
struct MLPEnvironmentAndSlewTests {
    /// `environment_state: N` feeds the first N entries of the observation's environment state (zeros where it has
    /// fewer), in the declared place of the input vector.
    @Test func environmentStateIsAnInput() throws {
        let model = smallModel(inputs: 5)
        let network = try MLPNetwork.load(from: model)
        let settings = MLPPolicy.Settings(
            file: "small.safetensors", observation: [.jointPositions(["j1", "j3"]), .environmentState(count: 3)],
            actionJoints: ["j3", "j1"])
        let policy = try MLPPolicy(settings: settings, jointNames: MLPPolicyTests.joints, model: model)
        let o = MLPPolicyTests.observation([0.1, 0.2, 0.3], [0, 0, 0], timeNs: 0)
        let command = PolicyCommand(jointCount: 3)
        policy.reset(from: o, into: command)
        [0.25, -0.5].withUnsafeBufferPointer { o.setEnvironmentState($0) }
        policy.compute(o, into: command)
        let y = network.evaluate([0.1, 0.3, 0.25, -0.5, 0])
        #expect(abs(command.positionRad[2] - y[0]) < 1e-12 && abs(command.positionRad[0] - y[1]) < 1e-12)
        let copy = PolicyObservation(jointNames: MLPPolicyTests.joints)
        copy.copy(from: o)
        #expect(copy.environmentStateCount == 2 && copy.environmentState[1] == -0.5)
        do {
            _ = try MLPPolicy(
                settings: MLPPolicy.Settings(
                    file: "small.safetensors", observation: [.environmentState(count: 0)], actionJoints: ["j1"]),
                jointNames: MLPPolicyTests.joints, model: model)
            Issue.record("a count of 0 was accepted")
        } catch {
            #expect(error.description.contains("count is 0"))
        }
    }

    /// With `max_speed_rad_s` the command moves toward the network's targets at that speed and no faster, from the
    /// pose the policy was activated in, and settles on them; without allocating.
    @Test func slewLimitSpreadsTheStep() throws {
        // The joints stand still, so the network's targets do too.
        let model = smallModel(inputs: 4, scale: 2)
        let layout: [MLPPolicy.ObservationItem] = [.jointPositions(["j1", "j3"]), .jointVelocities(["j3", "j1"])]
        var settings = MLPPolicyTests.settings(observation: layout, ticksPerInference: 5)
        settings.maxSpeedRadPerS = 0.5
        let policy = try MLPPolicy(settings: settings, jointNames: MLPPolicyTests.joints, model: model)
        let free = try MLPPolicy(
            settings: MLPPolicyTests.settings(observation: layout, ticksPerInference: 5),
            jointNames: MLPPolicyTests.joints, model: model)
        let o = MLPPolicyTests.observation([0.1, 0.2, 0.3], [0, 0, 0], timeNs: 0)
        let limited = PolicyCommand(jointCount: 3)
        let unlimited = PolicyCommand(jointCount: 3)
        policy.reset(from: o, into: limited)
        free.reset(from: o, into: unlimited)
        var previous = [limited.positionRad[0], limited.positionRad[2]]
        var largestStep = 0.0
        for k in 1...3000 {
            o.timeNs = Int64(k) * 2_000_000
            limited.computedForNs = o.timeNs
            policy.compute(o, into: limited)
            free.compute(o, into: unlimited)
            let now = [limited.positionRad[0], limited.positionRad[2]]
            largestStep = max(largestStep, abs(now[0] - previous[0]), abs(now[1] - previous[1]))
            previous = now
        }
        let before = sinew_thread_allocations()
        for k in 3001...6000 {
            o.timeNs = Int64(k) * 2_000_000
            limited.computedForNs = o.timeNs
            policy.compute(o, into: limited)
        }
        #expect(sinew_thread_allocations() - before == 0)
        #expect(largestStep <= 0.5 * 0.002 + 1e-15, "\(largestStep)")
        #expect(abs(limited.positionRad[0] - unlimited.positionRad[0]) < 1e-9, "settles on the targets")
        #expect(abs(limited.positionRad[2] - unlimited.positionRad[2]) < 1e-9)
    }
}
