import EdgeFormat
import EdgeRuntime
import Foundation
import Training

/// Teacher-student distillation: the float model as it entered the pipeline teaches the student,
/// the model as the earlier passes left it. Trains the selected tensors on the calibration text
/// (`--data`) with loss T^2 * KL(teacher_T || student_T) + alpha * CE, AdamW with warmup and cosine
/// decay, gradient clipping and a fixed seed. Pruned weights stay zero (masks from the pruning
/// passes); tensors a quantize pass encodes train through straight-through fake quantization and
/// are quantized again, from the trained values, by that same pass when the file is written.
///
/// Encoders (BERT): the teacher is the float encoder (f32), each training sequence is one sentence
/// of the text (`CalibrationText.sentences`, framed by `[CLS]` … `[SEP]` and cut to `length` tokens,
/// `length` capped by the pooling's max_tokens; sentences of fewer than 3 tokens are skipped), the
/// last `held_out` of them held out, and the loss is the squared error of the last hidden states divided by the
/// teacher's (`hiddenStateLoss`), plus `cosine` times 1 - cosine of the pooled embeddings;
/// `temperature` and `alpha` do not apply; the held-out figure is that loss. With `intermediate`
/// > 0 the outputs of the earlier blocks are matched too (each block's error weighted by it; the
/// teacher is then the float encoder in training form, which gives every block's output).
///
/// With `blockwise_epochs` > 0: first a block-wise stage (`BlockReconstruction`): each block of the
/// student, first to last, trained alone to reproduce the float model's block output from the
/// student's own inputs (a decoder's on windows of the text, an encoder's on the same sentences as
/// its end-to-end training); then the end-to-end training (none with `steps: 0`). Tensors whose
/// encoding is too slow to re-fit every step (GPTQ, q4k / q3s grids: `PassContext.fitters`) are
/// fitted once, on the Hessians of their block's own inputs, just before their block trains
/// (`BlockGridFitter`), and then round on the grids so fitted; this needs the block-wise stage.
///
/// Recipe: `{"pass": "distill", "steps": 40, "batch": 4, "length": 256, "lr": 1e-4, "warmup": 0.1,
/// "weight_decay": 0, "clip": 1, "temperature": 2, "alpha": 0.5, "cosine": 0, "seed": 0, "held_out": 0.1,
/// "eval_every": 10, "checkpoint_every": 10, "moments": "bf16" | "f32", "matmul": "f32" | "bf16", "blockwise_epochs": 0,
/// "blockwise_tokens": 16384, "blockwise_lr": 1e-4, "blockwise_target": "float" | "float_block", <selector>}`; the selector (which tensors train)
/// defaults to the blocks' linear weights, norms and biases: embeddings and the output head stay frozen.
public struct Distill: Pass {
    public static let id = "distill"
    public static let stage = PassStage.distill

    public let options: TrainOptions
    /// The block-wise stage before the end-to-end training (decoders; `epochs` 0: none).
    public let blockwise: ReconstructOptions
    public let selector: TensorSelector
    /// Trained values by tensor name, after `train`.
    private(set) var trained: [String: [Float]] = [:]
    /// Trained tensors whose values went back to the pipeline's in-memory model (`PassContext.latent`)
    /// instead of `trained`: the stream reads them trained.
    private(set) var trainedInStore: Set<String> = []
    private var report: TrainReport?
    private var blockReport: ReconstructReport?
    private var isEncoder = false
    private var seconds = 0.0
    private var written = 0

