import EdgeFormat
import Foundation

extension JSONValue {
    /// "an object", "a number", ... for messages (`JSONValue.kindName`).
    var hfKindName: String { kindName }

    /// Parses `data` as a JSON object for one of the Hugging Face files (header, index, config).
    /// - Throws: `CheckpointError.badHeader` naming `file` (with `what`, e.g. "header") when the
    ///   bytes are not JSON or not an object.
    static func hfObject(_ data: Data, file: String, what: String) throws -> [String: JSONValue] {
        let v: JSONValue
        do {
            v = try data.withUnsafeBytes { try JSONValue.parse($0) }
        } catch {
            throw CheckpointError.badHeader(file: file, why: "\(what) is not valid JSON: \(error)")
        }
        guard case let .object(o) = v else { throw CheckpointError.badHeader(file: file, why: "\(what) is \(v.hfKindName); expected a JSON object") }
        return o
    }

    /// Pretty-printed JSON with sorted keys (equal values give identical bytes).
    func prettyJSON() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try e.encode(self)
    }
}

/// Hugging Face `config.json` <-> `ModelConfig`.
///
/// Reads `GPT2LMHeadModel` (`gpt2`) and `LlamaForCausalLM` (`llama`; `MistralForCausalLM` /
/// `mistral` read as Llama) configs. Size fields are required; fields transformers always
/// serializes but that have a well-known default (epsilons, activation, RoPE base, tying) take
/// transformers' default when absent. Settings that change the math in a way the runtime does
/// not implement (`rope_scaling`, attention/MLP biases in Llama, GPT-2's per-layer attention
/// scaling) are refused with the field named.
public enum HFConfig {
    /// Reads and converts the `config.json` at `path`.
    /// - Throws: `CheckpointError.notFound`, `.badHeader` (not JSON), `.badConfig` or `.unknownArchitecture`.
    public static func load(path: String) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError.notFound(path: path) }
        return try parse(data, file: path)
    }

    /// Converts the bytes of a `config.json` document; `file` names it in errors.
    /// - Throws: `CheckpointError.badHeader` (not a JSON object), `.badConfig` naming the field
    ///   (missing, wrong type, out of range, unsupported), `.unknownArchitecture`.
    public static func parse(_ data: Data, file: String) throws -> ModelConfig {
        let fields = Fields(root: try JSONValue.hfObject(data, file: file, what: "config.json"), file: file)
        switch try architecture(fields) {
        case .gpt2: return try gpt2(fields)
        case .llama: return try llama(fields)
        case .bert: return try bert(fields)
        }
    }

    /// The `config.json` document transformers would write for `config` (keys sorted, pretty-printed, trailing newline).
    /// - Parameter torchDType: the `torch_dtype` to record ("float32", "float16").
    /// - Throws: `CheckpointError.badConfig` when the config cannot be expressed in a Hugging Face
    ///   config (per-layer sizes after structured pruning; GPT-2 with grouped K/V heads).
    public static func encode(_ config: ModelConfig, torchDType: String) throws -> Data {
        let file = "config.json"
        let uniform = ModelConfig.LayerSizes(numHeads: config.numHeads, numKVHeads: config.numKVHeads,
                                             intermediateSize: config.intermediateSize)
        if let layers = config.layers, layers.contains(where: { $0 != uniform }) {
            throw CheckpointError.badConfig(file: file, field: "layers",
                                            why: "has per-layer sizes, which a Hugging Face config cannot express")
        }
        func id(_ v: Int?) -> JSONValue { v.map { .number(Double($0)) } ?? .null }
        func int(_ v: Int) -> JSONValue { .number(Double(v)) }
        var o: [String: JSONValue] = [
            "vocab_size": int(config.vocabSize),
            "tie_word_embeddings": .bool(config.tiedEmbeddings),
            "bos_token_id": id(config.bosTokenID),
            "eos_token_id": id(config.eosTokenID),
            "torch_dtype": .string(torchDType),
        ]
        switch config.architecture {
        case .gpt2:
            guard config.numKVHeads == config.numHeads else {
                throw CheckpointError.badConfig(file: file, field: "num_kv_heads",
                                                why: "(\(config.numKVHeads)) differs from num_heads (\(config.numHeads)); GPT-2 has no grouped K/V heads")
            }
            guard config.numHeads * config.headDim == config.hiddenSize else {
                throw CheckpointError.badConfig(file: file, field: "head_dim",
                                                why: "(\(config.headDim)) x num_heads (\(config.numHeads)) != hidden_size (\(config.hiddenSize)); GPT-2 cannot express it")
            }
            o["architectures"] = .array([.string("GPT2LMHeadModel")])
            o["model_type"] = .string("gpt2")
            o["n_embd"] = int(config.hiddenSize)
            o["n_layer"] = int(config.numLayers)
            o["n_head"] = int(config.numHeads)
            o["n_inner"] = int(config.intermediateSize)
            o["n_positions"] = int(config.maxPositions)
            o["n_ctx"] = int(config.maxPositions)
            o["layer_norm_epsilon"] = .number(config.normEps)
            o["activation_function"] = .string(config.activation)
            o["scale_attn_weights"] = .bool(true)
            o["scale_attn_by_inverse_layer_idx"] = .bool(false)
            o["reorder_and_upcast_attn"] = .bool(false)
        case .llama:
            o["architectures"] = .array([.string("LlamaForCausalLM")])
            o["model_type"] = .string("llama")
            o["hidden_size"] = int(config.hiddenSize)
            o["num_hidden_layers"] = int(config.numLayers)
            o["num_attention_heads"] = int(config.numHeads)
            o["num_key_value_heads"] = int(config.numKVHeads)
            o["head_dim"] = int(config.headDim)
            o["intermediate_size"] = int(config.intermediateSize)
            o["max_position_embeddings"] = int(config.maxPositions)
            o["rms_norm_eps"] = .number(config.normEps)
            o["rope_theta"] = .number(config.ropeTheta)
            o["rope_scaling"] = .null
            o["hidden_act"] = .string(config.activation)
            o["attention_bias"] = .bool(false)
            o["mlp_bias"] = .bool(false)
        case .bert:
            o["architectures"] = .array([.string("BertModel")])
            o["model_type"] = .string("bert")
            o["hidden_size"] = int(config.hiddenSize)
            o["num_hidden_layers"] = int(config.numLayers)
            o["num_attention_heads"] = int(config.numHeads)
            o["intermediate_size"] = int(config.intermediateSize)
            o["max_position_embeddings"] = int(config.maxPositions)
            o["type_vocab_size"] = int(config.typeVocabSize ?? 2)
            o["layer_norm_eps"] = .number(config.normEps)
            o["hidden_act"] = .string("gelu")
            o["position_embedding_type"] = .string("absolute")
            o["pad_token_id"] = int(0)
            o.removeValue(forKey: "tie_word_embeddings")
            o.removeValue(forKey: "bos_token_id")
            o.removeValue(forKey: "eos_token_id")
        }
        return try JSONValue.object(o).prettyJSON() + Data("\n".utf8)
    }

    // MARK: - Reading

    /// Typed access to the fields of the root object, each failure a `.badConfig` naming the field.
    struct Fields {
        let root: [String: JSONValue]
        let file: String

        func bad(_ field: String, _ why: String) -> CheckpointError { .badConfig(file: file, field: field, why: why) }

        /// A number as written, anything else by its kind ("a string").
        func shown(_ v: JSONValue) -> String {
            if case let .number(x) = v { return "\(x)" }
            return v.hfKindName
        }

        /// The value, treating JSON null as absent.
        func value(_ key: String) -> JSONValue? {
            if case .null? = root[key] { return nil }
            return root[key]
        }

        func int(_ key: String) throws -> Int {
            guard let v = value(key) else { throw bad(key, "is missing") }
            guard let i = v.intValue else { throw bad(key, "must be an integer, found \(shown(v))") }
            return i
        }

        func int(_ key: String, default d: Int) throws -> Int { value(key) == nil ? d : try int(key) }

        func double(_ key: String, default d: Double) throws -> Double {
            switch value(key) {
            case nil: return d
            case let .number(x)?: return x
            case let v?: throw bad(key, "must be a number, found \(v.hfKindName)")
            }
        }

        func bool(_ key: String, default d: Bool) throws -> Bool {
            switch value(key) {
            case nil: return d
            case let .bool(b)?: return b
            case let v?: throw bad(key, "must be true or false, found \(v.hfKindName)")
            }
        }

        func string(_ key: String, default d: String) throws -> String {
            switch value(key) {
            case nil: return d
            case let .string(s)?: return s
            case let v?: throw bad(key, "must be a string, found \(v.hfKindName)")
            }
        }

        /// A token id given as an integer or a list of integers (the first is taken); nil when absent or empty.
        func tokenID(_ key: String) throws -> Int? {
            switch value(key) {
            case nil: return nil
            case let v? where v.intValue != nil:
                return v.intValue
            case let .array(a)?:
                guard let first = a.first else { return nil }
                guard let i = first.intValue else { throw bad(key, "must list integers, found \(shown(first))") }
                return i
            case let v?: throw bad(key, "must be an integer or a list of integers, found \(shown(v))")
            }
        }

        /// `num / den` when `den` divides `num`, else `.badConfig` on `denField`.
        func quotient(_ num: Int, _ numField: String, _ den: Int, _ denField: String) throws -> Int {
            guard den > 0 else { throw bad(denField, "is \(den); expected a positive integer") }
            guard num % den == 0 else { throw bad(denField, "(\(den)) does not divide \(numField) (\(num))") }
            return num / den
        }
    }

    private static func architecture(_ f: Fields) throws -> ModelConfig.Architecture {
        let known: [String: ModelConfig.Architecture] = [
            "GPT2LMHeadModel": .gpt2, "LlamaForCausalLM": .llama, "MistralForCausalLM": .llama,
            "BertModel": .bert, "BertForMaskedLM": .bert, "BertForPreTraining": .bert,
        ]
        let knownTypes: [String: ModelConfig.Architecture] = ["gpt2": .gpt2, "llama": .llama, "mistral": .llama, "bert": .bert]
        if let v = f.value("architectures") {
            guard case let .array(a) = v, let first = a.first else {
                throw f.bad("architectures", "must be a non-empty list of strings, found \(v.hfKindName)")
            }
            guard case let .string(name) = first else { throw f.bad("architectures", "must list strings, found \(first.hfKindName)") }
            guard let arch = known[name] else { throw CheckpointError.unknownArchitecture(file: f.file, name: name) }
            return arch
        }
        guard let v = f.value("model_type") else { throw f.bad("architectures", "is missing (and so is model_type)") }
        guard case let .string(type) = v else { throw f.bad("model_type", "must be a string, found \(v.hfKindName)") }
        guard let arch = knownTypes[type] else { throw CheckpointError.unknownArchitecture(file: f.file, name: type) }
        return arch
    }

    private static func rejectRopeScaling(_ f: Fields) throws {
        if f.value("rope_scaling") != nil {
            throw f.bad("rope_scaling", "is set; RoPE scaling is an unsupported field (only null is accepted)")
        }
    }

    private static func gpt2(_ f: Fields) throws -> ModelConfig {
        let hidden = try f.int("n_embd"), heads = try f.int("n_head")
        let headDim = try f.quotient(hidden, "n_embd", heads, "n_head")
        let activation: String
        switch try f.string("activation_function", default: "gelu_new") {
        case "gelu_new", "gelu_pytorch_tanh": activation = "gelu_new"
        case let other: throw f.bad("activation_function", "is \(Excerpt.quoted(other)); only gelu_new (the tanh approximation) is supported")
        }
        guard try f.bool("scale_attn_weights", default: true) else {
            throw f.bad("scale_attn_weights", "is false; unscaled attention is unsupported")
        }
        guard try !f.bool("scale_attn_by_inverse_layer_idx", default: false) else {
            throw f.bad("scale_attn_by_inverse_layer_idx", "is true; per-layer attention scaling is unsupported")
        }
        try rejectRopeScaling(f)
        return ModelConfig(
            architecture: .gpt2, vocabSize: try f.int("vocab_size"), hiddenSize: hidden, numLayers: try f.int("n_layer"),
            numHeads: heads, numKVHeads: heads, headDim: headDim,
            intermediateSize: try f.int("n_inner", default: 4 * hidden), maxPositions: try f.int("n_positions"),
            normEps: try f.double("layer_norm_epsilon", default: 1e-5), ropeTheta: 0,
            tiedEmbeddings: try f.bool("tie_word_embeddings", default: true), activation: activation,
            bosTokenID: try f.tokenID("bos_token_id"), eosTokenID: try f.tokenID("eos_token_id"))
    }

    /// `BertModel`: the pooling is not in config.json; `HFImporter` adds it from the sentence-transformers
    /// files beside it (mean pooling, no normalization until then).
    private static func bert(_ f: Fields) throws -> ModelConfig {
        let hidden = try f.int("hidden_size"), heads = try f.int("num_attention_heads")
        let headDim = try f.quotient(hidden, "hidden_size", heads, "num_attention_heads")
        switch try f.string("hidden_act", default: "gelu") {
        case "gelu": break
        case let other: throw f.bad("hidden_act", "is \(Excerpt.quoted(other)); only gelu (the erf form) is supported for bert")
        }
        let positions = try f.string("position_embedding_type", default: "absolute")
        guard positions == "absolute" else {
            throw f.bad("position_embedding_type", "is \(Excerpt.quoted(positions)); only absolute positions are supported")
        }
        if try f.bool("is_decoder", default: false) { throw f.bad("is_decoder", "is true; a BERT decoder is unsupported") }
        return ModelConfig(
            architecture: .bert, vocabSize: try f.int("vocab_size"), hiddenSize: hidden,
            numLayers: try f.int("num_hidden_layers"), numHeads: heads, numKVHeads: heads, headDim: headDim,
            intermediateSize: try f.int("intermediate_size"), maxPositions: try f.int("max_position_embeddings"),
            normEps: try f.double("layer_norm_eps", default: 1e-12), ropeTheta: 0, tiedEmbeddings: false,
            activation: "gelu", bosTokenID: nil, eosTokenID: nil,
            typeVocabSize: try f.int("type_vocab_size", default: 2), pooling: .init(mode: .mean, normalize: false))
    }

    private static func llama(_ f: Fields) throws -> ModelConfig {
        let hidden = try f.int("hidden_size"), heads = try f.int("num_attention_heads")
        let headDim = f.value("head_dim") == nil ? try f.quotient(hidden, "hidden_size", heads, "num_attention_heads")
            : try f.int("head_dim")
        let activation: String
        switch try f.string("hidden_act", default: "silu") {
        case "silu", "swish": activation = "silu"
        case let other: throw f.bad("hidden_act", "is \(Excerpt.quoted(other)); only silu is supported")
        }
        for key in ["attention_bias", "mlp_bias"] {
            if try f.bool(key, default: false) { throw f.bad(key, "is true; Llama biases are unsupported") }
        }
        try rejectRopeScaling(f)
        let kvHeads = try f.int("num_key_value_heads", default: heads)
        _ = try f.quotient(heads, "num_attention_heads", kvHeads, "num_key_value_heads")
        var maxPositions = try f.int("max_position_embeddings")
        // Mistral's sliding window: attention is identical to full attention up to the window,
        // so the model is exact when its context is limited to the window.
        let window = try f.int("sliding_window", default: maxPositions)
        guard window > 0 else { throw f.bad("sliding_window", "is \(window); expected a positive integer or null") }
        maxPositions = min(maxPositions, window)
        return ModelConfig(
            architecture: .llama, vocabSize: try f.int("vocab_size"), hiddenSize: hidden,
            numLayers: try f.int("num_hidden_layers"), numHeads: heads,
            numKVHeads: kvHeads, headDim: headDim,
            intermediateSize: try f.int("intermediate_size"), maxPositions: maxPositions,
            normEps: try f.double("rms_norm_eps", default: 1e-6), ropeTheta: try f.double("rope_theta", default: 10000),
            tiedEmbeddings: try f.bool("tie_word_embeddings", default: false), activation: activation,
            bosTokenID: try f.tokenID("bos_token_id"), eosTokenID: try f.tokenID("eos_token_id"))
    }
}
