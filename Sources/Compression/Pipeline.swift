import Checkpoint
import EdgeFormat
import EdgeRuntime
import Foundation

/// Version string recorded in every output's provenance.
public let toolchainVersion = Provenance.currentToolchain

/// What a compression run produced.
public struct CompressSummary {
    public var output: String
    public var bytes: Int
    /// Weights written (after structured pruning, fewer than the input had).
    public var parameters: Int
    public var seconds: Double
    /// What each pass did, in recipe order, as recorded in the file.
    public var records: [JSONValue]
    /// How long passes took (only those that report it, e.g. distill), as
    /// `{"pass": id, "index": recipe index, ...}` objects: reported, not recorded in the file.
    public var timings: [JSONValue] = []
    /// What the input lacked or what was left out (e.g. a tokenizer the runtime cannot use), one line each.
    public var warnings: [String] = []
    public var bitsPerWeight: Double { parameters > 0 ? Double(bytes) * 8 / Double(parameters) : 0 }
}

/// Runs a recipe over a checkpoint and writes an `.edge` file. Tensors stream through the passes
/// one at a time (a pass may first read the whole model lazily in `prepare`), so memory stays at a
/// small multiple of the largest tensor. The output appears atomically, only on success.
///
/// The schedule, all from what the passes declare (never from their types):
///
/// 1. `plan`: which passes select each tensor; a tensor an `encodesMatrices` pass selects must be
///    a matrix that no other such pass encodes.
/// 2. calibration (`calibrationPlan`), over `--data` or the bundled set: the statistics passes read in
///    `prepare` (`prepareCalibrationNeeds`) come from one run of the float input model; those they
///    read in `apply` (`calibrationNeeds`) come layer by layer (`SequentialCalibration`), from the
///    inputs the layers before produce as already compressed.
/// 3. prepare, in data-flow order (`PassPhase`, recipe order within a phase; see `schedule`): each
///    pass sees the model as the passes before it in that order leave it (lazily) and their config
///    transforms, plus what its `needs` declare.
/// 4. stream: each tensor runs through the passes that select it in the same data-flow order and
///    goes to the `ModelWriter`; the records follow, in recipe order. With sequential calibration the
///    stream goes layer by layer (the schema's order, as the file's), each layer calibrated just before
///    its tensors run; a pass after a calibrated one that reads the model in `prepare`
///    (`readsWeightsInPrepare`, e.g. distill) is prepared after the layer-by-layer run, over its
///    result held in memory, and the rest of the stream follows.
///
/// So `prune, quantize, distill, pack` in a recipe runs `prune -> distill -> quantize -> pack`:
/// distill trains through copies of the quantize passes and its `apply` hands them the trained values.
public struct Pipeline {
    public let recipe: Recipe
    public let recipeFile: String
    /// Recipe indices of the passes in data-flow order: by `phase`, recipe order within a phase.
    public let schedule: [Int]
    /// Position of each pass (recipe index) in `schedule`.
    let rank: [Int]
    /// Whether the model held in memory after layer-by-layer calibration is offered to the next
    /// pass to take values from (`PassContext.latent`); off, that pass copies them (tests compare both).
    var offersLatentModel = true

    public init(recipe: Recipe, recipeFile: String) {
        self.recipe = recipe
        self.recipeFile = recipeFile
        schedule = Self.schedule(recipe.passes)
        var rank = [Int](repeating: 0, count: recipe.passes.count)
        for (k, i) in schedule.enumerated() { rank[i] = k }
        self.rank = rank
    }

    /// Recipe indices of `passes` in data-flow order (stable within a phase).
    public static func schedule(_ passes: [any Pass]) -> [Int] {
        passes.indices.sorted { a, b in
            let pa = type(of: passes[a]).phase, pb = type(of: passes[b]).phase
            return pa < pb || (pa == pb && a < b)
        }
    }

