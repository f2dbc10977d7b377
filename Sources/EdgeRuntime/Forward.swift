import Dispatch
import EdgeFormat
import EdgeKernels

/// What a KV cache holds its keys and values as.
public enum KVCachePrecision: String, CaseIterable, Codable, Sendable {
    /// binary32: the attention reads the keys and values the projections made (the default).
    case f32
    /// binary16 (llama.cpp's default cache type): half the memory; each key and value rounded to
    /// nearest, so results move in the last digits (docs/performance.md, "A float16 KV cache").
    case f16

    /// Bytes per cached number.
    public var bytes: Int { self == .f32 ? 4 : 2 }
}

/// One layer's cached keys or values, [kv_heads, capacity, head_dim] head-major, in `precision`.
struct KVStore {
    let base: UnsafeMutableRawPointer
    let precision: KVCachePrecision

    var f32: UnsafeMutablePointer<Float> { base.assumingMemoryBound(to: Float.self) }
    var f16: UnsafeMutablePointer<UInt16> { base.assumingMemoryBound(to: UInt16.self) }

    /// Writes `count` numbers of `src` from element `offset` on (rounded to binary16 for an f16 store).
    func write(_ src: UnsafePointer<Float>, at offset: Int, count: Int) {
        switch precision {
        case .f32: (f32 + offset).update(from: src, count: count)
        case .f16: edge_f16_narrow(src, f16 + offset, count)
        }
    }
}

/// Keys and values of the positions seen so far, per layer: K and V are each
/// [kv_heads(layer), capacity, head_dim] in `precision` (float32 unless asked), head-major, so the
/// attention reads each KV head's keys and values in place as contiguous [positions, head_dim]
/// matrices. A forward pass appends its tokens' keys and values; `reset()` starts over.
public final class KVCache {
    /// Positions it can hold.
    public let capacity: Int
    /// What the keys and values are held as.
    public let precision: KVCachePrecision
    /// Positions filled (the position the next token gets).
    public internal(set) var count = 0
    /// Bytes of keys and values it holds room for.
    public let bytes: Int
    let keys: [KVStore]
    let values: [KVStore]

    init(config: ModelConfig, capacity: Int, precision: KVCachePrecision = .f32) {
        self.capacity = capacity
        self.precision = precision
        var k: [KVStore] = [], v: [KVStore] = [], total = 0
        for l in 0 ..< config.numLayers {
            let n = capacity * config.sizes(layer: l).numKVHeads * config.headDim * precision.bytes
            k.append(KVStore(base: .allocate(byteCount: n, alignment: 64), precision: precision))
            v.append(KVStore(base: .allocate(byteCount: n, alignment: 64), precision: precision))
            total += 2 * n
        }
        keys = k
        values = v
        bytes = total
    }

    deinit {
        for s in keys { s.base.deallocate() }
        for s in values { s.base.deallocate() }
    }

    /// Forgets every position (the next token gets position 0).
    public func reset() { count = 0 }
}

extension EdgeModel {
    /// A cache for up to `capacity` positions, holding keys and values as `kvCache` says.
    /// - Throws: `RuntimeError.badContext` unless 1 <= capacity <= config.maxPositions;
    ///   `.wrongModelKind` for an encoder.
    public func makeCache(capacity: Int) throws -> KVCache {
        try requireDecoder()
        guard capacity >= 1, capacity <= config.maxPositions else {
            throw RuntimeError.badContext(requested: capacity, limit: config.maxPositions,
                                          why: "it must be between 1 and the model's max_positions")
        }
        return KVCache(config: config, capacity: capacity, precision: kvCache)
    }

    /// Throws `.wrongModelKind` unless the model is a decoder (has logits).
    func requireDecoder() throws {
        guard config.isEncoder else { return }
        throw RuntimeError.wrongModelKind(source: source, why: "the model is an encoder (\(config.architecture.rawValue)): it has no logits, so no perplexity or generation; use 'edge-run embed'")
    }

    /// Logits of every position of `tokens`, run as one window from position 0: [tokens.count, vocab].
    /// - Throws: as `forward`.
    public func logits(_ tokens: [Int32]) throws -> [Float] {
        try forward(tokens, cache: try makeCache(capacity: max(1, tokens.count)))
    }

