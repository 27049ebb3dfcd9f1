import CPolicyNetwork

/// An activation after a layer, by the name a model file's metadata or the settings give it.
public enum MLPActivation: String, Sendable, CaseIterable {
    /// None (a linear layer): the usual output layer.
    case identity
    /// max(x, 0).
    case relu
    case tanh
    /// x > 0 ? x : e^x − 1 (alpha 1, PyTorch's and rsl_rl's default).
    case elu
    /// The exact GELU, x/2 · (1 + erf(x/√2)) (PyTorch `nn.GELU()`).
    case gelu
    /// GELU's tanh approximation, x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))) (PyTorch
    /// `nn.GELU(approximate="tanh")`).
    case geluTanh = "gelu_tanh"

    /// Reads a name as files spell it: the raw values, any case, and `linear`/`none` for identity.
    public init?(name: String) {
        let lowered = name.lowercased()
        switch lowered {
        case "linear", "none": self = .identity
        default: self.init(rawValue: lowered)
        }
    }

    var cValue: Int32 {
        switch self {
        case .identity: Int32(PN_ACTIVATION_IDENTITY)
        case .relu: Int32(PN_ACTIVATION_RELU)
        case .tanh: Int32(PN_ACTIVATION_TANH)
        case .elu: Int32(PN_ACTIVATION_ELU)
        case .gelu: Int32(PN_ACTIVATION_GELU)
        case .geluTanh: Int32(PN_ACTIVATION_GELU_TANH)
        }
    }

    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Why an `mlp` policy or its network could not be built: the file (model or statistics) when one is at
/// fault, and what is wrong, naming the tensor, the setting or the joint.
public struct MLPPolicyError: Error, CustomStringConvertible, Equatable {
    public var file: String?
    public var message: String

    public init(file: String? = nil, _ message: String) {
        self.file = file
        self.message = message
    }

    public init(_ error: SafeTensorsError) {
        file = error.file
        message = error.tensor.map { "tensor \"\($0)\": " + error.message } ?? error.message
    }

    public var description: String { file.map { "\($0): \(message)" } ?? message }
}

/// A feed-forward network: fully connected layers, each followed by its activation, evaluated in float64 by
/// the C++/Eigen shim (CPolicyNetwork) with no allocation per evaluation. Not thread-safe: one evaluation
/// at a time (the workspace is shared).
public final class MLPNetwork {
    /// One fully connected layer: y = activation(W x + b).
    public struct Layer: Sendable, Equatable {
        public var inputCount: Int
        public var outputCount: Int
        /// W, `outputCount` × `inputCount`, row-major: PyTorch's `nn.Linear.weight` as stored ([out, in]).
        public var weight: [Double]
        /// b, `outputCount` values; nil for a layer without bias.
        public var bias: [Double]?
        public var activation: MLPActivation

        public init(inputCount: Int, outputCount: Int, weight: [Double], bias: [Double]?, activation: MLPActivation) {
            self.inputCount = inputCount
            self.outputCount = outputCount
            self.weight = weight
            self.bias = bias
            self.activation = activation
        }
    }

    /// Widths: the input, each hidden layer, the output.
    public let layerSizes: [Int]
    /// Each layer's activation, input side first.
    public let activations: [MLPActivation]
    private let model: OpaquePointer
    private let workspace: OpaquePointer

    public var inputCount: Int { layerSizes[0] }
    public var outputCount: Int { layerSizes[layerSizes.count - 1] }

