import EdgeFormat
import Foundation

/// Which weights of a tensor may be nonzero (a pruning mask), one bit per weight.
public struct BitMask: Sendable, Equatable {
    public let count: Int
    var words: [UInt64]

    /// Bit i set where `keep(i)`.
    public init(count: Int, keep: (Int) -> Bool) {
        self.count = count
        var w = [UInt64](repeating: 0, count: (count + 63) / 64)
        for i in 0 ..< count where keep(i) { w[i >> 6] |= 1 << UInt64(i & 63) }
        words = w
    }

    public init(_ bools: [Bool]) { self.init(count: bools.count) { bools[$0] } }

    @inline(__always) public subscript(i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }

    /// p[i] = 0 for every i in `range` whose bit is clear (`for i in range where !self[i]`), a word
    /// at a time: the cost follows the cleared bits, not the range.
    public func zero<R: BinaryFloatingPoint>(_ p: UnsafeMutablePointer<R>, in range: Range<Int>) {
        guard !range.isEmpty else { return }
        words.withUnsafeBufferPointer { w in
            var word = range.lowerBound >> 6
            let last = (range.upperBound - 1) >> 6
            while word <= last {
                var cleared = ~w[word]
                let base = word << 6
                if base < range.lowerBound { cleared &= ~0 << UInt64(range.lowerBound - base) }
                if base + 64 > range.upperBound { cleared &= ~0 >> UInt64(base + 64 - range.upperBound) }
                while cleared != 0 {
                    p[base + cleared.trailingZeroBitCount] = 0
                    cleared &= cleared &- 1
                }
                word += 1
            }
        }
    }
}

/// One named tensor of a model being trained.
public final class Param<R: TrainScalar> {
    public let name: String
    public let shape: [Int]
    /// The trained ("latent") values.
    public let value: Buf<R>
    /// Gradient of the loss, accumulated by `backward`; nil for a frozen tensor.
    public let grad: Buf<R>?
    /// Which weights may be nonzero (pruning masks: the rest stay exactly zero); nil = all.
    public let mask: BitMask?
    /// What the forward pass multiplies by, set by `TrainModel.refresh()`.
    var effective: Effective = .latent
    /// True from `TrainModel.zeroGrad()` until the first write of `grad`: the gradient is zero
    /// though its memory is not yet, so the first matrix product writes it instead of adding to it.
    var gradPending = false

    /// The values the forward pass uses: the latent values themselves (no quantizer), their
    /// fake-quantized copy, or that copy kept in its encoding (a quarter of the memory for int8),
    /// decoded where it is used (`TrainModel.effective(_:)`).
    enum Effective {
        case latent
        case values(Buf<R>)
        case encoded(PayloadLayout, [UInt8])
    }

    init(name: String, shape: [Int], values: [R], trainable: Bool, mask: BitMask?) {
        self.name = name
        self.shape = shape
        value = Buf(values)
        grad = trainable ? Buf(values.count) : nil
        self.mask = mask
    }

    var rows: Int { shape.count == 2 ? shape[0] : 1 }
    var cols: Int { shape.last ?? 1 }
    public var trainable: Bool { grad != nil }

    /// Zeroes a pending gradient's memory (before adding to it, or reading it).
    func materializeGrad() {
        if gradPending { grad?.zero() }
        gradPending = false
    }

    /// The gradient to add to: nil when frozen; `fresh` when it is pending, i.e. may be overwritten
    /// (no longer pending afterwards: the caller writes all of it).
    func gradForWrite() -> (buf: Buf<R>, fresh: Bool)? {
        guard let grad else { return nil }
        let fresh = gradPending
        gradPending = false
        return (grad, fresh)
    }
}

/// What a fake quantizer makes of a tensor's latent values: the values the forward pass uses and,
/// when it has one, their encoding (decoding it must give exactly those values; it is then kept
/// instead of the values, `TrainModel.refresh()`).
public struct FakeQuantized<R: TrainScalar> {
    public var values: [R]
    public var encoded: EncodedTensor?
    public init(values: [R], encoded: EncodedTensor? = nil) {
        self.values = values
        self.encoded = encoded
    }
}

/// A GPT-2, Llama or BERT model in a form that trains: float parameters by canonical name, a forward
/// pass that keeps what the backward pass needs, and reverse-mode gradients for every op
/// (embeddings, LayerNorm/RMSNorm, causal grouped-query attention with RoPE, GELU and SwiGLU MLPs,
/// tied or untied output head; for BERT (`TrainModel+Encoder.swift`): token type 0 and the
/// embedding LayerNorm, post-norm blocks, bidirectional attention, GELU erf, and the last hidden
/// states as the output). The arithmetic is the runtime's (`EdgeModel.forward`,
/// `EdgeModel.hiddenStates`), written over `R` so that gradient checks can run in Double; matrix
/// products go through `R.gemm`.
///
/// Sequences of a batch have one length S and start at position 0; linear layers run over all
/// N = B x S rows at once, attention per sequence (for an encoder each sequence is one sentence).
public final class TrainModel<R: TrainScalar> {
    public let config: ModelConfig
    /// Every tensor of `config.schema()`, in that order.
    public let params: [Param<R>]
    public let byName: [String: Param<R>]
    /// Threads for matrix products and attention.
    public var threads: Int
    /// Whether the linear layers' products (forward, input and weight gradients) round their operands
    /// to bfloat16 and sum in float (`edge_matmul_bf16`: vdpbf16ps where the CPU has AVX512_BF16, the
    /// same bits on every other CPU). Attention's products, norms, the loss and the optimizer stay in
    /// float; the weights stay float (only each product's copy is rounded).
    public var bf16Matmul = false
    /// Fake quantization by tensor name: latent values -> the values the forward pass uses
    /// (straight-through: gradients pass to the latent values unchanged).
    public var quantizers: [String: ([R]) throws -> FakeQuantized<R>] = [:]
    /// Whether `refresh()` keeps fake-quantized values in their encoding when it decodes to them
    /// exactly (less memory; each use decodes them). Off: they are kept as values.
    public var keepsEncodedWeights = true

