import Foundation

/// A feed-forward network read from a `.safetensors` file, evaluated inside the tick (robot.yaml
/// `policy: {type: mlp}`): the small policies of RL locomotion and manipulation and of behaviour cloning.
///
/// Each inference: the observation vector is gathered in the order ``Settings/observation`` declares, normalised
/// (``MLPNormalization``), passed through the network (``MLPNetwork``, float64), and its output unnormalised
/// into the action vector, one entry per ``Settings/actionJoints`` joint (rad): an absolute position target, or
/// a delta added to the joint's position measured at that tick (``ActionMode``). The targets go into the
/// command's `positionRad`; between inferences (``Settings/ticksPerInference`` above 1) the last targets are
/// held and the command keeps the time of the observation they were computed for, so the watchdog's
/// `watchdog_ms` must exceed the inference period. An output that is not finite (NaN, ±inf) is not
/// commanded: the last targets are held, the command ages, and ``nonFiniteOutputCount`` counts it; if it
/// persists, the watchdog brings the robot to its safe state.
///
/// Everything is allocated when the policy is built; ``compute(_:into:)`` allocates nothing.
///
/// The robot.yaml shape proposed for it (keys map one to one onto ``Settings``):
///
/// ```yaml
/// policy:
///   type: mlp
///   file: policies/reach.safetensors     # relative to robot.yaml
///   layer_prefix: "layers."               # default; `actor.` for an rsl_rl ActorCritic
///   activation: elu                       # default: the file's __metadata__ "activation"
///   output_activation: identity           # default: __metadata__ "output_activation", else identity
///   rate_hz: 50                           # default: every tick; must divide the loop rate
///   observation:                          # in the order the network was trained with
///     - joint_positions: [shoulder_pan, shoulder_lift, elbow_flex]
///     - joint_velocities: [shoulder_pan, shoulder_lift, elbow_flex]
///     - previous_action                   # or previous_network_output
///     - phase: {period_s: 1.2}            # sin, cos of 2π t / period
///   action:
///     joints: [shoulder_pan, shoulder_lift, elbow_flex]
///     mode: absolute                      # or delta
///   normalization:                        # each side optional
///     observation: {mode: MEAN_STD, feature: observation.state, stats_file: stats.safetensors}
///     action: {mode: MEAN_STD, feature: action, mean: [0, 0, 0], std: [0.5, 0.5, 0.5]}
/// ```
public final class MLPPolicy: Policy {
    public let typeName = "mlp"
    public let commands: [PolicyJointCommand]
    public let notices: [String]

    /// One item of the observation vector, in the units the loop measures.
    public enum ObservationItem: Sendable, Equatable {
        /// Measured positions of these joints (rad), one entry each.
        case jointPositions([String])
        /// Measured velocities (rad/s).
        case jointVelocities([String])
        /// Measured efforts (N·m).
        case jointEfforts([String])
        /// The action vector of the last inference (one entry per action joint, after unnormalisation: rad,
        /// absolute or delta as ``ActionMode`` says). At activation: the measured positions of the action
        /// joints for absolute actions, zeros for deltas.
        case previousAction
        /// The network's last raw output (before unnormalisation: what RL policies trained in simulation call
        /// the last action). Zeros at activation.
        case previousNetworkOutput
        /// Two entries, sin and cos of 2π t / `periodS`, t being the observation's time since activation (s).
        case phase(periodS: Double)
        /// The first `count` entries of ``PolicyObservation/environmentState`` (a simulated task's observation,
        /// LeRobot's `observation.environment_state`: a reach target in m, root frame); zeros where it has fewer.
        case environmentState(count: Int)

        func count(actionCount: Int) -> Int {
            switch self {
            case .jointPositions(let names), .jointVelocities(let names), .jointEfforts(let names): names.count
            case .previousAction, .previousNetworkOutput: actionCount
            case .phase: 2
            case .environmentState(let count): count
            }
        }

        var name: String {
            switch self {
            case .jointPositions: "joint_positions"
            case .jointVelocities: "joint_velocities"
            case .jointEfforts: "joint_efforts"
            case .previousAction: "previous_action"
            case .previousNetworkOutput: "previous_network_output"
            case .phase: "phase"
            case .environmentState: "environment_state"
            }
        }
    }

    /// What an action entry is.
    public enum ActionMode: String, Sendable, Equatable, CaseIterable {
        /// The joint's position target (rad).
        case absolute
        /// Added to the joint's position measured at the inference's tick (rad).
        case delta
    }

