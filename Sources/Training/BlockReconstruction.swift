import EdgeRuntime
import Foundation

/// Settings of block-wise reconstruction (the distill pass's `blockwise_*` fields).
public struct ReconstructOptions: Equatable, Sendable, Codable {
    /// What each student block learns to reproduce.
    public enum Target: String, CaseIterable, Codable, Sendable {
        /// The float model's own hidden states: the teacher's block l output on the teacher's
        /// block l input, so a block also learns to correct the error of the blocks before it.
        case float
        /// The float block l applied to the student's own input (the error of this block alone,
        /// as GPTQ and SparseGPT measure it).
        case floatBlock = "float_block"
    }

    /// Passes over the calibration text per block (0: no block-wise stage).
    public var epochs = 0
    /// Calibration tokens used (whole windows of `length`, or whole sentences for an encoder, spread
    /// evenly over the text).
    public var tokens = 16384
    /// Tokens per window (decoders; an encoder's sentences are as long as they are).
    public var length = 256
    /// Windows (decoders) or sentences (encoders) per update.
    public var batch = 4
    /// Peak learning rate (AdamW, no warmup, cosine decay to a tenth over each block's updates).
    public var lr = 1e-4
    public var target = Target.float

    public init() {}
}

/// Per block: the mean over the calibration tokens of the relative squared error
/// ||y - target||^2 / ||target||^2 of the student block's output, before and after its training.
public struct ReconstructReport: Sendable {
    public var before: [Double] = []
    /// After training, or after the block was restored (`restored`).
    public var after: [Double] = []
    /// Blocks whose training raised their error: they keep their values from before it.
    public var restored: [Int] = []
    /// Calibration sequences used: a decoder's windows, an encoder's sentences.
    public var windows = 0
    public var length = 0
    /// Training tokens per second (forward + backward + update of one block, summed over the blocks).
    public var tokensPerSecond = 0.0
}

/// Fits a block's encodings once, before the block trains, on the block's own inputs: for
/// encodings too slow to fit at every step (GPTQ's error compensation, searched sub-coded grids),
/// whose grids then stay fixed while the block trains (the weights round on them at every step).
/// The stage shows it the inputs of the block's matrices (`wants`) over every calibration chunk,
/// with the block's weights as they are, then asks for the fitted values.
public protocol BlockFitter: AnyObject {
    /// Whether the matrix `weight` is fitted (its inputs are then observed).
    func wants(_ weight: String) -> Bool
    /// Rows [rows, cols] of the inputs `weight` multiplies in one chunk.
    func observe(weight: String, inputs x: UnsafePointer<Float>, rows: Int, cols: Int)
    /// Ends a chunk of `tokens` tokens (the buffers it showed may be reused).
    func endChunk(tokens: Int)
    /// Fits the wanted matrices of block `block` (their current values: `values(name)`) and returns
    /// by name the values they take (dequantized from their fitted encoding).
    func fit(block: Int, values: (String) -> [Float]) throws -> [String: [Float]]
}

/// Block-wise reconstruction of a compressed model: block by block from the first, the student's
/// block l (its trainable tensors: pruned weights stay zero, fake-quantized ones train straight
/// through) is trained with AdamW to minimize the squared error between its output and the float
/// teacher's (`ReconstructOptions.Target`), each token's error relative to the size of its target, on the student's own inputs: the calibration text as
/// the already reconstructed blocks 0 ..< l leave it. Each block is a small problem (one block's
/// forward and backward, no output head, no softmax over the vocabulary), so it sees more tokens per
/// second of CPU than end-to-end distillation; it is the block-wise stage of the distill pass.
///
/// A decoder reads windows of `length` tokens of the text, `batch` windows per update; an encoder
/// reads whole sentences (each framed by its special tokens, attention over the sentence alone),
/// `batch` sentences per update, the sentences of one length in one call.
public final class BlockReconstruction {
    let student: TrainModel<Float>
    let teacher: TrainModel<Float>
    /// What one block call runs on: `count` sequences of `length` tokens, flattened.
    struct Chunk {
        let tokens: [Int32]
        let count: Int, length: Int
    }
    let chunks: [Chunk]
    /// The chunks of each update.
    let updates: [[Int]]
    /// Calibration sequences used (windows or sentences).
    let sequences: Int
    public let options: ReconstructOptions
    /// Fits encodings block by block before each block trains (see `BlockFitter`); nil: none.
    public var fitter: BlockFitter?

