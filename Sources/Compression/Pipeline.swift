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
    public var records: [JSONValue]
    public var bitsPerWeight: Double { parameters > 0 ? Double(bytes) * 8 / Double(parameters) : 0 }
}

/// Runs a recipe over a checkpoint and writes an `.edge` file. Tensors stream through the passes
/// one at a time (a pass may first read the whole model lazily for statistics), so memory stays
/// at a small multiple of the largest tensor. The output appears atomically, only on success.
public struct Pipeline {
    public let recipe: Recipe
    public let recipeFile: String

    public init(recipe: Recipe, recipeFile: String) {
        self.recipe = recipe
        self.recipeFile = recipeFile
    }

    /// Which passes select each tensor, checked before any work: a 1-D tensor chosen for
    /// quantization, or a tensor quantized twice, is refused with the recipe field and tensor named.
    public func plan(for graph: ModelGraph) throws -> [[Int]] {
        var plan: [[Int]] = []
        for t in graph.tensors {
            var chosen: [Int] = []
            var quantizedBy: Int?
            for (i, p) in recipe.passes.enumerated() where p.selector.selects(t.name, numLayers: graph.config.numLayers) {
                if p is Quantize {
                    if t.shape.count != 2 {
                        throw RecipeError(file: recipeFile, field: "passes[\(i)]",
                                          why: "selects '\(t.name)', which is \(t.shape.count)-D; quantization needs a matrix (narrow 'kinds' or add it to 'exclude')")
                    }
                    if let q = quantizedBy {
                        throw RecipeError(file: recipeFile, field: "passes[\(i)]",
                                          why: "quantizes '\(t.name)' a second time (passes[\(q)] already quantizes it)")
                    }
                    quantizedBy = i
                }
                chosen.append(i)
            }
            plan.append(chosen)
        }
        return plan
    }

    /// Passes prepared over a graph, ready to stream its tensors.
    struct Prepared {
        var passes: [any Pass]
        /// The context each pass saw in `prepare` and sees in `apply`.
        var contexts: [PassContext]
        /// The output config: the input's after every pass's `transform(config:)`.
        var config: ModelConfig
        /// The shape each tensor (graph order) must have after its passes.
        var shapes: [[Int]]
    }

    /// What passes need beyond the model: calibration statistics and text, checkpoints, progress.
    struct Extras {
        var calibration: CalibrationStats?
        var text: String?
        var checkpointDir: String?
        var fingerprint = ""
        var progress: ((Int, Int, String) -> Void)?
    }

    /// Prepares the passes in recipe order. Pass i gathers its statistics over the model as passes
    /// 0..<i leave it (read lazily, see `view`) and sees the config their transforms produced.
    /// A distill pass trains here (see `distill`).
    func prepare(_ graph: ModelGraph, plan: [[Int]], extras: Extras = Extras()) throws -> Prepared {
        var passes = recipe.passes
        var contexts: [PassContext] = []
        var config = graph.config
        var view = graph
        for i in passes.indices {
            var context = PassContext(config: config, index: i, recipeFile: recipeFile, calibration: extras.calibration)
            context.checkpointDir = extras.checkpointDir
            context.fingerprint = extras.fingerprint
            context.progress = extras.progress
            if var d = passes[i] as? Distill {
                guard let text = extras.text else {
                    throw RecipeError(file: recipeFile, field: "passes[\(i)]", why: "'distill' needs calibration text: run with --data FILE")
                }
                try Self.distill(&d, graph: graph, through: Array(passes[..<i]), contexts: contexts, plan: plan, config: config,
                                 text: text, context: context)
                passes[i] = d
            } else {
                try passes[i].prepare(graph: view, context: context)
            }
            try passes[i].transform(config: &config)
            contexts.append(context)
            if i + 1 < passes.count {
                view = Self.view(graph, through: Array(passes[...i]), contexts: contexts, plan: plan, config: config)
            }
        }
        var expected: [String: [Int]] = [:]
        for (name, shape) in config.expectedTensors() { expected[name] = shape }
        let shapes = graph.tensors.map { expected[$0.name] ?? $0.shape }
        return Prepared(passes: passes, contexts: contexts, config: config, shapes: shapes)
    }