    public init(options: TrainOptions = TrainOptions(), blockwise: ReconstructOptions = ReconstructOptions(),
                selector: TensorSelector = TensorSelector(kinds: [.linear, .norm, .bias])) {
        self.options = options
        self.blockwise = blockwise
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        var o = TrainOptions()
        o.steps = try f.int("steps", default: o.steps, range: 0 ... 1_000_000)
        o.batch = try f.int("batch", default: o.batch, range: 1 ... 4096)
        o.length = try f.int("length", default: o.length, range: 8 ... 1 << 16)
        o.lr = try f.double("lr", default: o.lr, range: 0 ... 1, openUpper: true)
        o.warmup = try f.double("warmup", default: o.warmup, range: 0 ... 1)
        o.weightDecay = try f.double("weight_decay", default: o.weightDecay, range: 0 ... 1)
        o.clip = try f.double("clip", default: o.clip, range: 0 ... 1e6)
        o.temperature = try f.double("temperature", default: o.temperature, range: 0.05 ... 100)
        o.alpha = try f.double("alpha", default: o.alpha, range: 0 ... 100)
        let cosine = try f.double("cosine", default: 0, range: 0 ... 100)
        o.cosine = cosine == 0 ? nil : cosine
        let intermediate = try f.double("intermediate", default: 0, range: 0 ... 100)
        o.intermediate = intermediate == 0 ? nil : intermediate
        let similarity = try f.double("similarity", default: 0, range: 0 ... 1000)
        o.similarity = similarity == 0 ? nil : similarity
        o.seed = UInt64(try f.int("seed", default: 0, range: 0 ... Int(Int32.max)))
        o.heldOut = try f.double("held_out", default: o.heldOut, range: 0 ... 0.9)
        o.evalEvery = try f.int("eval_every", default: o.evalEvery, range: 0 ... 1_000_000)
        o.checkpointEvery = try f.int("checkpoint_every", default: o.checkpointEvery, range: 0 ... 1_000_000)
        o.moments = MomentPrecision(rawValue: try f.string("moments", default: o.moments.rawValue, allowed: MomentPrecision.allCases.map(\.rawValue)))!
        let matmul = MatmulPrecision(rawValue: try f.string("matmul", default: "f32", allowed: MatmulPrecision.allCases.map(\.rawValue)))!
        o.matmul = matmul == .f32 ? nil : matmul
        var b = ReconstructOptions()
        b.epochs = try f.int("blockwise_epochs", default: b.epochs, range: 0 ... 1000)
        b.tokens = try f.int("blockwise_tokens", default: b.tokens, range: 1 ... 1 << 24)
        b.lr = try f.double("blockwise_lr", default: b.lr, range: 0 ... 1, openUpper: true)
        b.target = ReconstructOptions.Target(rawValue: try f.string("blockwise_target", default: b.target.rawValue,
                                                                    allowed: ReconstructOptions.Target.allCases.map(\.rawValue)))!
        b.batch = o.batch
        b.length = o.length
        if o.steps == 0 && b.epochs == 0 { throw f.error("steps", "is 0 and there is no block-wise stage ('blockwise_epochs'): nothing would train") }
        options = o
        blockwise = b
        selector = try f.selector(defaultKinds: [.linear, .norm, .bias])
    }

    /// The calibration text to train on, the float input as the teacher, and the encode passes
    /// after it to train through.
    public var needs: PassNeeds { [.calibrationText, .inputModel, .encoders] }
    /// The block-wise stage fits encodings too slow to re-fit every step once per block (`BlockGridFitter`).
    public var fitsEncodersPerBlock: Bool { blockwise.epochs > 0 }
    /// It trains the whole model in `prepare`.
    public var readsWeightsInPrepare: Bool { true }