    /// One block's parameters (`BlockWeights` bound by training: matrices and vectors are both parameters).
    typealias Layer = BlockWeights<Param<R>, Param<R>>

    let layers: [Layer]
    /// Activations and gradient temporaries, reused from step to step.
    let pool = BufPool()
    let tokenEmbedding: Param<R>
    let positionEmbedding: Param<R>?
    /// The decoder's final norm and head (nil for an encoder).
    let outputNorm: Param<R>?, outputNormBias: Param<R>?
    let output: Param<R>?
    /// The encoder's token-type embedding (row 0 is used) and embedding LayerNorm (nil for a decoder).
    let tokenTypes: Param<R>?, embedNorm: Param<R>?, embedNormBias: Param<R>?

    /// - Parameters:
    ///   - tensors: values of every tensor the config requires (row-major).
    ///   - trainable: names that get gradients; the others are frozen.
    ///   - masks: names -> which weights may be nonzero.
    public convenience init(config: ModelConfig, tensors: [String: [R]], trainable: Set<String>, masks: [String: [Bool]] = [:],
                            threads: Int = 1) throws {
        for (name, m) in masks {
            if let v = tensors[name], m.count != v.count, let spec = config.schema().first(where: { $0.name == name }) {
                throw TrainingError.badShape(name, expected: spec.shape, count: m.count)
            }
        }
        try self.init(config: config, trainable: trainable, threads: threads) { name in
            guard let v = tensors[name] else { throw TrainingError.missingTensor(name) }
            return (v, masks[name].map { BitMask($0) })
        }
    }

    /// - Parameters:
    ///   - trainable: names that get gradients; the others are frozen.
    ///   - load: the values (row-major) of a tensor the config requires and its mask (which
    ///     weights may be nonzero; nil: all), asked once per tensor in schema order, so that the
    ///     caller can hand over each tensor's values and release its own copy.
    public init(config: ModelConfig, trainable: Set<String>, threads: Int = 1,
                load: (String) throws -> (values: [R], mask: BitMask?)) throws {
        var params: [Param<R>] = []
        var byName: [String: Param<R>] = [:]
        for spec in config.schema() {
            let name = spec.name, shape = spec.shape
            let (v, mask) = try load(name)
            let n = shape.reduce(1, *)
            guard v.count == n else { throw TrainingError.badShape(name, expected: shape, count: v.count) }
            if let m = mask, m.count != n { throw TrainingError.badShape(name, expected: shape, count: m.count) }
            let p = Param(name: name, shape: shape, values: v, trainable: trainable.contains(name), mask: mask)
            params.append(p)
            byName[name] = p
        }
        // Every id the schema lists has a parameter (the loop above), so the lookups cannot fail.
        let weights = try ModelWeights<Param<R>, Param<R>>(config: config, matrix: { byName[$0.name]! }, vector: { byName[$0.name]! })
        let layers = weights.blocks
        self.config = config
        self.params = params
        self.byName = byName
        self.layers = layers
        self.threads = max(1, threads)
        tokenEmbedding = weights.tokenEmbd
        positionEmbedding = weights.posEmbd
        outputNorm = weights.outputNorm  // a decoder has both, an encoder neither (ModelWeights checks)
        outputNormBias = weights.outputNormBias
        output = weights.output
        tokenTypes = weights.tokenTypes
        embedNorm = weights.embedNorm
        embedNormBias = weights.embedNormBias
        try refresh()
    }

    /// Recomputes what the forward pass uses from the latent values: fake quantization, kept in
    /// its encoding when that decodes exactly to the fake-quantized values and is at most half
    /// their size (`keepsEncodedWeights`), else as values. Call after every change of the latent values.
    /// - Parameter skippingFrozen: leaves frozen tensors as they are (their latent values have not
    ///   changed since the last refresh: the optimizer only moves trainable ones).
    /// - Throws: what a quantizer throws.
    public func refresh(skippingFrozen: Bool = false) throws {
        try refresh(params.filter { !(skippingFrozen && !$0.trainable) })
    }

    /// `refresh()` for these parameters only (those whose latent values changed).
    public func refresh(_ subset: [Param<R>]) throws {
        for p in subset {
            guard let q = quantizers[p.name] else {
                p.effective = .latent
                continue
            }
            let out = try q(p.value.array)
            precondition(out.values.count == p.value.count, "quantizer for \(p.name) changed the size")
            if keepsEncodedWeights, let enc = out.encoded, enc.shape == p.shape, enc.payload.count * 2 <= out.values.count * MemoryLayout<R>.stride,
               let layout = PayloadLayout(encoding: enc.encoding, shape: enc.shape, params: enc.params, nnz: enc.nnz),
               Self.decodes(layout, enc.payload, to: out.values, threads: threads) {
                p.effective = .encoded(layout, enc.payload)
                continue
            }
            let buf: Buf<R>
            if case let .values(b) = p.effective { buf = b } else { buf = Buf(out.values.count) }
            out.values.withUnsafeBufferPointer { buf.p.update(from: $0.baseAddress!, count: out.values.count) }
            p.effective = .values(buf)
        }
    }

