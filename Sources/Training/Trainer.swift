import EdgeFormat
import EdgeRuntime
import Foundation

/// Settings of a training run (the distill pass's recipe fields).
public struct TrainOptions: Equatable, Sendable, Codable {
    /// Optimizer updates.
    public var steps = 40
    /// Sequences per update.
    public var batch = 4
    /// Tokens per sequence (capped by the model's max_positions and by the text).
    public var length = 256
    /// Peak learning rate.
    public var lr = 1e-4
    /// Fraction of the steps spent warming the learning rate up linearly.
    public var warmup = 0.1
    public var weightDecay = 0.0
    /// Largest global gradient norm.
    public var clip = 1.0
    /// Distillation temperature T.
    public var temperature = 2.0
    /// Weight of the next-token cross-entropy next to T^2 * KL.
    public var alpha = 0.5
    /// Seed of the window order.
    public var seed: UInt64 = 0
    /// Fraction of the text's windows held out for perplexity (at least one window).
    public var heldOut = 0.1
    /// Held-out perplexity every this many steps (and at the start and the end); 0 = start and end only.
    public var evalEvery = 10
    /// Checkpoint every this many steps (and at the end) when a checkpoint folder is given.
    public var checkpointEvery = 10
    /// How AdamW stores its moments (bf16: 4 bytes per trained weight instead of 8).
    public var moments = MomentPrecision.bf16
    /// How the linear layers multiply (`TrainModel.bf16Matmul`); nil = f32 (and absent from the JSON, so
    /// the checkpoint fingerprints of f32 runs are as before).
    public var matmul: MatmulPrecision?
    /// Encoders: weight of 1 - cosine of the pooled sentence embeddings next to the normalized
    /// squared error of the hidden states (`hiddenStateLoss`); nil = 0 (and absent from the JSON, so
    /// decoders' checkpoint fingerprints are as before).
    public var cosine: Double?
    /// Encoders: weight of each earlier block's output error (`hiddenStateLoss` without cosine) when
    /// the teacher gives the outputs of several blocks; nil = 0 (absent from the JSON).
    public var intermediate: Double?
    /// Encoders: weight of `similarityStructureLoss` over each batch's pooled embeddings (the
    /// teacher's cosine similarities among the batch's sentences); nil = 0 (absent from the JSON).
    public var similarity: Double?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case steps, batch, length, lr, warmup, weightDecay = "weight_decay", clip, temperature, alpha, seed
        case heldOut = "held_out", evalEvery = "eval_every", checkpointEvery = "checkpoint_every", moments, cosine, intermediate, similarity
        case matmul
    }
}

/// Where a run is, for progress displays.
public struct TrainProgress: Sendable {
    public var step: Int
    public var steps: Int
    public var loss: LossValue?
    /// Latest held-out perplexity (encoders: held-out distillation loss).
    public var heldOutPPL: Double?
}

/// One logged step.
public struct TrainLogEntry: Codable, Equatable, Sendable {
    public var step: Int
    public var loss: Double
    public var kl: Double
    public var ce: Double
    public var gradNorm: Double
    public var lr: Double
    /// Held-out perplexity after this step, when evaluated (encoders: the held-out loss, and `kl`
    /// holds the normalized squared error, `ce` the mean 1 - cosine).
    public var heldOutPPL: Double?

    enum CodingKeys: String, CodingKey {
        case step, loss, kl, ce, gradNorm = "grad_norm", lr, heldOutPPL = "held_out_ppl"
    }
}

/// What a run did.
public struct TrainReport: Sendable {
    public var steps: Int
    /// Step the run resumed from (0 for a fresh run).
    public var resumedFrom: Int
    public var trainWindows: Int
    public var heldOutWindows: Int
    public var length: Int
    /// Held-out perplexity before and after (encoders: held-out `hiddenStateLoss`).
    public var heldOutBefore: Double
    public var heldOutAfter: Double
    public var log: [TrainLogEntry]
    /// Seconds of this run in forward + backward of the student (excluding the teacher, evaluation, checkpoints).
    public var trainSeconds: Double
    /// Seconds of this run computing teacher logits.
    public var teacherSeconds: Double
    /// Tokens trained on in this run.
    public var tokensThisRun: Int
    /// Student forward + backward tokens per second.
    public var tokensPerSecond: Double { trainSeconds > 0 ? Double(tokensThisRun) / trainSeconds : 0 }
}