    /// Runs `tokens` (T of them) at positions cache.count ..< cache.count + T, appending their keys
    /// and values to `cache`, and returns the logits of the positions in `outputs`
    /// (indices into `tokens`; all by default) as [outputs.count, vocab] row-major.
    ///
    /// Both architectures, pre-norm blocks:
    /// x = embed(tokens) (+ learned positions, GPT-2); per layer
    /// x += Wo · attn(RoPE(Wq·n1(x)), RoPE(Wk·n1(x)), Wv·n1(x)) (causal, grouped-query; RoPE for Llama, biases for GPT-2),
    /// x += Wdown · act(n2(x)) with act = GELU-tanh(Wup·) (GPT-2) or silu(Wgate·) * Wup· (Llama);
    /// logits = Wout · n(x), Wout = output.weight or token_embd.weight when tied.
    /// More than `microBatch` tokens run in consecutive pieces (`microBatchPieces`).
    /// - Throws: `RuntimeError.tokenOutOfRange`, `.contextFull` (nothing is computed then);
    ///   `.wrongModelKind` for an encoder.
    public func forward(_ tokens: [Int32], cache: KVCache, outputs: Range<Int>? = nil) throws -> [Float] {
        let outs = outputs ?? 0 ..< tokens.count
        var logits = [Float](repeating: 0, count: max(0, outs.count) * config.vocabSize)
        try logits.withUnsafeMutableBufferPointer { lp in
            try run(tokens, cache: cache, outputs: outs, headRows: outs.count, into: lp.baseAddress) { _, _, _ in }
        }
        return logits
    }

    /// As `forward`, but without holding every output row's logits: they are computed and handed to
    /// `body` in consecutive blocks of at most `rowsPerBlock` rows (of equal size: `headBlocks`),
    /// `body(first, rows, logits)` with `first` an index into `tokens` and `logits` [rows, vocab] (a
    /// buffer reused for the next block).
    /// Each row's logits are those `forward` returns, bit for bit. Perplexity runs through it, so a
    /// window's memory holds one block of the vocabulary's logits, not all of its scored rows'.
    /// - Throws: as `forward`, and what `body` throws.
    public func forward(_ tokens: [Int32], cache: KVCache, outputs: Range<Int>, rowsPerBlock: Int,
                        body: (_ first: Int, _ rows: Int, _ logits: UnsafeBufferPointer<Float>) throws -> Void) throws {
        try run(tokens, cache: cache, outputs: outputs, headRows: max(1, rowsPerBlock), into: nil, body: body)
    }

    /// The consecutive pieces a forward call over `count` tokens runs in: `microBatch` tokens each,
    /// the last taking a remainder under the attention tile (64) too, so that every piece but a
    /// whole call shorter than that has at least 64 tokens and, with `microBatch` a multiple of 64,
    /// every attention tile covers the same positions as in one call.
    public static func microBatchPieces(_ count: Int, microBatch: Int) -> [Range<Int>] {
        let size = max(1, microBatch)
        guard count > size else { return [0 ..< count] }
        var pieces: [Range<Int>] = []
        var start = 0
        while start < count {
            var end = min(count, start + size)
            if count - end < ForwardStep.attentionTile { end = count }
            pieces.append(start ..< end)
            start = end
        }
        return pieces
    }

    /// `forward`'s work: the pieces through the blocks, each piece's rows of `outs` through the final
    /// norm into one [outs.count, h] buffer, then the head over those rows: in one call written to
    /// `into` (row r at (r - outs.lowerBound) * vocab) when it is given, else in blocks of at most
    /// `headRows`, of equal size (`headBlocks`), handed to `body`.
    private func run(_ tokens: [Int32], cache: KVCache, outputs outs: Range<Int>, headRows: Int,
                     into target: UnsafeMutablePointer<Float>?,
                     body: (Int, Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        try requireDecoder()
        guard let output, let outputNorm else { preconditionFailure("forward: a decoder without an output head") }
        let T = tokens.count
        precondition(outs.lowerBound >= 0 && outs.upperBound <= T, "forward: outputs \(outs) outside 0..<\(T)")
        guard T > 0 else { return }
        let vocab = config.vocabSize
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= vocab }) {
            throw RuntimeError.tokenOutOfRange(token: bad, vocabSize: vocab)
        }
        let p0 = cache.count
        guard p0 + T <= cache.capacity else { throw RuntimeError.contextFull(needed: p0 + T, capacity: cache.capacity) }
        let capacity = cache.capacity

