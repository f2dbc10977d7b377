import EdgeFormat
import EdgeKernels

/// The encoder forward (BERT) and sentence embeddings.
///
/// Sentences are never padded: a batch is the sentences' tokens one after another, [N, h] with
/// N the sum of their lengths, so every linear layer is one product over all of them, and the
/// attention runs inside each sentence (bidirectional, every token sees every token of its own
/// sentence and none of the others). That is the padded batch with its attention mask, without
/// the padding's work.
extension EdgeModel {
    /// Throws `.wrongModelKind` unless the model is an encoder.
    func requireEncoder() throws {
        guard !config.isEncoder else { return }
        throw RuntimeError.wrongModelKind(source: source, why: "the model is a decoder (\(config.architecture.rawValue)): it has no sentence embeddings; use perplexity or generate")
    }

    /// Tokens per sentence at most: the pooling's `max_tokens`, else `max_positions`.
    public var maxSentenceTokens: Int { min(config.pooling?.maxTokens ?? config.maxPositions, config.maxPositions) }

    /// Token ids of one sentence as the encoder reads it: the tokenizer's special tokens around the
    /// text's ids (`[CLS] … [SEP]`), the text's ids cut from the end so that the whole fits
    /// `maxSentenceTokens` (sentence-transformers' truncation).
    /// - Throws: `RuntimeError.noTokenizer`; `.wrongModelKind` for a decoder.
    public func sentenceTokens(_ text: String) throws -> [Int32] {
        try requireEncoder()
        guard let tokenizer else { throw RuntimeError.noTokenizer(source: source) }
        let prefix = tokenizer.specialTokenPrefix, suffix = tokenizer.specialTokenSuffix
        let room = max(0, maxSentenceTokens - prefix.count - suffix.count)
        return prefix + tokenizer.encode(text).prefix(room) + suffix
    }

    /// Sentence embeddings of `texts` (one vector of `hidden_size` per text), pooled and normalized as
    /// the model's `pooling` says.
    /// - Parameter batchTokens: sentences are run together until a batch holds this many tokens.
    /// - Throws: as `sentenceTokens` and `embed(tokens:)`.
    public func embed(_ texts: [String], batchTokens: Int = 4096, progress: ((Int) -> Void)? = nil) throws -> [[Float]] {
        try embed(tokens: texts.map(sentenceTokens), batchTokens: batchTokens, progress: progress)
    }

    /// Sentence embeddings of token lists (each as `sentenceTokens` makes them).
    /// - Parameter progress: called with the number of sentences done after each batch.
    /// - Throws: `.wrongModelKind` for a decoder; `.tokenOutOfRange`; `.contextFull` for a list longer
    ///   than `max_positions` or empty.
    public func embed(tokens sentences: [[Int32]], batchTokens: Int = 4096, progress: ((Int) -> Void)? = nil) throws -> [[Float]] {
        try requireEncoder()
        guard let pooling = config.pooling else { preconditionFailure("embed: an encoder without pooling") }
        let h = config.hiddenSize
        var out: [[Float]] = []
        out.reserveCapacity(sentences.count)
        var start = 0
        while start < sentences.count {
            var end = start, n = 0
            while end < sentences.count, end == start || n + sentences[end].count <= batchTokens {
                n += sentences[end].count
                end += 1
            }
            let batch = Array(sentences[start ..< end])
            let x = try hiddenStates(batch)
            var row = 0
            for s in batch {
                var v = [Float](repeating: pooling.mode == .max ? -.infinity : 0, count: h)
                switch pooling.mode {
                case .cls:
                    for j in 0 ..< h { v[j] = x[row * h + j] }
                case .mean:
                    var acc = [Double](repeating: 0, count: h)
                    for t in 0 ..< s.count { for j in 0 ..< h { acc[j] += Double(x[(row + t) * h + j]) } }
                    for j in 0 ..< h { v[j] = Float(acc[j] / Double(s.count)) }
                case .max:
                    for t in 0 ..< s.count { for j in 0 ..< h { v[j] = Swift.max(v[j], x[(row + t) * h + j]) } }
                }
                if pooling.normalize {
                    let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    let scale = Float(1 / Swift.max(norm, 1e-12))
                    for j in 0 ..< h { v[j] *= scale }
                }
                out.append(v)
                row += s.count
            }
            start = end
            progress?(end)
        }
        return out
    }