    /// A decoder's stage.
    /// - Parameters:
    ///   - student: the compressed model (its block tensors trainable as the pass chose).
    ///   - teacher: the float model, same config.
    ///   - tokens: the calibration text's tokens; whole windows of `options.length`, up to
    ///     `options.tokens` tokens, spread evenly over the text.
    /// - Throws: `TrainingError.textTooShort` when not even one window fits; `.unsupportedArchitecture`
    ///   for an encoder (it trains on sentences: `init(student:teacher:sentences:options:)`).
    public init(student: TrainModel<Float>, teacher: TrainModel<Float>, tokens: [Int32], options: ReconstructOptions) throws {
        guard !student.config.isEncoder else { throw TrainingError.unsupportedArchitecture("\(student.config.architecture.rawValue) (an encoder's block-wise reconstruction reads sentences)") }
        let S = min(options.length, student.config.maxPositions)
        let available = tokens.count / S
        let count = min(available, max(options.tokens, S) / S)
        guard count >= 1 else { throw TrainingError.textTooShort(tokens: tokens.count, needed: S) }
        self.student = student
        self.teacher = teacher
        // Spread over the whole text (its kinds of writing), not only its beginning.
        let windows = spreadWindows(tokens, length: S, count: count)
        let B = max(1, options.batch)
        chunks = stride(from: 0, to: windows.count, by: B).map { i in
            Chunk(tokens: windows[i ..< min(i + B, windows.count)].flatMap { $0 }, count: min(B, windows.count - i), length: S)
        }
        updates = chunks.indices.map { [$0] }
        sequences = windows.count
        var o = options
        o.length = S
        self.options = o
    }

    /// An encoder's stage.
    /// - Parameters:
    ///   - sentences: the calibration sentences, each framed by the tokenizer's special tokens and
    ///     within the model's positions; up to `options.tokens` tokens of them are used, spread
    ///     evenly over the list. `options.length` is not read.
    /// - Throws: `TrainingError.textTooShort` without a sentence; `.unsupportedArchitecture` for a decoder.
    public init(student: TrainModel<Float>, teacher: TrainModel<Float>, sentences all: [[Int32]], options: ReconstructOptions) throws {
        guard student.config.isEncoder else { throw TrainingError.unsupportedArchitecture("\(student.config.architecture.rawValue) (a decoder's block-wise reconstruction reads windows of tokens)") }
        let usable = all.filter { !$0.isEmpty && $0.count <= student.config.maxPositions }
        let total = usable.reduce(0) { $0 + $1.count }
        guard !usable.isEmpty else { throw TrainingError.textTooShort(tokens: total, needed: 1) }
        var picked = usable
        if total > options.tokens {
            // As many sentences as the budget holds at the mean length, spread over the text.
            let count = max(1, min(usable.count, Int(Double(options.tokens) * Double(usable.count) / Double(total))))
            picked = (0 ..< count).map { usable[$0 * usable.count / count] }
        }
        self.student = student
        self.teacher = teacher
        // Updates of `batch` sentences of about one length (sorted by length, so the sentences of
        // one length in an update run as one call); their order is shuffled every epoch.
        let sorted = picked.sorted { $0.count < $1.count }
        let B = max(1, options.batch)
        var chunks: [Chunk] = [], updates: [[Int]] = []
        for i in stride(from: 0, to: sorted.count, by: B) {
            var update: [Int] = []
            for group in Dictionary(grouping: sorted[i ..< min(i + B, sorted.count)], by: \.count).sorted(by: { $0.key < $1.key }) {
                update.append(chunks.count)
                chunks.append(Chunk(tokens: group.value.flatMap { $0 }, count: group.value.count, length: group.key))
            }
            updates.append(update)
        }
        self.chunks = chunks
        self.updates = updates
        sequences = picked.count
        var o = options
        o.length = sorted.last!.count
        self.options = o
    }

