import Checkpoint
import EdgeFormat
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

    /// Prepares the passes in recipe order. Pass i gathers its statistics over the model as passes
    /// 0..<i leave it (read lazily, see `view`) and sees the config their transforms produced.
    func prepare(_ graph: ModelGraph, plan: [[Int]], calibration: CalibrationStats? = nil) throws -> Prepared {
        var passes = recipe.passes
        var contexts: [PassContext] = []
        var config = graph.config
        var view = graph
        for i in passes.indices {
            let context = PassContext(config: config, index: i, recipeFile: recipeFile, calibration: calibration)
            try passes[i].prepare(graph: view, context: context)
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

    /// `graph` as `passes` (already prepared) leave it, still lazy: a tensor's values are produced
    /// on demand by running copies of the passes that select it (copies, so the records of the real
    /// passes count each tensor once); shapes come from `config`.
    static func view(_ graph: ModelGraph, through passes: [any Pass], contexts: [PassContext], plan: [[Int]],
                     config: ModelConfig) -> ModelGraph {
        var expected: [String: [Int]] = [:]
        for (name, shape) in config.expectedTensors() { expected[name] = shape }
        var out = graph
        out.config = config
        out.tensors = graph.tensors.enumerated().map { n, source in
            let steps = plan[n].filter { $0 < passes.count }
            guard !steps.isEmpty else { return source }
            return source.with(shape: expected[source.name] ?? source.shape) {
                var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
                var copies = passes
                for j in steps { try copies[j].apply(&t, context: contexts[j]) }
                return t.values
            }
        }
        return out
    }

    /// Runs tensor `n` of `graph` through its passes and checks it has the shape the output config expects.
    static func process(_ source: SourceTensor, index n: Int, plan: [[Int]], prepared p: inout Prepared) throws -> WorkTensor {
        var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
        for i in plan[n] { try p.passes[i].apply(&t, context: p.contexts[i]) }
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
    public func run(input: String, output: String, calibrationText: String? = nil,
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

        var prepared = try prepare(graph, plan: plan, calibration: calibration)

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