        let h = config.hiddenSize
        let step = ForwardStep(config: config, threads: threads, activations: activations)
        let pieces = Self.microBatchPieces(T, microBatch: microBatch)
        let normed = UnsafeMutablePointer<Float>.allocate(capacity: max(1, outs.count) * h)  // n(x) of the rows of outs
        defer { normed.deallocate() }

        // The work buffers: `x` is a raw pointer into them, which would not keep them alive by itself,
        // hence the explicit lifetimes. When the head's logits go to `body` in blocks, the blocks are
        // computed into the buffers once the pieces are done (one allocation serves both, so the two
        // never add up); otherwise they are let go before the head.
        var held: ForwardBuffers? = ForwardBuffers(config: config, blocks: blocks.map(\.sizes), tokens: pieces.map(\.count).max()!)
        withExtendedLifetime(held!) { buffers in
            let x = buffers.x
            for piece in pieces {
                let start = p0 + piece.lowerBound, n = piece.count
                // Embeddings: only the rows needed are decoded.
                step.embed(Array(tokens[piece]), start: start, token: tokenEmbedding, position: positionEmbedding, into: x)
                for (l, b) in self.blocks.enumerated() {
                    step.block(b, x: x, tokens: n, start: start, keys: cache.keys[l], values: cache.values[l], capacity: capacity,
                               buffers: buffers, observe: activationObserver)
                }
                cache.count = p0 + piece.upperBound
                // The final norm, only for the rows asked for.
                let rows = outs.clamped(to: piece)
                if !rows.isEmpty {
                    step.norm(x + (rows.lowerBound - piece.lowerBound) * h, normed + (rows.lowerBound - outs.lowerBound) * h,
                              rows: rows.count, outputNorm, outputNormBias)
                }
            }
        }
        guard !outs.isEmpty else { return }

        // The output head, for the rows asked for.
        if let target {
            held = nil
            activationObserver?(output.name, normed, outs.count, output.cols)
            output.matmul(normed, tokens: outs.count, into: target, threads: threads, activations: activations)
            return
        }
        let plan = Self.headPlan(rows: outs.count, rowsPerBlock: headRows, vocab: vocab, bufferFloats: held!.floats)
        if !plan.inBuffers { held = nil }
        let own = plan.inBuffers ? nil : UnsafeMutablePointer<Float>.allocate(capacity: plan.blocks.map(\.count).max()! * vocab)
        defer { own?.deallocate() }
        try withExtendedLifetime(held) {
            let scratch = own ?? held!.storage
            for block in plan.blocks {
                let src = normed + block.lowerBound * h
                activationObserver?(output.name, src, block.count, output.cols)
                output.matmul(src, tokens: block.count, into: scratch, threads: threads, activations: activations)
                try body(outs.lowerBound + block.lowerBound, block.count, UnsafeBufferPointer(start: scratch, count: block.count * vocab))
            }
        }
    }

    /// The output head's blocks of logits when they go to a body (`forward(_:cache:outputs:rowsPerBlock:body:)`),
    /// and whether they are computed in the pieces' work buffers (`bufferFloats` long) or in memory of
    /// their own. In the buffers where a block of `rowsPerBlock` rows (or of all `rows`, if fewer) fits,
    /// or one at most a quarter smaller, of at least 16 rows (SmolLM2's 512-token windows: buffers of
    /// 10.4 MB, blocks of 51 rows instead of 64); else blocks of `rowsPerBlock` in their own memory.
    public static func headPlan(rows: Int, rowsPerBlock: Int, vocab: Int, bufferFloats: Int) -> (blocks: [Range<Int>], inBuffers: Bool) {
        let wanted = max(1, min(rowsPerBlock, rows)), fit = bufferFloats / max(1, vocab)
        if fit >= wanted || fit >= max(16, wanted - wanted / 4) {
            return (headBlocks(rows, rowsPerBlock: min(wanted, fit)), true)
        }
        return (headBlocks(rows, rowsPerBlock: rowsPerBlock), false)
    }

    /// `rows` rows in the fewest blocks of at most `rowsPerBlock`, of equal size (the first ones one
    /// larger): no short last block, so that the head's product takes the same kernel for every block as
    /// for all rows at once (the GEMMs run small token counts through other kernels: `Linear.matmul`).
    public static func headBlocks(_ rows: Int, rowsPerBlock: Int) -> [Range<Int>] {
        guard rows > 0 else { return [] }
        let count = (rows + max(1, rowsPerBlock) - 1) / max(1, rowsPerBlock)
        var blocks: [Range<Int>] = [], start = 0
        for i in 0 ..< count {
            let size = rows / count + (i < rows % count ? 1 : 0)
            blocks.append(start ..< start + size)
            start += size
        }
        return blocks
    }
}

