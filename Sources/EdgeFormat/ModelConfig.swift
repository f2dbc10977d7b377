
/// The model description shared by the importer, the `.edge` header and the runtime.
/// Field names in JSON are snake_case (see docs/edge-format.md).
public struct ModelConfig: Codable, Equatable, Sendable {
    public enum Architecture: String, Codable, Sendable, CaseIterable {
        /// GPT-2: learned positions, LayerNorm with bias, fused-QKV source weights, GELU MLP.
        case gpt2
        /// Llama: RoPE, RMSNorm, SwiGLU MLP, grouped-query attention.
        case llama
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

    public init(architecture: Architecture, vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, headDim: Int, intermediateSize: Int, maxPositions: Int, normEps: Double,
                ropeTheta: Double, tiedEmbeddings: Bool, activation: String, bosTokenID: Int?, eosTokenID: Int?,
                layers: [LayerSizes]? = nil) {
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
    }

    enum CodingKeys: String, CodingKey {
        case architecture, vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_layers"
        case numHeads = "num_heads", numKVHeads = "num_kv_heads", headDim = "head_dim"
        case intermediateSize = "intermediate_size", maxPositions = "max_positions", normEps = "norm_eps"
        case ropeTheta = "rope_theta", tiedEmbeddings = "tied_embeddings", activation
        case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", layers
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
        case .gpt2:
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
        let expectedActivation = architecture == .gpt2 ? "gelu_new" : "silu"
        guard activation == expectedActivation else {
            throw bad("activation", "is \(Excerpt.quoted(activation)); \(architecture.rawValue) uses \(expectedActivation)")
        }
    }
}
