import Foundation

/// What an evaluation's episodes add up to: the success rate with its 95 % confidence interval, time to
/// success, the task's error and the loop's tracking, safety, and speed.
public struct EvaluationSummary: Sendable {
    public let results: [EpisodeResult]
    /// Wall-clock seconds the whole evaluation took (workers included).
    public let wallS: Double

    public init(results: [EpisodeResult], wallS: Double) {
        self.results = results.sorted { $0.seed < $1.seed }
        self.wallS = wallS
    }

    public var episodes: Int { results.count }
    public var successes: Int { results.filter(\.succeeded).count }
    public var successRate: Double { episodes > 0 ? Double(successes) / Double(episodes) : 0 }

    /// The Wilson score interval at 95 % (z = 1.96) for `successes` out of `episodes`: unlike the normal
    /// approximation it stays inside [0, 1] and is honest at 0 % and 100 % (Wilson 1927; Brown, Cai and DasGupta
    /// 2001 recommend it for binomial proportions).
    public var confidenceInterval95: (low: Double, high: Double) {
        Self.wilson(successes: successes, trials: episodes)
    }

    public static func wilson(successes: Int, trials: Int, z: Double = 1.959_963_984_540_054) -> (
        low: Double, high: Double
    ) {
        guard trials > 0 else { return (0, 1) }
        let n = Double(trials)
        let p = Double(successes) / n
        let z2 = z * z
        let centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        // At 0 and N successes the interval touches 0 and 1 exactly (the formula leaves rounding dust there).
        return (successes == 0 ? 0 : max(0, centre - half), successes == trials ? 1 : min(1, centre + half))
    }

    /// Simulated seconds over all episodes.
    public var simulatedS: Double { results.reduce(0) { $0 + $1.durationS } }
    public var episodesPerS: Double { wallS > 0 ? Double(episodes) / wallS : 0 }
    public var realTimeFactor: Double { wallS > 0 ? simulatedS / wallS : 0 }

    /// Episodes by how they ended (`success`, `timeout`, `safety`, `task`, `error`).
    public var outcomes: [(String, Int)] {
        ["success", "timeout", "safety", "task", "error"].map { outcome in
            (outcome, results.filter { $0.outcome == outcome }.count)
        }
    }

    public var timesToSuccessS: [Double] { results.compactMap(\.timeToSuccessS).sorted() }

    /// Safety event causes over all episodes, most frequent first.
    public var safetyCauses: [(String, Int)] {
        var counts: [String: Int] = [:]
        for result in results { for cause in result.safetyEvents { counts[cause, default: 0] += 1 } }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
    }

    /// The `p`-quantile (0…1) of sorted values, linear between neighbours; nil for none.
    public static func quantile(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let position = p * Double(sorted.count - 1)
        let low = Int(position.rounded(.down))
        let high = min(low + 1, sorted.count - 1)
        return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
    }

    public static func mean(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
}