    /// Builds a network from its layers (copied); refuses layers that do not chain or hold non-finite values.
    public init(layers: [Layer]) throws(MLPPolicyError) {
        guard !layers.isEmpty else { throw MLPPolicyError("a network needs at least one layer") }
        for (k, layer) in layers.enumerated() {
            guard layer.inputCount > 0, layer.outputCount > 0, layer.inputCount <= Int32.max,
                layer.outputCount <= Int32.max, layer.weight.count == layer.inputCount * layer.outputCount,
                layer.bias == nil || layer.bias?.count == layer.outputCount
            else {
                throw MLPPolicyError(
                    "layer \(k): \(layer.outputCount)×\(layer.inputCount) needs that many weights and "
                        + "\(layer.outputCount) biases; got \(layer.weight.count) and \(layer.bias?.count ?? 0)")
            }
            if k > 0 && layer.inputCount != layers[k - 1].outputCount {
                throw MLPPolicyError(
                    "layer \(k) takes \(layer.inputCount) inputs but layer \(k - 1) gives \(layers[k - 1].outputCount)")
            }
            if let bad = layer.weight.firstIndex(where: { !$0.isFinite }) {
                throw MLPPolicyError("layer \(k): weight \(bad) is \(layer.weight[bad])")
            }
            if let bias = layer.bias, let bad = bias.firstIndex(where: { !$0.isFinite }) {
                throw MLPPolicyError("layer \(k): bias \(bad) is \(bias[bad])")
            }
        }
        let created: OpaquePointer? = Self.withDescriptions(layers) { pn_model_create($0, Int32(layers.count)) }
        guard let created else { throw MLPPolicyError("the network could not be built (out of memory?)") }
        guard let space = pn_workspace_create(created) else {
            pn_model_destroy(created)
            throw MLPPolicyError("the network's workspace could not be allocated")
        }
        model = created
        workspace = space
        layerSizes = [layers[0].inputCount] + layers.map(\.outputCount)
        activations = layers.map(\.activation)
    }

    deinit {
        pn_workspace_destroy(workspace)
        pn_model_destroy(model)
    }

    private static func withDescriptions<R>(
        _ layers: [Layer], _ body: (UnsafePointer<pn_layer_desc>) -> R, from k: Int = 0,
        _ built: [pn_layer_desc] = []
    ) -> R {
        // Each layer's arrays are pinned for the duration of the call, one nesting level per layer.
        guard k < layers.count else { return built.withUnsafeBufferPointer { body($0.baseAddress!) } }
        let layer = layers[k]
        return layer.weight.withUnsafeBufferPointer { weight in
            func next(_ bias: UnsafePointer<Double>?) -> R {
                let description = pn_layer_desc(
                    input_count: Int32(layer.inputCount), output_count: Int32(layer.outputCount),
                    weight: weight.baseAddress, bias: bias, activation: layer.activation.cValue, elu_alpha: 1)
                return withDescriptions(layers, body, from: k + 1, built + [description])
            }
            guard let bias = layer.bias else { return next(nil) }
            return bias.withUnsafeBufferPointer { next($0.baseAddress) }
        }
    }

    /// One forward pass: ``inputCount`` values from `input`, ``outputCount`` into `output` (not aliasing
    /// `input`). Allocates nothing: real-time safe.
    @inline(__always)
    public func evaluate(_ input: UnsafePointer<Double>, into output: UnsafeMutablePointer<Double>) {
        pn_evaluate(model, workspace, input, output)
    }

    /// One forward pass on arrays (allocates: for tests and tools, not for the tick).
    public func evaluate(_ input: [Double]) -> [Double] {
        precondition(input.count == inputCount, "\(inputCount) inputs expected")
        var output = [Double](repeating: 0, count: outputCount)
        input.withUnsafeBufferPointer { i in
            output.withUnsafeMutableBufferPointer { o in evaluate(i.baseAddress!, into: o.baseAddress!) }
        }
        return output
    }

    /// The metadata key naming the hidden layers' activation, and the output layer's.
    public static let activationMetadataKey = "activation"
    public static let outputActivationMetadataKey = "output_activation"