    /// Whether `payload` decodes (as the runtime decodes it) to exactly `values` (rows split over `threads`).
    static func decodes(_ layout: PayloadLayout, _ payload: [UInt8], to values: [R], threads: Int = 1) -> Bool {
        let cols = layout.cols
        let parts = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(1, threads))
        defer { parts.deallocate() }
        parts.initialize(repeating: true)
        payload.withUnsafeBytes { raw in
            values.withUnsafeBufferPointer { v in
                let chunks = layout.rows * cols < parallelItems ? 1 : max(1, min(threads, layout.rows))
                parallel(chunks) { c in
                    var row = [Float](repeating: 0, count: cols)
                    row.withUnsafeMutableBufferPointer { out in
                        rows: for r in (layout.rows * c / chunks) ..< (layout.rows * (c + 1) / chunks) {
                            layout.decodeRow(r, raw, into: out.baseAddress!)
                            for j in 0 ..< cols where R(out[j]) != v[r * cols + j] {
                                parts[c] = false
                                break rows
                            }
                        }
                    }
                }
            }
        }
        return parts.allSatisfy { $0 }
    }

    /// The values the forward pass uses for `p` (see `refresh()`): its latent values, its
    /// fake-quantized values, or those decoded from their encoding into a buffer of the pool
    /// (split over the threads by rows).
    func effective(_ p: Param<R>) -> Buf<R> {
        switch p.effective {
        case .latent: return p.value
        case let .values(b): return b
        case let .encoded(layout, payload):
            let cols = layout.cols, out = scratch(layout.rows * cols)
            payload.withUnsafeBytes { raw in
                if R.self == Float.self {
                    let o = UnsafeMutableRawPointer(out.p).assumingMemoryBound(to: Float.self)
                    parallelRanges(layout.rows, threads: threads, cost: cols) { rows in
                        for r in rows { layout.decodeRow(r, raw, into: o + r * cols) }
                    }
                } else {
                    parallelRanges(layout.rows, threads: threads, cost: cols) { rows in
                        var row = [Float](repeating: 0, count: cols)
                        for r in rows {
                            row.withUnsafeMutableBufferPointer { layout.decodeRow(r, raw, into: $0.baseAddress!) }
                            for j in 0 ..< cols { out.p[r * cols + j] = R(row[j]) }
                        }
                    }
                }
            }
            return out
        }
    }

    /// Row `r` of `effective(p)` (a matrix), without decoding the others.
    func effectiveRow(_ p: Param<R>, _ r: Int, into out: UnsafeMutablePointer<R>) {
        let cols = p.cols
        switch p.effective {
        case .latent: out.update(from: p.value.p + r * cols, count: cols)
        case let .values(b): out.update(from: b.p + r * cols, count: cols)
        case let .encoded(layout, payload):
            var row = [Float](repeating: 0, count: cols)
            payload.withUnsafeBytes { raw in row.withUnsafeMutableBufferPointer { layout.decodeRow(r, raw, into: $0.baseAddress!) } }
            for j in 0 ..< cols { out[j] = R(row[j]) }
        }
    }

    /// Zeroes every gradient (lazily: the first write of each gradient overwrites it).
    public func zeroGrad() { for p in params where p.trainable { p.gradPending = true } }

    /// A buffer of n scalars from the pool (contents undefined unless `zeroed`).
    func scratch(_ n: Int, zeroed: Bool = false) -> Buf<R> { Buf(n, pool: pool, zeroed: zeroed) }

    // MARK: Forward

    /// What one layer's backward pass needs. Pre-norm (decoders): n1 = norm1(x) feeds Q/K/V,
    /// x1 = x + attention, n2 = norm2(x1) feeds the MLP. Post-norm (encoders): x (= n1) feeds Q/K/V,
    /// x1 = x + attention is norm1's input, n2 = norm1(x1) feeds the MLP, y2 = n2 + MLP is norm2's
    /// input; rstd/mean 1 and 2 are the statistics of norm1 and norm2 either way.
    final class LayerCache {
        var x: Buf<R>, n1: Buf<R>, rstd1: Buf<R>, mean1: Buf<R>?
        var q: Buf<R>, k: Buf<R>, v: Buf<R>, probs: Buf<R>, att: Buf<R>
        var x1: Buf<R>, n2: Buf<R>, rstd2: Buf<R>, mean2: Buf<R>?
        var g: Buf<R>?, u: Buf<R>, a: Buf<R>
        /// Post-norm: the input of norm2 (the block's output before its LayerNorm).
        var y2: Buf<R>?
        init(x: Buf<R>, n1: Buf<R>, rstd1: Buf<R>, mean1: Buf<R>?, q: Buf<R>, k: Buf<R>, v: Buf<R>, probs: Buf<R>, att: Buf<R>,
             x1: Buf<R>, n2: Buf<R>, rstd2: Buf<R>, mean2: Buf<R>?, g: Buf<R>?, u: Buf<R>, a: Buf<R>) {
            self.x = x; self.n1 = n1; self.rstd1 = rstd1; self.mean1 = mean1
            self.q = q; self.k = k; self.v = v; self.probs = probs; self.att = att
            self.x1 = x1; self.n2 = n2; self.rstd2 = rstd2; self.mean2 = mean2
            self.g = g; self.u = u; self.a = a
        }
    }

    /// What `backward` needs from a forward pass. Decoders: xL is the last block's output, nf its
    /// final norm (the head's input), rstdF/meanF that norm's statistics. Encoders: xL is the sum
    /// of the embeddings (the embedding LayerNorm's input), rstdF/meanF that norm's statistics,
    /// nf the last hidden states.
    public final class Cache {
        let tokens: [Int32]
        let batch: Int, length: Int
        var layers: [LayerCache] = []
        var xL: Buf<R>, nf: Buf<R>, rstdF: Buf<R>, meanF: Buf<R>?
        init(tokens: [Int32], batch: Int, length: Int, xL: Buf<R>, nf: Buf<R>, rstdF: Buf<R>, meanF: Buf<R>?) {
            self.tokens = tokens; self.batch = batch; self.length = length
            self.xL = xL; self.nf = nf; self.rstdF = rstdF; self.meanF = meanF
        }
    }

    /// Logits [B*S, vocab] of a batch of B sequences of S tokens (row b*S + t is sequence b,
    /// position t), and what `backward` needs. For an encoder, the last hidden states [B*S, hidden]
    /// instead of logits (each sequence one sentence).
    public func forward(_ batch: [[Int32]]) -> (logits: Buf<R>, cache: Cache) {
        if config.isEncoder { return encoderForward(batch) }
        let B = batch.count, S = batch.first?.count ?? 0
        precondition(B > 0 && S > 0 && batch.allSatisfy { $0.count == S }, "forward: sequences must share one nonzero length")
        precondition(S <= config.maxPositions, "forward: \(S) positions; the model has \(config.maxPositions)")
        let N = B * S, h = config.hiddenSize, hd = config.headDim
        let tokens = batch.flatMap { $0 }
        let llama = config.architecture == .llama
        var x = embed(tokens, length: S)
        let rope = llama ? RopeTable<R>(positions: S, headDim: hd, theta: config.ropeTheta) : nil
        var caches: [LayerCache] = []
        for l in layers {
            let (out, lc) = decoderBlockForward(l, x, batch: B, length: S, rope: rope)
            caches.append(lc)
            x = out
        }
        let nf = scratch(N * h), rstdF = scratch(N), meanF = llama ? nil : scratch(N)
        norm(x, nf, rows: N, outputNorm!, outputNormBias, rstd: rstdF, mean: meanF)
        let logits = scratch(N * config.vocabSize)
        linear(nf, N, output!, nil, logits)
        let cache = Cache(tokens: tokens, batch: B, length: S, xL: x, nf: nf, rstdF: rstdF, meanF: meanF)
        cache.layers = caches
        return (logits, cache)
    }

    // MARK: Backward

    /// Adds the gradients of a loss to every trainable tensor's `grad`, given dLoss/dlogits
    /// [B*S, vocab] for the forward pass that made `cache` (for an encoder: dLoss/d(last hidden
    /// states) [B*S, hidden], and for a loss on intermediate layers, dLoss/d(output of block l) by l).
    public func backward(_ dLogits: Buf<R>, cache c: Cache, blockOutputGradients: [Int: Buf<R>] = [:]) {
        if config.isEncoder { return encoderBackward(dLogits, cache: c, blockOutputGradients: blockOutputGradients) }
        precondition(blockOutputGradients.isEmpty, "backward: block output gradients are for encoders")
        let B = c.batch, S = c.length, N = B * S, h = config.hiddenSize, hd = config.headDim
        let llama = config.architecture == .llama
        let dx = scratch(N * h, zeroed: true)
        let dnf = scratch(N * h)
        linearBackward(dLogits, input: c.nf, rows: N, output!, nil, dx: dnf, accumulate: false)
        normBackward(dnf, x: c.xL, rows: N, outputNorm!, outputNormBias, rstd: c.rstdF, mean: c.meanF, dx: dx)
        let rope = llama ? RopeTable<R>(positions: S, headDim: hd, theta: config.ropeTheta) : nil
        for (l, lc) in zip(layers, c.layers).reversed() {
            decoderBlockBackward(l, lc, dx, batch: B, length: S, rope: rope)
        }
        embeddingBackward(dx, tokens: c.tokens, length: S)
        // Tensors this pass did not reach (none in a whole model) still read as zero.
        for p in params { p.materializeGrad() }
    }


    /// One decoder block (pre-norm) over x [B*S, hidden]: its output and what its backward pass needs.
    func decoderBlockForward(_ l: Layer, _ x: Buf<R>, batch B: Int, length S: Int, rope: RopeTable<R>?) -> (Buf<R>, LayerCache) {
        let N = B * S, h = config.hiddenSize, hd = config.headDim
        let llama = config.architecture == .llama
        let nh = l.sizes.numHeads, nkv = l.sizes.numKVHeads, f = l.sizes.intermediateSize
        let qd = nh * hd, kvd = nkv * hd
        let n1 = scratch(N * h), rstd1 = scratch(N), mean1 = llama ? nil : scratch(N)
        norm(x, n1, rows: N, l.attnNorm, l.attnNormBias, rstd: rstd1, mean: mean1)
        let q = scratch(N * qd), k = scratch(N * kvd), v = scratch(N * kvd)
        linear(n1, N, l.q, l.qBias, q)
        linear(n1, N, l.k, l.kBias, k)
        linear(n1, N, l.v, l.vBias, v)
        if let rope {
            rope.apply(q, rows: N, length: S, heads: nh, inverse: false, threads: threads)
            rope.apply(k, rows: N, length: S, heads: nkv, inverse: false, threads: threads)
        }
        let probs = scratch(B * nh * S * S), att = scratch(N * qd)
        attention(q: q, k: k, v: v, probs: probs, out: att, batch: B, length: S, heads: nh, kvHeads: nkv)
        let x1 = scratch(N * h)
        linear(att, N, l.o, l.oBias, x1)
        add(x1, x, count: N * h)
        let n2 = scratch(N * h), rstd2 = scratch(N), mean2 = llama ? nil : scratch(N)
        norm(x1, n2, rows: N, l.ffnNorm, l.ffnNormBias, rstd: rstd2, mean: mean2)
        let u = scratch(N * f), a = scratch(N * f)
        var g: Buf<R>?
        if let gate = l.gate {
            let gb = scratch(N * f)
            linear(n2, N, gate, nil, gb)
            linear(n2, N, l.up, nil, u)
            parallelRanges(N * f, threads: threads, cost: 8) { r in for i in r { a.p[i] = silu(gb.p[i]) * u.p[i] } }
            g = gb
        } else {
            linear(n2, N, l.up, l.upBias, u)
            parallelRanges(N * f, threads: threads, cost: 8) { r in for i in r { a.p[i] = gelu(u.p[i]) } }
        }
        let x2 = scratch(N * h)
        linear(a, N, l.down, l.downBias, x2)
        add(x2, x1, count: N * h)
        let lc = LayerCache(x: x, n1: n1, rstd1: rstd1, mean1: mean1, q: q, k: k, v: v, probs: probs, att: att,
                                 x1: x1, n2: n2, rstd2: rstd2, mean2: mean2, g: g, u: u, a: a)
        return (x2, lc)
    }

    /// The backward pass of one decoder block: dx holds dLoss/d(block output) [B*S, hidden] and is
    /// overwritten with dLoss/d(block input); the block's trainable tensors get their gradients.
    func decoderBlockBackward(_ l: Layer, _ lc: LayerCache, _ dx: Buf<R>, batch B: Int, length S: Int, rope: RopeTable<R>?) {
        let N = B * S, h = config.hiddenSize, hd = config.headDim
        let nh = l.sizes.numHeads, nkv = l.sizes.numKVHeads, f = l.sizes.intermediateSize
        let qd = nh * hd, kvd = nkv * hd
        // x2 = x1 + down(a)
        let da = scratch(N * f)
        linearBackward(dx, input: lc.a, rows: N, l.down, l.downBias, dx: da, accumulate: false)
        let dn2 = scratch(N * h)
        if let gate = l.gate, let g = lc.g {
            let dg = scratch(N * f), du = scratch(N * f), u = lc.u
            parallelRanges(N * f, threads: threads, cost: 8) { r in
                for i in r {
                    let s = sigmoid(g.p[i])
                    du.p[i] = da.p[i] * g.p[i] * s
                    dg.p[i] = da.p[i] * u.p[i] * s * (1 + g.p[i] * (1 - s))
                }
            }
            linearBackward(du, input: lc.n2, rows: N, l.up, nil, dx: dn2, accumulate: false)
            linearBackward(dg, input: lc.n2, rows: N, gate, nil, dx: dn2, accumulate: true)
        } else {
            let du = scratch(N * f), u = lc.u
            parallelRanges(N * f, threads: threads, cost: 8) { r in for i in r { du.p[i] = da.p[i] * geluDerivative(u.p[i]) } }
            linearBackward(du, input: lc.n2, rows: N, l.up, l.upBias, dx: dn2, accumulate: false)
        }
        // x1 = x + o(att): dx1 = dx + dnorm2
        let dx1 = dx
        normBackward(dn2, x: lc.x1, rows: N, l.ffnNorm, l.ffnNormBias, rstd: lc.rstd2, mean: lc.mean2, dx: dx1)
        let datt = scratch(N * qd)
        linearBackward(dx1, input: lc.att, rows: N, l.o, l.oBias, dx: datt, accumulate: false)
        let dq = scratch(N * qd), dk = scratch(N * kvd), dv = scratch(N * kvd)
        attentionBackward(dOut: datt, q: lc.q, k: lc.k, v: lc.v, probs: lc.probs, dq: dq, dk: dk, dv: dv,
                          batch: B, length: S, heads: nh, kvHeads: nkv)
        if let rope {
            rope.apply(dq, rows: N, length: S, heads: nh, inverse: true, threads: threads)
            rope.apply(dk, rows: N, length: S, heads: nkv, inverse: true, threads: threads)
        }
        let dn1 = scratch(N * h)
        linearBackward(dq, input: lc.n1, rows: N, l.q, l.qBias, dx: dn1, accumulate: false)
        linearBackward(dk, input: lc.n1, rows: N, l.k, l.kBias, dx: dn1, accumulate: true)
        linearBackward(dv, input: lc.n1, rows: N, l.v, l.vBias, dx: dn1, accumulate: true)
        normBackward(dn1, x: lc.x, rows: N, l.attnNorm, l.attnNormBias, rstd: lc.rstd1, mean: lc.mean1, dx: dx1)
    }

    /// a[i] += b[i] for i < count, over the threads.
    /// Adds the gradient `d` [N, h] of the summed embeddings (token row + position within its sequence
    /// of `length`) to the token and position embedding gradients. Each thread takes a range of
    /// columns and walks the tokens in order.
    func embeddingBackward(_ d: Buf<R>, tokens: [Int32], length S: Int) {
        let h = config.hiddenSize, N = tokens.count
        if let g = tokenEmbedding.grad {
            tokenEmbedding.materializeGrad()
            parallelRanges(h, threads: threads, cost: N) { cols in
                for (i, tok) in tokens.enumerated() {
                    let row = g.p + Int(tok) * h
                    for j in cols { row[j] += d.p[i * h + j] }
                }
            }
        }
        if let pe = positionEmbedding, let g = pe.grad {
            pe.materializeGrad()
            for i in 0 ..< N {
                let row = g.p + (i % S) * h
                for j in 0 ..< h { row[j] += d.p[i * h + j] }
            }
        }
    }

    func add(_ a: Buf<R>, _ b: Buf<R>, count: Int) {
        parallelRanges(count, threads: threads) { r in for i in r { a.p[i] += b.p[i] } }
    }

    // MARK: Ops

    /// out[N, w.rows] = x[N, w.cols] · effective(w)^T (+ bias).
    func linear(_ x: Buf<R>, _ n: Int, _ w: Param<R>, _ bias: Param<R>?, _ out: Buf<R>) {
        let ew = effective(w)
        withExtendedLifetime(ew) { R.gemm(x.p, ew.p, out.p, m: n, n: w.rows, k: w.cols, accumulate: false, threads: threads, bf16: bf16Matmul) }
        if let bias {
            let eb = effective(bias), b = eb.p, cols = w.rows
            defer { withExtendedLifetime(eb) {} }
            parallelRanges(n, threads: threads, cost: cols) { rows in
                for t in rows { for j in 0 ..< cols { out.p[t * cols + j] += b[j] } }
            }
        }
    }

    /// Given dy [N, w.rows] for out = x · w^T + b: dx (+)= dy · w, and (when trainable)
    /// w.grad += dy^T · x, b.grad += column sums of dy. Straight-through for fake-quantized w.
    func linearBackward(_ dy: Buf<R>, input x: Buf<R>, rows n: Int, _ w: Param<R>, _ bias: Param<R>?,
                        dx: Buf<R>, accumulate: Bool) {
        let out = w.rows, inp = w.cols
        // dx[n, inp] (+)= dy[n, out] · W[out, inp] (a sum made apart, then added: as R.gemm accumulates)
        let ew = effective(w)
        withExtendedLifetime(ew) {
            if accumulate {
                let sum = scratch(n * inp)
                R.gemmNN(dy.p, ew.p, sum.p, m: n, n: inp, k: out, accumulate: false, threads: threads, bf16: bf16Matmul)
                add(dx, sum, count: n * inp)
            } else {
                R.gemmNN(dy.p, ew.p, dx.p, m: n, n: inp, k: out, accumulate: false, threads: threads, bf16: bf16Matmul)
            }
        }
        if let (g, fresh) = w.gradForWrite() {
            // W.grad[out, inp] (+)= dy^T[out, n] · x[n, inp]; written outright after zeroGrad. In
            // blocks of W's rows (each row of the gradient is its own product, so blocks change
            // nothing): dy^T of a block, not of the whole (50 MB for SmolLM2's head and 256 tokens).
            let block = max(1, min(out, (1 << 20) / max(1, n)))
            let dyT = scratch(block * n)
            for o0 in stride(from: 0, to: out, by: block) {
                let rows = min(block, out - o0)
                if rows == out {
                    R.transpose(dy.p, dyT.p, rows: n, cols: out, threads: threads)
                } else {
                    parallelRanges(rows, threads: threads, cost: n) { rr in
                        for o in rr { for t in 0 ..< n { dyT.p[o * n + t] = dy.p[t * out + o0 + o] } }
                    }
                }
                R.gemmNN(dyT.p, x.p, g.p + o0 * inp, m: rows, n: inp, k: n, accumulate: !fresh, threads: threads,
                         bf16: bf16Matmul)
            }
        }
        if let bias, let g = bias.grad {
            bias.materializeGrad()
            parallelRanges(out, threads: threads, cost: n) { cols in
                for t in 0 ..< n { for j in cols { g.p[j] += dy.p[t * out + j] } }
            }
        }
    }

    /// RMSNorm (Llama) or LayerNorm (GPT-2, when `mean` is given) of each row, as the runtime computes them.
    /// Rows are independent: they are split over the threads.
    func norm(_ x: Buf<R>, _ out: Buf<R>, rows: Int, _ w: Param<R>, _ b: Param<R>?, rstd: Buf<R>, mean: Buf<R>?) {
        let h = config.hiddenSize, eps = R(config.normEps), ew = effective(w), wp = ew.p
        let eb = b.map { effective($0) }
        defer { withExtendedLifetime((ew, eb)) {} }
        parallelRanges(rows, threads: threads, cost: h) { rowRange in
            for t in rowRange {
                let xr = x.p + t * h, o = out.p + t * h
                if let mean, b != nil {
                    var s: R = 0
                    for j in 0 ..< h { s += xr[j] }
                    let mu = s / R(h)
                    var v: R = 0
                    for j in 0 ..< h { v += (xr[j] - mu) * (xr[j] - mu) }
                    let r = 1 / (v / R(h) + eps).squareRoot()
                    let bp = eb!.p
                    for j in 0 ..< h { o[j] = (xr[j] - mu) * r * wp[j] + bp[j] }
                    mean.p[t] = mu
                    rstd.p[t] = r
                } else {
                    var ss: R = 0
                    for j in 0 ..< h { ss += xr[j] * xr[j] }
                    let r = 1 / (ss / R(h) + eps).squareRoot()
                    for j in 0 ..< h { o[j] = wp[j] * (xr[j] * r) }
                    rstd.p[t] = r
                }
            }
        }
    }

    /// dx += d(norm)/dx · dy; weight (and bias) gradients when trainable. dx is split over the
    /// threads by rows; the weight gradients by columns, each summed over the rows in order.
    func normBackward(_ dy: Buf<R>, x: Buf<R>, rows: Int, _ w: Param<R>, _ b: Param<R>?, rstd: Buf<R>, mean: Buf<R>?, dx: Buf<R>) {
        let h = config.hiddenSize, ew = effective(w), wp = ew.p, hn = R(h)
        defer { withExtendedLifetime(ew) {} }
        parallelRanges(rows, threads: threads, cost: h) { rowRange in
            for t in rowRange {
                let xr = x.p + t * h, d = dy.p + t * h, o = dx.p + t * h, r = rstd.p[t]
                if let mean {
                    let mu = mean.p[t]
                    var sg: R = 0, sgx: R = 0
                    for j in 0 ..< h {
                        let gy = d[j] * wp[j], xh = (xr[j] - mu) * r
                        sg += gy
                        sgx += gy * xh
                    }
                    for j in 0 ..< h {
                        let xh = (xr[j] - mu) * r
                        o[j] += r * (d[j] * wp[j] - sg / hn - xh * sgx / hn)
                    }
                } else {
                    var dot: R = 0
                    for j in 0 ..< h { dot += d[j] * wp[j] * xr[j] }
                    let c = r * r * r * dot / hn
                    for j in 0 ..< h { o[j] += r * d[j] * wp[j] - xr[j] * c }
                }
            }
        }
        w.materializeGrad()
        b?.materializeGrad()
        let wg = w.grad, bg = b?.grad
        guard wg != nil || bg != nil else { return }
        parallelRanges(h, threads: threads, cost: rows) { cols in
            for t in 0 ..< rows {
                let xr = x.p + t * h, d = dy.p + t * h, r = rstd.p[t]
                if let mean {
                    let mu = mean.p[t]
                    if let g = wg { for j in cols { g.p[j] += d[j] * (xr[j] - mu) * r } }
                    if let g = bg { for j in cols { g.p[j] += d[j] } }
                } else if let g = wg {
                    for j in cols { g.p[j] += d[j] * xr[j] * r }
                }
            }
        }
    }

    /// Causal grouped-query attention per sequence: query head i reads KV head i / (heads / kvHeads);
    /// probs [B, heads, S, S] keeps the softmax (zeros above the diagonal). Not `causal`
    /// (encoders): every position of a sequence attends to every position of it.
    func attention(q: Buf<R>, k: Buf<R>, v: Buf<R>, probs: Buf<R>, out: Buf<R>, batch B: Int, length S: Int,
                   heads nh: Int, kvHeads nkv: Int, causal: Bool = true) {
        let hd = config.headDim, qd = nh * hd, kvd = nkv * hd, group = nh / nkv
        let scale = 1 / R(hd).squareRoot()
        let items = B * nkv
        let chunks = S * S * hd * nh * B < parallelWork ? 1 : min(threads, items)
        parallel(chunks) { c in
            let kg = scratch(S * hd), vt = scratch(hd * S), qh = scratch(S * hd), oh = scratch(S * hd)
            var item = c
            while item < items {
                let b = item / nkv, g = item % nkv
                for s in 0 ..< S {
                    for d in 0 ..< hd {
                        kg.p[s * hd + d] = k.p[(b * S + s) * kvd + g * hd + d]
                        vt.p[d * S + s] = v.p[(b * S + s) * kvd + g * hd + d]
                    }
                }
                for head in g * group ..< (g + 1) * group {
                    for s in 0 ..< S { for d in 0 ..< hd { qh.p[s * hd + d] = q.p[(b * S + s) * qd + head * hd + d] * scale } }
                    let pr = probs.p + (b * nh + head) * S * S
                    R.gemm(qh.p, kg.p, pr, m: S, n: S, k: hd, accumulate: false, threads: 1, bf16: false)
                    for i in 0 ..< S {
                        let row = pr + i * S, end = causal ? i + 1 : S
                        var m = row[0]
                        for j in 1 ..< end where row[j] > m { m = row[j] }
                        var sum: R = 0
                        for j in 0 ..< end { row[j] = R.exp(row[j] - m); sum += row[j] }
                        for j in 0 ..< end { row[j] /= sum }
                        for j in end ..< S { row[j] = 0 }
                    }
                    R.gemm(pr, vt.p, oh.p, m: S, n: hd, k: S, accumulate: false, threads: 1, bf16: false)
                    for s in 0 ..< S { (out.p + (b * S + s) * qd + head * hd).update(from: oh.p + s * hd, count: hd) }
                }
                item += chunks
            }
        }
    }

    /// Gradients of `attention` for dOut: dq, dk, dv (overwritten).
    func attentionBackward(dOut: Buf<R>, q: Buf<R>, k: Buf<R>, v: Buf<R>, probs: Buf<R>, dq: Buf<R>, dk: Buf<R>, dv: Buf<R>,
                           batch B: Int, length S: Int, heads nh: Int, kvHeads nkv: Int, causal: Bool = true) {
        let hd = config.headDim, qd = nh * hd, kvd = nkv * hd, group = nh / nkv
        let scale = 1 / R(hd).squareRoot()
        let items = B * nkv
        let chunks = S * S * hd * nh * B < parallelWork ? 1 : min(threads, items)
        parallel(chunks) { c in
            let kt = scratch(hd * S), vg = scratch(S * hd), qt = scratch(hd * S), doh = scratch(S * hd), doT = scratch(hd * S)
            let dp = scratch(S * S), pt = scratch(S * S), dkg = scratch(S * hd), dvg = scratch(S * hd), dqh = scratch(S * hd)
            var item = c
            while item < items {
                let b = item / nkv, g = item % nkv
                for s in 0 ..< S {
                    for d in 0 ..< hd {
                        kt.p[d * S + s] = k.p[(b * S + s) * kvd + g * hd + d]
                        vg.p[s * hd + d] = v.p[(b * S + s) * kvd + g * hd + d]
                    }
                }
                dkg.zero()
                dvg.zero()
                for head in g * group ..< (g + 1) * group {
                    for s in 0 ..< S {
                        for d in 0 ..< hd {
                            let o = (b * S + s) * qd + head * hd + d
                            doh.p[s * hd + d] = dOut.p[o]
                            doT.p[d * S + s] = dOut.p[o]
                            qt.p[d * S + s] = q.p[o] * scale
                        }
                    }
                    let pr = probs.p + (b * nh + head) * S * S
                    // dP = dO · V^T; dV += P^T · dO
                    R.gemm(doh.p, vg.p, dp.p, m: S, n: S, k: hd, accumulate: false, threads: 1, bf16: false)
                    R.transpose(pr, pt.p, rows: S, cols: S, threads: 1)
                    R.gemm(pt.p, doT.p, dvg.p, m: S, n: hd, k: S, accumulate: true, threads: 1, bf16: false)
                    // dS = P ⊙ (dP - rowsum(dP ⊙ P)), in place in dp
                    for i in 0 ..< S {
                        let prow = pr + i * S, drow = dp.p + i * S, end = causal ? i + 1 : S
                        var dot: R = 0
                        for j in 0 ..< end { dot += drow[j] * prow[j] }
                        for j in 0 ..< end { drow[j] = prow[j] * (drow[j] - dot) }
                        for j in end ..< S { drow[j] = 0 }
                    }
                    // dQ = dS · K · scale; dK += dS^T · (Q · scale)
                    R.gemm(dp.p, kt.p, dqh.p, m: S, n: hd, k: S, accumulate: false, threads: 1, bf16: false)
                    for s in 0 ..< S {
                        for d in 0 ..< hd { dq.p[(b * S + s) * qd + head * hd + d] = dqh.p[s * hd + d] * scale }
                    }
                    R.transpose(dp.p, pt.p, rows: S, cols: S, threads: 1)
                    R.gemm(pt.p, qt.p, dkg.p, m: S, n: hd, k: S, accumulate: true, threads: 1, bf16: false)
                }
                for s in 0 ..< S {
                    (dk.p + (b * S + s) * kvd + g * hd).update(from: dkg.p + s * hd, count: hd)
                    (dv.p + (b * S + s) * kvd + g * hd).update(from: dvg.p + s * hd, count: hd)
                }
                item += chunks
            }
        }
    }

    @inline(__always) func sigmoid(_ x: R) -> R { 1 / (1 + R.exp(-x)) }
    @inline(__always) func silu(_ x: R) -> R { x * sigmoid(x) }

    static var geluK: R { R(0.7978845608028654) }
    @inline(__always) func gelu(_ x: R) -> R {
        let k = Self.geluK
        return R(0.5) * x * (1 + R.tanh(k * (x + R(0.044715) * x * x * x)))
    }
    @inline(__always) func geluDerivative(_ x: R) -> R {
        let k = Self.geluK
        let t = R.tanh(k * (x + R(0.044715) * x * x * x))
        return R(0.5) * (1 + t) + R(0.5) * x * (1 - t * t) * k * (1 + 3 * R(0.044715) * x * x)
    }

    /// GELU with the error function (BERT), as `edge_gelu_erf`: x/2 · (1 + erf(x/sqrt 2)).
    @inline(__always) func geluErf(_ x: R) -> R { R(0.5) * x * (1 + R.erf(x * R(0.70710678118654752))) }
    /// d/dx geluErf: (1 + erf(x/sqrt 2))/2 + x · exp(-x^2/2) / sqrt(2 pi).
    @inline(__always) func geluErfDerivative(_ x: R) -> R {
        R(0.5) * (1 + R.erf(x * R(0.70710678118654752))) + x * R.exp(-R(0.5) * x * x) * R(0.3989422804014327)
    }
}