    /// Trains, over the whole model: the student is `graph`, the model as the shape-phase passes
    /// leave it (latent float values; the zeros of `context.masked` tensors stay zero), the
    /// tensors `context.encoders` names train through those encoders (straight-through fake
    /// quantization every step), and the teacher is `context.input` in float.
    public mutating func prepare(graph latent: ModelGraph, context: PassContext) throws {
        guard let calibration = context.calibrationText, let input = context.input else {
            throw RecipeError(file: context.recipeFile, field: "passes[\(context.index)]",
                              why: "'\(Self.id)' needs calibration text and the input model")
        }
        let start = Date()
        let config = latent.config, encoder = config.isEncoder
        for (field, set) in [("cosine", options.cosine != nil), ("intermediate", options.intermediate != nil),
                           ("similarity", options.similarity != nil)] where set && !encoder {
            throw RecipeError(file: context.recipeFile, field: "passes[\(context.index)].\(field)",
                              why: "applies to encoders (sentence embeddings); this model is a \(config.architecture.rawValue) decoder")
        }
        if blockwise.epochs > 0 {
            let field = "passes[\(context.index)].blockwise_epochs"
            if input.config.schema().map(\.shape) != config.schema().map(\.shape) {
                throw RecipeError(file: context.recipeFile, field: field,
                                  why: "needs the float model's block shapes; a structured pruning pass changed them")
            }
        }
        // A decoder trains on windows of the text's tokens; an encoder on the text's sentences.
        guard let json = input.tokenizerJSON else { throw RuntimeError.noTokenizer(source: input.source.path) }
        let tokenizer = try Tokenizer(json: [UInt8](json))
        var tokens: [Int32] = [], sentences: [[Int32]] = []
        if encoder {
            sentences = Self.sentences(calibration, tokenizer: tokenizer, config: input.config, maxTokens: options.length)
        } else {
            tokens = EdgeModel.tokenize(calibration.text, tokenizer: tokenizer)
        }
        let threads = EdgeModel.defaultThreads
        var index: [String: Int] = [:]
        for (n, t) in latent.tensors.enumerated() { index[t.name] = n }
        let trainable = Set(latent.tensors.map(\.name).filter { selector.selects($0, numLayers: config.numLayers) })
        // Values the pipeline holds in memory move into the student (and back after training)
        // instead of being copied; others are read from the model.
        let store = context.latent
        var taken: [String] = []
        let model = try TrainModel<Float>(config: config, trainable: trainable, threads: threads) { name in
            guard let n = index[name] else { throw PassError(pass: Self.id, tensor: name, why: "is missing from the model") }
            let v: [Float]
            if let held = store?.take(name) {
                v = held
                taken.append(name)
            } else {
                v = try latent.tensors[n].floats()
            }
            let masked = trainable.contains(name) && context.masked.contains(name)
            return (v, masked ? BitMask(count: v.count) { v[$0] != 0 } : nil)
        }
        model.bf16Matmul = options.matmul == .bf16
        // Tensors whose encodings are fitted once per block (GPTQ, sub-coded grids): the block-wise
        // stage fits them before their block trains; until then they run in float.
        let fitted = trainable.filter { context.fitters[$0] != nil }
        if let outside = fitted.sorted().first(where: { TensorID(name: $0)?.layer == nil }) {
            throw RecipeError(file: context.recipeFile, field: "passes[\(context.index)]",
                              why: "trains '\(outside)', whose encoding is fitted once per block by the block-wise stage (GPTQ or sub-coded grids), but it is in no block; leave it out of the distill pass's selector")
        }
        let fitter = fitted.isEmpty ? nil : BlockGridFitter(fitters: context.fitters, names: fitted)
        model.quantizers = context.encoders.mapValues { encode in { values in
            let (v, e) = try encode(values)
            return FakeQuantized(values: v, encoded: e)
        } }
        if let fitter {
            for name in fitted {
                guard let quantize = model.quantizers[name] else { continue }
                model.quantizers[name] = { values in try fitter.isFitted(name) ? quantize(values) : FakeQuantized(values: values) }
            }
        }
        try model.refresh()
        if blockwise.epochs > 0 {
            // The block-wise stage: the float model in training form (frozen) gives every block's
            // target; it lives only inside `runBlockwise`.
            try runBlockwise(student: model, input: input, tokens: tokens, sentences: sentences, source: calibration.source,
                             threads: threads, context: context, fitter: fitter)
        }
        var trainer: Trainer?
        if options.steps > 0 {
            do {
                if encoder, options.intermediate != nil {
                    // Every block's output: the float encoder in training form (frozen).
                    let tm = try Self.floatTrainModel(input, threads: threads)
                    trainer = try Trainer(model: model, sequences: sentences, options: options) { window in
                        let (x, cache) = tm.forward([window])
                        var out: [Float] = []
                        out.reserveCapacity(x.count * tm.config.numLayers)
                        for l in 0 ..< tm.config.numLayers { out += tm.encoderBlockOutput(l, cache: cache).array }
                        return out
                    }
                } else {
                    // The teacher, made after the block-wise stage so that it is never held beside that
                    // stage's float model. Its matrices in f16: half its memory; its logits move by about
                    // 1e-3 of their size. An encoder's stays f32 (small models; its hidden states are the target).
                    let t = try EdgeModel.floatModel(graph: input, halfPrecisionMatrices: !encoder, threads: threads)
                    trainer = encoder
                        ? try Trainer(model: model, sequences: sentences, options: options) { try t.hiddenStates([$0]) }
                        : try Trainer(model: model, tokens: tokens, options: options) { try t.logits($0) }
                }
            } catch let e as TrainingError {
                throw RecipeError(file: calibration.source, field: "--data", why: "is too short for distillation: \(e)")
            }
        }
        let steps = options.steps
        let r = try trainer?.run(checkpointDir: context.checkpointDir, fingerprint: context.fingerprint) { p in
            var item = "distill step \(p.step)/\(p.steps)"
            if let l = p.loss { item += String(format: " loss %.3f", l.loss) }
            if let ppl = p.heldOutPPL { item += String(format: encoder ? " held-out loss %.4f" : " held-out ppl %.2f", ppl) }
            context.progress?(p.step, steps, item)
        }
        // The optimizer state and the teacher (held by the trainer) go before the trained values are
        // copied out, so the copy does not add to the training peak.
        trainer = nil
        let given = Set(taken)
        for p in model.params {
            if given.contains(p.name) {
                store!.give(p.name, p.value.array)
                if p.trainable { trainedInStore.insert(p.name) }
            } else if p.trainable {
                trained[p.name] = p.value.array
            }
        }
        report = r
        isEncoder = encoder
        seconds = Date().timeIntervalSince(start)
    }

