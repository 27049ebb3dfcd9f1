/// A fixed-bucket base-2 logarithmic latency histogram: bucket 0 holds latencies below 2 µs, bucket k
/// (k ≥ 1) those in [2^k, 2^(k+1)) µs, the last bucket everything above. Recording never allocates.
public struct LatencyHistogram: Sendable {
    public static let bucketCount = 24
    /// Sample counts per bucket.
    public var buckets: InlineArray<24, UInt64>
    public private(set) var count: UInt64 = 0
    public private(set) var sumNanoseconds: UInt64 = 0
    public private(set) var maxNanoseconds: UInt64 = 0
    public private(set) var minNanoseconds: UInt64 = .max

    public init() { buckets = InlineArray(repeating: 0) }

    /// The bucket index for a latency.
    @inlinable
    public static func bucket(nanoseconds: UInt64) -> Int {
        let micros = nanoseconds / 1000
        if micros < 2 { return 0 }
        return Swift.min(63 - micros.leadingZeroBitCount, bucketCount - 1)
    }

    /// Lower edge of bucket `index` in nanoseconds.
    @inlinable
    public static func lowerBoundNanoseconds(bucket index: Int) -> UInt64 {
        index == 0 ? 0 : (UInt64(1) << index) * 1000
    }

    public mutating func record(nanoseconds: UInt64) {
        buckets[Self.bucket(nanoseconds: nanoseconds)] &+= 1
        count &+= 1
        sumNanoseconds &+= nanoseconds
        if nanoseconds > maxNanoseconds { maxNanoseconds = nanoseconds }
        if nanoseconds < minNanoseconds { minNanoseconds = nanoseconds }
    }

    /// Mean latency in nanoseconds (0 with no samples).
    public var meanNanoseconds: UInt64 { count == 0 ? 0 : sumNanoseconds / count }

    /// An upper bound of the `fraction` quantile (e.g. 0.99) in nanoseconds: the upper edge of the bucket
    /// holding it, clamped to the maximum seen.
    public func quantileUpperBoundNanoseconds(_ fraction: Double) -> UInt64 {
        if count == 0 { return 0 }
        let target = UInt64((Double(count) * Swift.min(Swift.max(fraction, 0), 1)).rounded(.up))
        var seen: UInt64 = 0
        for i in 0..<Self.bucketCount {
            seen += buckets[i]
            if seen >= Swift.max(target, 1) {
                return Swift.min(Self.lowerBoundNanoseconds(bucket: i + 1), maxNanoseconds)
            }
        }
        return maxNanoseconds
    }
}

/// What the bus master has seen of one servo since the last reset.
public struct ServoStatistics: Sendable {
    /// Transactions that addressed this servo (a sync read of 6 counts once for each of the 6).
    public var transactions: UInt64 = 0
    /// Replies received and accepted.
    public var replies: UInt64 = 0
    /// Attempts repeated because of an error attributed to this servo.
    public var retries: UInt64 = 0
    public var checksumErrors: UInt64 = 0
    /// Nothing at all arrived before the deadline.
    public var timeouts: UInt64 = 0
    public var truncatedPackets: UInt64 = 0
    /// A valid packet from the wrong ID arrived while waiting for this servo.
    public var foreignPackets: UInt64 = 0
    /// Only garbage arrived before the deadline.
    public var garbageErrors: UInt64 = 0
    /// Garbage bytes skipped before a good reply from this servo (tolerated, but a sign of noise).
    public var discardedBytes: UInt64 = 0
    /// Replies whose error byte flagged an instruction/range/access error (Dynamixel bits 0–6).
    public var statusErrors: UInt64 = 0
    /// Replies flagging a hardware error (Dynamixel alert bit, any Feetech error bit).
    public var hardwareErrors: UInt64 = 0
    /// Time from the start of the request to this servo's reply being decoded.
    public var latency = LatencyHistogram()

    public init() {}
}