/// Work buffers of one forward call over T tokens (freed with it).
final class ForwardBuffers {
    let x, xn, q, v, up, gate: UnsafeMutablePointer<Float>
    /// RoPE's cosines and sines for the positions of the current call, [T, head_dim / 2] each, made by
    /// the first block and read by every block (`ropeTables`): the trigonometry once per position,
    /// not once per layer and per Q and K.
    let ropeCos, ropeSin: UnsafeMutablePointer<Float>
    /// Every buffer above, in one allocation (each part a multiple of 64 bytes from its start): once the pieces are
    /// done, `EdgeModel.run` computes the output head's blocks of logits into it (`floats` long), so
    /// that the two are one allocation, not two held one after the other.
    let storage: UnsafeMutablePointer<Float>
    let floats: Int
    /// Floats in `gate` (0 for GPT-2, which has none).
    let gateFloats: Int
    /// `q` and `v`, adjacent: free from the attention's end to the next block's projections.
    let afterAttention: UnsafeMutableRawBufferPointer
    private var ropeFor: (start: Int, tokens: Int)?
    private let capacity: Int, headDim: Int, ropeTheta: Float

    /// Sized for the largest of `blocks` (structured pruning makes layers differ).
    init(config: ModelConfig, blocks: [ModelConfig.LayerSizes], tokens T: Int) {
        let h = config.hiddenSize, hd = config.headDim
        let maxQ = blocks.map { $0.numHeads * hd }.max() ?? 0
        let maxKV = blocks.map { $0.numKVHeads * hd }.max() ?? 0
        let maxF = blocks.map(\.intermediateSize).max() ?? 0
        let rope = config.architecture == .gpt2 ? 0 : T * (hd / 2)
        let sizes = [
            T * h,                          // x: residual stream (T, h)
            T * h,                          // xn: normed (T, h), then the attention's and the MLP's outputs
            T * maxQ,                       // q: queries (T, nh*hd)
            T * maxKV,                      // v: values (T, nkv*hd)
            // up: (T, f); before the MLP, the keys and then the attention output (T, nh*hd), hence the max
            T * max(maxF, maxQ, maxKV),
            config.architecture == .gpt2 ? 0 : T * maxF,  // gate
            rope, rope,                     // ropeCos, ropeSin
        ].map { ($0 + 15) / 16 * 16 }
        floats = max(16, sizes.reduce(0, +))
        gateFloats = sizes[5]
        storage = .allocate(capacity: floats)
        afterAttention = UnsafeMutableRawBufferPointer(start: storage + sizes[0] + sizes[1], count: (sizes[2] + sizes[3]) * 4)
        var parts: [UnsafeMutablePointer<Float>] = [], offset = 0
        for n in sizes {
            parts.append(storage + offset)
            offset += n
        }
        (x, xn, q, v, up, gate, ropeCos, ropeSin) = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7])
        capacity = T
        headDim = hd
        ropeTheta = Float(config.ropeTheta)
    }

    /// Fills `ropeCos` / `ropeSin` for positions p0 ..< p0 + T unless they already hold them.
    func ropeTables(start p0: Int, tokens T: Int) {
        precondition(T <= capacity, "ForwardBuffers: \(T) tokens in buffers for \(capacity)")
        if let f = ropeFor, f.start == p0, f.tokens == T { return }
        let half = headDim / 2
        for t in 0 ..< T { edge_rope_angles(ropeCos + t * half, ropeSin + t * half, headDim, p0 + t, ropeTheta) }
        ropeFor = (p0, T)
    }

    deinit { storage.deallocate() }
}