    /// Runs every block in order; `progress(block, blocks, item)` after each.
    /// - Throws: `TrainingError.nonFinite` when a block's loss stops being finite; what a quantizer throws.
    public func run(progress: ((Int, Int, String) -> Void)? = nil) throws -> ReconstructReport {
        let h = student.config.hiddenSize
        // Block l of `model` over chunk c's hidden states x.
        func block(_ model: TrainModel<Float>, _ l: Int, _ x: Buf<Float>, _ c: Int) -> (out: Buf<Float>, pass: TrainModel<Float>.BlockPass) {
            model.blockForward(l, x, batch: chunks[c].count, length: chunks[c].length)
        }
        var xs = chunks.map { student.embed($0.tokens, length: $0.length) }
        var xt = options.target == .float ? chunks.map { teacher.embed($0.tokens, length: $0.length) } : []
        var report = ReconstructReport()
        report.windows = sequences
        report.length = options.length
        let L = student.config.numLayers
        var trainedTokens = 0, trainingSeconds = 0.0
        for l in 0 ..< L {
            // The float targets of this block, one per chunk.
            let targets = chunks.indices.map { c in
                block(teacher, l, options.target == .float ? xt[c] : xs[c], c).out
            }
            let params = student.blockParams(l).filter(\.trainable)
            if let fitter, params.contains(where: { fitter.wants($0.name) }) {
                try fit(block: l, params: params, inputs: xs, fitter: fitter)
            }
            // The block's outputs on every chunk, and its relative error over them; with float products
            // (a bf16 student trains with bfloat16 products, but the next block's inputs and the errors
            // reported are the float model's).
            func outputs() -> (ys: [Buf<Float>], error: Double) {
                let bf16 = student.bf16Matmul
                student.bf16Matmul = false
                defer { student.bf16Matmul = bf16 }
                var num = 0.0, den = 0.0
                let ys = chunks.indices.map { c in
                    let y = block(student, l, xs[c], c).out
                    let (n, d) = Self.error(y, targets[c], hidden: h)
                    num += n
                    den += d
                    return y
                }
                return (ys, den > 0 ? num / den : 0)
            }
            let before = outputs().error
            // The block as it was, restored when training made its error worse.
            let saved = options.epochs > 0 ? params.map(\.value.array) : []
            if !params.isEmpty && options.epochs > 0 {
                var config = AdamW<Float>.Config(lr: options.lr)
                config.totalSteps = options.epochs * updates.count
                config.clip = 0
                let opt = AdamW(params: params, config: config)
                var order = Array(updates.indices)
                var rng = SplitMix64(seed: UInt64(l) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
                let start = Date()
                for epoch in 0 ..< options.epochs {
                    if epoch > 0 { order.shuffle(using: &rng) }
                    for u in order {
                        student.zeroGrad()
                        let tokens = updates[u].reduce(0) { $0 + chunks[$1].tokens.count }
                        for c in updates[u] {
                            let (y, pass) = block(student, l, xs[c], c)
                            let (num, den) = Self.errorGradient(y, targets[c], hidden: h, tokens: tokens)
                            guard num.isFinite, den.isFinite else { throw TrainingError.nonFinite(step: opt.step, what: "block \(l)'s reconstruction error") }
                            student.blockBackward(l, y, pass: pass)
                        }
                        opt.update(threads: student.threads)
                        try student.refresh(params)
                        trainedTokens += tokens
                    }
                }
                trainingSeconds += Date().timeIntervalSince(start)
            }
            // The trained block's outputs (the next block's inputs) and error; when training made the
            // error worse (a block the compression barely touched, such as a dense int8 one), the block
            // goes back to its values from before.
            var (ys, after) = outputs()
            if !saved.isEmpty, after > before {
                for (p, v) in zip(params, saved) { v.withUnsafeBufferPointer { p.value.p.update(from: $0.baseAddress!, count: v.count) } }
                try student.refresh(params)
                (ys, after) = outputs()
                report.restored.append(l)
            }
            xs = ys
            if options.target == .float { xt = targets }
            report.before.append(before)
            report.after.append(after)
            progress?(l + 1, L, String(format: "block %d relative error %.5f -> %.5f", l, before, after))
        }
        report.tokensPerSecond = trainingSeconds > 0 ? Double(trainedTokens) / trainingSeconds : 0
        return report
    }

    /// The fitter's pass over block `l`: the block runs over every chunk (float products) and shows
    /// its matrices' inputs, then the fitted values replace the latent ones and the block refreshes.
    private func fit(block l: Int, params: [Param<Float>], inputs xs: [Buf<Float>], fitter: BlockFitter) throws {
        let bf16 = student.bf16Matmul
        student.bf16Matmul = false
        defer { student.bf16Matmul = bf16 }
        for c in chunks.indices {
            let pass = student.blockForward(l, xs[c], batch: chunks[c].count, length: chunks[c].length).pass
            student.blockMatrixInputs(l, pass) { name, x, rows, cols in
                if fitter.wants(name) { fitter.observe(weight: name, inputs: x, rows: rows, cols: cols) }
            }
            fitter.endChunk(tokens: chunks[c].tokens.count)
        }
        let fitted = try fitter.fit(block: l) { name in student.byName[name]?.value.array ?? [] }
        for p in params {
            guard let v = fitted[p.name] else { continue }
            precondition(v.count == p.value.count, "fitter changed the size of \(p.name)")
            v.withUnsafeBufferPointer { p.value.p.update(from: $0.baseAddress!, count: v.count) }
            // Pruned weights stay zero (a fit that compensates errors may have moved them).
            p.mask?.zero(p.value.p, in: 0 ..< v.count)
        }
        try student.refresh(params)
    }

    /// Per token t of [tokens, hidden]: e_t = ||y_t - target_t||^2 / ||target_t||^2; returns (sum of e_t, tokens).
    /// Each token's error is relative to its own size, as the next block's norm sees it: a few
    /// tokens with huge hidden states (attention sinks) would otherwise outweigh all the others.
    static func error(_ y: Buf<Float>, _ t: Buf<Float>, hidden h: Int) -> (Double, Double) {
        let n = y.count / h
        var sum = 0.0
        for r in 0 ..< n {
            let (num, den) = tokenError(y, t, row: r, hidden: h)
            sum += num / den
        }
        return (sum, Double(n))
    }

    /// `error(y, t)`, and y overwritten with the gradient of the mean of e_t over `tokens` tokens
    /// (the update's; y's own by default).
    static func errorGradient(_ y: Buf<Float>, _ t: Buf<Float>, hidden h: Int, tokens: Int? = nil) -> (Double, Double) {
        let n = y.count / h, total = Double(tokens ?? n)
        var sum = 0.0
        for r in 0 ..< n {
            let (num, den) = tokenError(y, t, row: r, hidden: h)
            sum += num / den
            let k = Float(2 / (den * total))
            for j in r * h ..< (r + 1) * h { y.p[j] = k * (y.p[j] - t.p[j]) }
        }
        return (sum, Double(n))
    }

    /// ||y_r - t_r||^2 and ||t_r||^2 (at least 1e-30) of token r.
    private static func tokenError(_ y: Buf<Float>, _ t: Buf<Float>, row r: Int, hidden h: Int) -> (Double, Double) {
        var num = 0.0, den = 0.0
        for j in r * h ..< (r + 1) * h {
            let e = Double(y.p[j] - t.p[j])
            num += e * e
            den += Double(t.p[j]) * Double(t.p[j])
        }
        return (num, max(den, 1e-30))
    }
}

/// `count` whole windows of `length` tokens spread evenly over `tokens` (the first at its start), so
/// that every part of a text is read, not only its beginning. `count` is at most `tokens.count / length`.
public func spreadWindows(_ tokens: [Int32], length: Int, count: Int) -> [[Int32]] {
    let available = tokens.count / length
    precondition(count <= available, "\(count) windows of \(length) in \(tokens.count) tokens")
    return (0 ..< count).map { i in
        let w = i * available / count
        return Array(tokens[(w * length) ..< ((w + 1) * length)])
    }
}