    /// Everything robot.yaml says about the policy.
    public struct Settings: Sendable, Equatable {
        /// The model file (`.safetensors`); relative paths are from the policy's base directory.
        public var file: String
        public var observation: [ObservationItem]
        /// The joints the network's outputs command, in output order.
        public var actionJoints: [String]
        public var actionMode: ActionMode
        /// Inference every this many ticks (1: every tick), the targets held between.
        public var ticksPerInference: Int
        /// The hidden layers' activation; nil: the file's `__metadata__["activation"]`.
        public var activation: MLPActivation?
        /// The output layer's; nil: `__metadata__["output_activation"]`, else identity.
        public var outputActivation: MLPActivation?
        /// Layers are `<layerPrefix><k>.weight` / `.bias`
        /// (see ``MLPNetwork/load(from:layerPrefix:activation:outputActivation:)``).
        public var layerPrefix: String
        public var observationNormalization: MLPNormalization
        public var actionNormalization: MLPNormalization
        /// The fastest the command may move toward the network's targets, rad/s per joint (a slew limit); nil: the
        /// targets are commanded as they come. A network trained on demonstrations answers with a small error
        /// wherever it is, and a 500 Hz loop turns every such error into a step the servos jump at (on the
        /// SO-101 a 0.06 rad step saturates a servo at stall torque, the effort limit); the limit spreads it out.
        public var maxSpeedRadPerS: Double?

        /// - Parameters:
        ///   - file: the `.safetensors` model file.
        ///   - observation: the observation vector's items, in the order the network expects them.
        ///   - actionJoints: the joints commanded, one per network output, in output order.
        ///   - actionMode: absolute position targets or deltas from the measured position.
        ///   - ticksPerInference: ≥ 1; see ``MLPPolicy/ticksPerInference(rateHz:loopRateHz:)`` for a rate.
        ///   - activation, outputActivation: override the file's metadata.
        ///   - layerPrefix: the prefix of the layers' tensor names (PyTorch: the `nn.Sequential` attribute's
        ///     name and a dot; empty for a bare `nn.Sequential`).
        ///   - observationNormalization, actionNormalization: see ``MLPNormalization``; by default LeRobot's
        ///     features `observation.state` and `action`, mode from the file.
        public init(
            file: String, observation: [ObservationItem], actionJoints: [String], actionMode: ActionMode = .absolute,
            ticksPerInference: Int = 1, activation: MLPActivation? = nil, outputActivation: MLPActivation? = nil,
            layerPrefix: String = "layers.",
            observationNormalization: MLPNormalization = MLPNormalization(feature: "observation.state"),
            actionNormalization: MLPNormalization = MLPNormalization(feature: "action")
        ) {
            self.file = file
            self.observation = observation
            self.actionJoints = actionJoints
            self.actionMode = actionMode
            self.ticksPerInference = ticksPerInference
            self.activation = activation
            self.outputActivation = outputActivation
            self.layerPrefix = layerPrefix
            self.observationNormalization = observationNormalization
            self.actionNormalization = actionNormalization
        }
    }

    /// The ticks between inferences for a policy rate (Hz) in a loop at `loopRateHz`: refused unless the rate
    /// is positive, at most the loop's, and divides it (within 0.1 %), so inferences fall on ticks evenly.
    public static func ticksPerInference(rateHz: Double, loopRateHz: Double) throws(MLPPolicyError) -> Int {
        guard rateHz.isFinite, rateHz > 0, rateHz <= loopRateHz else {
            throw MLPPolicyError("mlp rate_hz \(rateHz) must be above 0 and at most the loop's \(loopRateHz) Hz")
        }
        let ratio = loopRateHz / rateHz
        let ticks = ratio.rounded()
        guard abs(ratio - ticks) <= 1e-3 * ticks else {
            throw MLPPolicyError(
                "mlp rate_hz \(rateHz) does not divide the loop's \(loopRateHz) Hz (every \(ratio) ticks); pick "
                    + "\(loopRateHz / ticks) or \(loopRateHz / (ticks + 1)) Hz")
        }
        return Int(ticks)
    }

    /// Where an input entry comes from.
    private struct InputSource {
        enum Kind {
            case position, velocity, effort, previousAction, previousOutput, phaseSin, phaseCos, environment
        }
        var kind: Kind
        /// Joint index (robot.yaml order) or action index.
        var index: Int
        var periodS: Double
    }