/// The steps of the forward pass (embedding, one block, a norm), shared by `EdgeModel.forward` and
/// `LayerwiseForward` so that a model run whole and one run layer by layer compute the same thing.
struct ForwardStep {
    let config: ModelConfig
    let threads: Int
    let activations: ActivationPrecision

    /// x[t] = token embedding of tokens[t] (+ the learned position p0 + t, GPT-2), decoding only those rows.
    func embed(_ tokens: [Int32], start p0: Int, token: Linear, position: Linear?, into x: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize
        let row = UnsafeMutablePointer<Float>.allocate(capacity: h)
        defer { row.deallocate() }
        for t in 0 ..< tokens.count {
            token.row(Int(tokens[t]), into: x + t * h)
            if let position {
                position.row(p0 + t, into: row)
                edge_add(x + t * h, row, h)
            }
        }
    }

    /// dst = norm(src) row by row: LayerNorm when there is a bias `b` (GPT-2), RMSNorm otherwise.
    func norm(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, _ w: [Float], _ b: [Float]?) {
        let h = config.hiddenSize, eps = Float(config.normEps)
        w.withUnsafeBufferPointer { wp in
            if let b {
                b.withUnsafeBufferPointer { bp in
                    for t in 0 ..< rows { edge_layernorm(src + t * h, wp.baseAddress, bp.baseAddress, dst + t * h, h, eps) }
                }
            } else {
                for t in 0 ..< rows { edge_rmsnorm(src + t * h, wp.baseAddress, dst + t * h, h, eps) }
            }
        }
    }

    private func addBias(_ m: UnsafeMutablePointer<Float>, rows: Int, width: Int, _ b: [Float]?) {
        guard let b else { return }
        b.withUnsafeBufferPointer { bp in for t in 0 ..< rows { edge_add(m + t * width, bp.baseAddress, width) } }
    }

