import Checkpoint
import EdgeFormat
import EdgeRuntime
import Foundation

/// A fixture model (`Fixtures/<name>`, any input `Checkpoint.open` reads) read through the real
/// importer and held as float32 tensors by canonical name, for tests that build a runtime or a
/// training model over it without the compressor.
public struct FixtureModel {
    /// The fixture's name under `Fixtures/`.
    public let name: String
    /// The model configuration the importer read.
    public let config: ModelConfig
    /// Canonical name -> (shape, values), every tensor decoded to float32.
    public let tensors: [String: (shape: [Int], values: [Float])]
    /// The tokenizer.json bytes the input carries.
    public let tokenizerJSON: [UInt8]

    /// Reads `Fixtures/<name>`.
    /// - Throws: the importer's `CheckpointError` naming the file and the problem;
    ///   `FixtureModelError.noTokenizer` when the input carries no tokenizer.
    public init(_ name: String) throws {
        let ckpt = try Checkpoint.open(fixturePath(name))
        guard let tokenizerJSON = ckpt.tokenizerJSON else { throw FixtureModelError.noTokenizer(fixture: name) }
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for t in ckpt.tensors { tensors[t.name] = (t.shape, try t.floats()) }
        self.name = name
        config = ckpt.config
        self.tensors = tensors
        self.tokenizerJSON = [UInt8](tokenizerJSON)
    }

    /// The tensors as in-memory float sources for `EdgeModel`.
    public var floatSources: [String: WeightSource] {
        tensors.mapValues { .floats($0.values, shape: $0.shape) }
    }

    /// Writes the model as an f32 `.edge` file (tokenizer blob included) into `dir` and returns its path.
    public func writeEdge(to dir: URL, name: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        let prov = Provenance(sourceSHA256: String(repeating: "0", count: 64), sourceFormat: "safetensors")
        let w = try EdgeWriter(path: path, config: config, provenance: prov)
        for (n, shape) in config.expectedTensors() {
            guard let t = tensors[n] else { throw FixtureModelError.missingTensor(fixture: self.name, tensor: n) }
            try w.add(.f32(name: n, shape: shape, values: t.values))
        }
        try w.addBlob(name: "tokenizer.json", bytes: tokenizerJSON)
        try w.finish()
        return path
    }
}

/// What a fixture model lacks for what a test asked of it.
public enum FixtureModelError: Error, CustomStringConvertible {
    case noTokenizer(fixture: String)
    case missingTensor(fixture: String, tensor: String)

    public var description: String {
        switch self {
        case let .noTokenizer(fixture): return "Fixtures/\(fixture) carries no tokenizer.json"
        case let .missingTensor(fixture, tensor): return "Fixtures/\(fixture) has no tensor '\(tensor)'"
        }
    }
}
