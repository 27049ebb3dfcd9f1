import Foundation

/// Input and output normalisation of the `mlp` policy, as LeRobot defines it
/// (lerobot/processor/normalize_processor.py; `NormalizationMode` in lerobot/configs):
///
/// - `MEAN_STD`: the network sees (x − mean) / (std + ε); its output y becomes y · std + mean.
/// - `MIN_MAX`: the network sees 2 (x − min) / (max − min) − 1, in [−1, 1]; its output y becomes
///   (y + 1) / 2 · (max − min) + min. Where max = min, ε stands in for max − min.
/// - `IDENTITY`: unchanged.
///
/// ε is LeRobot's 1e-8. The statistics are per entry of the whole observation vector (one feature, however
/// many items the layout has) and of the whole action vector.
public enum MLPNormalizationMode: String, Sendable, CaseIterable {
    case identity = "IDENTITY"
    case meanStd = "MEAN_STD"
    case minMax = "MIN_MAX"

    /// LeRobot's spelling (`MEAN_STD`), or lower case (`mean_std`).
    public init?(name: String) { self.init(rawValue: name.uppercased()) }

    static let epsilon = 1e-8
}

/// Per-entry statistics given directly (robot.yaml) instead of read from a file: `mean`/`std` for
/// `MEAN_STD`, `min`/`max` for `MIN_MAX`, each as long as the vector it normalises.
public struct MLPNormalizationStats: Sendable, Equatable {
    public var mean: [Double]?
    public var std: [Double]?
    public var min: [Double]?
    public var max: [Double]?
    public init(mean: [Double]? = nil, std: [Double]? = nil, min: [Double]? = nil, max: [Double]? = nil) {
        self.mean = mean
        self.std = std
        self.min = min
        self.max = max
    }
}

/// How one side (observation or action) is normalised, and where its statistics come from.
///
/// Statistics are looked up, in this order: ``stats`` when given; else, in ``statsFile`` when given, else in
/// the model file, the tensors LeRobot writes for the feature ``feature`` (say `observation.state`):
/// - `observation.state.mean`, `.std`, `.min`, `.max`: the normaliser's state file of LeRobot's processor
///   pipeline (`policy_preprocessor_step_*_normalizer_processor.safetensors`; the unnormaliser's,
///   `policy_postprocessor_step_*_unnormalizer_processor.safetensors`, holds `action.mean` …);
/// - `normalize_inputs.buffer_observation_state.mean` … for the observation and
///   `unnormalize_outputs.buffer_action.mean` … for the action: the buffers inside `model.safetensors` of
///   LeRobot before that pipeline (dots in the feature's name become underscores).
///
/// The mode is ``mode`` when given; else the model file's `__metadata__` `observation_normalization` /
/// `action_normalization` (`MEAN_STD`, `MIN_MAX`, `IDENTITY`); else the one whose statistics exist (a file
/// with both pairs, as LeRobot's dataset statistics have, must name it); else `IDENTITY`.
public struct MLPNormalization: Sendable, Equatable {
    public var mode: MLPNormalizationMode?
    /// The LeRobot feature whose statistics apply (`observation.state`, `action`).
    public var feature: String
    /// A safetensors file holding the statistics (relative paths: from the policy's base directory).
    public var statsFile: String?
    public var stats: MLPNormalizationStats?

    public init(
        mode: MLPNormalizationMode? = nil, feature: String, statsFile: String? = nil,
        stats: MLPNormalizationStats? = nil
    ) {
        self.mode = mode
        self.feature = feature
        self.statsFile = statsFile
        self.stats = stats
    }
}

/// A resolved normalisation, per entry: the observation side maps x ↦ (x − center) · scale + shift, the action
/// side y ↦ (y + shift) · scale + center, which are LeRobot's formulas term by term.
struct AffineNormalization {
    var mode: MLPNormalizationMode
    var center: [Double]
    var scale: [Double]
    var shift: [Double]
    /// Where the statistics came from, for the policy's notices.
    var source: String

    static func identity(count: Int) -> AffineNormalization {
        let zeros = [Double](repeating: 0, count: count)
        return AffineNormalization(mode: .identity, zeros, zeros, isAction: false, source: "none")
    }

    /// From the statistics pair (mean, std) or (min, max): the forward map (x − mean) / (std + ε) or
    /// 2 (x − min) / d − 1, or the inverse map y · std + mean or (y + 1) · d / 2 + min.
    init(mode: MLPNormalizationMode, _ a: [Double], _ b: [Double], isAction: Bool, source: String) {
        self.mode = mode
        self.source = source
        center = a
        let epsilon = MLPNormalizationMode.epsilon
        switch (mode, isAction) {
        case (.identity, _):
            center = .init(repeating: 0, count: a.count)
            scale = .init(repeating: 1, count: a.count)
            shift = .init(repeating: 0, count: a.count)
        case (.meanStd, false):
            scale = b.map { 1 / ($0 + epsilon) }
            shift = .init(repeating: 0, count: a.count)
        case (.meanStd, true):
            scale = b
            shift = .init(repeating: 0, count: a.count)
        case (.minMax, false):
            scale = zip(a, b).map { min, max in 2 / (max - min == 0 ? epsilon : max - min) }
            shift = .init(repeating: -1, count: a.count)
        case (.minMax, true):
            scale = zip(a, b).map { min, max in (max - min == 0 ? epsilon : max - min) / 2 }
            shift = .init(repeating: 1, count: a.count)
        }
    }

