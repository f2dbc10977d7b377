/// One block at a time (decoder or encoder), for block-wise reconstruction (`BlockReconstruction`): the block's
/// forward pass from a given input and its backward pass from a given output gradient, with the
/// same arithmetic as the whole-model `forward` / `backward`.
extension TrainModel {
    /// What `blockBackward` needs from a `blockForward`.
    public final class BlockPass {
        let cache: LayerCache
        let batch: Int, length: Int
        init(cache: LayerCache, batch: Int, length: Int) {
            self.cache = cache
            self.batch = batch
            self.length = length
        }
    }

    /// The tensors of block `index` (`blk.<index>.*`), in schema order.
    public func blockParams(_ index: Int) -> [Param<R>] {
        let prefix = "blk.\(index)."
        return params.filter { $0.name.hasPrefix(prefix) }
    }

    /// Block `index` over x [batch * length, hidden] (row b*length + t: sequence b, position t):
    /// its output [batch * length, hidden] and what `blockBackward` needs. An encoder's sequences
    /// attend over all their tokens (no padding: each is one whole sentence).
    public func blockForward(_ index: Int, _ x: Buf<R>, batch B: Int, length S: Int) -> (out: Buf<R>, pass: BlockPass) {
        precondition(x.count == B * S * config.hiddenSize, "blockForward: x has \(x.count) values")
        let (out, cache) = config.isEncoder
            ? encoderBlockForward(layers[index], x, batch: B, length: S)
            : decoderBlockForward(layers[index], x, batch: B, length: S, rope: rope(S))
        return (out, BlockPass(cache: cache, batch: B, length: S))
    }

    /// The inputs each matrix of block `index` multiplied in the `blockForward` that made `pass`:
    /// `body(weight name, rows [batch * length, cols], rows, cols)` once per matrix (Q, K and V see
    /// one buffer, as do gate and up), in the order the forward reads them.
    public func blockMatrixInputs(_ index: Int, _ pass: BlockPass, _ body: (String, UnsafePointer<R>, Int, Int) -> Void) {
        let l = layers[index], c = pass.cache, rows = pass.batch * pass.length
        var pairs: [(Param<R>?, Buf<R>)] = [(l.q, c.n1), (l.k, c.n1), (l.v, c.n1), (l.o, c.att)]
        pairs += [(l.gate, c.n2), (l.up, c.n2), (l.down, c.a)]
        for (w, x) in pairs {
            guard let w, w.shape.count == 2, x.count >= rows * w.shape[1] else { continue }
            body(w.name, UnsafePointer(x.p), rows, w.shape[1])
        }
    }

    /// Adds dLoss/d(block weights) to the gradients of block `index`'s trainable tensors, given
    /// `dOut` = dLoss/d(block output) of the `blockForward` that made `pass` (a decoder overwrites
    /// it with dLoss/d(block input); an encoder leaves it as it was).
    public func blockBackward(_ index: Int, _ dOut: Buf<R>, pass: BlockPass) {
        if config.isEncoder {
            _ = encoderBlockBackward(layers[index], pass.cache, dOut, batch: pass.batch, length: pass.length)
        } else {
            decoderBlockBackward(layers[index], pass.cache, dOut, batch: pass.batch, length: pass.length, rope: rope(pass.length))
        }
        for p in blockParams(index) { p.materializeGrad() }
    }

    /// The token embedding rows (as the forward pass uses them: fake-quantized when a quantizer is
    /// set) of `tokens`, [tokens.count, hidden], plus the learned positions (GPT-2) of sequences of
    /// `length`: the first step of `forward` (an encoder's: with positions and token type 0, normalized).
    public func embed(_ tokens: [Int32], length S: Int) -> Buf<R> {
        if config.isEncoder { return encoderEmbed(tokens, length: S).x }
        let h = config.hiddenSize, x = scratch(tokens.count * h)
        for (i, t) in tokens.enumerated() { effectiveRow(tokenEmbedding, Int(t), into: x.p + i * h) }
        if let pe = positionEmbedding {
            let epe = effective(pe)
            withExtendedLifetime(epe) {
                for i in 0 ..< tokens.count {
                    let row = epe.p + (i % S) * h
                    for j in 0 ..< h { x.p[i * h + j] += row[j] }
                }
            }
        }
        return x
    }

    private func rope(_ S: Int) -> RopeTable<R>? {
        config.architecture == .llama ? RopeTable<R>(positions: S, headDim: config.headDim, theta: config.ropeTheta) : nil
    }
}
