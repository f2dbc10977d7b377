import EdgeFormat
import EdgeKernels

/// What the runtime refuses or cannot do. `description` is the one line the CLI prints.
public enum RuntimeError: Error, Equatable, CustomStringConvertible {
    /// The model lacks a tensor its config requires.
    case missingTensor(source: String, tensor: String)
    /// A tensor's shape differs from the one its config implies.
    case badShape(source: String, tensor: String, expected: [Int], actual: [Int])
    /// A tensor's bytes, shape or params are unusable (`why` says which).
    case badTensor(source: String, tensor: String, why: String)
    /// A tensor uses an encoding this runtime cannot compute with.
    case unsupportedEncoding(source: String, tensor: String, encoding: String)
    /// The model's config breaks a rule (`why` names the field).
    case badConfig(source: String, why: String)
    /// A token id is outside the vocabulary.
    case tokenOutOfRange(token: Int32, vocabSize: Int)
    /// The model is of the wrong kind for the operation: an encoder asked for logits, or a decoder
    /// asked for sentence embeddings (`why` says which and what to use instead).
    case wrongModelKind(source: String, why: String)
    /// The tokens do not fit: the cache holds `capacity` positions and `needed` were asked for.
    case contextFull(needed: Int, capacity: Int)
    /// A context length outside 1...max_positions (or too small for the task) was asked for.
    case badContext(requested: Int, limit: Int, why: String)
    /// The text is too short for the evaluation asked for.
    case textTooShort(tokens: Int, needed: Int, why: String)
    /// The model carries no tokenizer (needed to turn text into tokens).
    case noTokenizer(source: String)

    public var description: String {
        func at(_ s: String) -> String { s.isEmpty ? "" : "\(s): " }
        switch self {
        case let .missingTensor(s, t): return "\(at(s))tensor '\(t)' is missing; the model config requires it"
        case let .badShape(s, t, e, a): return "\(at(s))tensor '\(t)' has shape \(a); the config implies \(e)"
        case let .badTensor(s, t, why): return "\(at(s))tensor '\(t)' \(why)"
        case let .unsupportedEncoding(s, t, e): return "\(at(s))tensor '\(t)' uses encoding '\(e)', which this runtime cannot compute with"
        case let .badConfig(s, why): return "\(at(s))bad model config: \(why)"
        case let .wrongModelKind(s, why): return "\(at(s))\(why)"
        case let .tokenOutOfRange(tok, n): return "token id \(tok) is outside the vocabulary 0..<\(n)"
        case let .contextFull(n, c): return "context full: \(n) positions needed, the cache holds \(c)"
        case let .badContext(r, l, why): return "context length \(r) is not usable (limit \(l)): \(why)"
        case let .textTooShort(t, n, why): return "the text has \(t) tokens; \(n) are needed \(why)"
        case let .noTokenizer(s): return "\(at(s))the model has no tokenizer (blob 'tokenizer.json')"
        }
    }
}

/// One transformer block's weights (`BlockWeights` bound by the runtime). Norm weights and biases
/// are float32 (small); matrices stay encoded.
typealias Block = BlockWeights<Linear, [Float]>

/// Sees a linear weight's input: (weight name, X [tokens, cols] row-major, tokens, cols).
public typealias ActivationObserver = (_ weight: String, _ input: UnsafePointer<Float>, _ tokens: Int, _ cols: Int) -> Void

/// A model ready to run: config, weights served from their encoded bytes, optional tokenizer.
///
/// Built from an `.edge` file (`init(file:)`) or from named tensors in memory (`init(config:tensors:)`),
/// so the compressor evaluates a float checkpoint and a compressed file with the same forward pass.
/// Instances are immutable after init apart from `threads` and `activations`; run one forward at a
/// time per `KVCache`.
public final class EdgeModel: @unchecked Sendable {
    /// Threads a matmul uses by default: the active processor count (`activeProcessorCount()`).
    public static let defaultThreads = activeProcessorCount()