    /// The last hidden states of every token of `sentences`, one sentence after another: [N, hidden]
    /// row-major, N the total token count. Calls `activationObserver` before every linear product,
    /// with all N rows.
    /// - Throws: `.wrongModelKind` for a decoder; `.tokenOutOfRange`; `.contextFull` for an empty
    ///   sentence or one longer than `max_positions`.
    public func hiddenStates(_ sentences: [[Int32]]) throws -> [Float] {
        try requireEncoder()
        let step = EncoderStep(config: config, threads: threads, activations: activations)
        try step.check(sentences)
        let lengths = sentences.map(\.count)
        let n = lengths.reduce(0, +)
        guard n > 0 else { return [] }
        var x = [Float](repeating: 0, count: n * config.hiddenSize)
        let buffers = EncoderBuffers(config: config, blocks: blocks.map(\.sizes), tokens: n)
        x.withUnsafeMutableBufferPointer { xb in
            let x = xb.baseAddress!
            step.embed(sentences, token: tokenEmbedding, position: positionEmbedding!, types: tokenTypeEmbedding!,
                       norm: embedNorm!, normBias: embedNormBias!, into: x, scratch: buffers.y)
            for b in blocks { step.block(b, x: x, lengths: lengths, buffers: buffers, observe: activationObserver) }
        }
        return x
    }
}

/// cos(a, b) of two embeddings, in double; 0 when either vector is zero.
/// - Precondition: equal lengths.
public func cosineSimilarity(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "cosine: vectors of \(a.count) and \(b.count) values")
    var dot = 0.0, na = 0.0, nb = 0.0
    for i in a.indices {
        dot += Double(a[i]) * Double(b[i])
        na += Double(a[i]) * Double(a[i])
        nb += Double(b[i]) * Double(b[i])
    }
    let d = (na * nb).squareRoot()
    return d > 0 ? dot / d : 0
}

/// Work buffers of one encoder forward over N tokens (freed with it).
final class EncoderBuffers {
    let y, q, k, v, att, up: UnsafeMutablePointer<Float>

    /// Sized for the largest of `blocks` (structured pruning makes layers differ).
    init(config: ModelConfig, blocks: [ModelConfig.LayerSizes], tokens n: Int) {
        let maxF = blocks.map(\.intermediateSize).max() ?? 0
        let maxQ = blocks.map { $0.numHeads * config.headDim }.max() ?? 0
        y = .allocate(capacity: n * config.hiddenSize)
        q = .allocate(capacity: n * maxQ)
        k = .allocate(capacity: n * maxQ)
        v = .allocate(capacity: n * maxQ)
        att = .allocate(capacity: n * maxQ)
        up = .allocate(capacity: n * maxF)
    }

    deinit { for p in [y, q, k, v, att, up] { p.deallocate() } }
}

/// The steps of the encoder forward (embedding, one post-norm block), shared by `EdgeModel.hiddenStates`
/// and `LayerwiseForward` so that an encoder run whole and one run layer by layer compute the same thing.
struct EncoderStep {
    let config: ModelConfig
    let threads: Int
    let activations: ActivationPrecision

    /// Refuses token lists the encoder cannot run: an id outside the vocabulary, an empty list or one
    /// longer than `max_positions`.
    func check(_ sentences: [[Int32]]) throws {
        let vocab = config.vocabSize
        for s in sentences {
            if let bad = s.first(where: { $0 < 0 || Int($0) >= vocab }) { throw RuntimeError.tokenOutOfRange(token: bad, vocabSize: vocab) }
            guard !s.isEmpty, s.count <= config.maxPositions else {
                throw RuntimeError.contextFull(needed: s.count, capacity: config.maxPositions)
            }
        }
    }

    /// x[t] = LayerNorm(token[id] + position[t within its sentence] + token type 0).
    func embed(_ sentences: [[Int32]], token: Linear, position: Linear, types: Linear, norm: [Float], normBias: [Float],
               into x: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize
        let row = UnsafeMutablePointer<Float>.allocate(capacity: h), type0 = UnsafeMutablePointer<Float>.allocate(capacity: h)
        defer { row.deallocate(); type0.deallocate() }
        types.row(0, into: type0)
        var r = 0
        for s in sentences {
            for (t, id) in s.enumerated() {
                let dst = scratch + r * h
                token.row(Int(id), into: dst)
                position.row(t, into: row)
                edge_add(dst, row, h)
                edge_add(dst, type0, h)
                r += 1
            }
        }
        layerNorm(scratch, x, rows: r, norm, normBias)
    }

    private func layerNorm(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, _ w: [Float], _ b: [Float]) {
        let h = config.hiddenSize, eps = Float(config.normEps)
        w.withUnsafeBufferPointer { wp in
            b.withUnsafeBufferPointer { bp in
                for t in 0 ..< rows { edge_layernorm(src + t * h, wp.baseAddress, bp.baseAddress, dst + t * h, h, eps) }
            }
        }
    }

