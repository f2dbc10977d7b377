import EdgeFormat
import Foundation

/// How one canonical tensor is stored in a Hugging Face checkpoint (under the names `save_pretrained` writes).
enum HFTensor: Equatable {
    /// The same values and layout under this name.
    case plain(String)
    /// A GPT-2 Conv1D weight: stored transposed ([in, out]) under this name.
    case conv1D(String)
    /// Q, K or V (weight or bias) as one part of GPT-2's fused `c_attn` tensor of this name
    /// (weight stored [in, q | k | v], bias [q | k | v]).
    case fusedQKV(String)

    /// The Hugging Face tensor name.
    var name: String {
        switch self {
        case let .plain(n), let .conv1D(n), let .fusedQKV(n): return n
        }
    }
}

/// The name table between canonical tensors and Hugging Face ones, keyed by role: the one place the
/// importer and the exporter learn Hugging Face names from.
enum HFTensorNames {
    /// The Hugging Face form of `id` in `architecture`; nil when the role has none there.
    static func form(of id: TensorID, in architecture: ModelConfig.Architecture) -> HFTensor? {
        switch architecture {
        case .gpt2: return gpt2(id)
        case .llama: return llama(id)
        case .bert: return bert(id)
        }
    }

    /// `BertModel` (sentence-transformers' encoders): `embeddings.…`, `encoder.layer.N.…`, [out, in]
    /// weights as stored. Also read with a `bert.` prefix (`BertForMaskedLM` and friends).
    private static func bert(_ id: TensorID) -> HFTensor? {
        let w = id.isBias ? "bias" : "weight"
        func block(_ s: String) -> HFTensor { .plain("encoder.layer.\(id.layer!).\(s).\(w)") }
        switch id.role {
        case .tokenEmbd: return .plain("embeddings.word_embeddings.\(w)")
        case .posEmbd: return .plain("embeddings.position_embeddings.\(w)")
        case .tokenTypes: return .plain("embeddings.token_type_embeddings.\(w)")
        case .tokenEmbdNorm: return .plain("embeddings.LayerNorm.\(w)")
        case .attnQ: return block("attention.self.query")
        case .attnK: return block("attention.self.key")
        case .attnV: return block("attention.self.value")
        case .attnOutput: return block("attention.output.dense")
        case .attnOutNorm: return block("attention.output.LayerNorm")
        case .ffnUp: return block("intermediate.dense")
        case .ffnDown: return block("output.dense")
        case .layerOutNorm: return block("output.LayerNorm")
        case .attnNorm, .attnQKV, .ffnNorm, .ffnGate, .outputNorm, .output, .cls, .clsOut: return nil
        }
    }

    /// `GPT2LMHeadModel`: `transformer.`-prefixed (except `lm_head`), Conv1D weights, fused `c_attn`.
    private static func gpt2(_ id: TensorID) -> HFTensor? {
        let w = id.isBias ? "bias" : "weight"
        func block(_ s: String) -> String { "transformer.h.\(id.layer!).\(s).\(w)" }
        /// A Conv1D layer: its weight is stored transposed, its bias as is.
        func conv1D(_ s: String) -> HFTensor { id.isBias ? .plain(block(s)) : .conv1D(block(s)) }
        switch id.role {
        case .tokenEmbd: return .plain("transformer.wte.\(w)")
        case .posEmbd: return .plain("transformer.wpe.\(w)")
        case .outputNorm: return .plain("transformer.ln_f.\(w)")
        case .output: return .plain("lm_head.\(w)")
        case .attnNorm: return .plain(block("ln_1"))
        case .attnQ, .attnK, .attnV: return .fusedQKV(block("attn.c_attn"))
        case .attnOutput: return conv1D("attn.c_proj")
        case .ffnNorm: return .plain(block("ln_2"))
        case .ffnUp: return conv1D("mlp.c_fc")
        case .ffnDown: return conv1D("mlp.c_proj")
        case .tokenTypes, .tokenEmbdNorm, .attnQKV, .attnOutNorm, .ffnGate, .layerOutNorm, .cls, .clsOut: return nil
        }
    }

    /// `LlamaForCausalLM` (and the Llama family): `model.layers.N.…`, [out, in] weights as stored.
    private static func llama(_ id: TensorID) -> HFTensor? {
        let w = id.isBias ? "bias" : "weight"
        func block(_ s: String) -> HFTensor { .plain("model.layers.\(id.layer!).\(s).\(w)") }
        switch id.role {
        case .tokenEmbd: return .plain("model.embed_tokens.\(w)")
        case .outputNorm: return .plain("model.norm.\(w)")
        case .output: return .plain("lm_head.\(w)")
        case .attnNorm: return block("input_layernorm")
        case .attnQ: return block("self_attn.q_proj")
        case .attnK: return block("self_attn.k_proj")
        case .attnV: return block("self_attn.v_proj")
        case .attnOutput: return block("self_attn.o_proj")
        case .ffnNorm: return block("post_attention_layernorm")
        case .ffnGate: return block("mlp.gate_proj")
        case .ffnUp: return block("mlp.up_proj")
        case .ffnDown: return block("mlp.down_proj")
        case .posEmbd, .tokenTypes, .tokenEmbdNorm, .attnQKV, .attnOutNorm, .layerOutNorm, .cls, .clsOut: return nil
        }
    }

    /// Hugging Face tensors that carry no weights of the model (buffers, a tied head): importers skip them.
    static func isIgnored(_ name: String, config: ModelConfig) -> Bool {
        if config.tiedEmbeddings, name == form(of: .output, in: config.architecture)?.name { return true }
        switch config.architecture {
        case .gpt2:
            // The causal-mask buffers `[transformer.]h.N.attn.bias` and `.attn.masked_bias`.
            let n = name.hasPrefix("transformer.") ? name.dropFirst("transformer.".count) : Substring(name)
            guard n.hasPrefix("h.") else { return false }
            let rest = n.dropFirst(2)
            guard let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]), l >= 0, String(l) == rest[..<dot] else { return false }
            let tail = rest[rest.index(after: dot)...]
            return tail == "attn.bias" || tail == "attn.masked_bias"
        case .llama:
            return name.hasSuffix("rotary_emb.inv_freq")
        case .bert:
            // The position-id buffer, and the heads sentence embeddings do not use: the pooler
            // (`pooler.dense`, a tanh layer over [CLS] trained for next-sentence prediction) and a
            // masked-LM head (`cls.predictions.…`).
            let n = name.hasPrefix("bert.") ? String(name.dropFirst("bert.".count)) : name
            return n == "embeddings.position_ids" || n.hasPrefix("pooler.") || name.hasPrefix("cls.")
        }
    }
}