    /// Which passes select each tensor (recipe indices in data-flow order), checked before any
    /// work: a 1-D tensor chosen by a pass that encodes matrices, or a tensor encoded by two such
    /// passes, is refused with the recipe field and tensor named.
    public func plan(for graph: ModelGraph) throws -> [[Int]] {
        var plan: [[Int]] = []
        for t in graph.tensors {
            var chosen: [Int] = []
            var encodedBy: Int?
            for (i, p) in recipe.passes.enumerated() where p.selector.selects(t.name, numLayers: graph.config.numLayers) {
                if p.encodesMatrices {
                    if t.shape.count != 2 {
                        throw RecipeError(file: recipeFile, field: "passes[\(i)]",
                                          why: "selects '\(t.name)', which is \(t.shape.count)-D; quantization needs a matrix (narrow 'kinds' or add it to 'exclude')")
                    }
                    if let q = encodedBy {
                        throw RecipeError(file: recipeFile, field: "passes[\(i)]",
                                          why: "quantizes '\(t.name)' a second time (passes[\(q)] already quantizes it)")
                    }
                    encodedBy = i
                }
                chosen.append(i)
            }
            plan.append(chosen.sorted { rank[$0] < rank[$1] })
        }
        return plan
    }

    /// Recipe indices of the passes `plan` gives no tensor: almost always a selector that does not
    /// match the model (e.g. `include` naming an embedding under the default `kinds: ["linear"]`).
    func unselected(_ plan: [[Int]]) -> [Int] {
        let used = Set(plan.joined())
        return recipe.passes.indices.filter { !used.contains($0) }
    }

    /// Passes prepared over a graph, ready to stream its tensors.
    struct Prepared {
        /// In recipe order.
        var passes: [any Pass]
        /// The context each pass saw in `prepare` and sees in `apply` (recipe order; nil until prepared).
        var contextSlots: [PassContext?]
        /// The output config: the input's after the prepared passes' `transform(config:)`.
        var config: ModelConfig
        /// The shape each tensor (graph order) must have after its passes.
        var shapes: [[Int]]
        /// Recipe indices of the passes prepared so far.
        var ready: Set<Int> = []
        /// Recipe indices of the passes whose work is already in the graph's values (materialized
        /// by an earlier stage): `process` skips them.
        var done: Set<Int> = []

        /// The context of a prepared pass.
        func context(_ i: Int) -> PassContext { contextSlots[i]! }
    }

    /// What passes need beyond the model: calibration statistics and text, checkpoints, progress.
    struct Extras {
        var calibration: CalibrationStats?
        var text: CalibrationText?
        var checkpointDir: String?
        var fingerprint = ""
        var progress: ((Int, Int, String) -> Void)?
        /// The values of `graph` when they are held in memory (`PassContext.latent`).
        var latent: LatentModel?
        /// The run's `PassContext.fitted`, shared by every context of the run.
        var fitted = FittedEncodings()
    }

    /// The context of pass `i` seeing `config`, with what the run offers every pass.
    func context(_ i: Int, config: ModelConfig, extras: Extras) -> PassContext {
        var c = PassContext(config: config, index: i, recipeFile: recipeFile, calibration: extras.calibration)
        c.checkpointDir = extras.checkpointDir
        c.fingerprint = extras.fingerprint
        c.fitted = extras.fitted
        c.progress = extras.progress
        return c
    }

    /// Prepares the passes in data-flow order (`schedule`). Each gathers what it needs over the
    /// model as the passes before it leave it (read lazily, see `view`), sees the config their
    /// transforms produced, and gets what its `needs` declare.
    func prepare(_ graph: ModelGraph, plan: [[Int]], extras: Extras = Extras()) throws -> Prepared {
        var p = Prepared(passes: recipe.passes, contextSlots: Array(repeating: nil, count: recipe.passes.count),
                         config: graph.config, shapes: [])
        try prepare(graph, input: graph, plan: plan, positions: schedule.indices, extras: extras, into: &p)
        return p
    }

