import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation

/// One tensor of an input checkpoint, under its canonical name and in canonical layout
/// ([out, in] row-major; Q/K rows in Hugging Face order). Values are produced lazily from the
/// mapped file by `floats()`, so only tensors being worked on occupy memory.
public struct SourceTensor: @unchecked Sendable {
    /// Canonical name (see `TensorName`).
    public let name: String
    /// Name in the source file (for messages).
    public let sourceName: String
    /// The file that holds it.
    public let file: String
    /// Canonical shape.
    public let shape: [Int]
    /// Storage type in the source ("F32", "F16", "BF16", "Q8_0", "q8", ...).
    public let storage: String
    /// Bytes it occupies in the source file.
    public let storedBytes: Int
    private let load: () throws -> [Float]

    public init(name: String, sourceName: String, file: String, shape: [Int], storage: String, storedBytes: Int,
                load: @escaping () throws -> [Float]) {
        self.name = name
        self.sourceName = sourceName
        self.file = file
        self.shape = shape
        self.storage = storage
        self.storedBytes = storedBytes
        self.load = load
    }

    public var count: Int { shape.reduce(1, *) }

    /// The values as float32, row-major in canonical layout.
    /// - Throws: `CheckpointError.nonFinite` naming the tensor if any value is NaN or infinite,
    ///   or the reader's error if the bytes are bad.
    public func floats() throws -> [Float] {
        let v = try load()
        var first = 0
        let bad = v.withUnsafeBufferPointer { edge_count_nonfinite($0.baseAddress, $0.count, &first) }
        if bad > 0 {
            throw CheckpointError.nonFinite(file: file, tensor: sourceName == name ? name : "\(sourceName)", index: first, value: v[first])
        }
        return v
    }

    /// A copy with a different loader (e.g. a transpose or split applied on top).
    public func with(name: String? = nil, shape: [Int]? = nil, load: @escaping () throws -> [Float]) -> SourceTensor {
        SourceTensor(name: name ?? self.name, sourceName: sourceName, file: file, shape: shape ?? self.shape,
                     storage: storage, storedBytes: storedBytes, load: load)
    }
}

/// An input model: its config, tokenizer and tensors, from any supported file.
public struct Checkpoint: @unchecked Sendable {
    public enum Format: String, Codable, Sendable {
        case safetensors, gguf, edge
    }

    /// The path the user gave.
    public let path: String
    public let format: Format
    public let config: ModelConfig
    /// A Hugging Face `tokenizer.json` document (GGUF vocabularies are converted to one), if the input has a tokenizer.
    public let tokenizerJSON: Data?
    /// Every tensor of `config.expectedTensors()`, in that order.
    public let tensors: [SourceTensor]
    /// The weight files (mapped), in the order they are hashed for provenance.
    public let files: [MappedFile]
    /// Extra provenance the source carries (e.g. the recipe of an `.edge` input), free-form.
    public let sourceMetadata: [String: String]

    public init(path: String, format: Format, config: ModelConfig, tokenizerJSON: Data?, tensors: [SourceTensor],
                files: [MappedFile], sourceMetadata: [String: String] = [:]) {
        self.path = path
        self.format = format
        self.config = config
        self.tokenizerJSON = tokenizerJSON
        self.tensors = tensors
        self.files = files
        self.sourceMetadata = sourceMetadata
    }

    /// SHA-256 (hex) over the bytes of every weight file, in `files` order.
    public func sourceSHA256() -> String {
        var h = SHA256()
        for f in files {
            // Hash in 64 MiB chunks and release pages behind us, so hashing a huge file does not pin it in RAM.
            let chunk = 64 << 20
            var off = 0
            while off < f.size {
                let n = min(chunk, f.size - off)
                h.update(UnsafeRawBufferPointer(rebasing: f.bytes[off ..< off + n]))
                f.release(off, n)
                off += n
            }
        }
        return h.hexDigest()
    }

    public func tensor(named name: String) -> SourceTensor? { tensors.first { $0.name == name } }

    /// Checks that `tensors` is exactly `config.expectedTensors()` (names and shapes), in order.
    /// Importers call this last; it produces the missing/unexpected/shape-mismatch errors.
    public static func checkTensors(_ tensors: [SourceTensor], against config: ModelConfig, file: String) throws -> [SourceTensor] {
        var byName: [String: SourceTensor] = [:]
        for t in tensors {
            if byName[t.name] != nil { throw CheckpointError.duplicateTensor(file: t.file, tensor: t.sourceName) }
            byName[t.name] = t
        }
        var ordered: [SourceTensor] = []
        for (name, shape) in config.expectedTensors() {
            guard let t = byName.removeValue(forKey: name) else { throw CheckpointError.missingTensor(file: file, tensor: name) }
            guard t.shape == shape else {
                throw CheckpointError.shapeMismatch(file: t.file, tensor: t.sourceName, expected: shape, got: t.shape)
            }
            ordered.append(t)
        }
        if let extra = byName.values.sorted(by: { $0.name < $1.name }).first {
            throw CheckpointError.unexpectedTensor(file: extra.file, tensor: extra.sourceName)
        }
        return ordered
    }
}

extension Checkpoint {
    /// The tokenizer document a conversion carries, checked as the runtime will load it: every
    /// value `edge-run` would refuse (a merge naming no token, a BOS id that is not a token, ids
    /// beyond the model's `vocab_size`) is refused here, naming `file`, so no conversion writes a
    /// model the runtime cannot open. A tokenizer of a kind the runtime does not implement (not
    /// byte-level BPE or WordPiece) is left out with a warning, as for GGUF vocabularies; for an
    /// encoder, whose sentence embeddings need it, it is refused.
    /// - Returns: the document (nil when absent or left out) and the warning, if any.
    /// - Throws: `CheckpointError.badHeader` naming `file` and the field.
    public static func runtimeTokenizer(_ json: Data?, config: ModelConfig, file: String) throws -> (json: Data?, warning: String?) {
        guard let json else { return (nil, nil) }
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(json: [UInt8](json))
        } catch let TokenizerError.unsupported(field, value) where !config.isEncoder {
            return (nil, "\(field) \(Excerpt.quoted(value)) is not supported by the runtime (only byte-level BPE and WordPiece are); the output has no tokenizer")
        } catch let e as TokenizerError {
            throw CheckpointError.badHeader(file: file, why: String(describing: e).replacingOccurrences(of: "tokenizer.json: ", with: ""))
        }
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw CheckpointError.badHeader(file: file, why: "the tokenizer has token ids up to \(tokenizer.vocabularySize - 1); the model's vocab_size is \(config.vocabSize)")
        }
        return (json, nil)
    }
}