/// cos/sin of RoPE angles for positions 0..<S (pairs i and i + hd/2 rotate by pos * theta^(-2i/hd)),
/// as `edge_rope` computes them.
struct RopeTable<R: TrainScalar> {
    let half: Int
    let cos: [R], sin: [R]

    init(positions: Int, headDim: Int, theta: Double) {
        half = headDim / 2
        var c: [R] = [], s: [R] = []
        c.reserveCapacity(positions * half)
        s.reserveCapacity(positions * half)
        for p in 0 ..< positions {
            for i in 0 ..< half {
                let invFreq = 1 / R.pow(R(theta), R(2 * i) / R(headDim))
                let angle = R(p) * invFreq
                c.append(R.cos(angle))
                s.append(R.sin(angle))
            }
        }
        self.cos = c
        self.sin = s
    }

    /// Rotates (or, when `inverse`, rotates back: the gradient of the rotation) every head of
    /// every row of x [rows, heads * headDim]; row r is position r % length. Rows are split over `threads`.
    func apply(_ x: Buf<R>, rows: Int, length: Int, heads: Int, inverse: Bool, threads: Int = 1) {
        let hd = half * 2
        cos.withUnsafeBufferPointer { cosp in
            sin.withUnsafeBufferPointer { sinp in
                parallelRanges(rows, threads: threads, cost: heads * hd) { rowRange in
                    for r in rowRange {
                        let pos = r % length
                        for i in 0 ..< half {
                            let c = cosp[pos * half + i], s = inverse ? -sinp[pos * half + i] : sinp[pos * half + i]
                            for hh in 0 ..< heads {
                                let v = x.p + r * heads * hd + hh * hd
                                let a = v[i], b = v[i + half]
                                v[i] = a * c - b * s
                                v[i + half] = b * c + a * s
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What training refuses.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case missingTensor(String)
    case badShape(String, expected: [Int], count: Int)
    case textTooShort(tokens: Int, needed: Int)
    case badCheckpoint(path: String, why: String)
    case nonFinite(step: Int, what: String)
    /// The architecture cannot be trained this way (an encoder has no next token: it trains only
    /// by distillation, against a teacher's hidden states).
    case unsupportedArchitecture(String)

    public var description: String {
        switch self {
        case let .missingTensor(n): return "tensor '\(n)' is missing; the model config requires it"
        case let .badShape(n, e, c): return "tensor '\(n)' has \(c) values; its shape \(e) needs \(e.reduce(1, *))"
        case let .textTooShort(t, n): return "the training text has \(t) tokens; at least \(n) are needed (one training and one held-out window)"
        case let .badCheckpoint(p, why): return "\(p): \(why)"
        case let .unsupportedArchitecture(a): return "training a \(a) model without a teacher is not supported (an encoder has no next token to predict; distill it instead)"
        case let .nonFinite(step, what): return "training diverged at step \(step): \(what) is not finite (lower 'lr')"
        }
    }
}