    /// Resolves `settings` for a vector of `count` entries; `isAction` picks the inverse map and LeRobot's
    /// legacy buffer prefix.
    static func resolve(
        _ settings: MLPNormalization, count: Int, isAction: Bool, model: SafeTensorsFile,
        loadFile: (String) throws(MLPPolicyError) -> SafeTensorsFile
    ) throws(MLPPolicyError) -> AffineNormalization {
        let side = isAction ? "action" : "observation"
        let metadataKey = "\(side)_normalization"
        var mode = settings.mode
        if mode == nil, let name = model.metadata[metadataKey] {
            guard let parsed = MLPNormalizationMode(name: name) else {
                throw MLPPolicyError(
                    file: model.file,
                    "__metadata__ \"\(metadataKey)\" is \"\(name)\"; known: "
                        + MLPNormalizationMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            mode = parsed
        }
        if mode == .identity { return .identity(count: count) }

        var pairs: [MLPNormalizationMode: ([Double], [Double])] = [:]
        var source: String
        if let stats = settings.stats {
            source = "settings"
            if let mean = stats.mean, let std = stats.std { pairs[.meanStd] = (mean, std) }
            if let min = stats.min, let max = stats.max { pairs[.minMax] = (min, max) }
            if stats.mean != nil && stats.std == nil || stats.std != nil && stats.mean == nil
                || stats.min != nil && stats.max == nil || stats.max != nil && stats.min == nil
            {
                throw MLPPolicyError("\(side) statistics: mean needs std and min needs max")
            }
        } else {
            let file = try settings.statsFile.map { path throws(MLPPolicyError) in try loadFile(path) } ?? model
            source = file.file
            let legacy = buffer(settings.feature, isAction)
            func lookup(_ stat: String) throws(MLPPolicyError) -> [Double]? {
                for name in ["\(settings.feature).\(stat)", "\(legacy).\(stat)"] where file.tensor(name) != nil {
                    return try MLPNetwork.values(name, in: file)
                }
                return nil
            }
            if let mean = try lookup("mean"), let std = try lookup("std") { pairs[.meanStd] = (mean, std) }
            if let min = try lookup("min"), let max = try lookup("max") { pairs[.minMax] = (min, max) }
        }
        let resolvedMode: MLPNormalizationMode
        if let mode {
            resolvedMode = mode
        } else if pairs.count == 1 {
            resolvedMode = pairs.keys.first!
        } else if pairs.isEmpty {
            return .identity(count: count)
        } else {
            throw MLPPolicyError(
                file: source == "settings" ? nil : source,
                "\(side) statistics \"\(settings.feature)\" hold both mean/std and min/max: name the mode "
                    + "(MEAN_STD or MIN_MAX) in the settings or in __metadata__ \"\(metadataKey)\"")
        }
        guard let (a, b) = pairs[resolvedMode] else {
            let wanted = resolvedMode == .meanStd ? "mean and std" : "min and max"
            let first = resolvedMode == .meanStd ? "mean" : "min"
            throw MLPPolicyError(
                file: source == "settings" ? nil : source,
                "\(side) normalisation \(resolvedMode.rawValue) needs \(wanted) of \"\(settings.feature)\" "
                    + (source == "settings"
                        ? "in the settings"
                        : "(tensors \"\(settings.feature).\(first)\" … or "
                            + "\"\(buffer(settings.feature, isAction)).\(first)\" …)")
            )
        }
        guard a.count == count, b.count == count else {
            throw MLPPolicyError(
                file: source == "settings" ? nil : source,
                "\(side) statistics \"\(settings.feature)\" have \(a.count) and \(b.count) entries; the \(side) "
                    + "has \(count)")
        }
        if let bad = (a + b).firstIndex(where: { !$0.isFinite }) {
            throw MLPPolicyError(
                file: source == "settings" ? nil : source, "\(side) statistic \(bad % count) is not finite")
        }
        return AffineNormalization(mode: resolvedMode, a, b, isAction: isAction, source: source)
    }

    private static func buffer(_ feature: String, _ isAction: Bool) -> String {
        (isAction ? "unnormalize_outputs.buffer_" : "normalize_inputs.buffer_")
            + feature.replacingOccurrences(of: ".", with: "_")
    }
}