/// Trains a `TrainModel<Float>` on a token stream: fixed-length windows, a held-out tail, a seeded
/// window order, AdamW, optional teacher (distillation), checkpoints that make an interrupted run
/// resume exactly where it stopped. An encoder trains only against a teacher: each window is one
/// sentence (the text's tokens framed by the tokenizer's special tokens) and the loss compares last
/// hidden states (`hiddenStateLoss`).
public final class Trainer {
    public let model: TrainModel<Float>
    public let options: TrainOptions
    public let optimizer: AdamW<Float>
    /// Logits [length, vocab] of the teacher for one window (encoders: the outputs of its last k
    /// blocks [k, length, hidden], the last block's last: k = 1 is the last hidden states alone);
    /// nil trains on cross-entropy alone.
    let teacher: (([Int32]) throws -> [Float])?
    /// The teacher's outputs for the held-out windows (encoders), made at the first evaluation.
    var heldOutTeacher: [[Float]]?
    let train: [[Int32]]
    let heldOut: [[Int32]]
    /// Tokens per window (the longest sequence's, when trained on sequences of different lengths).
    public let length: Int
    var log: [TrainLogEntry] = []
    var permutations: [Int: [Int]] = [:]
    /// Teacher logits by training window, kept as binary16 while they fit `teacherCacheBytes`
    /// (windows recur every epoch; the teacher is a quarter of a step's arithmetic).
    var teacherCache: [Int: [Float16]] = [:]
    /// Memory the teacher cache may use.
    public var teacherCacheBytes = 2 << 30

    /// Trains on a token stream cut into windows of `options.length` tokens (fewer when the text is
    /// short), the last `options.heldOut` of them held out.
    /// - Parameters:
    ///   - frame: tokens put before and after each window's text tokens (an encoder's `[CLS]` and
    ///     `[SEP]`, `Tokenizer.specialTokenPrefix/Suffix`); windows keep `length` tokens in all.
    /// - Throws: `TrainingError.textTooShort` when the tokens do not make one training and one held-out window;
    ///   `.unsupportedArchitecture` for an encoder without a teacher.
    public convenience init(model: TrainModel<Float>, tokens: [Int32], options: TrainOptions,
                            frame: (prefix: [Int32], suffix: [Int32]) = ([], []), teacher: (([Int32]) throws -> [Float])?) throws {
        let config = model.config
        if config.isEncoder, teacher == nil { throw TrainingError.unsupportedArchitecture(config.architecture.rawValue) }
        let minimum = 8, framing = frame.prefix.count + frame.suffix.count
        let positions = config.isEncoder ? min(config.pooling?.maxTokens ?? config.maxPositions, config.maxPositions) : config.maxPositions
        var length = min(options.length, positions)
        if tokens.count < 2 * (length - framing) { length = tokens.count / 2 + framing }
        guard length - framing >= minimum else { throw TrainingError.textTooShort(tokens: tokens.count, needed: 2 * minimum) }
        let text = length - framing
        let windows = tokens.count / text
        var all: [[Int32]] = []
        for w in 0 ..< windows { all.append(frame.prefix + tokens[(w * text) ..< ((w + 1) * text)] + frame.suffix) }
        try self.init(model: model, sequences: all, options: options, teacher: teacher)
    }

