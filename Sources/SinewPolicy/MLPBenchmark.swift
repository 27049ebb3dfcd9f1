import Foundation

/// The `mlp` policy's cost, per call, through the Swift API (for `sinew bench policy` and
/// Benchmarks/MLPBench): percentiles of the wall time of single calls, each timed on its own with the
/// monotonic clock (the clock's own cost, some tens of ns, is included).
public enum MLPBenchmark {
    /// Percentiles of single calls, µs.
    public struct Result: Sendable, Equatable {
        public var calls: Int
        public var p50Us: Double
        public var p99Us: Double
        public var maxUs: Double
    }

    /// The reference policy's joints: 6.
    public static let referenceJointNames = (1...6).map { "joint\($0)" }

    /// The reference model (issue 11's benchmark): 18 inputs (6 joint positions, 6 velocities, the 6 previous
    /// actions) → 256 → 256 → 6, hidden activation `activation`, output identity, F32 weights and biases
    /// drawn uniformly in ±1/√inputs (PyTorch's default for nn.Linear) from `seed`.
    public static func referenceModel(activation: MLPActivation = .relu, seed: UInt64 = 1) -> SafeTensorsFile {
        var random = SplitMix64(seed: seed)
        var tensors: [SafeTensorsFile.TensorToWrite] = []
        let sizes = [18, 256, 256, 6]
        for k in 0..<(sizes.count - 1) {
            let (inputs, outputs) = (sizes[k], sizes[k + 1])
            let bound = 1 / Double(inputs).squareRoot()
            let weight = (0..<(inputs * outputs)).map { _ in random.uniform(-bound...bound) }
            let bias = (0..<outputs).map { _ in random.uniform(-bound...bound) }
            tensors.append(.init(name: "layers.\(2 * k).weight", shape: [outputs, inputs], values: weight))
            tensors.append(.init(name: "layers.\(2 * k).bias", shape: [outputs], values: bias))
        }
        let bytes = SafeTensorsFile.encode(tensors, metadata: ["activation": activation.rawValue])
        // The encoder's output is well formed by construction.
        return try! SafeTensorsFile(bytes: bytes, file: "reference-mlp.safetensors")
    }

    /// Settings for the reference model: positions, velocities and the previous action of the 6 joints in,
    /// absolute position targets of the 6 out, every tick.
    public static func referenceSettings(file: String = "reference-mlp.safetensors") -> MLPPolicy.Settings {
        MLPPolicy.Settings(
            file: file,
            observation: [
                .jointPositions(referenceJointNames), .jointVelocities(referenceJointNames), .previousAction,
            ],
            actionJoints: referenceJointNames)
    }

    /// p50 and p99 of one inference of the reference network (relu) over `calls` calls, µs: the figure
    /// `sinew bench policy` reports as `mlp_p99_us`.
    public static func measure(calls: Int = 20_000, activation: MLPActivation = .relu) -> (p50Us: Double, p99Us: Double)
    {
        // The reference model is valid by construction.
        let network = try! MLPNetwork.load(from: referenceModel(activation: activation))
        let result = measureInference(network: network, calls: calls)
        return (result.p50Us, result.p99Us)
    }

    /// One network evaluation per call, on inputs cycled from 256 drawn uniformly in [−1, 1].
    public static func measureInference(
        network: MLPNetwork, calls: Int = 20_000, warmupCalls: Int = 2_000, seed: UInt64 = 2
    ) -> Result {
        let variants = 256
        let inputs = UnsafeMutableBufferPointer<Double>.allocate(capacity: variants * network.inputCount)
        let output = UnsafeMutableBufferPointer<Double>.allocate(capacity: network.outputCount)
        defer {
            inputs.deallocate()
            output.deallocate()
        }
        var random = SplitMix64(seed: seed)
        for i in 0..<inputs.count { inputs[i] = random.uniform(-1...1) }
        output.initialize(repeating: 0)
        let base = inputs.baseAddress!
        return time(calls: calls, warmupCalls: warmupCalls) { k in
            network.evaluate(base + (k % variants) * network.inputCount, into: output.baseAddress!)
        }
    }

    /// One decision of `policy` per call (gathering the observation, normalising, the network, the targets):
    /// the decide stage's cost. Observations cycle through 256 with positions and velocities in [−1, 1].
    public static func measureDecide(
        policy: MLPPolicy, jointNames: [String], calls: Int = 20_000, warmupCalls: Int = 2_000, seed: UInt64 = 3
    ) -> Result {
        var random = SplitMix64(seed: seed)
        let observations = (0..<256).map { _ in
            let o = PolicyObservation(jointNames: jointNames)
            for j in 0..<jointNames.count {
                o.positionRad[j] = random.uniform(-1...1)
                o.velocityRadPerS[j] = random.uniform(-1...1)
            }
            return o
        }
        let command = PolicyCommand(jointCount: jointNames.count)
        policy.reset(from: observations[0], into: command)
        return observations.withUnsafeBufferPointer { list in
            time(calls: calls, warmupCalls: warmupCalls) { k in
                let observation = list[k % list.count]
                observation.timeNs = Int64(k) * 1_000_000
                command.computedForNs = observation.timeNs
                policy.compute(observation, into: command)
            }
        }
    }

    private static func time(calls: Int, warmupCalls: Int, _ body: (Int) -> Void) -> Result {
        let count = max(1, calls)
        for k in 0..<warmupCalls { body(k) }
        var samples = [Double](repeating: 0, count: count)
        var start = timespec()
        var end = timespec()
        for k in 0..<count {
            clock_gettime(CLOCK_MONOTONIC, &start)
            body(k)
            clock_gettime(CLOCK_MONOTONIC, &end)
            samples[k] = Double(end.tv_sec - start.tv_sec) * 1e6 + Double(end.tv_nsec - start.tv_nsec) * 1e-3
        }
        samples.sort()
        func percentile(_ p: Double) -> Double { samples[min(count - 1, Int((p * Double(count)).rounded(.down)))] }
        return Result(calls: count, p50Us: percentile(0.5), p99Us: percentile(0.99), maxUs: samples[count - 1])
    }
}