    /// The block-wise stage on `student` (a decoder on windows of `tokens`, an encoder on `sentences`),
    /// its report kept for the record.
    private mutating func runBlockwise(student: TrainModel<Float>, input: ModelGraph, tokens: [Int32], sentences: [[Int32]],
                                       source: String, threads: Int, context: PassContext, fitter: BlockGridFitter?) throws {
        let floatModel = try Self.floatTrainModel(input, threads: threads)
        let stage: BlockReconstruction
        do {
            stage = student.config.isEncoder
                ? try BlockReconstruction(student: student, teacher: floatModel, sentences: sentences, options: blockwise)
                : try BlockReconstruction(student: student, teacher: floatModel, tokens: tokens, options: blockwise)
        } catch let e as TrainingError {
            throw RecipeError(file: source, field: "--data", why: "is too short for block-wise reconstruction: \(e)")
        }
        stage.fitter = fitter
        blockReport = try stage.run { done, total, item in context.progress?(done, total, "blockwise: " + item) }
    }

    /// The input model in training form, f32 and frozen: every block's output for the encoder's
    /// `intermediate` loss and the block-wise stage's targets.
    static func floatTrainModel(_ input: ModelGraph, threads: Int) throws -> TrainModel<Float> {
        try TrainModel<Float>(config: input.config, trainable: [], threads: threads) { name in
            guard let spec = input.tensors.first(where: { $0.name == name }) else {
                throw PassError(pass: Self.id, tensor: name, why: "is missing from the input model")
            }
            return (try spec.floats(), nil)
        }
    }

    /// An encoder's training sentences: `CalibrationText.sentences` with at least 3 tokens of text,
    /// each framed by the tokenizer's special tokens and cut to `maxTokens` tokens in all (and to the
    /// model's `pooling.max_tokens`).
    static func sentences(_ text: CalibrationText, tokenizer: Tokenizer, config c: ModelConfig, maxTokens: Int) -> [[Int32]] {
        let prefix = tokenizer.specialTokenPrefix, suffix = tokenizer.specialTokenSuffix
        let limit = max(1, min(maxTokens, c.pooling?.maxTokens ?? c.maxPositions, c.maxPositions) - prefix.count - suffix.count)
        return text.sentences.compactMap { s in
            let t = tokenizer.encode(s)
            return t.count >= 3 ? prefix + t.prefix(limit) + suffix : nil
        }
    }

    /// Replaces a tensor's values with the trained ones (it runs in the rewrite phase: after the
    /// shape passes, before the encode passes, which so encode the trained values).
    public mutating func apply(_ tensor: inout WorkTensor, context: PassContext) throws {
        if trainedInStore.contains(tensor.name) {
            written += 1
            return
        }
        guard let v = trained[tensor.name] else { return }
        guard v.count == tensor.values.count else {
            throw PassError(pass: Self.id, tensor: tensor.name, why: "trained \(v.count) values; the tensor has \(tensor.values.count)")
        }
        tensor.values = v
        written += 1
    }