    /// The architecture and sizes.
    public let config: ModelConfig
    /// The tokenizer, when the model carries one.
    public let tokenizer: Tokenizer?
    /// Whether a BOS token starts each sequence (the tokenizer's post-processor adds one, as
    /// llama.cpp's `add_bos`); false when there is no tokenizer.
    public let addsBOS: Bool
    /// Where the weights come from (file path or a label), for messages.
    public let source: String
    /// How the file's bytes are held when the model came from a file (`.map` or `.copy`); nil otherwise.
    public private(set) var residency: Residency?
    /// The sparse matrices replaced at load by dense q8 copies (`SparseWeights`), in load order.
    public private(set) var denseCopies: [String] = []
    /// Threads for matrix products and attention (at least 1).
    public var threads: Int {
        didSet { threads = max(1, threads) }
    }

    /// What the activations of symmetric dense q8 weights are quantized to (`ActivationPrecision`;
    /// `.i16` by default). It changes results, so callers that report numbers report it too.
    public var activations: ActivationPrecision = .default

    /// Tokens per piece of a longer `forward` call (llama.cpp's micro-batch, `-ub`): a prompt or
    /// perplexity window of more tokens runs in consecutive pieces of this many through work
    /// buffers sized for one piece, so its memory does not grow with its length. A multiple of 64
    /// (the attention tile) gives the same bits as one call (`EdgeModel.microBatchPieces`);
    /// `Int.max` runs every call whole (calibration does, as its statistics are gathered per call).
    public var microBatch: Int = EdgeModel.defaultMicroBatch {
        didSet { microBatch = max(1, microBatch) }
    }

    /// What the caches `makeCache` makes hold keys and values as (`.f32` by default; `.f16` halves
    /// their memory and changes results in the last digits, so callers that report numbers report it).
    public var kvCache: KVCachePrecision = .f32

    /// `microBatch`'s default: 512 tokens, as llama.cpp's. Smaller pieces save memory (about 8 MB
    /// for SmolLM2 at 256) but cost prompt speed where a product decodes its weights once per call:
    /// q4k prompts ran about 12% slower at 256 on an AVX2 Zen 3 (docs/performance.md, "Perplexity without all the logits; prompts in pieces").
    public static let defaultMicroBatch = 512

    /// Called before every linear product of `forward` with the weight's canonical name and its
    /// input rows X [tokens, cols] (Q, K and V, and gate and up, share one input: it is reported
    /// for the first of them). The compressor gathers calibration statistics through it; nil by default.
    public var activationObserver: ActivationObserver?

    let tokenEmbedding: Linear       // (vocab, h)
    let positionEmbedding: Linear?   // (maxPositions, h) gpt2
    let blocks: [Block]
    let tokenTypeEmbedding: Linear?  // (type_vocab, h) bert
    let embedNorm: [Float]?          // (h) bert
    let embedNormBias: [Float]?      // (h) bert
    let outputNorm: [Float]?         // (h); nil for an encoder
    let outputNormBias: [Float]?     // (h) gpt2
    let output: Linear?              // (vocab, h): output.weight, or token_embd.weight when tied; nil for an encoder

