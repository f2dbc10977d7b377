import EdgeFormat

/// The encoder (BERT) forward and backward, `EncoderStep`'s arithmetic in training form.
///
/// Every sequence of a batch is one sentence of S tokens starting at position 0 (the trainer frames
/// them `[CLS] … [SEP]`); there is no padding, so attention is bidirectional over the whole sequence.
///
///     e  = token[id] + position[t] + type[0]          x = LN_e(e)
///     per block:  q, k, v = x W^T + b                 att = softmax(q k^T / sqrt(hd)) v (per head)
///                 x1 = x + att Wo^T + bo               n2 = LN1(x1)
///                 y2 = n2 + gelu_erf(n2 Wup^T + bup) Wdown^T + bdown     x = LN2(y2)
///     output: x, the last hidden states [B*S, h]
extension TrainModel {
    /// Last hidden states [B*S, hidden] of B sentences of S tokens, and what `encoderBackward` needs.
    func encoderForward(_ batch: [[Int32]]) -> (logits: Buf<R>, cache: Cache) {
        let B = batch.count, S = batch.first?.count ?? 0
        precondition(B > 0 && S > 0 && batch.allSatisfy { $0.count == S }, "forward: sequences must share one nonzero length")
        let tokens = batch.flatMap { $0 }
        let (e, x0, rstdE, meanE) = encoderEmbed(tokens, length: S)
        var x = x0
        var caches: [LayerCache] = []
        for l in layers {
            let (out, lc) = encoderBlockForward(l, x, batch: B, length: S)
            caches.append(lc)
            x = out
        }
        let cache = Cache(tokens: tokens, batch: B, length: S, xL: e, nf: x, rstdF: rstdE, meanF: meanE)
        cache.layers = caches
        return (x, cache)
    }

    /// The embedding sum e [N, h] = token + position + type 0 (in the runtime's order of additions)
    /// of sequences of S tokens, and x = LN_e(e) with the norm's statistics.
    func encoderEmbed(_ tokens: [Int32], length S: Int) -> (e: Buf<R>, x: Buf<R>, rstd: Buf<R>, mean: Buf<R>) {
        precondition(S <= config.maxPositions, "forward: \(S) positions; the model has \(config.maxPositions)")
        let N = tokens.count, h = config.hiddenSize
        let e = scratch(N * h)
        for (i, tok) in tokens.enumerated() { effectiveRow(tokenEmbedding, Int(tok), into: e.p + i * h) }
        let epe = effective(positionEmbedding!)
        let type0 = scratch(h)
        effectiveRow(tokenTypes!, 0, into: type0.p)
        withExtendedLifetime(epe) {
            for i in 0 ..< N {
                let row = epe.p + (i % S) * h, o = e.p + i * h
                for j in 0 ..< h { o[j] += row[j] }
                for j in 0 ..< h { o[j] += type0.p[j] }
            }
        }
        let x = scratch(N * h), rstd = scratch(N), mean = scratch(N)
        norm(e, x, rows: N, embedNorm!, embedNormBias, rstd: rstd, mean: mean)
        return (e, x, rstd, mean)
    }

    /// One post-norm encoder block over x [B*S, h]: its output and what `encoderBlockBackward` needs.
    func encoderBlockForward(_ l: Layer, _ x: Buf<R>, batch B: Int, length S: Int) -> (Buf<R>, LayerCache) {
        let N = B * S, h = config.hiddenSize, hd = config.headDim
        let nh = l.sizes.numHeads, nkv = l.sizes.numKVHeads, f = l.sizes.intermediateSize
        let qd = nh * hd, kvd = nkv * hd
        let q = scratch(N * qd), k = scratch(N * kvd), v = scratch(N * kvd)
        linear(x, N, l.q, l.qBias, q)
        linear(x, N, l.k, l.kBias, k)
        linear(x, N, l.v, l.vBias, v)
        let probs = scratch(B * nh * S * S), att = scratch(N * qd)
        attention(q: q, k: k, v: v, probs: probs, out: att, batch: B, length: S, heads: nh, kvHeads: nkv, causal: false)
        let x1 = scratch(N * h)
        linear(att, N, l.o, l.oBias, x1)
        add(x1, x, count: N * h)
        let n2 = scratch(N * h), rstd1 = scratch(N), mean1 = scratch(N)
        norm(x1, n2, rows: N, l.attnNorm, l.attnNormBias, rstd: rstd1, mean: mean1)
        let u = scratch(N * f), a = scratch(N * f)
        linear(n2, N, l.up, l.upBias, u)
        parallelRanges(N * f, threads: threads, cost: 8) { r in for i in r { a.p[i] = geluErf(u.p[i]) } }
        let y2 = scratch(N * h)
        linear(a, N, l.down, l.downBias, y2)
        add(y2, n2, count: N * h)
        let out = scratch(N * h), rstd2 = scratch(N), mean2 = scratch(N)
        norm(y2, out, rows: N, l.ffnNorm, l.ffnNormBias, rstd: rstd2, mean: mean2)
        let lc = LayerCache(x: x, n1: x, rstd1: rstd1, mean1: mean1, q: q, k: k, v: v, probs: probs, att: att,
                            x1: x1, n2: n2, rstd2: rstd2, mean2: mean2, g: nil, u: u, a: a)
        lc.y2 = y2
        return (out, lc)
    }

