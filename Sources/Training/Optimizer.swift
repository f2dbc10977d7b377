import Foundation

/// How AdamW keeps its moments: f32, or bfloat16 (half the memory) written with stochastic rounding
/// (seeded by the step, the tensor and the element, so a run is reproducible), which keeps small
/// updates of a long run from being rounded away; each step's update uses the moments before rounding.
public enum MomentPrecision: String, Codable, Sendable, CaseIterable {
    case f32, bf16
}

/// How training's linear layers multiply: f32, or bf16 (operands rounded to bfloat16, products summed
/// in float: `edge_matmul_bf16`, twice the multiply-adds per instruction where the CPU has AVX512_BF16).
public enum MatmulPrecision: String, Codable, Sendable, CaseIterable {
    case f32, bf16
}

/// AdamW with linear warmup, cosine decay to `minLRFraction` of the peak, and clipping of the
/// global gradient norm. Weight decay applies to matrices only (not to norms or biases).
/// Masked weights (pruned) get no update and stay exactly zero.
public final class AdamW<R: TrainScalar> {
    public struct Config: Equatable, Sendable {
        public var lr: Double
        public var beta1 = 0.9
        public var beta2 = 0.999
        public var eps = 1e-8
        public var weightDecay = 0.0
        public var warmupSteps = 0
        public var totalSteps = 1
        public var minLRFraction = 0.1
        /// Largest global gradient L2 norm (0 = no clipping).
        public var clip = 1.0
        /// How the first and second moments are stored.
        public var moments = MomentPrecision.f32

        public init(lr: Double) { self.lr = lr }
    }

    /// One tensor's first or second moment, in the precision of `Config.moments`.
    final class Moment {
        let count: Int
        let f32: UnsafeMutablePointer<R>?
        let bf16: UnsafeMutablePointer<UInt16>?

        init(count: Int, precision: MomentPrecision) {
            self.count = count
            switch precision {
            case .f32:
                f32 = .allocate(capacity: max(1, count))
                f32!.initialize(repeating: 0, count: max(1, count))
                bf16 = nil
            case .bf16:
                bf16 = .allocate(capacity: max(1, count))
                bf16!.initialize(repeating: 0, count: max(1, count))
                f32 = nil
            }
        }

        deinit {
            f32?.deallocate()
            bf16?.deallocate()
        }

        /// The values as f32 (a checkpoint's layout).
        var floats: [Float] {
            if let f32 { return (0 ..< count).map { Float(f32[$0]) } }
            return (0 ..< count).map { Float(bitPattern: UInt32(bf16![$0]) << 16) }
        }

        /// Sets the values from f32 (rounded to nearest for bf16: exact for values read from a bf16 moment).
        func load(_ v: UnsafeBufferPointer<Float>) {
            precondition(v.count == count)
            if let f32 { for i in 0 ..< count { f32[i] = R(v[i]) } } else { for i in 0 ..< count { bf16![i] = roundBF16(v[i], noise: 0x7FFF) } }
        }
    }

    public let config: Config
    /// Updates done so far.
    public internal(set) var step = 0
    let params: [Param<R>]
    /// First and second moments, per trainable parameter.
    let m: [Moment], v: [Moment]

    public init(params: [Param<R>], config: Config) {
        self.params = params.filter(\.trainable)
        self.config = config
        m = self.params.map { Moment(count: $0.value.count, precision: config.moments) }
        v = self.params.map { Moment(count: $0.value.count, precision: config.moments) }
    }

    /// Bytes the moments take.
    public var momentBytes: Int {
        2 * params.reduce(0) { $0 + $1.value.count } * (config.moments == .f32 ? MemoryLayout<R>.stride : 2)
    }

    /// The learning rate of update number `step` (0-based).
    public func learningRate(at step: Int) -> Double {
        let c = config
        if step < c.warmupSteps { return c.lr * Double(step + 1) / Double(c.warmupSteps) }
        let decay = max(1, c.totalSteps - c.warmupSteps)
        let t = min(1, Double(step - c.warmupSteps) / Double(decay))
        return c.lr * (c.minLRFraction + (1 - c.minLRFraction) * 0.5 * (1 + Foundation.cos(Double.pi * t)))
    }