    /// Opens the model in an `.edge` file. Weights are served from the file's bytes in memory (mapped or copied); the
    /// tokenizer is read from the blob "tokenizer.json" when present.
    /// - Throws: `EdgeFormatError` from the file, `RuntimeError` for missing or mis-shaped tensors,
    ///   `TokenizerError` for an unreadable tokenizer.
    /// - Parameter sparse: what to do with sparse matrices of symmetric q8 values (`SparseWeights`;
    ///   `.keep` by default); where dense copies are made and the file is mapped, the pages of the
    ///   payloads they replace are let go (`MappedFile.release`).
    public convenience init(file: EdgeFile, threads: Int = EdgeModel.defaultThreads, sparse: SparseWeights = .keep) throws {
        var tensors: [String: WeightSource] = [:]
        for entry in file.tensors { tensors[entry.name] = try .file(file, entry) }
        let tokenizer = try file.blob(named: "tokenizer.json").map { try Tokenizer(json: $0) }
        // The parse's freed objects go back to the system: 9.7 MB less peak RSS when decoding a file
        // whose sparse matrices are copied dense (docs/performance.md).
        edge_heap_trim()
        let start = file.mappedFile.bytes.baseAddress!
        // Each replaced payload's pages go as soon as its copy is made, so that the peak holds the
        // copies and one payload, not every payload too.
        func release(_ name: String) {
            guard case let .mapped(bytes, _, _)? = tensors[name], let p = bytes.baseAddress,
                  p >= start, p + bytes.count <= start + file.fileSize else { return }  // deflated payloads are copies
            file.mappedFile.release(p - start, bytes.count)
        }
        try self.init(config: file.config, tensors: tensors, tokenizer: tokenizer, source: file.path, threads: threads,
                      sparse: sparse, copied: release)
        residency = file.residency
        // Then every page that load read and nothing reads again: the replaced payloads once more
        // (a fault on a mapped file maps the cached pages around it too, so reading the vectors
        // after them brought some back), the vectors (copied into arrays) and the tokenizer's blob
        // (parsed). A no-op unless the file is mapped.
        let replaced = Set(denseCopies)
        for entry in file.tensors where entry.shape.count == 1 || replaced.contains(entry.name) { release(entry.name) }
        for blob in file.blobs where blob.compression == .none { file.mappedFile.release(blob.offset, blob.length) }
    }

    /// Opens and validates the `.edge` file at `path` (checksums included) and builds the model.
    /// - Parameter residency: how the file's bytes are held; `auto` (the default) copies them into
    ///   huge pages where the kernel offers them, which makes decoding faster (`Residency.copy`).
    /// - Throws: as `EdgeFile(path:)` and `init(file:)`.
    /// - Parameter sparse: as in `init(file:threads:sparse:)`. When it makes dense copies of some of
    ///   the file's matrices, `.auto` residency maps the file (a private copy would keep the replaced
    ///   payloads in memory as well).
    public convenience init(path: String, threads: Int = EdgeModel.defaultThreads, residency: Residency = .auto,
                            sparse: SparseWeights = .keep) throws {
        if residency == .auto, sparse.resolved == .dense,
           case let mapped = try EdgeFile(path: path, verifyChecksums: false, residency: .map),
           mapped.tensors.contains(where: { (try? mapped.layout(of: $0))?.hasDenseQ8Copy == true }) {
            try mapped.verify()
            try self.init(file: mapped, threads: threads, sparse: sparse)
        } else {
            try self.init(file: try EdgeFile(path: path, residency: residency), threads: threads, sparse: sparse)
        }
    }

