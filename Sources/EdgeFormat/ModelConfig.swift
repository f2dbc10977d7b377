
/// The model description shared by the importer, the `.edge` header and the runtime.
/// Field names in JSON are snake_case (see docs/edge-format.md).
public struct ModelConfig: Codable, Equatable, Sendable {
    public enum Architecture: String, Codable, Sendable, CaseIterable {
        /// GPT-2: learned positions, LayerNorm with bias, fused-QKV source weights, GELU MLP.
        case gpt2
        /// Llama: RoPE, RMSNorm, SwiGLU MLP, grouped-query attention.
        case llama
        /// BERT (an encoder): learned absolute and token-type embeddings, embedding LayerNorm,
        /// post-norm blocks with biases, GELU (erf) MLP, bidirectional attention; no output head.
        case bert
    }

    /// How an encoder turns its last hidden states into one sentence embedding (sentence-transformers'
    /// `1_Pooling/config.json` and `Normalize` module). JSON: `{"mode": "mean", "normalize": true, "max_tokens": 256}`.
    public struct Pooling: Codable, Equatable, Sendable {
        public enum Mode: String, Codable, Sendable, CaseIterable {
            /// The mean of every token's hidden state ([CLS] and [SEP] included), as sentence-transformers' `pooling_mode_mean_tokens`.
            case mean
            /// The first token's ([CLS]) hidden state, `pooling_mode_cls_token`.
            case cls
            /// The element-wise maximum over the tokens, `pooling_mode_max_tokens`.
            case max
        }
        public var mode: Mode
        /// Whether the pooled vector is scaled to unit L2 norm (a `Normalize` module follows the pooling).
        public var normalize: Bool
        /// Tokens per sentence at most, special tokens included (sentence-transformers' `max_seq_length`);
        /// longer sentences are truncated. Nil: the model's `max_positions`.
        public var maxTokens: Int?
        public init(mode: Mode, normalize: Bool, maxTokens: Int? = nil) {
            self.mode = mode
            self.normalize = normalize
            self.maxTokens = maxTokens
        }
        enum CodingKeys: String, CodingKey { case mode, normalize, maxTokens = "max_tokens" }
    }

    /// Per-layer sizes after structured pruning; nil means the model-wide sizes.
    public struct LayerSizes: Codable, Equatable, Sendable {
        public var numHeads: Int
        public var numKVHeads: Int
        public var intermediateSize: Int
        public init(numHeads: Int, numKVHeads: Int, intermediateSize: Int) {
            self.numHeads = numHeads
            self.numKVHeads = numKVHeads
            self.intermediateSize = intermediateSize
        }
        enum CodingKeys: String, CodingKey {
            case numHeads = "num_heads", numKVHeads = "num_kv_heads", intermediateSize = "intermediate_size"
        }
    }

    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var normEps: Double
    /// RoPE base (llama); 0 for gpt2.
    public var ropeTheta: Double
    public var tiedEmbeddings: Bool
    /// "gelu_new" (gpt2's tanh approximation) or "silu" (llama's SwiGLU gate).
    public var activation: String
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    /// Per-layer sizes when layers differ (structured pruning); nil when all layers use the sizes above.
    public var layers: [LayerSizes]?
    /// Rows of the token-type (segment) embedding (bert); nil for decoders.
    public var typeVocabSize: Int?
    /// How sentence embeddings are pooled (bert); nil for decoders.
    public var pooling: Pooling?

    public init(architecture: Architecture, vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, headDim: Int, intermediateSize: Int, maxPositions: Int, normEps: Double,
                ropeTheta: Double, tiedEmbeddings: Bool, activation: String, bosTokenID: Int?, eosTokenID: Int?,
                layers: [LayerSizes]? = nil, typeVocabSize: Int? = nil, pooling: Pooling? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.normEps = normEps
        self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings
        self.activation = activation
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.layers = layers
        self.typeVocabSize = typeVocabSize
        self.pooling = pooling
    }

    /// Whether the model is an encoder (bert): it embeds sentences and has no output head or KV cache.
    public var isEncoder: Bool { architecture == .bert }

    enum CodingKeys: String, CodingKey {
        case architecture, vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_layers"
        case numHeads = "num_heads", numKVHeads = "num_kv_heads", headDim = "head_dim"
        case intermediateSize = "intermediate_size", maxPositions = "max_positions", normEps = "norm_eps"
        case ropeTheta = "rope_theta", tiedEmbeddings = "tied_embeddings", activation
        case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", layers
        case typeVocabSize = "type_vocab_size", pooling
    }

