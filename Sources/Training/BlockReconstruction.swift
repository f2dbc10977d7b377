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

    /// Passes over the calibration windows per block (0: no block-wise stage).
    public var epochs = 0
    /// Calibration tokens used (whole windows of `length`, spread evenly over the text).
    public var tokens = 16384
    /// Tokens per window.
    public var length = 256
    /// Windows per update.
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
    public var after: [Double] = []
    public var windows = 0
    public var length = 0
    /// Training tokens per second (forward + backward + update of one block, summed over the blocks).
    public var tokensPerSecond = 0.0
}

/// Block-wise reconstruction of a compressed decoder: block by block from the first, the student's
/// block l (its trainable tensors: pruned weights stay zero, fake-quantized ones train straight
/// through) is trained with AdamW to minimize the squared error between its output and the float
/// teacher's (`ReconstructOptions.Target`), each token's error relative to the size of its target, on the student's own inputs: the calibration windows as
/// the already reconstructed blocks 0 ..< l leave them. Each block is a small problem (one block's
/// forward and backward, no output head, no softmax over the vocabulary), so it sees more tokens per
/// second of CPU than end-to-end distillation; it is the block-wise stage of the distill pass.
public final class BlockReconstruction {
    let student: TrainModel<Float>
    let teacher: TrainModel<Float>
    let windows: [[Int32]]
    public let options: ReconstructOptions

    /// - Parameters:
    ///   - student: the compressed model (its block tensors trainable as the pass chose).
    ///   - teacher: the float model, same config.
    ///   - tokens: the calibration text's tokens; whole windows of `options.length`, up to
    ///     `options.tokens` tokens, spread evenly over the text.
    /// - Throws: `TrainingError.textTooShort` when not even one window fits; `.unsupportedArchitecture`
    ///   for an encoder.
    public init(student: TrainModel<Float>, teacher: TrainModel<Float>, tokens: [Int32], options: ReconstructOptions) throws {
        guard !student.config.isEncoder else { throw TrainingError.unsupportedArchitecture("\(student.config.architecture.rawValue) (block-wise reconstruction is for decoders)") }
        let S = min(options.length, student.config.maxPositions)
        let available = tokens.count / S
        let count = min(available, max(options.tokens, S) / S)
        guard count >= 1 else { throw TrainingError.textTooShort(tokens: tokens.count, needed: S) }
        self.student = student
        self.teacher = teacher
        // Spread over the whole text (its kinds of writing), not only its beginning.
        windows = (0 ..< count).map { i in
            let w = i * available / count
            return Array(tokens[(w * S) ..< ((w + 1) * S)])
        }
        var o = options
        o.length = S
        self.options = o
    }

    /// Runs every block in order; `progress(block, blocks, item)` after each.
    /// - Throws: `TrainingError.nonFinite` when a block's loss stops being finite; what a quantizer throws.
    public func run(progress: ((Int, Int, String) -> Void)? = nil) throws -> ReconstructReport {
        let S = options.length, B = max(1, options.batch), h = student.config.hiddenSize
        let batches: [[Int32]] = stride(from: 0, to: windows.count, by: B).map { windows[$0 ..< min($0 + B, windows.count)].flatMap { $0 } }
        let sizes = batches.map { $0.count / S }
        var xs = batches.map { student.embed($0, length: S) }
        var xt = options.target == .float ? batches.map { teacher.embed($0, length: S) } : []
        var report = ReconstructReport()
        report.windows = windows.count
        report.length = S
        let L = student.config.numLayers
        var trainedTokens = 0, trainingSeconds = 0.0
        for l in 0 ..< L {
            // The float targets of this block, one per batch.
            let targets = batches.indices.map { b in teacher.blockForward(l, options.target == .float ? xt[b] : xs[b], batch: sizes[b], length: S).out }
            let params = student.blockParams(l).filter(\.trainable)
            // The error before training.
            var num0 = 0.0, den0 = 0.0
            for b in batches.indices {
                let (n, d) = Self.error(student.blockForward(l, xs[b], batch: sizes[b], length: S).out, targets[b], hidden: h)
                num0 += n
                den0 += d
            }
            if !params.isEmpty && options.epochs > 0 {
                var config = AdamW<Float>.Config(lr: options.lr)
                config.totalSteps = options.epochs * batches.count
                config.clip = 0
                let opt = AdamW(params: params, config: config)
                var order = Array(batches.indices)
                var rng = SplitMix64(seed: UInt64(l) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
                let start = Date()
                for epoch in 0 ..< options.epochs {
                    if epoch > 0 { order.shuffle(using: &rng) }
                    for b in order {
                        student.zeroGrad()
                        let (y, pass) = student.blockForward(l, xs[b], batch: sizes[b], length: S)
                        let (num, den) = Self.errorGradient(y, targets[b], hidden: h)
                        guard num.isFinite, den.isFinite else { throw TrainingError.nonFinite(step: opt.step, what: "block \(l)'s reconstruction error") }
                        student.blockBackward(l, y, pass: pass)
                        opt.update(threads: student.threads)
                        try student.refresh(params)
                        trainedTokens += sizes[b] * S
                    }
                }
                trainingSeconds += Date().timeIntervalSince(start)
            }
            // The trained block's outputs: the next block's inputs, and its error after training.
            var num = 0.0, den = 0.0
            for b in batches.indices {
                let y = student.blockForward(l, xs[b], batch: sizes[b], length: S).out
                let (n, d) = Self.error(y, targets[b], hidden: h)
                num += n
                den += d
                xs[b] = y
            }
            if options.target == .float { xt = targets }
            let after = den > 0 ? num / den : 0
            let before = den0 > 0 ? num0 / den0 : 0
            report.before.append(before)
            report.after.append(after)
            progress?(l + 1, L, String(format: "block %d relative error %.5f -> %.5f", l, before, after))
        }
        report.tokensPerSecond = trainingSeconds > 0 ? Double(trainedTokens) / trainingSeconds : 0
        return report
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

    /// `error(y, t)`, and y overwritten with the gradient of the mean of e_t over the tokens.
    static func errorGradient(_ y: Buf<Float>, _ t: Buf<Float>, hidden h: Int) -> (Double, Double) {
        let n = y.count / h
        var sum = 0.0
        for r in 0 ..< n {
            let (num, den) = tokenError(y, t, row: r, hidden: h)
            sum += num / den
            let k = Float(2 / (den * Double(n)))
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
