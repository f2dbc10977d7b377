
// The typed model schema: what each tensor of a model is (role, layer, weight or bias), its
// canonical name, shape and kind. Modelled on llama.cpp's `llm_tensor` enum and its name table
// (`LLM_TENSOR_NAMES`): the role enum below *is* the name table, and every other module (importers,
// exporter, passes, both forwards) switches on roles and asks `TensorID.name` for strings.
//
// Canonical names are GGUF's scheme, with Q/K/V always split and weights stored [out, in]:
//   token_embd.weight, position_embd.weight, blk.N.attn_q.weight, blk.N.attn_q.bias, ...,
//   output_norm.weight, output.weight.
// Q and K rows are in Hugging Face order (RoPE rotates the halves of each head: i and i + d/2).

/// What a tensor does in the model: llama.cpp's `llm_tensor`. The raw value is the canonical base
/// name (the name without `blk.N.` and without `.weight` / `.bias`); this enum is the only place
/// those strings are written.
public enum TensorRole: String, CaseIterable, Sendable {
    /// Token embedding table (vocab, h). llama.cpp `LLM_TENSOR_TOKEN_EMBD`.
    case tokenEmbd = "token_embd"
    /// Learned absolute positions (max_positions, h), GPT-2 and BERT. `LLM_TENSOR_POS_EMBD`.
    case posEmbd = "position_embd"
    /// Token-type (segment) embedding (type_vocab, h), BERT. `LLM_TENSOR_TOKEN_TYPES`.
    case tokenTypes = "token_types"
    /// Norm applied to the summed embeddings (h), BERT. `LLM_TENSOR_TOKEN_EMBD_NORM`.
    case tokenEmbdNorm = "token_embd_norm"
    /// Pre-attention norm of a pre-norm block (h). `LLM_TENSOR_ATTN_NORM`.
    case attnNorm = "attn_norm"
    /// Query projection (nh*hd, h). `LLM_TENSOR_ATTN_Q`.
    case attnQ = "attn_q"
    /// Key projection (nkv*hd, h). `LLM_TENSOR_ATTN_K`.
    case attnK = "attn_k"
    /// Value projection (nkv*hd, h). `LLM_TENSOR_ATTN_V`.
    case attnV = "attn_v"
    /// Fused Q|K|V projection ((nh + 2 nkv)*hd, h) as GGUF stores GPT-2's; a source-file role only:
    /// importers split it into `attnQ`, `attnK`, `attnV`, and no schema contains it. `LLM_TENSOR_ATTN_QKV`.
    case attnQKV = "attn_qkv"
    /// Attention output projection (h, nh*hd). `LLM_TENSOR_ATTN_OUT`.
    case attnOutput = "attn_output"
    /// Post-attention norm of a post-norm block (h), BERT. `LLM_TENSOR_ATTN_OUT_NORM`.
    case attnOutNorm = "attn_output_norm"
    /// Pre-MLP norm of a pre-norm block (h). `LLM_TENSOR_FFN_NORM`.
    case ffnNorm = "ffn_norm"
    /// MLP gate projection (f, h), SwiGLU. `LLM_TENSOR_FFN_GATE`.
    case ffnGate = "ffn_gate"
    /// MLP up projection (f, h). `LLM_TENSOR_FFN_UP`.
    case ffnUp = "ffn_up"
    /// MLP down projection (h, f). `LLM_TENSOR_FFN_DOWN`.
    case ffnDown = "ffn_down"
    /// Post-MLP norm of a post-norm block (h), BERT. `LLM_TENSOR_LAYER_OUT_NORM`.
    case layerOutNorm = "layer_output_norm"
    /// Final norm before the output head (h). `LLM_TENSOR_OUTPUT_NORM`.
    case outputNorm = "output_norm"
    /// Output head (vocab, h); absent when tied to `tokenEmbd`. `LLM_TENSOR_OUTPUT`.
    case output = "output"
    /// Pooler / classifier dense layer of an encoder (h, h). `LLM_TENSOR_CLS`.
    case cls = "cls"
    /// Classifier output layer of an encoder (labels, h). `LLM_TENSOR_CLS_OUT`.
    case clsOut = "cls.output"

    /// The canonical base name (llama.cpp's name table entry).
    public var baseName: String { rawValue }

