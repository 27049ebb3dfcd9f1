import Foundation

/// Deterministic generator for test signals (SplitMix64), so every run sees the same noise.
struct EstimationTestRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func nextUInt64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(nextUInt64() >> 11) * 0x1p-53 }

    /// Standard normal (Box–Muller).
    mutating func gaussian() -> Double {
        let u1 = max(uniform(), 1e-300)
        let u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// Chi-square quantile by the Wilson–Hilferty approximation (accurate to <1% for k ≥ 3), `z` the standard
/// normal quantile (−1.959964 for 2.5%, +1.959964 for 97.5%).
func estimationChiSquareQuantile(degreesOfFreedom k: Double, normalQuantile z: Double) -> Double {
    let a = 2 / (9 * k)
    let c = 1 - a + z * a.squareRoot()
    return k * c * c * c
}

/// `<repo root>` from this file's path (Tests/SinewFusionTests/…).
func estimationRepositoryRoot(filePath: String = #filePath) -> URL {
    URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
}