    /// Prepares the passes at `positions` of the schedule (a contiguous range; those before it are
    /// prepared already, in `p`) over `graph`, whose values already hold the work of the passes in
    /// `p.done`. `input` is the model as it entered the pipeline (`PassNeeds.inputModel`).
    func prepare(_ graph: ModelGraph, input: ModelGraph, plan: [[Int]], positions: Range<Int>, extras: Extras,
                 into p: inout Prepared) throws {
        var view = positions.lowerBound == 0 ? graph
            : Self.view(graph, through: p.passes, prepared: p.ready.subtracting(p.done), contexts: p.contextSlots, plan: plan, config: p.config)
        for k in positions {
            let i = schedule[k]
            let passes = p.passes
            var context = self.context(i, config: p.config, extras: extras)
            let needs = passes[i].needs
            if needs.contains(.calibrationText) {
                // Pipeline.run always supplies one (--data or the bundled set); a caller of
                // prepare that has none gets the bundled set too.
                context.calibrationText = extras.text ?? CalibrationText.bundled
            }
            if needs.contains(.inputModel) { context.input = input }
            // The in-memory model, to the first pass prepared over it as it is (no pass pending in the view).
            if k == positions.lowerBound, p.ready.subtracting(p.done).isEmpty { context.latent = extras.latent }
            if needs.contains(.encoders) {
                let later = Array(schedule[(k + 1)...]).filter { type(of: passes[$0]).phase == .encode }
                let earlier = Set(schedule[..<k])
                let encoderContexts = Dictionary(uniqueKeysWithValues: later.map { ($0, self.context($0, config: p.config, extras: extras)) })
                for (n, t) in graph.tensors.enumerated() {
                    if plan[n].contains(where: { earlier.contains($0) && type(of: passes[$0]).phase == .shape }) {
                        context.masked.insert(t.name)
                    }
                    let steps = plan[n].filter { later.contains($0) }
                    guard !steps.isEmpty else { continue }
                    let name = t.name, shape = view.tensors[n].shape, snapshot = passes
                    // Copies of the steps over `values`; given a Hessian, the steps that refuse training
                    // through them fit their encoding on it instead (`fitters`).
                    let run = { (values: [Float], hessian: [Double]?) throws -> WorkTensor in
                        var w = WorkTensor(name: name, shape: shape, values: values)
                        var copies = snapshot
                        for j in steps {
                            if let hessian, copies[j].refusesTrainingThrough != nil {
                                try copies[j].fit(&w, hessian: hessian, context: encoderContexts[j]!)
                            } else {
                                try copies[j].apply(&w, context: encoderContexts[j]!)
                            }
                        }
                        return w
                    }
                    context.encoders[name] = { values in
                        let w = try run(values, nil)
                        return (w.values, w.encoded)
                    }
                    if steps.contains(where: { passes[$0].refusesTrainingThrough != nil }) {
                        context.fitters[name] = { values, hessian in try run(values, hessian).values }
                    }
                }
            }
            try p.passes[i].prepare(graph: view, context: context)
            try p.passes[i].transform(config: &p.config)
            p.contextSlots[i] = context
            p.ready.insert(i)
            if k + 1 < positions.upperBound {
                view = Self.view(graph, through: p.passes, prepared: p.ready.subtracting(p.done), contexts: p.contextSlots, plan: plan,
                                 config: p.config)
            }
        }
        var expected: [String: [Int]] = [:]
        for (name, shape) in p.config.expectedTensors() { expected[name] = shape }
        p.shapes = graph.tensors.map { expected[$0.name] ?? $0.shape }
    }