    /// Whether the role occurs once per block (`blk.N.` names) rather than once per model.
    public var isPerLayer: Bool {
        switch self {
        case .tokenEmbd, .posEmbd, .tokenTypes, .tokenEmbdNorm, .outputNorm, .output, .cls, .clsOut: return false
        case .attnNorm, .attnQ, .attnK, .attnV, .attnQKV, .attnOutput, .attnOutNorm,
             .ffnNorm, .ffnGate, .ffnUp, .ffnDown, .layerOutNorm: return true
        }
    }

    /// What the role's weight is (its bias is always `.bias`).
    public var kind: TensorKind {
        switch self {
        case .tokenEmbd, .posEmbd, .tokenTypes: return .embedding
        case .tokenEmbdNorm, .attnNorm, .attnOutNorm, .ffnNorm, .layerOutNorm, .outputNorm: return .norm
        case .attnQ, .attnK, .attnV, .attnQKV, .attnOutput, .ffnGate, .ffnUp, .ffnDown, .cls: return .linear
        case .output, .clsOut: return .output
        }
    }

    /// Whether a `.bias` tensor of this role can exist (embedding tables have none).
    public var canHaveBias: Bool { kind != .embedding }

    /// Role by canonical base name ("attn_q" -> `.attnQ`).
    public init?(baseName: String) {
        self.init(rawValue: baseName)
    }
}

/// What kind of tensor it is; selectors and recipes choose tensors by kind
/// ("linear", "embedding", "norm", "bias", "output").
public enum TensorKind: String, Codable, Sendable, CaseIterable {
    /// An embedding table, read by row.
    case embedding
    /// A linear layer's weight matrix [out, in] inside the model.
    case linear
    /// A norm's scale vector.
    case norm
    /// Any bias vector (of a linear layer or a norm).
    case bias
    /// The output head [vocab, h] (or an encoder's classifier head).
    case output
}

/// One tensor of a model: `(layer?, role, isBias)`. Round-trips with its canonical name:
/// `TensorID(name: id.name) == id`, and `TensorID(name:)` is nil for every other string.
public struct TensorID: Hashable, Sendable, CustomStringConvertible {
    /// Block index for per-layer roles; nil for model-wide ones.
    public let layer: Int?
    /// What the tensor does.
    public let role: TensorRole
    /// The bias of the role (`.bias`) rather than its weight (`.weight`).
    public let isBias: Bool

    /// - Precondition: `layer` is given exactly when `role.isPerLayer` (and is >= 0); a bias only where `role.canHaveBias`.
    public init(layer: Int? = nil, _ role: TensorRole, bias: Bool = false) {
        precondition(role.isPerLayer == (layer != nil), "TensorID: role \(role) \(role.isPerLayer ? "needs" : "takes no") layer index")
        precondition((layer ?? 0) >= 0, "TensorID: negative layer \(layer ?? 0)")
        precondition(!bias || role.canHaveBias, "TensorID: role \(role) has no bias")
        self.layer = layer
        self.role = role
        self.isBias = bias
    }

    /// `token_embd.weight`.
    public static let tokenEmbd = TensorID(.tokenEmbd)
    /// `position_embd.weight`.
    public static let posEmbd = TensorID(.posEmbd)
    /// `output.weight`.
    public static let output = TensorID(.output)

    /// The canonical name: `[blk.N.]<base>.weight` or `.bias`.
    public var name: String {
        let suffix = isBias ? ".bias" : ".weight"
        if let layer { return "blk.\(layer).\(role.baseName)\(suffix)" }
        return role.baseName + suffix
    }

    public var description: String { name }

    /// The tensor's kind: `.bias` for biases, else the role's kind.
    public var kind: TensorKind { isBias ? .bias : role.kind }

    /// The weight this bias belongs to (itself for a weight).
    public var weight: TensorID { TensorID(layer: layer, role) }

    /// The bias of this tensor's role.
    /// - Precondition: `role.canHaveBias`.
    public var bias: TensorID { TensorID(layer: layer, role, bias: true) }