    /// Wall time of the training and its throughput (they differ from run to run, so they are
    /// reported, not recorded).
    public func timings() -> JSONValue? {
        var o: [String: JSONValue] = ["seconds": .number(seconds)]
        if let r = report { o["train_tokens_per_second"] = .number(r.tokensPerSecond) }
        if let b = blockReport { o["blockwise_tokens_per_second"] = .number(b.tokensPerSecond) }
        if options.matmul == .bf16 { o["matmul_kernel"] = .string(KernelInfo.bf16Kernel) }
        return .object(o)
    }

    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "selector": selector.record, "steps": .number(Double(options.steps)),
            "batch": .number(Double(options.batch)), "lr": .number(options.lr), "warmup": .number(options.warmup),
            "weight_decay": .number(options.weightDecay), "clip": .number(options.clip),
            "temperature": .number(options.temperature), "alpha": .number(options.alpha), "seed": .number(Double(options.seed)),
            "moments": .string(options.moments.rawValue),
            "tensors": .number(Double(trained.count + trainedInStore.count)),
        ]
        if let m = options.matmul { o["matmul"] = .string(m.rawValue) }  // absent for f32, as before the field existed
        if blockwise.epochs > 0 {
            o["blockwise_epochs"] = .number(Double(blockwise.epochs))
            o["blockwise_tokens"] = .number(Double(blockwise.tokens))
            o["blockwise_lr"] = .number(blockwise.lr)
            o["blockwise_target"] = .string(blockwise.target.rawValue)
            if let b = blockReport {
                o["blockwise_windows"] = .number(Double(b.windows))
                o["blockwise_error_before"] = .array(b.before.map { .number($0) })
                o["blockwise_error_after"] = .array(b.after.map { .number($0) })
                o["blockwise_restored"] = .array(b.restored.map { .number(Double($0)) })
            }
        }
        if let r = report {
            o["length"] = .number(Double(r.length))
            o["train_windows"] = .number(Double(r.trainWindows))
            o["held_out_windows"] = .number(Double(r.heldOutWindows))
            o["resumed_from_step"] = .number(Double(r.resumedFrom))
            if isEncoder {
                o["cosine"] = .number(options.cosine ?? 0)
                o["intermediate"] = .number(options.intermediate ?? 0)
                o["similarity"] = .number(options.similarity ?? 0)
                o["held_out_loss_before"] = .number(r.heldOutBefore)
                o["held_out_loss_after"] = .number(r.heldOutAfter)
                if let last = r.log.last, last.step > 0 {
                    o["final_loss"] = .number(last.loss)
                    o["final_mse"] = .number(last.kl)
                }
            } else {
                o["held_out_ppl_before"] = .number(r.heldOutBefore)
                o["held_out_ppl_after"] = .number(r.heldOutAfter)
                if let last = r.log.last, last.step > 0 {
                    o["final_loss"] = .number(last.loss)
                    o["final_kl"] = .number(last.kl)
                }
            }
        }
        return .object(o)
    }
}

/// The block-wise stage's `BlockFitter` for the tensors whose encodings are fitted once
/// (`PassContext.fitters`: GPTQ, sub-coded grids): before block l trains, the Hessians
/// (2/n) X^T X of its matrices' inputs over the stage's calibration chunks (the block's own inputs,
/// as the blocks before it left them, fitted and trained), then each matrix's fitter on them. From
/// then on the tensor's quantizer rounds on the fitted grids; before, it runs in float.
final class BlockGridFitter: BlockFitter {
    let fitters: [String: (_ values: [Float], _ hessian: [Double]) throws -> [Float]]
    /// The trainable tensors with a fitter.
    let names: Set<String>
    private var done: Set<String> = []
    private var stats: CalibrationStats?

    init(fitters: [String: (_ values: [Float], _ hessian: [Double]) throws -> [Float]], names: Set<String>) {
        self.fitters = fitters
        self.names = names
    }

    func isFitted(_ name: String) -> Bool { done.contains(name) }

    func wants(_ weight: String) -> Bool { names.contains(weight) && !done.contains(weight) }

    func observe(weight: String, inputs x: UnsafePointer<Float>, rows: Int, cols: Int) {
        if stats == nil { stats = CalibrationStats(wanted: Dictionary(uniqueKeysWithValues: names.map { ($0, CalibrationNeeds.hessians) })) }
        stats!.observe(weight: weight, x: x, rows: rows, cols: cols)
    }

    func endChunk(tokens: Int) { stats?.endForward(tokens: tokens) }

    func fit(block: Int, values: (String) -> [Float]) throws -> [String: [Float]] {
        defer { stats = nil }
        var out: [String: [Float]] = [:]
        for name in names.filter({ TensorID(name: $0)?.layer == block && !done.contains($0) }).sorted() {
            guard let h = stats?.hessian(for: name), let fit = fitters[name] else {
                throw PassError(pass: Distill.id, tensor: name, why: "block-wise stage: no inputs were observed for it, so its encoding cannot be fitted")
            }
            out[name] = try fit(values(name), h)
            done.insert(name)
        }
        return out
    }
}