    /// `graph` as the `prepared` passes leave it, still lazy: a tensor's values are produced on
    /// demand by running copies of the prepared passes that select it, in the plan's (data-flow)
    /// order (copies, so the records of the real passes count each tensor once); shapes come from `config`.
    static func view(_ graph: ModelGraph, through passes: [any Pass], prepared: Set<Int>, contexts: [PassContext?], plan: [[Int]],
                     config: ModelConfig) -> ModelGraph {
        var expected: [String: [Int]] = [:]
        for (name, shape) in config.expectedTensors() { expected[name] = shape }
        var out = graph
        out.config = config
        out.tensors = graph.tensors.enumerated().map { n, source in
            let steps = plan[n].filter { prepared.contains($0) }
            guard !steps.isEmpty else { return source }
            return source.with(shape: expected[source.name] ?? source.shape) {
                var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
                var copies = passes
                for i in steps { try copies[i].apply(&t, context: contexts[i]!) }
                return t.values
            }
        }
        return out
    }

    /// Runs tensor `n` of `graph` through its passes (data-flow order) and checks it has the shape
    /// the output config expects.
    /// - Parameters:
    ///   - only: run only these passes (recipe indices) of its plan; all by default.
    ///   - checkShape: whether to check the shape against the output config (when every pass ran).
    static func process(_ source: SourceTensor, index n: Int, plan: [[Int]], prepared p: inout Prepared,
                        only: Set<Int>? = nil, checkShape: Bool = true) throws -> WorkTensor {
        var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
        for i in plan[n] where !p.done.contains(i) && only?.contains(i) ?? true { try p.passes[i].apply(&t, context: p.context(i)) }
        guard checkShape else { return t }
        let count = t.shape.reduce(1, *)
        guard t.shape == p.shapes[n], t.values.count == count else {
            throw PassError(pass: plan[n].last.map { type(of: p.passes[$0]).id } ?? "pipeline", tensor: t.name,
                            why: "has shape \(t.shape) (\(t.values.count) values) after its passes; the output config expects \(p.shapes[n])")
        }
        return t
    }

    /// Where each calibration-driven pass gets its statistics.
    struct CalibrationPlan {
        /// Per tensor name, what the passes calibrated once over the float input model need: every
        /// `prepareCalibrationNeeds`, and the `calibrationNeeds` of passes after `sequentialEnd`.
        var oneShot: [String: CalibrationNeeds] = [:]
        /// Recipe indices of the passes calibrated layer by layer (`SequentialCalibration`).
        var sequential: Set<Int> = []
        /// Per tensor name, what the sequential passes need.
        var sequentialWanted: [String: CalibrationNeeds] = [:]
        /// Schedule positions 0 ..< sequentialEnd run layer by layer: up to the first pass after a
        /// sequential one that reads the model in `prepare` (which sees their result), or all.
        var sequentialEnd = 0
    }

    /// Which passes are calibrated layer by layer and which once over the float model.
    func calibrationPlan(_ graph: ModelGraph, plan: [[Int]]) -> CalibrationPlan {
        var out = CalibrationPlan()
        let passes = recipe.passes
        let applyTime = passes.indices.filter { !passes[$0].calibrationNeeds.isEmpty }
        if let first = applyTime.map({ rank[$0] }).min() {
            out.sequentialEnd = schedule.indices.first { $0 > first && passes[schedule[$0]].readsWeightsInPrepare } ?? schedule.count
            out.sequential = Set(applyTime.filter { rank[$0] < out.sequentialEnd })
        }
        for (n, t) in graph.tensors.enumerated() {
            for i in plan[n] {
                if !passes[i].prepareCalibrationNeeds.isEmpty {
                    out.oneShot[t.name, default: []].formUnion(passes[i].prepareCalibrationNeeds)
                }
                guard !passes[i].calibrationNeeds.isEmpty else { continue }
                if out.sequential.contains(i) {
                    out.sequentialWanted[t.name, default: []].formUnion(passes[i].calibrationNeeds)
                } else {
                    out.oneShot[t.name, default: []].formUnion(passes[i].calibrationNeeds)
                }
            }
        }
        return out
    }