    /// Trains an encoder on whole sequences of different lengths (its sentences, each framed by the
    /// tokenizer's special tokens and within the model's positions), the last `options.heldOut` of
    /// them held out (at least one). `options.length` is not read: the sequences are what they are.
    /// - Throws: `TrainingError.textTooShort` for fewer than two sequences; `.unsupportedArchitecture`
    ///   for an encoder without a teacher.
    public init(model: TrainModel<Float>, sequences all: [[Int32]], options: TrainOptions,
                teacher: (([Int32]) throws -> [Float])?) throws {
        let config = model.config
        if config.isEncoder, teacher == nil { throw TrainingError.unsupportedArchitecture(config.architecture.rawValue) }
        let tokens = all.reduce(0) { $0 + $1.count }
        guard all.count >= 2, all.allSatisfy({ !$0.isEmpty }) else { throw TrainingError.textTooShort(tokens: tokens, needed: 16) }
        precondition(all.allSatisfy { $0.count <= config.maxPositions }, "Trainer: a sequence is longer than the model's \(config.maxPositions) positions")
        let held = min(all.count - 1, max(1, Int((Double(all.count) * options.heldOut).rounded())))
        train = Array(all[..<(all.count - held)])
        heldOut = Array(all[(all.count - held)...])
        length = all.map(\.count).max()!
        self.model = model
        self.options = options
        self.teacher = teacher
        var c = AdamW<Float>.Config(lr: options.lr)
        c.weightDecay = options.weightDecay
        c.clip = options.clip
        c.totalSteps = options.steps
        c.warmupSteps = Int((Double(options.steps) * options.warmup).rounded())
        c.moments = options.moments
        optimizer = AdamW(params: model.params, config: c)
    }

    /// Whether training window `w` is drawn again by a step after `step` (before `options.steps`).
    func usedAgain(window w: Int, after step: Int) -> Bool {
        // Each epoch draws every window once, so the next use is in this epoch's rest or the next epoch.
        let W = train.count, first = (step + 1) * options.batch, end = options.steps * options.batch
        guard first < end else { return false }
        let epoch = first / W
        for e in epoch ... min(epoch + 1, (end - 1) / W) {
            let p = permutation(epoch: e)
            let lo = max(first, e * W), hi = min(end, (e + 1) * W)
            if lo < hi, p[(lo - e * W) ..< (hi - e * W)].contains(w) { return true }
        }
        return false
    }