    /// Trains a distill pass. The student starts from the model as the pruning passes before it
    /// leave it (latent float values, their zeros as fixed masks); the quantize-stage passes
    /// before it become fake quantizers (copies of the passes, run on the latent values every
    /// step); the teacher is the input model in float.
    static func distill(_ d: inout Distill, graph: ModelGraph, through passes: [any Pass], contexts: [PassContext], plan: [[Int]],
                        config: ModelConfig, text: String, context: PassContext) throws {
        let latent = view(graph, through: passes, contexts: contexts, plan: plan, config: config, stages: [.prune])
        var pruned = Set<String>()
        var quantizers: [String: ([Float]) throws -> [Float]] = [:]
        for (n, t) in latent.tensors.enumerated() {
            let steps = plan[n].filter { $0 < passes.count }
            if steps.contains(where: { type(of: passes[$0]).stage == .prune }) { pruned.insert(t.name) }
            let q = steps.filter { type(of: passes[$0]).stage == .quantize }
            guard !q.isEmpty else { continue }
            let name = t.name, shape = t.shape
            quantizers[name] = { values in
                var w = WorkTensor(name: name, shape: shape, values: values)
                var copies = passes
                for j in q { try copies[j].apply(&w, context: contexts[j]) }
                return w.values
            }
        }
        let teacher = try EdgeModel.floatModel(graph: graph)
        try d.train(student: latent, pruned: pruned, quantizers: quantizers, teacher: teacher, textFile: text, context: context)
    }

    /// `graph` as `passes` (already prepared) leave it, still lazy: a tensor's values are produced
    /// on demand by running copies of the passes that select it (copies, so the records of the real
    /// passes count each tensor once); shapes come from `config`. `stages` limits the passes run.
    static func view(_ graph: ModelGraph, through passes: [any Pass], contexts: [PassContext], plan: [[Int]],
                     config: ModelConfig, stages: Set<PassStage>? = nil) -> ModelGraph {
        var expected: [String: [Int]] = [:]
        for (name, shape) in config.expectedTensors() { expected[name] = shape }
        var out = graph
        out.config = config
        out.tensors = graph.tensors.enumerated().map { n, source in
            let steps = plan[n].filter { i in i < passes.count && (stages?.contains(type(of: passes[i]).stage) ?? true) }
            guard !steps.isEmpty else { return source }
            return source.with(shape: expected[source.name] ?? source.shape) {
                var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
                var copies = passes
                try Self.run(&t, steps: steps, passes: &copies, contexts: contexts)
                return t.values
            }
        }
        return out
    }

    /// Runs `steps` (pass indices, in order) on a tensor. A tensor a distill pass trained takes its
    /// trained values after the pruning passes and before the first other pass (so the quantize
    /// passes encode the trained values).
    static func run(_ t: inout WorkTensor, steps: [Int], passes: inout [any Pass], contexts: [PassContext]) throws {
        var substituted = false
        for i in steps {
            if !substituted, type(of: passes[i]).stage != .prune {
                substituted = true
                let distill = steps.first { passes[$0] is Distill }.map { passes[$0] as! Distill }
                if let v = distill?.trainedValues(t.name) {
                    guard v.count == t.values.count else {
                        throw PassError(pass: Distill.id, tensor: t.name, why: "trained \(v.count) values; the tensor has \(t.values.count)")
                    }
                    t.values = v
                }
            }
            try passes[i].apply(&t, context: contexts[i])
        }
    }

    /// Runs tensor `n` of `graph` through its passes and checks it has the shape the output config expects.
    static func process(_ source: SourceTensor, index n: Int, plan: [[Int]], prepared p: inout Prepared) throws -> WorkTensor {
        var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
        try run(&t, steps: plan[n], passes: &p.passes, contexts: p.contexts)
        let count = t.shape.reduce(1, *)
        guard t.shape == p.shapes[n], t.values.count == count else {
            throw PassError(pass: plan[n].last.map { type(of: p.passes[$0]).id } ?? "pipeline", tensor: t.name,
                            why: "has shape \(t.shape) (\(t.values.count) values) after its passes; the output config expects \(p.shapes[n])")
        }
        return t
    }

