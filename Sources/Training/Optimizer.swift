import Foundation

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

        public init(lr: Double) { self.lr = lr }
    }

    public let config: Config
    /// Updates done so far.
    public internal(set) var step = 0
    let params: [Param<R>]
    /// First and second moments, per trainable parameter (Float regardless of R for Float training).
    var m: [Buf<R>], v: [Buf<R>]

    public init(params: [Param<R>], config: Config) {
        self.params = params.filter(\.trainable)
        self.config = config
        m = self.params.map { Buf($0.value.count) }
        v = self.params.map { Buf($0.value.count) }
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
                if let mask { for i in r where !mask[i] { g.p[i] = 0 } }
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
            let w = p.value.p, g = p.grad!.p, mm = m[n].p, vv = v[n].p, mask = p.mask
            let decay = p.shape.count == 2 ? R(1 - lr * config.weightDecay) : 1
            parallelRanges(p.value.count, threads: threads, cost: 4) { r in
                for i in r {
                    let gi = g[i] * cs
                    mm[i] = rb1 * mm[i] + (1 - rb1) * gi
                    vv[i] = rb2 * vv[i] + (1 - rb2) * gi * gi
                    w[i] = w[i] * decay - stepSize * mm[i] / ((vv[i]).squareRoot() * rc2 + eps)
                }
                if let mask { for i in r where !mask[i] { w[i] = 0 } }
            }
        }
        return norm
    }
}