    /// Parses a canonical name; nil for anything that is not exactly one (unknown role, layer on a
    /// model-wide role or none on a per-layer one, non-canonical layer digits such as `blk.01.`,
    /// suffix other than `.weight` / `.bias`, bias of an embedding).
    public init?(name: String) {
        let isBias: Bool
        var rest: Substring
        if name.hasSuffix(".weight") {
            isBias = false
            rest = name.dropLast(".weight".count)
        } else if name.hasSuffix(".bias") {
            isBias = true
            rest = name.dropLast(".bias".count)
        } else {
            return nil
        }
        var layer: Int?
        let block = "blk."
        if rest.hasPrefix(block) {
            let tail = rest.dropFirst(block.count)
            guard let dot = tail.firstIndex(of: "."), let n = Int(tail[..<dot]), n >= 0, String(n) == tail[..<dot] else { return nil }
            layer = n
            rest = tail[tail.index(after: dot)...]
        }
        guard let role = TensorRole(baseName: String(rest)), role.isPerLayer == (layer != nil),
              !isBias || role.canHaveBias else { return nil }
        self.init(layer: layer, role, bias: isBias)
    }

    /// A glob (`TensorSelector` syntax: `*` any run) matching the name of every per-layer tensor.
    public static let anyBlockTensorPattern = "blk.*"
}

/// One tensor the model has: its id, shape ([out, in] for matrices, row-major) and kind.
public struct TensorSpec: Equatable, Sendable {
    /// Which tensor.
    public let id: TensorID
    /// Its shape: [out, in] for matrices, [rows, h] for embeddings, [n] for vectors.
    public let shape: [Int]
    public init(id: TensorID, shape: [Int]) {
        self.id = id
        self.shape = shape
    }
    /// The canonical name.
    public var name: String { id.name }
    /// The tensor's kind.
    public var kind: TensorKind { id.kind }
}

/// Every tensor of a model, once, in canonical order (the order importers produce and the writer stores).
public struct ModelSchema: Sendable, RandomAccessCollection {
    /// The tensors in canonical order.
    public let tensors: [TensorSpec]
    private let index: [TensorID: Int]

    init(_ tensors: [TensorSpec]) {
        self.tensors = tensors
        var index: [TensorID: Int] = [:]
        for (i, t) in tensors.enumerated() {
            precondition(index[t.id] == nil, "ModelSchema: \(t.id) listed twice")
            index[t.id] = i
        }
        self.index = index
    }

    public var startIndex: Int { tensors.startIndex }
    public var endIndex: Int { tensors.endIndex }
    public subscript(position: Int) -> TensorSpec { tensors[position] }

    /// The spec of `id`, nil when the model has no such tensor.
    public subscript(id: TensorID) -> TensorSpec? { index[id].map { tensors[$0] } }

    /// Whether the model has the tensor `id`.
    public func contains(_ id: TensorID) -> Bool { index[id] != nil }

    /// The shape of `id`, nil when the model has no such tensor.
    public func shape(of id: TensorID) -> [Int]? { self[id]?.shape }

    /// The spec named `name`, nil when the name is not canonical or the model has no such tensor.
    public subscript(name name: String) -> TensorSpec? { TensorID(name: name).flatMap { self[$0] } }
}

extension ModelConfig {
    /// The block roles of this architecture, in canonical order.
    public var blockRoles: [TensorRole] {
        switch architecture {
        case .gpt2: return [.attnNorm, .attnQ, .attnK, .attnV, .attnOutput, .ffnNorm, .ffnUp, .ffnDown]
        case .llama: return [.attnNorm, .attnQ, .attnK, .attnV, .attnOutput, .ffnNorm, .ffnGate, .ffnUp, .ffnDown]
        case .bert: return [.attnQ, .attnK, .attnV, .attnOutput, .attnOutNorm, .ffnUp, .ffnDown, .layerOutNorm]
        }
    }

    /// Whether blocks normalize after each residual add (BERT: x = norm(x + f(x))) rather than
    /// before each sublayer (x = x + f(norm(x))). `BlockWeights.attnNorm` / `ffnNorm` then hold
    /// `attn_output_norm` / `layer_output_norm`.
    public var isPostNorm: Bool { architecture == .bert }

    /// Whether linear layers and norms carry biases (GPT-2's and BERT's LayerNorm and linear layers).
    public var hasBiases: Bool {
        switch architecture {
        case .gpt2, .bert: return true
        case .llama: return false
        }
    }