    /// The command the slew limit lets through, per action joint (rad), and when it was last moved (ns).
    private let limitedRad: UnsafeMutableBufferPointer<Double>
    private var limitedAtNs: Int64 = 0

    public let settings: Settings
    public let network: MLPNetwork
    /// Normalisation modes in force (after reading the file).
    public let observationNormalizationMode: MLPNormalizationMode
    public let actionNormalizationMode: MLPNormalizationMode
    /// Inferences whose output was not finite and was not commanded, since the policy was built.
    public private(set) var nonFiniteOutputCount = 0
    /// Inferences run since the policy was built.
    public private(set) var inferenceCount = 0

    private let sources: UnsafeMutableBufferPointer<InputSource>
    private let inputCenter: UnsafeMutableBufferPointer<Double>
    private let inputScale: UnsafeMutableBufferPointer<Double>
    private let inputShift: UnsafeMutableBufferPointer<Double>
    private let input: UnsafeMutableBufferPointer<Double>
    private let output: UnsafeMutableBufferPointer<Double>
    private let outputCenter: UnsafeMutableBufferPointer<Double>
    private let outputScale: UnsafeMutableBufferPointer<Double>
    private let outputShift: UnsafeMutableBufferPointer<Double>
    private let action: UnsafeMutableBufferPointer<Double>
    private let previousAction: UnsafeMutableBufferPointer<Double>
    private let previousOutput: UnsafeMutableBufferPointer<Double>
    private let targets: UnsafeMutableBufferPointer<Double>
    private let actionJointIndex: UnsafeMutableBufferPointer<Int>
    private let isDelta: Bool
    private let ticksPerInference: Int
    private var ticksUntilInference = 0
    private var lastInferenceNs: Int64 = 0

    /// Builds the policy from `settings`, reading the model file (and statistics files) from disk.
    /// - Parameters:
    ///   - jointNames: the robot's joints in robot.yaml order (the observation's and command's order).
    ///   - baseDirectory: where relative file paths start (robot.yaml's directory); nil: the working directory.
    public convenience init(
        settings: Settings, jointNames: [String], baseDirectory: String? = nil
    ) throws(MLPPolicyError) {
        let model = try Self.load(settings.file, baseDirectory: baseDirectory)
        try self.init(settings: settings, jointNames: jointNames, model: model, baseDirectory: baseDirectory)
    }