    /// What each selected tensor's passes need from calibration, by tensor name.
    func calibrationWanted(_ graph: ModelGraph, plan: [[Int]]) -> [String: CalibrationNeeds] {
        var wanted: [String: CalibrationNeeds] = [:]
        for (n, t) in graph.tensors.enumerated() {
            for i in plan[n] where !recipe.passes[i].calibrationNeeds.isEmpty {
                wanted[t.name, default: []].formUnion(recipe.passes[i].calibrationNeeds)
            }
        }
        return wanted
    }

    /// Compresses `input` into `output`.
    /// - Parameters:
    ///   - calibrationText: text file for passes that need activation statistics (`--data`);
    ///     a recipe with such a pass and no text is refused before any work.
    ///   - progress: called with (steps done, step count, current item) for calibration windows, then tensors.
    ///   - checkpointDir: where a distill pass keeps its checkpoints (resuming from one there).
    public func run(input: String, output: String, calibrationText: String? = nil, checkpointDir: String? = nil,
                    progress: ((Int, Int, String) -> Void)? = nil) throws -> CompressSummary {
        let start = Date()
        if calibrationText == nil, let (i, id) = recipe.firstCalibrationPass {
            throw RecipeError(file: recipeFile, field: "passes[\(i)]",
                              why: "'\(id)' needs calibration text: run with --data FILE (a few tens of KB of text like the model's use)")
        }
        let checkpoint = try Checkpoint.open(input)
        let graph = ModelGraph(checkpoint)
        let plan = try self.plan(for: graph)
        var calibration: CalibrationStats?
        let wanted = calibrationWanted(graph, plan: plan)
        if let calibrationText, !wanted.isEmpty {
            calibration = try Calibration.collect(graph: graph, textFile: calibrationText, wanted: wanted,
                                                  maxTokens: recipe.calibration.tokens, ctx: recipe.calibration.ctx) { done, total in
                progress?(done, total, "calibration")
            }
        }

        var protected = checkpoint.files.map(\.path)
        protected.append(input)
        let sourceSHA = checkpoint.sourceSHA256()

        var fingerprint = SHA256()
        fingerprint.update(Data((sourceSHA + "|" + recipe.json.compactString + "|").utf8))
        if let calibrationText, let d = FileManager.default.contents(atPath: calibrationText) { fingerprint.update(d) }
        var prepared = try prepare(graph, plan: plan, extras: Extras(
            calibration: calibration, text: calibrationText, checkpointDir: checkpointDir,
            fingerprint: fingerprint.hexDigest(), progress: progress))

        var provenance = Provenance(sourceSHA256: sourceSHA, sourceFormat: checkpoint.format.rawValue,
                                    sourcePath: URL(fileURLWithPath: input).lastPathComponent, recipe: recipe.json,
                                    toolchain: toolchainVersion)
        if !checkpoint.sourceMetadata.isEmpty {
            provenance.metrics = .object(["source_metadata": .object(checkpoint.sourceMetadata.mapValues { .string($0) })])
        }
        let writer = try EdgeWriter(path: output, protecting: protected, config: prepared.config, provenance: provenance,
                                    deflate: recipe.deflate)
        var parameters = 0
        for (n, source) in graph.tensors.enumerated() {
            progress?(n, graph.tensors.count, source.name)
            let t = try Self.process(source, index: n, plan: plan, prepared: &prepared)
            let nnz = t.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            parameters += t.values.count
            try writer.add(t.encoded ?? .f32(name: t.name, shape: t.shape, values: t.values), nnz: nnz)
        }
        progress?(graph.tensors.count, graph.tensors.count, "")
        if let tok = graph.tokenizerJSON { try writer.addBlob(name: "tokenizer.json", bytes: tok) }

        let records = prepared.passes.map { $0.record() }
        writer.provenance.passes = records
        try writer.finish()
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return CompressSummary(output: output, bytes: bytes, parameters: parameters,
                               seconds: Date().timeIntervalSince(start), records: records)
    }
}

extension JSONValue {
    /// Pretty-printed JSON text with sorted keys (for command output).
    public func prettyText() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let d = try? e.encode(self) else { return compactString }
        return String(decoding: d, as: UTF8.self)
    }
}