    private func addBias(_ m: UnsafeMutablePointer<Float>, rows: Int, width: Int, _ b: [Float]?) {
        guard let b else { return }
        b.withUnsafeBufferPointer { bp in for t in 0 ..< rows { edge_add(m + t * width, bp.baseAddress, width) } }
    }

    /// One post-norm block over x [N, h] (sentences of `lengths` one after another), in place:
    /// x = LN1(x + Wo·attn(Wq·x, Wk·x, Wv·x) + bo), x = LN2(x + Wdown·gelu(Wup·x + bup) + bdown).
    func block(_ b: Block, x: UnsafeMutablePointer<Float>, lengths: [Int], buffers: EncoderBuffers, observe: ActivationObserver?) {
        let h = config.hiddenSize, hd = config.headDim
        let n = lengths.reduce(0, +)
        let nh = b.sizes.numHeads, f = b.sizes.intermediateSize, qd = nh * hd
        let q = buffers.q, k = buffers.k, v = buffers.v, att = buffers.att, y = buffers.y, up = buffers.up
        observe?(b.q.name, x, n, b.q.cols)
        Linear.matmul([(b.q, q), (b.k, k), (b.v, v)], x, tokens: n, threads: threads, activations: activations)
        addBias(q, rows: n, width: qd, b.qBias)
        addBias(k, rows: n, width: qd, b.kBias)
        addBias(v, rows: n, width: qd, b.vBias)
        bidirectionalAttention(q: q, k: k, v: v, out: att, lengths: lengths, heads: nh, headDim: hd)
        observe?(b.o.name, att, n, b.o.cols)
        b.o.matmul(att, tokens: n, into: y, threads: threads, activations: activations)
        addBias(y, rows: n, width: h, b.oBias)
        edge_add(y, x, n * h)
        layerNorm(y, x, rows: n, b.attnNorm, b.attnNormBias!)

        observe?(b.up.name, x, n, b.up.cols)
        b.up.matmul(x, tokens: n, into: up, threads: threads, activations: activations)
        addBias(up, rows: n, width: f, b.upBias)
        edge_gelu_erf(up, n * f)
        observe?(b.down.name, up, n, b.down.cols)
        b.down.matmul(up, tokens: n, into: y, threads: threads, activations: activations)
        addBias(y, rows: n, width: h, b.downBias)
        edge_add(y, x, n * h)
        layerNorm(y, x, rows: n, b.ffnNorm, b.ffnNormBias!)
    }

    /// softmax(Q K^T / sqrt(hd)) V per sentence and head; q, k, v, out: [N, heads*hd]. Work items
    /// (sentence, head) go round-robin to the threads, longest sentences first.
    func bidirectionalAttention(q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                                        out: UnsafeMutablePointer<Float>, lengths: [Int], heads nh: Int, headDim hd: Int) {
        let qd = nh * hd, scale = 1 / Float(hd).squareRoot()
        var offsets: [Int] = [], o = 0
        for l in lengths { offsets.append(o); o += l }
        let order = lengths.indices.sorted { lengths[$0] > lengths[$1] }
        let items = order.count * nh
        let longest = lengths.max() ?? 0
        let work = lengths.reduce(0) { $0 + $1 * $1 } * qd
        let chunks = work < Linear.parallelThreshold ? 1 : min(threads, items)
        parallelFor(chunks) { c in
            let qh = UnsafeMutablePointer<Float>.allocate(capacity: longest * hd)
            let kh = UnsafeMutablePointer<Float>.allocate(capacity: longest * hd)
            let vh = UnsafeMutablePointer<Float>.allocate(capacity: longest * hd)
            let s = UnsafeMutablePointer<Float>.allocate(capacity: longest * longest)
            let oh = UnsafeMutablePointer<Float>.allocate(capacity: longest * hd)
            defer { for p in [qh, kh, vh, s, oh] { p.deallocate() } }
            var item = c
            while item < items {
                let sentence = order[item / nh], head = item % nh
                let L = lengths[sentence], base = offsets[sentence]
                for t in 0 ..< L {
                    let src = (base + t) * qd + head * hd
                    for d in 0 ..< hd {
                        qh[t * hd + d] = q[src + d] * scale
                        kh[t * hd + d] = k[src + d]
                        vh[t * hd + d] = v[src + d]
                    }
                }
                edge_matmul_f32(kh, qh, s, L, L, hd, 0, L)  // S = (Q / sqrt(hd)) K^T, [L, L]
                for t in 0 ..< L { edge_softmax(s + t * L, L) }
                edge_matmul_f32_wt(vh, s, oh, L, hd, L, 0, hd)  // O = S V, [L, hd]
                for t in 0 ..< L { (out + (base + t) * qd + head * hd).update(from: oh + t * hd, count: hd) }
                item += chunks
            }
        }
    }
}