    /// The network a safetensors file holds under `layerPrefix`, by the naming of a PyTorch `nn.Sequential`'s
    /// `state_dict`: `<prefix><k>.weight` ([out, in]) and `<prefix><k>.bias` ([out], optional) for integers
    /// k, layers in increasing k (gaps are the activation modules between them: `layers.0`, `layers.2`, …).
    /// Other tensors (normalisation statistics) are ignored.
    ///
    /// The hidden layers' activation is `activation`, else the file's `__metadata__["activation"]`; the output
    /// layer's is `outputActivation`, else `__metadata__["output_activation"]`, else identity.
    public static func load(
        from file: SafeTensorsFile, layerPrefix: String = "layers.", activation: MLPActivation? = nil,
        outputActivation: MLPActivation? = nil
    ) throws(MLPPolicyError) -> MLPNetwork {
        var weights: [Int: String] = [:]
        var biases: [Int: String] = [:]
        for tensor in file.tensors where tensor.name.hasPrefix(layerPrefix) {
            let rest = tensor.name.dropFirst(layerPrefix.count)
            guard let dot = rest.lastIndex(of: ".") else { continue }
            let number = rest[..<dot]
            let field = rest[rest.index(after: dot)...]
            guard !number.isEmpty, number.count <= 9, number.allSatisfy({ $0.isASCII && $0.isNumber }),
                let k = Int(number)
            else { continue }
            if field == "weight" { weights[k] = tensor.name } else if field == "bias" { biases[k] = tensor.name }
        }
        guard !weights.isEmpty else {
            let names = file.tensors.prefix(8).map(\.name).joined(separator: ", ")
            let has = names.isEmpty ? "no tensors" : names + (file.tensors.count > 8 ? ", …" : "")
            throw MLPPolicyError(
                file: file.file,
                "no layer weights named \"\(layerPrefix)<k>.weight\" (the file has \(has)); set the layer prefix to "
                    + "the one the file uses")
        }
        if let orphan = biases.keys.sorted().first(where: { weights[$0] == nil }) {
            throw MLPPolicyError(
                file: file.file, "tensor \"\(biases[orphan]!)\" has no \"\(layerPrefix)\(orphan).weight\" beside it")
        }
        let hidden = try resolve(activation, key: activationMetadataKey, in: file, required: weights.count > 1)
        let output =
            try resolve(outputActivation, key: outputActivationMetadataKey, in: file, required: false) ?? .identity
        var layers: [Layer] = []
        let order = weights.keys.sorted()
        for (position, k) in order.enumerated() {
            let weightName = weights[k]!
            let weightTensor = file.tensor(weightName)!
            guard weightTensor.shape.count == 2, weightTensor.shape[0] > 0, weightTensor.shape[1] > 0 else {
                throw MLPPolicyError(
                    file: file.file, "tensor \"\(weightName)\" has shape \(weightTensor.shape); a weight is [out, in]")
            }
            let (outputs, inputs) = (weightTensor.shape[0], weightTensor.shape[1])
            if let previous = layers.last, previous.outputCount != inputs {
                throw MLPPolicyError(
                    file: file.file,
                    "tensor \"\(weightName)\" takes \(inputs) inputs but the layer before gives \(previous.outputCount)"
                )
            }
            var bias: [Double]?
            if let biasName = biases[k] {
                let biasTensor = file.tensor(biasName)!
                guard biasTensor.shape == [outputs] else {
                    throw MLPPolicyError(
                        file: file.file,
                        "tensor \"\(biasName)\" has shape \(biasTensor.shape); it should be [\(outputs)]")
                }
                bias = try values(biasName, in: file)
            }
            let isLast = position == order.count - 1
            layers.append(
                Layer(
                    inputCount: inputs, outputCount: outputs, weight: try values(weightName, in: file), bias: bias,
                    activation: isLast ? output : hidden ?? .identity))
        }
        do {
            return try MLPNetwork(layers: layers)
        } catch {
            throw MLPPolicyError(file: file.file, error.message)
        }
    }

    /// A tensor's values, refused when one is not finite (a diverged training run).
    static func values(_ name: String, in file: SafeTensorsFile) throws(MLPPolicyError) -> [Double] {
        let values: [Double]
        do {
            values = try file.values(name)
        } catch {
            throw MLPPolicyError(error)
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw MLPPolicyError(file: file.file, "tensor \"\(name)\": element \(bad) is \(values[bad])")
        }
        return values
    }

    private static func resolve(
        _ given: MLPActivation?, key: String, in file: SafeTensorsFile, required: Bool
    ) throws(MLPPolicyError) -> MLPActivation? {
        if let given { return given }
        guard let name = file.metadata[key] else {
            guard required else { return nil }
            throw MLPPolicyError(
                file: file.file,
                "no activation: the file's __metadata__ has no \"\(key)\" and the settings name none "
                    + "(\(MLPActivation.names))")
        }
        guard let activation = MLPActivation(name: name) else {
            throw MLPPolicyError(
                file: file.file, "__metadata__ \"\(key)\" is \"\(name)\"; known: \(MLPActivation.names)")
        }
        return activation
    }

    /// "18 → 256 → 256 → 6 (relu; output identity)".
    public var summary: String {
        let widths = layerSizes.map(String.init).joined(separator: " → ")
        let hidden = activations.count > 1 ? activations[0].rawValue + "; " : ""
        return "\(widths) (\(hidden)output \(activations[activations.count - 1].rawValue))"
    }
}
