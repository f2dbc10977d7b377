import EdgeRuntime

/// Deterministic test randomness: the toolchain's SplitMix64, so test data never depends on the platform RNG.
public typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// A generator whose state starts at `seed`.
    public init(_ seed: UInt64) { self.init(seed: seed) }

    /// A double in [0, 1) from the top 53 bits of the next value.
    public mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// A small deterministic generator (xorshift64*) for test data, so it never depends on the platform RNG.
public struct XorShiftRandom {
    private var s: UInt64

    /// A generator seeded from `seed` (any value, zero included).
    public init(_ seed: UInt64) { s = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        return s &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform in the closed range.
    public mutating func byte(_ range: ClosedRange<UInt8>) -> UInt8 {
        range.lowerBound + UInt8(next() % UInt64(Int(range.upperBound) - Int(range.lowerBound) + 1))
    }

    /// Uniform in [lo, hi), on a grid of (hi - lo) / 2^24.
    public mutating func float(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24) }
}
