import Checkpoint
import EdgeFormat
import Foundation

/// Version string recorded in every output's provenance.
public let toolchainVersion = Provenance.currentToolchain

/// What a compression run produced.
public struct CompressSummary {
    public var output: String
    public var bytes: Int
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

    /// Compresses `input` into `output`.
    /// - Parameter progress: called with (tensors done, tensor count, current tensor name).
    public func run(input: String, output: String, progress: ((Int, Int, String) -> Void)? = nil) throws -> CompressSummary {
        let start = Date()
        let checkpoint = try Checkpoint.open(input)
        let graph = ModelGraph(checkpoint)
        let plan = try self.plan(for: graph)
        var passes = recipe.passes
        let contexts = passes.indices.map { PassContext(config: graph.config, index: $0, recipeFile: recipeFile) }

        var protected = checkpoint.files.map(\.path)
        protected.append(input)
        let sourceSHA = checkpoint.sourceSHA256()

        for i in passes.indices { try passes[i].prepare(graph: graph, context: contexts[i]) }

        var provenance = Provenance(sourceSHA256: sourceSHA, sourceFormat: checkpoint.format.rawValue,
                                    sourcePath: URL(fileURLWithPath: input).lastPathComponent, recipe: recipe.json,
                                    toolchain: toolchainVersion)
        if !checkpoint.sourceMetadata.isEmpty {
            provenance.metrics = .object(["source_metadata": .object(checkpoint.sourceMetadata.mapValues { .string($0) })])
        }
        let writer = try EdgeWriter(path: output, protecting: protected, config: graph.config, provenance: provenance,
                                    deflate: recipe.deflate)
        for (n, source) in graph.tensors.enumerated() {
            progress?(n, graph.tensors.count, source.name)
            var t = WorkTensor(name: source.name, shape: source.shape, values: try source.floats())
            for i in plan[n] { try passes[i].apply(&t, context: contexts[i]) }
            let nnz = t.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            try writer.add(t.encoded ?? .f32(name: t.name, shape: t.shape, values: t.values), nnz: nnz)
        }
        progress?(graph.tensors.count, graph.tensors.count, "")
        if let tok = graph.tokenizerJSON { try writer.addBlob(name: "tokenizer.json", bytes: tok) }

        let records = passes.map { $0.record() }
        writer.provenance.passes = records
        try writer.finish()
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return CompressSummary(output: output, bytes: bytes, parameters: graph.parameterCount,
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
