// The `mlp` policy's latency through the Swift API, as one JSON object (run in release):
//   swift run -c release sinew-bench-mlp [--model FILE.safetensors] [--calls N]
// Without --model it times MLPBenchmark's reference model (18 → 256 → 256 → 6, relu). With one (the file
// Benchmarks/mlp/compare.py writes), that file's network, its activation from the file's metadata; its input
// count must be 18 (6 joints: positions, velocities, previous actions) for the decide-stage figure.
import Foundation
import SinewPolicy

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("sinew-bench-mlp: \(message)\n".utf8))
    exit(2)
}

var modelPath: String?
var calls = 20_000
var arguments = Array(CommandLine.arguments.dropFirst())
while !arguments.isEmpty {
    let argument = arguments.removeFirst()
    switch argument {
    case "--model":
        guard !arguments.isEmpty else { fail("--model needs a file") }
        modelPath = arguments.removeFirst()
    case "--calls":
        guard let n = arguments.first.flatMap({ Int($0) }), (1...100_000_000).contains(n) else {
            fail("--calls needs a count between 1 and 100000000")
        }
        arguments.removeFirst()
        calls = n
    case "--help":
        print("usage: sinew-bench-mlp [--model FILE.safetensors] [--calls N]")
        exit(0)
    default:
        fail("unknown argument \(argument) (see --help)")
    }
}

let model: SafeTensorsFile
do {
    model =
        try modelPath.map { path throws(SafeTensorsError) in try SafeTensorsFile.load(path: path) }
        ?? MLPBenchmark.referenceModel()
    let network = try MLPNetwork.load(from: model)
    let inference = MLPBenchmark.measureInference(network: network, calls: calls)
    let policy = try MLPPolicy(
        settings: MLPBenchmark.referenceSettings(file: model.file), jointNames: MLPBenchmark.referenceJointNames,
        model: model)
    let decide = MLPBenchmark.measureDecide(
        policy: policy, jointNames: MLPBenchmark.referenceJointNames, calls: calls)
    func us(_ x: Double) -> String { String(format: "%.3f", x) }
    print(
        """
        {"network": "\(network.summary)", "calls": \(inference.calls), \
        "inference_p50_us": \(us(inference.p50Us)), "inference_p99_us": \(us(inference.p99Us)), \
        "inference_max_us": \(us(inference.maxUs)), \
        "decide_p50_us": \(us(decide.p50Us)), "decide_p99_us": \(us(decide.p99Us)), \
        "decide_max_us": \(us(decide.maxUs))}
        """)
} catch let error as SafeTensorsError {
    fail(error.description)
} catch let error as MLPPolicyError {
    fail(error.description)
} catch {
    fail("\(error)")
}