    /// Applies one update from the parameters' gradients; returns the gradient norm before clipping.
    /// Each tensor is split over `threads` contiguous ranges (elementwise, so the same update as one
    /// thread; the squared norm's Double sum adds the ranges' partial sums, in range order).
    @discardableResult
    public func update(threads: Int = 1) -> Double {
        var ss = 0.0
        for p in params {
            p.materializeGrad()
            let g = p.grad!, mask = p.mask
            let parts = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(1, threads))
            defer { parts.deallocate() }
            parts.initialize(repeating: 0)
            let chunks = g.count < parallelItems ? 1 : max(1, min(threads, g.count))
            parallel(chunks) { c in
                let r = (g.count * c / chunks) ..< (g.count * (c + 1) / chunks)
                mask?.zero(g.p, in: r)
                var s = 0.0
                for i in r { s += Double(g.p[i]) * Double(g.p[i]) }
                parts[c] = s
            }
            for c in 0 ..< chunks { ss += parts[c] }
        }
        let norm = ss.squareRoot()
        let clipScale = config.clip > 0 && norm > config.clip ? config.clip / norm : 1
        let lr = learningRate(at: step)
        step += 1
        let b1 = config.beta1, b2 = config.beta2
        let c1 = 1 - Foundation.pow(b1, Double(step)), c2 = 1 - Foundation.pow(b2, Double(step))
        let stepSize = R(lr / c1), eps = R(config.eps), rc2 = R(1 / c2.squareRoot())
        let rb1 = R(b1), rb2 = R(b2), cs = R(clipScale)
        for (n, p) in params.enumerated() {
            let w = p.value.p, g = p.grad!.p, mask = p.mask
            let decay = p.shape.count == 2 ? R(1 - lr * config.weightDecay) : 1
            if let mm = m[n].f32, let vv = v[n].f32 {
                parallelRanges(p.value.count, threads: threads, cost: 4) { r in
                    for i in r {
                        let gi = g[i] * cs
                        mm[i] = rb1 * mm[i] + (1 - rb1) * gi
                        vv[i] = rb2 * vv[i] + (1 - rb2) * gi * gi
                        w[i] = w[i] * decay - stepSize * mm[i] / ((vv[i]).squareRoot() * rc2 + eps)
                    }
                    mask?.zero(w, in: r)
                }
            } else {
                let mm = m[n].bf16!, vv = v[n].bf16!
                let seed = UInt32(truncatingIfNeeded: step) &* 0x9E37_79B9 ^ UInt32(truncatingIfNeeded: n) &* 0x85EB_CA6B
                parallelRanges(p.value.count, threads: threads, cost: 6) { r in
                    for i in r {
                        let gi = g[i] * cs
                        let m1 = rb1 * R(Float(bitPattern: UInt32(mm[i]) << 16)) + (1 - rb1) * gi
                        let v1 = rb2 * R(Float(bitPattern: UInt32(vv[i]) << 16)) + (1 - rb2) * gi * gi
                        let h = UInt32(truncatingIfNeeded: i) &* 2
                        mm[i] = roundBF16(Float(m1), noise: mix32(seed ^ h))
                        vv[i] = roundBF16(Float(v1), noise: mix32(seed ^ (h | 1)))
                        w[i] = w[i] * decay - stepSize * m1 / (v1.squareRoot() * rc2 + eps)
                    }
                    mask?.zero(w, in: r)
                }
            }
        }
        return norm
    }
}

/// `x` as bfloat16, rounded up in magnitude when the 16 dropped bits plus the low 16 bits of
/// `noise` carry (stochastic rounding for uniform noise; 0x7FFF rounds to nearest, ties down).
/// NaN and infinities are truncated (they stay NaN and infinite).
@inline(__always) func roundBF16(_ x: Float, noise: UInt32) -> UInt16 {
    let b = x.bitPattern
    if x.isNaN || x.isInfinite { return UInt16(truncatingIfNeeded: b >> 16) | (x.isNaN ? 0x40 : 0) }
    return UInt16(truncatingIfNeeded: (b &+ (noise & 0xFFFF)) >> 16)
}

/// A 32-bit integer hash (lowbias32): noise for stochastic rounding.
@inline(__always) func mix32(_ x: UInt32) -> UInt32 {
    var h = x
    h ^= h >> 16
    h &*= 0x7FEB_352D
    h ^= h >> 15
    h &*= 0x846C_A68B
    h ^= h >> 16
    return h
}