    /// Builds the policy from an already parsed model file (`settings.file` is not read; statistics files
    /// named in the settings are).
    public init(
        settings: Settings, jointNames: [String], model: SafeTensorsFile, baseDirectory: String? = nil
    ) throws(MLPPolicyError) {
        guard settings.ticksPerInference >= 1 else {
            throw MLPPolicyError("mlp: ticksPerInference is \(settings.ticksPerInference); it must be at least 1")
        }
        var jointIndex: [String: Int] = [:]
        for (j, name) in jointNames.enumerated() { jointIndex[name] = j }
        func index(_ joint: String, _ context: String) throws(MLPPolicyError) -> Int {
            guard let j = jointIndex[joint] else {
                throw MLPPolicyError(
                    "mlp \(context): no joint \"\(joint)\" (joints: \(jointNames.joined(separator: ", ")))")
            }
            return j
        }
        guard !settings.actionJoints.isEmpty else { throw MLPPolicyError("mlp action: no joints") }
        var actionIndices: [Int] = []
        for joint in settings.actionJoints {
            let j = try index(joint, "action")
            guard !actionIndices.contains(j) else { throw MLPPolicyError("mlp action: joint \"\(joint)\" twice") }
            actionIndices.append(j)
        }
        let actionCount = actionIndices.count
        guard !settings.observation.isEmpty else { throw MLPPolicyError("mlp observation: no items") }
        var inputSources: [InputSource] = []
        for (n, item) in settings.observation.enumerated() {
            let context = "observation item \(n + 1) (\(item.name))"
            switch item {
            case .jointPositions(let names), .jointVelocities(let names), .jointEfforts(let names):
                guard !names.isEmpty else { throw MLPPolicyError("mlp \(context): no joints") }
                let kind: InputSource.Kind =
                    switch item {
                    case .jointPositions: .position
                    case .jointVelocities: .velocity
                    default: .effort
                    }
                for name in names {
                    inputSources.append(InputSource(kind: kind, index: try index(name, context), periodS: 1))
                }
            case .previousAction, .previousNetworkOutput:
                let kind: InputSource.Kind = item == .previousAction ? .previousAction : .previousOutput
                for k in 0..<actionCount { inputSources.append(InputSource(kind: kind, index: k, periodS: 1)) }
            case .phase(let periodS):
                guard periodS.isFinite && periodS > 0 else {
                    throw MLPPolicyError(
                        "mlp \(context): period_s is \(periodS); it must be a positive number of seconds")
                }
                inputSources.append(InputSource(kind: .phaseSin, index: 0, periodS: periodS))
                inputSources.append(InputSource(kind: .phaseCos, index: 0, periodS: periodS))
            case .environmentState(let count):
                guard count >= 1 && count <= PolicyObservation.environmentStateCapacity else {
                    throw MLPPolicyError(
                        "mlp \(context): count is \(count); it must be 1 to \(PolicyObservation.environmentStateCapacity)"
                    )
                }
                for k in 0..<count { inputSources.append(InputSource(kind: .environment, index: k, periodS: 1)) }
            }
        }

        let network = try MLPNetwork.load(
            from: model, layerPrefix: settings.layerPrefix, activation: settings.activation,
            outputActivation: settings.outputActivation)
        guard network.inputCount == inputSources.count else {
            let items = settings.observation.map { "\($0.name) \($0.count(actionCount: actionCount))" }
            throw MLPPolicyError(
                file: model.file,
                "the network takes \(network.inputCount) inputs but the observation layout gives "
                    + "\(inputSources.count) (\(items.joined(separator: ", ")))")
        }
        guard network.outputCount == actionCount else {
            throw MLPPolicyError(
                file: model.file,
                "the network gives \(network.outputCount) outputs but the action names \(actionCount) joints "
                    + "(\(settings.actionJoints.joined(separator: ", ")))")
        }
        let load = { (path: String) throws(MLPPolicyError) -> SafeTensorsFile in
            try Self.load(path, baseDirectory: baseDirectory)
        }
        let observationMap = try AffineNormalization.resolve(
            settings.observationNormalization, count: inputSources.count, isAction: false, model: model, loadFile: load)
        let actionMap = try AffineNormalization.resolve(
            settings.actionNormalization, count: actionCount, isAction: true, model: model, loadFile: load)

        self.settings = settings
        self.network = network
        observationNormalizationMode = observationMap.mode
        actionNormalizationMode = actionMap.mode
        commands = settings.actionJoints.map { PolicyJointCommand(joint: $0, kind: .position) }
        isDelta = settings.actionMode == .delta
        ticksPerInference = settings.ticksPerInference
        sources = .allocate(capacity: inputSources.count)
        _ = sources.initialize(from: inputSources)
        inputCenter = Self.buffer(observationMap.center)
        inputScale = Self.buffer(observationMap.scale)
        inputShift = Self.buffer(observationMap.shift)
        input = Self.buffer(.init(repeating: 0, count: inputSources.count))
        output = Self.buffer(.init(repeating: 0, count: actionCount))
        outputCenter = Self.buffer(actionMap.center)
        outputScale = Self.buffer(actionMap.scale)
        outputShift = Self.buffer(actionMap.shift)
        action = Self.buffer(.init(repeating: 0, count: actionCount))
        previousAction = Self.buffer(.init(repeating: 0, count: actionCount))
        previousOutput = Self.buffer(.init(repeating: 0, count: actionCount))
        targets = Self.buffer(.init(repeating: 0, count: actionCount))
        actionJointIndex = .allocate(capacity: actionCount)
        _ = actionJointIndex.initialize(from: actionIndices)
        limitedRad = Self.buffer(.init(repeating: 0, count: actionCount))

        func describe(_ map: AffineNormalization) -> String {
            map.mode == .identity ? "none" : "\(map.mode.rawValue) (statistics from \(map.source))"
        }
        let rate = settings.ticksPerInference == 1 ? "every tick" : "every \(settings.ticksPerInference) ticks"
        notices = [
            "mlp: \(network.summary) from \(model.file), \(rate); \(settings.actionMode.rawValue) position targets "
                + "for \(settings.actionJoints.joined(separator: ", ")); normalisation: observation "
                + "\(describe(observationMap)), action \(describe(actionMap))"
        ]
    }