    /// One pre-norm block over the residual stream x (T, h), in place, for tokens at positions
    /// p0 ..< p0 + T; their keys and values go to positions p0 ..< p0 + T of `keys` / `values`
    /// (each [kv_heads, capacity, head_dim], positions 0 ..< p0 filled by earlier calls).
    func block(_ b: Block, x: UnsafeMutablePointer<Float>, tokens T: Int, start p0: Int,
               keys: KVStore, values: KVStore, capacity: Int, buffers: ForwardBuffers,
               observe: ActivationObserver?) {
        let h = config.hiddenSize, hd = config.headDim
        let gpt2 = config.architecture == .gpt2
        // `xn` holds each half's normed input and, once its products have read it, that half's output
        // (o and down), before the residual sum.
        // `up` is free until the MLP: it holds the keys, then the attention's output (`att`).
        let xn = buffers.xn, q = buffers.q, att = buffers.up, up = buffers.up, gate = buffers.gate
        let nh = b.sizes.numHeads, nkv = b.sizes.numKVHeads, f = b.sizes.intermediateSize
        let qd = nh * hd, kvd = nkv * hd
        // Attention: n1, projections, RoPE, K and V into the cache (head-major), causal softmax.
        norm(x, xn, rows: T, b.attnNorm, b.attnNormBias)
        observe?(b.q.name, xn, T, b.q.cols)
        // Q, K and V in one parallel region; K into `att` and V into `buffers.v` (T, kvd each; `att`
        // is free until the attention writes it), then scattered to positions p0 ..< p0 + T of each KV head.
        // Until the MLP, `gate` is free: the products' int16 activations go there.
        let gateFree = UnsafeMutableRawBufferPointer(start: gate, count: buffers.gateFloats * 4)
        Linear.matmul([(b.q, q), (b.k, att), (b.v, buffers.v)], xn, tokens: T, threads: threads, activations: activations,
                      scratch: gateFree)
        addBias(q, rows: T, width: qd, b.qBias)
        let half = hd / 2
        if !gpt2 {
            buffers.ropeTables(start: p0, tokens: T)
            for t in 0 ..< T { edge_rope_apply(q + t * qd, hd, nh, buffers.ropeCos + t * half, buffers.ropeSin + t * half) }
        }
        for (m, bias, cache, rope) in [(att, b.kBias, keys, !gpt2), (buffers.v, b.vBias, values, false)] {
            addBias(m, rows: T, width: kvd, bias)
            for t in 0 ..< T {
                if rope { edge_rope_apply(m + t * kvd, hd, nkv, buffers.ropeCos + t * half, buffers.ropeSin + t * half) }
                for g in 0 ..< nkv { cache.write(m + t * kvd + g * hd, at: (g * capacity + p0 + t) * hd, count: hd) }
            }
        }
        attention(q: q, keys: keys, values: values, capacity: capacity, out: att, tokens: T, start: p0, heads: nh, kvHeads: nkv, headDim: hd)
        observe?(b.o.name, att, T, b.o.cols)
        b.o.matmul(att, tokens: T, into: xn, threads: threads, activations: activations, scratch: gateFree)
        addBias(xn, rows: T, width: h, b.oBias)
        edge_add(x, xn, T * h)

        // MLP: n2, up (and gate), activation, down.
        norm(x, xn, rows: T, b.ffnNorm, b.ffnNormBias)
        observe?(b.up.name, xn, T, b.up.cols)
        if let g = b.gate {  // up and gate in one parallel region
            // q and v (adjacent in `storage`) are free after the attention: the int16 activations go there.
            Linear.matmul([(b.up, up), (g, gate)], xn, tokens: T, threads: threads, activations: activations,
                          scratch: buffers.afterAttention)
        } else {
            b.up.matmul(xn, tokens: T, into: up, threads: threads, activations: activations)
        }
        addBias(up, rows: T, width: f, b.upBias)
        if b.gate != nil {
            edge_silu_mul(gate, up, up, T * f)
        } else {
            edge_gelu_tanh(up, T * f)
        }
        observe?(b.down.name, up, T, b.down.cols)
        // The gate buffer is free again: the down projection's int16 activations go there.
        b.down.matmul(up, tokens: T, into: xn, threads: threads, activations: activations, scratch: gateFree)
        addBias(xn, rows: T, width: h, b.downBias)
        edge_add(x, xn, T * h)
    }

    /// Query positions per attention tile: each tile's scores are one [tile, keys] block.
    static let attentionTile = 64

    /// Work (heads x keys x head size) from which one decoding step's attention is split over the
    /// threads: 2^14, SmolLM2 from 29 positions on (9 heads of 64). Smaller than the matrices'
    /// threshold, as a query head's scores and sum are a few microseconds of work against about
    /// one for a parallel region on the persistent pool.
    static let decodeAttentionThreshold = 1 << 14