    /// Shape of the weight of `role` (in layer `layer` for per-layer roles) under this config's sizes;
    /// nil for roles whose sizes this config does not describe (encoder-only roles, fused QKV).
    public func weightShape(_ role: TensorRole, layer: Int? = nil) -> [Int]? {
        let h = hiddenSize
        let s = sizes(layer: layer ?? 0)
        let q = s.numHeads * headDim, kv = s.numKVHeads * headDim, f = s.intermediateSize
        switch role {
        case .tokenEmbd, .output: return [vocabSize, h]
        case .posEmbd: return [maxPositions, h]
        case .tokenEmbdNorm, .attnNorm, .attnOutNorm, .ffnNorm, .layerOutNorm, .outputNorm: return [h]
        case .attnQ: return [q, h]
        case .attnK, .attnV: return [kv, h]
        case .attnQKV: return [q + 2 * kv, h]
        case .attnOutput: return [h, q]
        case .ffnGate, .ffnUp: return [f, h]
        case .ffnDown: return [h, f]
        case .cls: return [h, h]
        case .tokenTypes: return typeVocabSize.map { [$0, h] }
        case .clsOut: return nil
        }
    }

    /// Every tensor this model has, once, in canonical order, with its id, shape and kind:
    /// token_embd (position_embd), then per block the architecture's `blockRoles` (each weight
    /// followed by its bias when `hasBiases`), output_norm (+ bias), output (unless tied).
    /// An encoder (bert): token_embd, position_embd, token_types, token_embd_norm (+ bias), the
    /// blocks; no output norm or head.
    public func schema() -> ModelSchema {
        var specs: [TensorSpec] = []
        func add(_ layer: Int?, _ role: TensorRole, bias: Bool) {
            guard let shape = weightShape(role, layer: layer) else {
                preconditionFailure("schema: \(architecture) lists role \(role) without a shape")
            }
            specs.append(TensorSpec(id: TensorID(layer: layer, role), shape: shape))
            if bias { specs.append(TensorSpec(id: TensorID(layer: layer, role, bias: true), shape: [shape[0]])) }
        }
        add(nil, .tokenEmbd, bias: false)
        switch architecture {
        case .gpt2: add(nil, .posEmbd, bias: false)
        case .llama: break
        case .bert:
            add(nil, .posEmbd, bias: false)
            add(nil, .tokenTypes, bias: false)
            add(nil, .tokenEmbdNorm, bias: true)
        }
        for l in 0 ..< numLayers {
            for role in blockRoles { add(l, role, bias: hasBiases) }
        }
        if isEncoder { return ModelSchema(specs) }
        add(nil, .outputNorm, bias: hasBiases)
        if !tiedEmbeddings { add(nil, .output, bias: false) }
        return ModelSchema(specs)
    }

    /// Every tensor this model has, in canonical order, with its shape ([out, in] for linear weights,
    /// row-major): `schema()` as names. Importers produce exactly this set; the writer stores tensors in this order.
    public func expectedTensors() -> [(name: String, shape: [Int])] {
        schema().map { ($0.name, $0.shape) }
    }
}

/// Canonical tensor names as strings, for code that holds names (selectors, recipes, tests).
/// Everything here derives from `TensorID`; new code should use `TensorID` and `ModelSchema`.
public enum TensorName {
    /// `TensorID.tokenEmbd.name`.
    public static let tokenEmbedding = TensorID.tokenEmbd.name
    /// `TensorID.posEmbd.name`.
    public static let positionEmbedding = TensorID.posEmbd.name
    /// The output norm's base name (`TensorRole.outputNorm.baseName`).
    public static let outputNorm = TensorRole.outputNorm.baseName
    /// `TensorID.output.name`.
    public static let output = TensorID.output.name
    /// The `blk.N.` prefix, for tests that map foreign names; sources use `TensorID(layer:_:)`.
    public static func block(_ i: Int) -> String { "blk.\(i)." }

    /// What role a tensor plays; selectors and recipes use it ("linear", "embedding", "norm", "bias").
    public typealias Kind = TensorKind

    /// The kind of the tensor `name` (`TensorID.kind`); `.linear` for a name that is not canonical.
    public static func kind(of name: String) -> Kind {
        TensorID(name: name)?.kind ?? .linear
    }

    /// Layer index of a per-layer tensor, nil otherwise (and for names that are not canonical).
    public static func layer(of name: String) -> Int? {
        TensorID(name: name)?.layer
    }
}