    /// The output of block `l` [B*S, hidden] in the encoder forward that made `cache`, for a loss on
    /// intermediate layers (the last block's is the forward's output itself).
    public func encoderBlockOutput(_ l: Int, cache c: Cache) -> Buf<R> {
        precondition(config.isEncoder && l >= 0 && l < c.layers.count, "encoderBlockOutput: block \(l) of \(c.layers.count)")
        return l + 1 < c.layers.count ? c.layers[l + 1].x : c.nf
    }

    /// Adds the gradients of a loss to every trainable tensor's `grad`, given dLoss/d(last hidden
    /// states) [B*S, hidden] for the `encoderForward` that made `cache`, and dLoss/d(output of
    /// block l) for the blocks before the last that the loss reads (`blockOutputGradients`).
    func encoderBackward(_ dOut: Buf<R>, cache c: Cache, blockOutputGradients extra: [Int: Buf<R>] = [:]) {
        let B = c.batch, S = c.length, N = B * S, h = config.hiddenSize
        var dx = dOut  // d(block output); read only
        for (i, (l, lc)) in zip(layers, c.layers).enumerated().reversed() {
            if i + 1 < layers.count, let g = extra[i] { add(dx, g, count: N * h) }  // dx is this pass's own buffer here
            dx = encoderBlockBackward(l, lc, dx, batch: B, length: S)
        }
        // x = LN_e(e)
        let de = scratch(N * h, zeroed: true)
        normBackward(dx, x: c.xL, rows: N, embedNorm!, embedNormBias, rstd: c.rstdF, mean: c.meanF, dx: de)
        embeddingBackward(de, tokens: c.tokens, length: S)
        if let tt = tokenTypes, let g = tt.grad {
            tt.materializeGrad()
            for i in 0 ..< N { for j in 0 ..< h { g.p[j] += de.p[i * h + j] } }
        }
        // Tensors this pass did not reach still read as zero.
        for p in params { p.materializeGrad() }
    }

    /// Adds dLoss/d(block weights) to block `l`'s gradients given dx = dLoss/d(block output) [B*S, h]
    /// (read only) for the `encoderBlockForward` that made `lc`; returns dLoss/d(block input).
    func encoderBlockBackward(_ l: Layer, _ lc: LayerCache, _ dx: Buf<R>, batch B: Int, length S: Int) -> Buf<R> {
        let N = B * S, h = config.hiddenSize, hd = config.headDim
        let nh = l.sizes.numHeads, nkv = l.sizes.numKVHeads, f = l.sizes.intermediateSize
        let qd = nh * hd, kvd = nkv * hd
        // out = LN2(y2)
        let dy2 = scratch(N * h, zeroed: true)
        normBackward(dx, x: lc.y2!, rows: N, l.ffnNorm, l.ffnNormBias, rstd: lc.rstd2, mean: lc.mean2, dx: dy2)
        // y2 = n2 + down(gelu(up(n2))): dn2 = dy2 + the MLP's part
        let da = scratch(N * f)
        linearBackward(dy2, input: lc.a, rows: N, l.down, l.downBias, dx: da, accumulate: false)
        let du = scratch(N * f), u = lc.u
        parallelRanges(N * f, threads: threads, cost: 8) { r in for i in r { du.p[i] = da.p[i] * geluErfDerivative(u.p[i]) } }
        let dn2 = dy2
        linearBackward(du, input: lc.n2, rows: N, l.up, l.upBias, dx: dn2, accumulate: true)
        // n2 = LN1(x1)
        let dx1 = scratch(N * h, zeroed: true)
        normBackward(dn2, x: lc.x1, rows: N, l.attnNorm, l.attnNormBias, rstd: lc.rstd1, mean: lc.mean1, dx: dx1)
        // x1 = x + o(att): dx = dx1 + the attention's part
        let datt = scratch(N * qd)
        linearBackward(dx1, input: lc.att, rows: N, l.o, l.oBias, dx: datt, accumulate: false)
        let dq = scratch(N * qd), dk = scratch(N * kvd), dv = scratch(N * kvd)
        attentionBackward(dOut: datt, q: lc.q, k: lc.k, v: lc.v, probs: lc.probs, dq: dq, dk: dk, dv: dv,
                          batch: B, length: S, heads: nh, kvHeads: nkv, causal: false)
        let dxIn = dx1
        linearBackward(dq, input: lc.x, rows: N, l.q, l.qBias, dx: dxIn, accumulate: true)
        linearBackward(dk, input: lc.x, rows: N, l.k, l.kBias, dx: dxIn, accumulate: true)
        linearBackward(dv, input: lc.x, rows: N, l.v, l.vBias, dx: dxIn, accumulate: true)
        return dxIn
    }
}