    /// Compresses `input` into `output`.
    /// - Parameters:
    ///   - calibrationText: text file for passes that need activation statistics or text (`--data`);
    ///     when a recipe has such a pass and none is given, the bundled calibration set is used
    ///     (`CalibrationText.bundled`). Which text was used is recorded in the output's metrics.
    ///   - progress: called with (steps done, step count, current item) for calibration windows, then tensors.
    ///   - checkpointDir: where a training pass (distill) keeps its checkpoints (resuming from one there).
    /// - Parameters:
    ///   - maxMemory: bytes the run may use; a recipe whose `memoryEstimate` is larger is refused
    ///     before any work (`MemoryBudgetError`).
    ///   - onEstimate: told the memory estimate before any work starts.
    public func run(input: String, output: String, calibrationText: String? = nil, checkpointDir: String? = nil,
                    maxMemory: Int? = nil, onEstimate: ((MemoryEstimate) -> Void)? = nil,
                    progress: ((Int, Int, String) -> Void)? = nil) throws -> CompressSummary {
        let start = Date()
        let calibrationText: CalibrationText? = try calibrationText.map { try CalibrationText.load(path: $0) }
            ?? (recipe.firstCalibrationPass != nil ? CalibrationText.bundled : nil)
        let checkpoint = try Checkpoint.open(input)
        let graph = ModelGraph(checkpoint)
        let plan = try self.plan(for: graph)
        let estimate = try memoryEstimate(graph: graph)
        onEstimate?(estimate)
        if let maxMemory, estimate.bytes > maxMemory {
            throw MemoryBudgetError(recipe: recipe.name, estimate: estimate, limit: maxMemory)
        }
        let calibrationPlan = self.calibrationPlan(graph, plan: plan)
        var calibration: CalibrationStats?
        if let calibrationText, !calibrationPlan.oneShot.isEmpty {
            calibration = try Calibration.collect(graph: graph, text: calibrationText, wanted: calibrationPlan.oneShot,
                                                  maxTokens: recipe.calibration.tokens, ctx: recipe.calibration.ctx,
                                                  spread: recipe.calibration.spread) { done, total in
                progress?(done, total, "calibration")
            }
        }

        // The source's SHA-256 reads every input byte. A checkpoint folder's resume fingerprint needs
        // it before the passes; otherwise it is computed on its own thread while the tensors convert,
        // and joined before the header is written.
        let sourceHash = SourceHash(checkpoint, background: checkpointDir == nil)
        var fingerprintHex = ""
        if checkpointDir != nil {
            var fingerprint = SHA256()
            fingerprint.update(Array((sourceHash.value() + "|" + recipe.json.compactString + "|").utf8))
            if let calibrationText { fingerprint.update(Array(calibrationText.text.utf8)) }
            fingerprintHex = fingerprint.hexDigest()
        }
        let extras = Extras(calibration: calibration, text: calibrationText, checkpointDir: checkpointDir,
                            fingerprint: fingerprintHex, progress: progress)
        var metricFields: [String: JSONValue] = [:]
        if !checkpoint.sourceMetadata.isEmpty {
            metricFields["source_metadata"] = .object(checkpoint.sourceMetadata.mapValues { .string($0) })
        }
        if let calibrationText { metricFields["calibration"] = calibrationText.record }
        let metrics: JSONValue? = metricFields.isEmpty ? nil : .object(metricFields)
        func makeWriter(_ config: ModelConfig) throws -> ModelWriter {
            // The digest is set at `finish` (hashing may still be running); a well-formed stand-in until then.
            try ModelWriter(output: output, graph: graph, input: input, sourceSHA256: String(repeating: "0", count: 64), config: config,
                            recipe: recipe.json, metrics: metrics, deflate: recipe.deflate)
        }

        var prepared = Prepared(passes: recipe.passes, contextSlots: Array(repeating: nil, count: recipe.passes.count),
                                config: graph.config, shapes: [])
        let writer: ModelWriter
        if let calibrationText, !calibrationPlan.sequential.isEmpty {
            // Sequential calibration over the first `end` passes of the schedule (all of them, or up to a
            // pass that reads the model in `prepare`, which then sees their result in memory).
            let end = calibrationPlan.sequentialEnd
            try prepare(graph, input: graph, plan: plan, positions: 0 ..< end, extras: extras, into: &prepared)
            let steps = Set(schedule[..<end])
            let sequential = SequentialCalibration(pipeline: self, graph: graph, plan: plan, consumers: calibrationPlan.sequential,
                                                   wanted: calibrationPlan.sequentialWanted, steps: steps, text: calibrationText,
                                                   progress: progress)
            if end == schedule.count {
                writer = try makeWriter(prepared.config)
                try sequential.run(prepared: &prepared) { _, t in try writer.add(t) }
            } else {
                // The model as these passes leave it, held once: the next pass may take values out of it.
                let latent = LatentModel()
                var shapes: [Int: [Int]] = [:]
                try sequential.run(prepared: &prepared) { n, t in
                    shapes[n] = t.shape
                    latent.give(graph.tensors[n].name, t.values)
                }
                var done = graph
                done.config = prepared.config
                done.tensors = graph.tensors.enumerated().map { n, source in
                    let name = source.name
                    return source.with(shape: shapes[n]!) { try latent.values(name) }
                }
                prepared.done = steps
                var later = extras
                later.latent = offersLatentModel ? latent : nil
                try prepare(done, input: graph, plan: plan, positions: end ..< schedule.count, extras: later, into: &prepared)
                writer = try makeWriter(prepared.config)
                for (n, source) in done.tensors.enumerated() {
                    progress?(n, done.tensors.count, source.name)
                    try writer.add(try Self.process(source, index: n, plan: plan, prepared: &prepared))
                }
            }
        } else {
            try prepare(graph, input: graph, plan: plan, positions: schedule.indices, extras: extras, into: &prepared)
            writer = try makeWriter(prepared.config)
            for (n, source) in graph.tensors.enumerated() {
                progress?(n, graph.tensors.count, source.name)
                try writer.add(try Self.process(source, index: n, plan: plan, prepared: &prepared))
            }
        }
        progress?(graph.tensors.count, graph.tensors.count, "")

        let records = prepared.passes.map { $0.record() }
        let bytes = try writer.finish(passes: records, sourceSHA256: sourceHash.value())
        var timings: [JSONValue] = []
        for (i, p) in prepared.passes.enumerated() {
            guard case let .object(o)? = p.timings() else { continue }
            timings.append(.object(o.merging(["pass": .string(type(of: p).id), "index": .number(Double(i))]) { a, _ in a }))
        }
        var warnings = checkpoint.sourceMetadata["tokenizer_warning"].map { ["\(input): \($0)"] } ?? []
        warnings += unselected(plan).map { i in
            "\(recipeFile): passes[\(i)] ('\(type(of: recipe.passes[i]).id)') selects no tensor of this model, so it did nothing (check its kinds / include / exclude)"
        }
        return CompressSummary(output: output, bytes: bytes, parameters: writer.parameters,
                               seconds: Date().timeIntervalSince(start), records: records, timings: timings, warnings: warnings)
    }
}

/// The SHA-256 of a checkpoint's weight files (`Checkpoint.sourceSHA256`), computed on a thread of
/// its own when `background`, else at once; `value()` waits for it.
final class SourceHash: @unchecked Sendable {
    private var hex = ""
    private let done = DispatchSemaphore(value: 0)
    private var joined = false

    init(_ checkpoint: Checkpoint, background: Bool) {
        guard background else {
            hex = checkpoint.sourceSHA256()
            joined = true
            return
        }
        let thread = Thread { [self] in
            hex = checkpoint.sourceSHA256()
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The hex digest (waits for the hashing thread the first time).
    func value() -> String {
        if !joined {
            done.wait()
            joined = true
        }
        return hex
    }

    deinit { _ = value() }  // never leave the thread reading a checkpoint that is going away
}
