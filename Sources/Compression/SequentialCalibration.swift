import Checkpoint
import EdgeFormat
import EdgeRuntime
import Foundation

/// Sequential calibration (as llm-compressor's sequential pipeline and GPTQ's reference code):
/// the statistics a pass sees for layer l come from the inputs layers 0 ..< l produce *as already
/// compressed*, one layer at a time, so each layer's compression corrects for the error of the
/// layers before it, and memory holds one layer's statistics (Hessians) rather than every layer's.
///
/// Over the calibration windows (`Recipe.calibration`: at most `tokens` tokens in windows of `ctx`),
/// the residual stream of every window is kept between layers ([tokens, hidden] floats):
///
/// 1. the embeddings, as their passes leave them (an embedding whose passes need statistics, e.g.
///    a tied output head, is compressed at the end, and the float one feeds the blocks);
/// 2. per block l: if a tensor of the block needs statistics, the block runs over every window with
///    its weights as the passes before the first calibrated one leave them (float), gathering the
///    statistics of its inputs; then every tensor of the block goes through its passes (the calibrated
///    ones see those statistics), and the block *as compressed* (its final values, dequantized, in f32
///    arithmetic so that neither the stored layout nor the machine's kernels change the statistics)
///    turns the windows' residual streams into the next block's inputs. With
///    `CalibrationOptions.trueSequential` the calibrated weights go in stages (`stages(of:name:)`):
///    the block runs once per stage, with the earlier stages' tensors already through their passes;
/// 3. the output norm and head: the head's statistics come from the final norm of the last block's output.
///
/// Blocks after the last one that needs statistics are compressed without running them.
///
/// With `CalibrationNeeds.floatCross`, the input model's hidden states (float, as it entered the
/// pipeline) run beside the compressed ones, and each block's statistics pair the two models'
/// inputs of the same tokens.
struct SequentialCalibration {
    let pipeline: Pipeline
    let graph: ModelGraph
    let plan: [[Int]]
    /// Recipe indices of the passes that read statistics in `apply` and get them layer by layer.
    let consumers: Set<Int>
    /// Per tensor name, what those passes need.
    let wanted: [String: CalibrationNeeds]
    /// Recipe indices of the passes to run here (the rest run later, over the result).
    let steps: Set<Int>
    let text: CalibrationText
    let progress: ((Int, Int, String) -> Void)?

    /// Which group a tensor belongs to: before the blocks, block l, after the blocks.
    enum Group: Hashable, Comparable { case embeddings, block(Int), head }

    static func group(of name: String) -> Group {
        guard let id = TensorID(name: name) else { return .head }
        if let l = id.layer { return .block(l) }
        switch id.role {
        case .tokenEmbd, .posEmbd, .tokenTypes, .tokenEmbdNorm: return .embeddings
        default: return .head
        }
    }

    /// The calibrated tensors of a block (graph indices) in the order the forward reads them, as
    /// stages of weights that read the same input: Q/K/V (or the fused QKV), the attention output,
    /// gate/up, down; anything else last, one stage each.
    static func stages(of tensors: [Int], name: (Int) -> String) -> [[Int]] {
        func rank(_ n: Int) -> Int {
            guard let id = TensorID(name: name(n)) else { return 4 }
            switch id.role {
            case .attnQ, .attnK, .attnV, .attnQKV: return 0
            case .attnOutput: return 1
            case .ffnGate, .ffnUp: return 2
            case .ffnDown: return 3
            default: return 4
            }
        }
        let known = Dictionary(grouping: tensors.filter { rank($0) < 4 }, by: rank)
        return known.keys.sorted().map { known[$0]! } + tensors.filter { rank($0) == 4 }.map { [$0] }
    }