    /// Causal grouped-query attention for T new tokens at positions start..<start+T.
    /// q, out: (T, heads*hd); keys, values: (kvHeads, capacity, hd) with positions 0..<start+T filled.
    /// Query head i reads KV head i / (heads / kvHeads); scores are scaled by 1/sqrt(hd).
    ///
    /// Blocked like a GEMM so the matrix kernels do the work, reading the cache in place: per tile of
    /// up to `attentionTile` queries (positions up to p, keys 0...p visible) and per query head of KV
    /// head g's group, S = (Q_tile / sqrt(hd)) K_g[0...p]^T (tile, n) by `edge_matmul_f32` with K_g as
    /// the weight matrix, a causal softmax per row, and O = S V_g[0...p] by `edge_matmul_f32_wt` with
    /// V_g as the transposed weight matrix (the same float operations as against V_g^T); a tile of one
    /// query (decoding) takes O = S V_g by `edge_vecmat_f32` instead, reading V_g's rows in place.
    /// Work items (KV head, tile) go round-robin to `threads` chunks, most expensive first. Decoding
    /// (one token) has one tile, so its items are the query heads instead (9 on SmolLM2 against 3 KV
    /// heads, so two threads get 5 and 4 rather than 2 and 1), parallel from a lower amount of work
    /// (`decodeAttentionThreshold`): each head's arithmetic is the same on any thread, so the bits are.
    /// A float16 cache: a prompt's item widens K_g[0...p] and V_g[0...p] once (`edge_f16_widen`) for the
    /// products above; decoding reads them in place, `edge_matmul_f16` for the scores and
    /// `edge_vecmat_f16` for the output.
    func attention(q: UnsafeMutablePointer<Float>, keys: KVStore, values: KVStore,
                   capacity: Int, out: UnsafeMutablePointer<Float>, tokens T: Int, start p0: Int, heads nh: Int,
                   kvHeads nkv: Int, headDim hd: Int) {
        let qd = nh * hd, group = nh / nkv, L = p0 + T
        let scale = 1 / Float(hd).squareRoot()
        let tile = Self.attentionTile
        let tiles = (T + tile - 1) / tile
        let perHead = T == 1
        let f16 = keys.precision == .f16
        // Items ordered by decreasing cost (last tiles see the most keys).
        let items = perHead ? nh : nkv * tiles
        let work = T * nh * L * hd
        let chunks = work < (perHead ? Self.decodeAttentionThreshold : Linear.parallelThreshold) ? 1 : min(threads, items)
        parallelFor(chunks) { c in
            let qt = UnsafeMutablePointer<Float>.allocate(capacity: tile * hd)   // scaled queries (tile, hd)
            let s = UnsafeMutablePointer<Float>.allocate(capacity: tile * L)     // scores / probabilities (tile, n)
            let o = UnsafeMutablePointer<Float>.allocate(capacity: tile * hd)    // head output (tile, hd)
            // A float16 cache's keys and values of one KV head widened for a prompt's tiles (n, hd) each.
            let wide = f16 && !perHead ? UnsafeMutablePointer<Float>.allocate(capacity: 2 * L * hd) : nil
            defer { for p in [qt, s, o] { p.deallocate() }; wide?.deallocate() }
            var item = c
            while item < items {
                let ti = perHead ? 0 : tiles - 1 - item / nkv, g = perHead ? item / group : item % nkv
                let t0 = ti * tile, rows = min(tile, T - t0)
                let n = p0 + t0 + rows  // keys visible to the tile's last query
                let at = g * capacity * hd  // KV head g's (n, hd) keys and values, in place
                var kg = keys.f32 + at, vg = values.f32 + at
                if let wide {  // widened once per item, for the group's query heads
                    edge_f16_widen(keys.f16 + at, wide, n * hd)
                    edge_f16_widen(values.f16 + at, wide + n * hd, n * hd)
                    kg = wide
                    vg = wide + n * hd
                }
                for head in perHead ? item ..< item + 1 : g * group ..< (g + 1) * group {
                    for i in 0 ..< rows {
                        let src = q + (t0 + i) * qd + head * hd, dst = qt + i * hd
                        for d in 0 ..< hd { dst[d] = src[d] * scale }
                    }
                    if f16 && perHead {
                        edge_matmul_f16(keys.f16 + at, qt, s, rows, n, hd, 0, n)
                    } else {
                        edge_matmul_f32(kg, qt, s, rows, n, hd, 0, n)
                    }
                    for i in 0 ..< rows {
                        let visible = p0 + t0 + i + 1, row = s + i * n
                        edge_softmax(row, visible)
                        (row + visible).update(repeating: 0, count: n - visible)
                    }
                    if rows == 1 {  // decoding: the probabilities times V_g read row by row, no transposed blocks
                        if f16 && perHead {
                            edge_vecmat_f16(s, values.f16 + at, hd, out + t0 * qd + head * hd, n, hd)
                        } else {
                            edge_vecmat_f32(s, vg, hd, out + t0 * qd + head * hd, n, hd)
                        }
                    } else {
                        edge_matmul_f32_wt(vg, s, o, rows, hd, n, 0, hd)
                        for i in 0 ..< rows { (out + (t0 + i) * qd + head * hd).update(from: o + i * hd, count: hd) }
                    }
                }
                item += chunks
            }
        }
    }
}