    deinit {
        sources.deallocate()
        for buffer in [
            inputCenter, inputScale, inputShift, input, output, outputCenter, outputScale, outputShift, action,
            previousAction, previousOutput, targets, limitedRad,
        ] { buffer.deallocate() }
        actionJointIndex.deallocate()
    }

    private static func buffer(_ values: [Double]) -> UnsafeMutableBufferPointer<Double> {
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(1, values.count))
        buffer.initialize(repeating: 0)
        _ = buffer.initialize(from: values)
        return buffer
    }

    private static func load(_ path: String, baseDirectory: String?) throws(MLPPolicyError) -> SafeTensorsFile {
        let resolved =
            path.hasPrefix("/") || baseDirectory == nil
            ? path : URL(fileURLWithPath: baseDirectory!).appendingPathComponent(path).path
        do {
            return try SafeTensorsFile.load(path: resolved)
        } catch {
            throw MLPPolicyError(error)
        }
    }

    public func reset(from observation: PolicyObservation, into command: PolicyCommand) {
        command.hold(observation)
        for k in 0..<targets.count {
            let position = observation.positionRad[actionJointIndex[k]]
            targets[k] = position
            limitedRad[k] = position
            previousAction[k] = isDelta ? 0 : position
            previousOutput[k] = 0
        }
        ticksUntilInference = 0
        lastInferenceNs = observation.timeNs
        limitedAtNs = observation.timeNs
    }

    public func compute(_ observation: PolicyObservation, into command: PolicyCommand) {
        if ticksUntilInference == 0 {
            infer(observation)
            ticksUntilInference = ticksPerInference
        }
        ticksUntilInference -= 1
        if let maxSpeed = settings.maxSpeedRadPerS {
            let step = maxSpeed * Double(max(observation.timeNs - limitedAtNs, 0)) * 1e-9
            limitedAtNs = observation.timeNs
            for k in 0..<targets.count {
                limitedRad[k] += min(max(targets[k] - limitedRad[k], -step), step)
                command.positionRad[actionJointIndex[k]] = limitedRad[k]
            }
        } else {
            for k in 0..<targets.count { command.positionRad[actionJointIndex[k]] = targets[k] }
        }
        command.computedForNs = lastInferenceNs
    }

    /// One inference from `observation` into ``targets``; on a non-finite output nothing changes.
    private func infer(_ observation: PolicyObservation) {
        let timeS = Double(observation.timeNs) * 1e-9
        for i in 0..<input.count {
            let source = sources[i]
            let raw: Double
            switch source.kind {
            case .position: raw = observation.positionRad[source.index]
            case .velocity: raw = observation.velocityRadPerS[source.index]
            case .effort: raw = observation.effortNm[source.index]
            case .previousAction: raw = previousAction[source.index]
            case .previousOutput: raw = previousOutput[source.index]
            case .phaseSin: raw = sin(2 * Double.pi * Self.cycleFraction(timeS, source.periodS))
            case .phaseCos: raw = cos(2 * Double.pi * Self.cycleFraction(timeS, source.periodS))
            case .environment:
                raw = source.index < observation.environmentStateCount ? observation.environmentState[source.index] : 0
            }
            input[i] = (raw - inputCenter[i]) * inputScale[i] + inputShift[i]
        }
        network.evaluate(input.baseAddress!, into: output.baseAddress!)
        inferenceCount += 1
        var finite = true
        for k in 0..<action.count {
            action[k] = (output[k] + outputShift[k]) * outputScale[k] + outputCenter[k]
            let target = isDelta ? observation.positionRad[actionJointIndex[k]] + action[k] : action[k]
            finite = finite && target.isFinite && action[k].isFinite
        }
        guard finite else {
            nonFiniteOutputCount += 1
            return
        }
        for k in 0..<action.count {
            targets[k] = isDelta ? observation.positionRad[actionJointIndex[k]] + action[k] : action[k]
            previousAction[k] = action[k]
            previousOutput[k] = output[k]
        }
        lastInferenceNs = observation.timeNs
    }

    /// t / period's fractional part: keeps sin/cos accurate however long the run.
    @inline(__always) private static func cycleFraction(_ timeS: Double, _ periodS: Double) -> Double {
        let cycles = timeS / periodS
        return cycles - cycles.rounded(.down)
    }

    /// The last action vector (rad; absolute or delta), for tests and tools.
    public var lastAction: [Double] { Array(previousAction) }
    /// The position targets the policy commands now (rad, action-joint order).
    public var currentTargetsRad: [Double] { Array(targets) }
}