    /// Runs `steps` over every tensor, layer by layer, handing each finished tensor (graph index,
    /// tensor) to `emit` in group order (embeddings, blocks 0 ..< L, head; graph order within a group).
    /// - Throws: `Calibration.Failure` for a text too short or a model without tokenizer; what the passes throw.
    func run(prepared p: inout Pipeline.Prepared, emit: (Int, WorkTensor) throws -> Void) throws {
        let config = p.config
        guard let json = graph.tokenizerJSON else {
            throw Calibration.Failure(file: graph.source.path, why: "the model carries no tokenizer; calibration needs one to read the text")
        }
        let tokenizer = try Tokenizer(json: [UInt8](json))
        let recipe = pipeline.recipe.calibration
        // Decoders: windows of `ctx` tokens of the text. Encoders: batches of sentences
        // (`CalibrationText.sentences`), each batch one residual stream; `lengths[w]` are batch w's sentence lengths.
        var windows: [[Int32]] = [], batches: [[[Int32]]] = []
        if config.isEncoder {
            batches = try Calibration.sentenceBatches(text: text, maxTokens: recipe.tokens) { line in
                let prefix = tokenizer.specialTokenPrefix, suffix = tokenizer.specialTokenSuffix
                let room = max(0, min(config.pooling?.maxTokens ?? config.maxPositions, config.maxPositions) - prefix.count - suffix.count)
                return prefix + tokenizer.encode(line).prefix(room) + suffix
            }
        } else {
            let ids = EdgeModel.tokenize(text.text, tokenizer: tokenizer)
            let window = min(recipe.ctx, config.maxPositions)
            guard ids.count >= min(window, 16) else {
                throw Calibration.Failure(file: text.source, why: "calibration text has \(ids.count) tokens; at least \(min(window, 16)) are needed")
            }
            windows = Calibration.windows(ids, window: window, maxTokens: recipe.tokens, spread: recipe.spread)
        }
        let lengths = batches.map { $0.map(\.count) }
        let forward = try LayerwiseForward(config: config, source: graph.source.path)
        /// Block l over residual stream w (a decoder window, or an encoder batch).
        func runBlock(_ l: Int, _ tensors: [String: WeightSource], _ x: inout [Float], _ w: Int, observe: ActivationObserver? = nil) throws {
            if config.isEncoder {
                try forward.block(l, tensors: tensors, x: &x, lengths: lengths[w], observe: observe)
            } else {
                try forward.block(l, tensors: tensors, x: &x, observe: observe)
            }
        }
        /// The embedded residual streams, from these embedding tensors.
        func embedAll(_ tensors: [String: WeightSource]) throws -> [[Float]] {
            if config.isEncoder { return try batches.map { try forward.embedSentences($0, tensors: tensors) } }
            guard let token = tensors[TensorID.tokenEmbd.name] else {
                throw Calibration.Failure(file: graph.source.path, why: "the model has no \(TensorID.tokenEmbd.name) to embed the calibration text")
            }
            return try windows.map { try forward.embed($0, tokenEmbedding: token, positionEmbedding: tensors[TensorID.posEmbd.name]) }
        }

        var groups: [Group: [Int]] = [:]
        for (n, t) in graph.tensors.enumerated() { groups[Self.group(of: t.name), default: []].append(n) }
        func wants(_ n: Int) -> Bool { wanted[graph.tensors[n].name] != nil }
        let blocks = (0 ..< config.numLayers).map { groups[.block($0)] ?? [] }
        let embeddings = groups[.embeddings] ?? []
        let deferred = embeddings.filter(wants)
        let head = (groups[.head] ?? []) + deferred
        let lastCalibrated: Group? = head.contains(where: wants) ? .head
            : blocks.lastIndex(where: { $0.contains(where: wants) }).map { .block($0) }
        let count = graph.tensors.count
        var emitted = 0

        /// Runs tensor n through `steps`; `statisticsInput`: only those ranked before its first calibrated pass.
        func process(_ n: Int, statisticsInput: Bool = false) throws -> WorkTensor {
            var limit = steps
            if statisticsInput {
                let first = plan[n].filter { consumers.contains($0) }.map { pipeline.rank[$0] }.min() ?? Int.max
                limit = limit.filter { pipeline.rank[$0] < first }
            }
            if !statisticsInput { progress?(emitted, count, graph.tensors[n].name) }
            return try Pipeline.process(graph.tensors[n], index: n, plan: plan, prepared: &p, only: limit, checkShape: !statisticsInput)
        }
        /// Emits tensor n: `done` when it already went through its passes, else it goes now.
        func finish(_ n: Int, done: WorkTensor? = nil) throws -> WorkTensor {
            let t = try done ?? process(n)
            try emit(n, t)
            emitted += 1
            return t
        }
        // The runtime computes with the values as compressed (their dequantized floats), in f32: the
        // statistics then do not depend on the stored layout or on which kernels a machine has.
        func source(_ t: WorkTensor) -> WeightSource { .floats(t.values, shape: t.shape) }
        /// Gives the consumers the statistics of `names` gathered by `observe`.
        func calibrate(_ names: [Int], _ gather: (CalibrationStats) throws -> Void) throws {
            var needs: [String: CalibrationNeeds] = [:]
            for n in names { if let w = wanted[graph.tensors[n].name] { needs[graph.tensors[n].name] = w } }
            guard !needs.isEmpty else { return }
            let stats = CalibrationStats(wanted: needs)
            try gather(stats)
            for i in consumers { p.contextSlots[i]?.calibration = stats }
        }

        // 1. Embeddings.
        var embedded: [String: WeightSource] = [:]
        for n in embeddings {
            let name = graph.tensors[n].name
            if deferred.contains(n) {
                embedded[name] = .floats(try graph.tensors[n].floats(), shape: graph.tensors[n].shape)
            } else {
                embedded[name] = source(try finish(n))
            }
        }
        guard lastCalibrated != nil else {
            for n in blocks.joined() { _ = try finish(n) }
            for n in head { _ = try finish(n) }
            return
        }
        var residual = try embedAll(embedded)
        embedded = [:]
        // With `floatCross`, the float model's hidden states run beside (from the float embeddings).
        let paired = wanted.values.contains { $0.contains(.floatCross) }
        var floatResidual: [[Float]] = []
        if paired {
            var floats: [String: WeightSource] = [:]
            for n in embeddings { floats[graph.tensors[n].name] = .floats(try graph.tensors[n].floats(), shape: graph.tensors[n].shape) }
            floatResidual = try embedAll(floats)
        }

        // 2. Blocks.
        for (l, block) in blocks.enumerated() {
            var floats: [String: WeightSource] = [:], inputFloats: [String: WeightSource] = [:]
            if paired, let last = lastCalibrated, Group.block(l) <= last {
                for n in block { inputFloats[graph.tensors[n].name] = .floats(try graph.tensors[n].floats(), shape: graph.tensors[n].shape) }
            }
            var staged: [Int: WorkTensor] = [:]
            if block.contains(where: wants) {
                progress?(emitted, count, "blk.\(l): calibration")
                for n in block { floats[graph.tensors[n].name] = source(try process(n, statisticsInput: true)) }
                // One stage (the whole block), or with `trueSequential` the forward order's stages, each
                // calibrated on the block with the stages before it compressed.
                let stages = pipeline.recipe.calibration.trueSequential
                    ? Self.stages(of: block.filter(wants)) { graph.tensors[$0].name } : [block]
                for stage in stages where stage.contains(where: wants) {
                    try calibrate(stage) { stats in
                        for w in residual.indices {
                            var y = residual[w]
                            var inputs: [String: [Float]] = [:]
                            try runBlock(l, floats, &y, w) { weight, x, rows, cols in
                                stats.observe(weight: weight, x: x, rows: rows, cols: cols)
                                if paired, stats.wants(.floatCross, for: weight) { inputs[weight] = Array(UnsafeBufferPointer(start: x, count: rows * cols)) }
                            }
                            if paired {
                                // The float model's inputs of the same tokens (and its next hidden states).
                                try runBlock(l, inputFloats, &floatResidual[w], w) { weight, xf, rows, cols in
                                    guard let x = inputs[weight] else { return }
                                    x.withUnsafeBufferPointer { stats.observeCross(weight: weight, x: $0.baseAddress!, float: xf, rows: rows, cols: cols) }
                                }
                            }
                            stats.endForward(tokens: residual[w].count / config.hiddenSize)
                        }
                    }
                    // The stage's tensors go through their passes now, so the next stage sees them compressed.
                    if stages.count > 1 {
                        for n in stage {
                            let t = try process(n)
                            staged[n] = t
                            floats[graph.tensors[n].name] = source(t)
                        }
                    }
                }
            } else if paired, let last = lastCalibrated, Group.block(l) < last {
                for w in floatResidual.indices { try runBlock(l, inputFloats, &floatResidual[w], w) }
            }
            floats = [:]
            inputFloats = [:]
            var compressed: [String: WeightSource] = [:]
            for n in block { compressed[graph.tensors[n].name] = source(try finish(n, done: staged[n])) }
            if let last = lastCalibrated, Group.block(l) < last {
                for w in residual.indices { try runBlock(l, compressed, &residual[w], w) }
            }
        }

        // 3. Output norm and head.
        var finished: [String: WeightSource] = [:]
        for n in head where !wants(n) { finished[graph.tensors[n].name] = source(try finish(n)) }
        let calibrated = head.filter(wants)
        guard !calibrated.isEmpty else { return }
        let norms = try residual.map { try forward.finalNorm($0, tensors: finished) }
        residual = []
        // The head multiplies the final norm: the output weight, or the embedding when tied.
        let headName = config.tiedEmbeddings ? TensorID.tokenEmbd.name : TensorID.output.name
        try calibrate(calibrated) { stats in
            for x in norms {
                x.withUnsafeBufferPointer { stats.observe(weight: headName, x: $0.baseAddress!, rows: x.count / config.hiddenSize, cols: config.hiddenSize) }
                stats.endForward(tokens: x.count / config.hiddenSize)
            }
        }
        for n in calibrated { _ = try finish(n) }
    }
}
