import Training

/// Deterministic test randomness: the toolchain's SplitMix64, so test data never depends on the platform RNG.
public typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// A generator whose state starts at `seed`.
    public init(_ seed: UInt64) { self.init(seed: seed) }

    /// A double in [0, 1) from the top 53 bits of the next value.
    public mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