    /// The order in which epoch `epoch` draws the training windows (seeded, made once).
    func permutation(epoch: Int) -> [Int] {
        if let p = permutations[epoch] { return p }
        var rng = SplitMix64(seed: options.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        var p = Array(0 ..< train.count)
        for k in stride(from: train.count - 1, to: 0, by: -1) { p.swapAt(k, Int(rng.next() % UInt64(k + 1))) }
        permutations[epoch] = p
        return p
    }

    /// Windows of update `step`: `batch` indices into the training windows, walking seeded
    /// permutations epoch after epoch.
    func windows(step: Int) -> [Int] {
        let W = train.count
        return (0 ..< options.batch).map { j in
            let i = step * options.batch + j
            return permutation(epoch: i / W)[i % W]
        }
    }

    /// Next-token targets of a batch: position t of a window predicts token t+1 of the same window.
    static func targets(_ batch: [[Int32]]) -> [Int32] {
        batch.flatMap { w in (0 ..< w.count).map { t in t + 1 < w.count ? w[t + 1] : -1 } }
    }

    /// What the held-out windows measure: perplexity for a decoder (`heldOutPerplexity`), the
    /// distillation loss for an encoder (`heldOutLoss`). Always with float products (a bf16 run's
    /// figures compare with an f32 run's).
    public func heldOutMetric() throws -> Double {
        let bf16 = model.bf16Matmul
        model.bf16Matmul = false
        defer { model.bf16Matmul = bf16 }
        return model.config.isEncoder ? try heldOutLoss() : heldOutPerplexity()
    }

    /// Mean `hiddenStateLoss` of the current student (with its fake quantization) against the
    /// teacher on the held-out windows (encoders).
    public func heldOutLoss() throws -> Double {
        guard let teacher else { return .nan }
        if heldOutTeacher == nil { heldOutTeacher = try heldOut.map { try teacher($0) } }
        var total = 0.0
        for (w, t) in zip(heldOut, heldOutTeacher!) {
            let (hidden, cache) = model.forward([w])
            total += encoderLoss(hidden: hidden, cache: cache, teacher: t, scale: 1).loss.loss
        }
        return total / Double(max(1, heldOut.count))
    }

    /// The encoder's loss for one window (a forward of one sequence): `hiddenStateLoss` of the last
    /// hidden states (with `cosine`) and, when `teacher` holds the outputs of the last k blocks
    /// ([k, length, hidden], the last block's last), `intermediate` times that of each of the k - 1
    /// blocks before the last (without cosine). Replaces `hidden` by dLoss/dhidden and returns the
    /// gradients of those blocks' outputs by block, all times `scale`.
    func encoderLoss(hidden: Buf<Float>, cache: TrainModel<Float>.Cache, teacher: [Float], scale: Float) -> (loss: LossValue, blocks: [Int: Buf<Float>]) {
        let h = model.config.hiddenSize, n = hidden.count, L = model.config.numLayers
        let k = teacher.count / n
        precondition(k >= 1 && k <= L && k * n == teacher.count, "teacher gave \(teacher.count) values for \(n)-value hidden states")
        var blocks: [Int: Buf<Float>] = [:]
        var total = LossValue(loss: 0, kl: 0, ce: 0)
        teacher.withUnsafeBufferPointer { t in
            let w = Float(options.intermediate ?? 0)
            for j in 0 ..< k - 1 where w > 0 {
                let l = L - k + j
                let g = Buf(model.encoderBlockOutput(l, cache: cache).array)
                let v = hiddenStateLoss(hidden: g, teacher: t.baseAddress! + j * n, batch: 1, length: n / h, width: h, cosine: 0)
                total.loss += Double(w) * v.loss
                let f = w * scale
                for i in 0 ..< n { g.p[i] *= f }
                blocks[l] = g
            }
            let v = hiddenStateLoss(hidden: hidden, teacher: t.baseAddress! + (k - 1) * n, batch: 1, length: n / h, width: h,
                                    cosine: options.cosine ?? 0, firstToken: model.config.pooling?.mode == .cls)
            total.loss += v.loss
            total.kl = v.kl
            total.ce = v.ce
            if scale != 1 { for i in 0 ..< n { hidden.p[i] *= scale } }
        }
        return (total, blocks)
    }

    /// Perplexity of the current student (with its fake quantization) on the held-out windows:
    /// every position but the last of each window predicts the next token.
    public func heldOutPerplexity() -> Double {
        var nll = 0.0, n = 0
        let V = model.config.vocabSize
        for w in heldOut {
            let (logits, _) = model.forward([w])
            var p = [Double](repeating: 0, count: V)
            for t in 0 ..< w.count - 1 {
                softmax(logits.p + t * V, count: V, temperature: 1, into: &p)
                nll -= Foundation.log(max(p[Int(w[t + 1])], Double.leastNormalMagnitude))
                n += 1
            }
        }
        return Foundation.exp(nll / Double(max(1, n)))
    }

    /// Runs the remaining steps. With `checkpointDir`, resumes from the checkpoint there (when its
    /// fingerprint matches) and saves one every `checkpointEvery` steps and at the end.
    /// - Parameters:
    ///   - fingerprint: identifies the run (model, recipe, text); a checkpoint with another is refused.
    ///   - shouldStop: checked after every step; true ends the run early (after a checkpoint).
    /// - Throws: `TrainingError` for a bad checkpoint or a diverging run; I/O errors.
    public func run(checkpointDir: String? = nil, fingerprint: String = "", progress: ((TrainProgress) -> Void)? = nil,
                    shouldStop: (() -> Bool)? = nil) throws -> TrainReport {
        let ckpt = checkpointDir.map { TrainCheckpoint(folder: $0, fingerprint: fingerprint + "|" + Self.describe(options)) }
        var resumedFrom = 0
        var before: Double?
        if let ckpt, let state = try ckpt.load(into: optimizer) {
            log = state.log
            before = state.heldOutBefore
            resumedFrom = optimizer.step
            try model.refresh()
        }
        if before == nil { before = try heldOutMetric() }
        var latestPPL = log.last(where: { $0.heldOutPPL != nil })?.heldOutPPL ?? before
        progress?(TrainProgress(step: optimizer.step, steps: options.steps, loss: nil, heldOutPPL: latestPPL))
        var trainSeconds = 0.0, teacherSeconds = 0.0, tokens = 0
        while optimizer.step < options.steps {
            let step = optimizer.step
            let picked = windows(step: step)
            let batch = picked.map { train[$0] }
            model.zeroGrad()
            let loss = try accumulateGradients(windows: picked, step: step, teacherSeconds: &teacherSeconds, trainSeconds: &trainSeconds)
            let t0 = Date()
            let lr = optimizer.learningRate(at: step)
            let norm = optimizer.update(threads: model.threads)
            guard norm.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the gradient norm") }
            try model.refresh(skippingFrozen: true)
            trainSeconds += Date().timeIntervalSince(t0)
            tokens += batch.reduce(0) { $0 + $1.count }
            var entry = TrainLogEntry(step: step + 1, loss: loss.loss, kl: loss.kl, ce: loss.ce, gradNorm: norm, lr: lr)
            let last = optimizer.step == options.steps
            if last || (options.evalEvery > 0 && optimizer.step % options.evalEvery == 0) {
                entry.heldOutPPL = try heldOutMetric()
                latestPPL = entry.heldOutPPL
            }
            log.append(entry)
            let stop = shouldStop?() ?? false
            if let ckpt, last || stop || (options.checkpointEvery > 0 && optimizer.step % options.checkpointEvery == 0) {
                try ckpt.save(optimizer: optimizer, log: log, heldOutBefore: before)
            }
            progress?(TrainProgress(step: optimizer.step, steps: options.steps, loss: loss, heldOutPPL: latestPPL))
            if stop { break }
        }
        let after = log.last(where: { $0.heldOutPPL != nil })?.heldOutPPL ?? before!
        return TrainReport(steps: optimizer.step, resumedFrom: resumedFrom, trainWindows: train.count, heldOutWindows: heldOut.count,
                           length: length, heldOutBefore: before!, heldOutAfter: after, log: log, trainSeconds: trainSeconds,
                           teacherSeconds: teacherSeconds, tokensThisRun: tokens)
    }

    /// Adds the gradient of the batch `windows` (training window indices) to the model's
    /// gradients and returns the batch's loss. One window at a time (gradient accumulation):
    /// activations and logits of one window are alive at once, not of the whole batch; each
    /// window's loss is scaled by its share of the batch (every window has the same tokens and
    /// targets), so the summed gradient is the batch's.
    func accumulateGradients(windows picked: [Int], step: Int, teacherSeconds: inout Double, trainSeconds: inout Double) throws -> LossValue {
        if model.config.isEncoder {
            return try accumulateEncoderGradients(windows: picked, step: step, teacherSeconds: &teacherSeconds, trainSeconds: &trainSeconds)
        }
        let V = model.config.vocabSize
        var loss = LossValue(loss: 0, kl: 0, ce: 0)
        let share = 1 / Double(picked.count)
        for w in picked {
            var teacherLogits = try teacherOutput(window: w, step: step, seconds: &teacherSeconds)
            let t0 = Date()
            let window = [train[w]]
            let (logits, cache) = model.forward(window)
            let part = teacherLogits.map { tl in
                tl.withUnsafeBufferPointer {
                    distillationLoss(logits: logits, teacher: $0.baseAddress, targets: Self.targets(window), vocab: V,
                                     temperature: options.temperature, alpha: options.alpha, threads: model.threads)
                }
            } ?? distillationLoss(logits: logits, teacher: nil, targets: Self.targets(window), vocab: V,
                                  temperature: options.temperature, alpha: 1, threads: model.threads)
            teacherLogits = nil  // not needed by the backward pass: 4 * length * vocab bytes fewer at its peak
            guard part.loss.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the loss") }
            if picked.count > 1 {
                let f = Float(share)
                for i in 0 ..< logits.count { logits.p[i] *= f }
            }
            model.backward(logits, cache: cache)
            loss.loss += share * part.loss
            loss.kl += share * part.kl
            loss.ce += share * part.ce
            trainSeconds += Date().timeIntervalSince(t0)
        }
        return loss
    }

    /// The teacher's outputs for training window `w`. Cached only when the window comes back in a
    /// later step of this run, and dropped at its last use: a run that sees each window once caches
    /// nothing. Nil without a teacher.
    func teacherOutput(window w: Int, step: Int, seconds: inout Double) throws -> [Float]? {
        guard let teacher else { return nil }
        let t0 = Date()
        defer { seconds += Date().timeIntervalSince(t0) }
        let again = usedAgain(window: w, after: step)
        if let cached = teacherCache[w] {
            if !again { teacherCache[w] = nil }
            return cached.map { Float($0) }
        }
        let out = try teacher(train[w])
        if again, (teacherCache.count + 1) * out.count * 2 <= teacherCacheBytes { teacherCache[w] = out.map { Float16($0) } }
        return out
    }

    /// An encoder's batch: each sentence's `encoderLoss` scaled by its share of the batch and, with
    /// `similarity`, that weight times `similarityStructureLoss` over the batch's pooled embeddings
    /// (the batch's forwards all stay alive until the batch's backward passes then).
    func accumulateEncoderGradients(windows picked: [Int], step: Int, teacherSeconds: inout Double, trainSeconds: inout Double) throws -> LossValue {
        var loss = LossValue(loss: 0, kl: 0, ce: 0)
        let share = 1 / Double(picked.count), weight = options.similarity ?? 0
        let h = model.config.hiddenSize, firstToken = model.config.pooling?.mode == .cls
        var pending: [(hidden: Buf<Float>, cache: TrainModel<Float>.Cache, teacher: [Float])] = []
        func finish(_ hidden: Buf<Float>, _ cache: TrainModel<Float>.Cache, _ teacher: [Float], extra: [Double]?) throws {
            let (part, blocks) = encoderLoss(hidden: hidden, cache: cache, teacher: teacher, scale: Float(share))
            guard part.loss.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the loss") }
            if let extra {
                // d(similarity)/d(pooled) spread over the pooled rows (mean pooling: every token)
                let rows = firstToken ? 1 : hidden.count / h, g = extra.map { Float($0 / Double(rows)) }
                for t in 0 ..< rows { for j in 0 ..< h { hidden.p[t * h + j] += g[j] } }
            }
            model.backward(hidden, cache: cache, blockOutputGradients: blocks)
            loss.loss += share * part.loss
            loss.kl += share * part.kl
            loss.ce += share * part.ce
        }
        for w in picked {
            let teacher = try teacherOutput(window: w, step: step, seconds: &teacherSeconds)!
            let t0 = Date()
            let (hidden, cache) = model.forward([train[w]])
            if weight > 0, picked.count > 1 {
                pending.append((hidden, cache, teacher))
            } else {
                try finish(hidden, cache, teacher, extra: nil)
            }
            trainSeconds += Date().timeIntervalSince(t0)
        }
        guard !pending.isEmpty else { return loss }
        let t0 = Date()
        var ps: [Double] = [], pt: [Double] = []
        for p in pending {
            let n = p.hidden.count
            ps += pooled(p.hidden.p, rows: n / h, width: h, firstToken: firstToken)
            pt += p.teacher.withUnsafeBufferPointer { pooled($0.baseAddress! + $0.count - n, rows: n / h, width: h, firstToken: firstToken) }
        }
        let (structure, gradient) = similarityStructureLoss(student: ps, teacher: pt, batch: pending.count, width: h)
        guard structure.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the similarity loss") }
        loss.loss += weight * structure
        for (b, p) in pending.enumerated() {
            try finish(p.hidden, p.cache, p.teacher, extra: gradient[(b * h) ..< ((b + 1) * h)].map { $0 * weight })
        }
        pending = []
        trainSeconds += Date().timeIntervalSince(t0)
        return loss
    }

    /// Mean of `rows` rows of `width` values (or the first row alone), in Double.
    func pooled(_ x: UnsafePointer<Float>, rows: Int, width h: Int, firstToken: Bool) -> [Double] {
        let n = firstToken ? 1 : rows
        var out = [Double](repeating: 0, count: h)
        for t in 0 ..< n { for j in 0 ..< h { out[j] += Double(x[t * h + j]) } }
        return out.map { $0 / Double(n) }
    }

    static func describe(_ o: TrainOptions) -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return (try? String(decoding: e.encode(o), as: UTF8.self)) ?? ""
    }
}