    /// Builds a model from canonical tensor names (`ModelConfig.schema()`), bound through `ModelWeights`.
    /// - Parameters:
    ///   - config: architecture and sizes (validated here).
    ///   - tensors: every tensor the config requires; extra names are ignored.
    ///   - tokenizer: optional, for text in and out.
    ///   - source: a label for messages (a path).
    ///   - threads: threads for matrix products.
    /// - Throws: `RuntimeError` naming the first missing, mis-shaped or unusable tensor, or a bad config.
    ///   - sparse: what to do with sparse matrices of symmetric q8 values (`SparseWeights`): with
    ///     `.dense` (or `.auto` where sparse decoding is the slower kernel) each becomes a dense q8 copy
    ///     (`Linear.denseQ8Copy`, the same results), named in `denseCopies`. An untied token embedding
    ///     stays as it is (it is only read row by row).
    ///   - copied: called with each such matrix's name once its copy is made.
    public init(config: ModelConfig, tensors: [String: WeightSource], tokenizer: Tokenizer? = nil,
                source: String = "", threads: Int = EdgeModel.defaultThreads, sparse: SparseWeights = .keep,
                copied: (String) -> Void = { _ in }) throws {
        do {
            try config.validate(source: source)
        } catch let FormatError.invalid(_, what) {
            throw RuntimeError.badConfig(source: source, why: what)
        }
        if let tokenizer, tokenizer.vocabularySize > config.vocabSize {
            throw RuntimeError.badConfig(source: source, why: "the tokenizer has token ids up to \(tokenizer.vocabularySize - 1); vocab_size is \(config.vocabSize)")
        }
        for spec in config.schema() {
            let name = spec.name, shape = spec.shape
            guard let t = tensors[name] else { throw RuntimeError.missingTensor(source: source, tensor: name) }
            guard t.shape == shape else { throw RuntimeError.badShape(source: source, tensor: name, expected: shape, actual: t.shape) }
        }
        // Dense copies (SparseWeights) in one region of huge pages, sized by a first look at the tensors.
        let schema = config.schema().map(\.name)
        var arena: AnonymousMemory?
        var slots: [String: (Linear, Range<Int>)] = [:]  // the matrices to copy, and where
        if sparse.resolved == .dense {
            var total = 0
            for name in schema where name != "token_embd.weight" || tensors["output.weight"] == nil {
                guard let t = tensors[name], t.shape.count == 2, let l = try? Linear(name: name, source: t, origin: source),
                      let n = l.denseQ8CopyBytes else { continue }
                slots[name] = (l, total ..< total + n)
                total += (n + 63) / 64 * 64
            }
            if total > 0 { arena = AnonymousMemory(bytes: total) }  // nil (no memory): the matrices stay sparse
        }
        var made: [String: Linear] = [:]  // a tied head and embedding share one copy
        var copies: [String] = []
        func linear(_ name: String) throws -> Linear {
            if let l = made[name] { return l }
            var l = try slots[name]?.0 ?? Linear(name: name, source: tensors[name]!, origin: source)
            if let arena, let slot = slots[name]?.1,
               let d = l.denseQ8Copy(into: UnsafeMutableRawBufferPointer(rebasing: arena.bytes[slot]), owner: arena) {
                l = d
                copies.append(name)
                copied(name)
            }
            made[name] = l
            return l
        }
        func vector(_ name: String) throws -> [Float] {
            let t = tensors[name]!
            _ = try t.checked(name: name, source: source)  // non-finite values refused there
            return t.floats()
        }

        let weights = try ModelWeights<Linear, [Float]>(config: config, matrix: { try linear($0.name) }, vector: { try vector($0.name) })
        tokenEmbedding = weights.tokenEmbd
        positionEmbedding = weights.posEmbd
        blocks = weights.blocks
        tokenTypeEmbedding = weights.tokenTypes
        embedNorm = weights.embedNorm
        embedNormBias = weights.embedNormBias
        outputNorm = weights.outputNorm
        outputNormBias = weights.outputNormBias
        output = weights.output
        self.config = config
        self.tokenizer = tokenizer
        addsBOS = tokenizer?.bosTokenID != nil
        self.source = source
        self.threads = max(1, threads)
        denseCopies = copies
    }

    /// The BOS id put before a sequence when `addsBOS` (the tokenizer's, else the config's).
    public var bosTokenID: Int32? { tokenizer?.bosTokenID ?? config.bosTokenID.map(Int32.init) }

    /// Token ids for `text` as llama.cpp tokenizes for evaluation: BOS first when `addsBOS`.
    /// - Throws: `RuntimeError.noTokenizer` when the model carries none.
    public func tokenize(_ text: String) throws -> [Int32] {
        guard let tokenizer else { throw RuntimeError.noTokenizer(source: source) }
        return Self.tokenize(text, tokenizer: tokenizer)
    }

    /// Token ids for `text` as a model with `config` and `tokenizer` tokenizes it (`tokenize(_:)`),
    /// without building the model.
    public static func tokenize(_ text: String, tokenizer: Tokenizer) -> [Int32] {
        let ids = tokenizer.encode(text)
        if let bos = tokenizer.bosTokenID { return [bos] + ids }
        return ids
    }

    /// Number of weights in the matrices and vectors the forward pass uses (tied output counted once).
    public var parameterCount: Int {
        config.schema().reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}
