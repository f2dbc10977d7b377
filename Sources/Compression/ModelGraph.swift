import Checkpoint
import EdgeFormat
import EdgeKernels
import Foundation

/// The model as the pipeline sees it: config, tokenizer and named tensors, read lazily from the
/// mapped input (nothing is loaded until a pass or the writer asks for a tensor's values).
public struct ModelGraph {
    public var config: ModelConfig
    public var tokenizerJSON: Data?
    public var tensors: [SourceTensor]
    /// The checkpoint it came from (provenance).
    public let source: Checkpoint

    public init(_ checkpoint: Checkpoint) {
        config = checkpoint.config
        tokenizerJSON = checkpoint.tokenizerJSON
        tensors = checkpoint.tensors
        source = checkpoint
    }

    /// Number of weights in the model.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }
}

/// The one way the compressor writes an `.edge` file (`compress`, `compress train`): the output's
/// provenance names the graph's source, the source's files are protected from being overwritten,
/// tensors are added in the order given, the tokenizer goes last, and the file appears atomically
/// on `finish` only.
public final class ModelWriter {
    private let writer: EdgeWriter
    private let tokenizerJSON: Data?
    /// Weights added so far.
    public private(set) var parameters = 0
    /// Where the file appears.
    public let output: String

    /// Opens `output` for a model made from `graph`.
    /// - Parameters:
    ///   - input: the path the user named (recorded by its last component, and protected).
    ///   - sourceSHA256: `graph.source.sourceSHA256()`, when the caller already has it (hashing reads every byte).
    ///   - config: the output's config (after the passes' transforms).
    ///   - recipe: what made it, recorded as the provenance's recipe.
    ///   - metrics: the provenance's metrics (default: none).
    /// - Throws: `EdgeFormatError` when the output cannot be created or would overwrite an input.
    public init(output: String, graph: ModelGraph, input: String, sourceSHA256: String? = nil, config: ModelConfig,
                recipe: JSONValue, metrics: JSONValue? = nil, deflate: Bool) throws {
        let checkpoint = graph.source
        var provenance = Provenance(sourceSHA256: sourceSHA256 ?? checkpoint.sourceSHA256(), sourceFormat: checkpoint.format.rawValue,
                                    sourcePath: URL(fileURLWithPath: input).lastPathComponent, recipe: recipe,
                                    toolchain: toolchainVersion)
        if let metrics { provenance.metrics = metrics }
        var protected = checkpoint.files.map(\.path)
        protected.append(input)
        writer = try EdgeWriter(path: output, protecting: protected, config: config, provenance: provenance, deflate: deflate)
        tokenizerJSON = graph.tokenizerJSON
        self.output = output
    }

    /// Adds a tensor as its passes left it: its encoding, or f32 values when none set one.
    public func add(_ t: WorkTensor) throws {
        let nnz = t.values.withUnsafeBufferPointer { b in b.baseAddress.map { edge_count_nonzero($0, b.count) } ?? 0 }
        parameters += t.values.count
        try writer.add(t.encoded ?? .f32(name: t.name, shape: t.shape, values: t.values), nnz: nnz)
    }

    /// Records what each pass did, adds the tokenizer and renames the file into place.
    /// - Returns: the size of the file in bytes.
    @discardableResult
    /// - Parameter sourceSHA256: the source's digest, when it was not known at `init`.
    public func finish(passes records: [JSONValue], sourceSHA256: String? = nil) throws -> Int {
        if let tok = tokenizerJSON { try writer.addBlob(name: "tokenizer.json", bytes: [UInt8](tok)) }
        writer.provenance.passes = records
        if let sourceSHA256 { writer.provenance.sourceSHA256 = sourceSHA256 }
        try writer.finish()
        return (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
    }
}