    /// Sizes of layer `i`.
    public func sizes(layer i: Int) -> LayerSizes {
        if let layers, i < layers.count { return layers[i] }
        return LayerSizes(numHeads: numHeads, numKVHeads: numKVHeads, intermediateSize: intermediateSize)
    }

    /// Checks that the sizes are positive, consistent and not absurd.
    /// - Throws: `FormatError.invalid` naming the field, with `source` as the file.
    public func validate(source: String) throws {
        func bad(_ field: String, _ why: String) -> FormatError {
            .invalid(file: source, what: "config field '\(field)' \(why)")
        }
        let limit = 1 << 24
        for (field, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_layers", numLayers),
                           ("num_heads", numHeads), ("num_kv_heads", numKVHeads), ("head_dim", headDim),
                           ("intermediate_size", intermediateSize), ("max_positions", maxPositions)] {
            guard v > 0, v <= limit else { throw bad(field, "is \(v); expected 1...\(limit)") }
        }
        guard numLayers <= 4096 else { throw bad("num_layers", "is \(numLayers); expected at most 4096") }
        guard normEps.isFinite, normEps > 0, normEps < 1 else { throw bad("norm_eps", "is \(normEps); expected 0 < eps < 1") }
        guard numHeads % numKVHeads == 0 else {
            throw bad("num_kv_heads", "(\(numKVHeads)) does not divide num_heads (\(numHeads))")
        }
        switch architecture {
        case .gpt2, .bert:
            guard numHeads * headDim == hiddenSize else {
                throw bad("head_dim", "(\(headDim)) x num_heads (\(numHeads)) != hidden_size (\(hiddenSize))")
            }
        case .llama:
            guard headDim % 2 == 0 else { throw bad("head_dim", "is \(headDim); RoPE needs an even head_dim") }
            guard ropeTheta.isFinite, ropeTheta > 0 else { throw bad("rope_theta", "is \(ropeTheta); expected > 0") }
        }
        if let layers {
            guard layers.count == numLayers else {
                throw bad("layers", "has \(layers.count) entries; num_layers is \(numLayers)")
            }
            for (i, l) in layers.enumerated() {
                guard l.numHeads > 0, l.numKVHeads > 0, l.intermediateSize > 0,
                      l.numHeads <= limit, l.numKVHeads <= limit, l.intermediateSize <= limit,
                      l.numHeads % l.numKVHeads == 0 else {
                    throw bad("layers[\(i)]", "has invalid sizes (heads \(l.numHeads), kv heads \(l.numKVHeads), intermediate \(l.intermediateSize))")
                }
            }
        }
        // Every width a tensor shape is built from stays within `limit`, so no product of two of them
        // (a matrix's element count) can overflow and no allocation is absurd.
        for i in 0..<numLayers {
            let s = sizes(layer: i)
            guard s.numHeads * headDim <= limit else {
                throw bad(layers == nil ? "num_heads" : "layers[\(i)].num_heads",
                          "(\(s.numHeads)) x head_dim (\(headDim)) is over \(limit)")
            }
        }
        for (field, id) in [("bos_token_id", bosTokenID), ("eos_token_id", eosTokenID)] {
            if let id, !(0..<vocabSize).contains(id) {
                throw bad(field, "is \(id); expected a token id in 0..<\(vocabSize) (vocab_size)")
            }
        }
        if isEncoder {
            guard let types = typeVocabSize, types > 0, types <= limit else {
                throw bad("type_vocab_size", "is \(typeVocabSize.map(String.init) ?? "missing"); an encoder needs 1...\(limit)")
            }
            guard let pooling else { throw bad("pooling", "is missing; an encoder needs its pooling (mode, normalize)") }
            if let m = pooling.maxTokens, !(3...maxPositions).contains(m) {
                throw bad("pooling.max_tokens", "is \(m); expected 3...\(maxPositions) (max_positions)")
            }
            guard numKVHeads == numHeads else { throw bad("num_kv_heads", "(\(numKVHeads)) differs from num_heads (\(numHeads)); an encoder has no grouped K/V heads") }
            guard !tiedEmbeddings else { throw bad("tied_embeddings", "is true; an encoder has no output head to tie") }
        } else {
            for (field, present) in [("type_vocab_size", typeVocabSize != nil), ("pooling", pooling != nil)] where present {
                throw bad(field, "is set; only encoders (bert) have it")
            }
        }
        let expectedActivation: String
        switch architecture {
        case .gpt2: expectedActivation = "gelu_new"
        case .llama: expectedActivation = "silu"
        case .bert: expectedActivation = "gelu"
        }
        guard activation == expectedActivation else {
            throw bad("activation", "is \(Excerpt.quoted(activation)); \(architecture.rawValue) uses \(expectedActivation)")
        }
    }
}
