import EdgeFormat
import Foundation

/// Imports a llama.cpp `.gguf` file (v2/v3, little-endian) as a `Checkpoint`: the `{arch}.*`
/// hyper-parameters become a `ModelConfig`, the byte-level BPE vocabulary a `tokenizer.json`
/// document, and every tensor a lazily dequantized `SourceTensor` under its canonical name and in
/// canonical layout.
///
/// Layout fixes applied on load:
/// - llama `attn_q` / `attn_k`: `convert_hf_to_gguf.py` permutes rows per head with
///   `reshape(n_head, 2, head_dim / 2, in).swapaxes(1, 2)`; the inverse restores Hugging Face order
///   (Q with `head_count`, K with `head_count_kv`).
/// - gpt2 `attn_qkv` (weight [3h, h] and bias [3h]): split into `attn_q`, `attn_k`, `attn_v`.
/// - `output.weight` byte-identical to `token_embd.weight` (older gpt2 converts wrote both): dropped,
///   and the embeddings are tied.
public enum GGUFImporter {
    /// Opens and imports `path`.
    /// - Throws: `CheckpointError` naming the file and the key, tensor or offset at fault;
    ///   `FormatError.invalid` from `ModelConfig.validate` for inconsistent sizes.
    public static func load(path: String) throws -> Checkpoint {
        try load(GGUFFile(path: path))
    }

    /// Imports an already parsed GGUF file.
    public static func load(_ g: GGUFFile) throws -> Checkpoint {
        let meta = Metadata(values: g.metadata, file: g.path)
        let archName = try meta.string("general.architecture")
        let arch: ModelConfig.Architecture
        switch archName {
        case "llama": arch = .llama
        case "gpt2": arch = .gpt2
        default: throw CheckpointError.unknownArchitecture(file: g.path, name: archName)
        }
        let tok = try TokenizerJSON.fromGGUF(g.metadata, file: g.path)
        let tiedDetected = outputDuplicatesEmbedding(g)
        let config = try makeConfig(arch: arch, prefix: archName, meta: meta, file: g,
                                    tied: g.tensor(named: TensorID.output.name) == nil || tiedDetected)
        try config.validate(source: g.path)

        var tensors: [SourceTensor] = []
        for t in g.tensors {
            // A name that is not canonical passes through; `checkTensors` reports it as unexpected.
            guard let id = TensorID(name: t.name) else { tensors.append(plain(t, in: g)); continue }
            if id == .output && tiedDetected { continue }
            tensors += try imported(t, id: id, config: config, in: g)
        }
        let ordered = try Checkpoint.checkTensors(tensors, against: config, file: g.path)

        var info: [String: String] = ["gguf.types": g.typeSummary, "gguf.version": String(g.version)]
        if let name = g.metadata["general.name"]?.string { info["general.name"] = name }
        if let pre = g.metadata["tokenizer.ggml.pre"]?.string { info["tokenizer.ggml.pre"] = pre }
        let checked = try Checkpoint.runtimeTokenizer(tok.json, config: config, file: g.path)
        if let w = tok.warning ?? checked.warning { info["tokenizer_warning"] = w }
        return Checkpoint(path: g.path, format: .gguf, config: config, tokenizerJSON: checked.json, tensors: ordered,
                          files: [g.file], sourceMetadata: info)
    }

    // MARK: - Config

    private static func makeConfig(arch: ModelConfig.Architecture, prefix p: String, meta: Metadata, file g: GGUFFile,
                                   tied: Bool) throws -> ModelConfig {
        let hidden = try meta.int("\(p).embedding_length")
        let heads = try meta.int("\(p).attention.head_count")
        let layers = try meta.int("\(p).block_count")
        let ffn = try meta.int("\(p).feed_forward_length")
        let ctx = try meta.int("\(p).context_length")
        let vocab: Int
        if let tokens = g.metadata["tokenizer.ggml.tokens"]?.array {
            vocab = tokens.count
        } else if let v = try meta.optionalInt("\(p).vocab_size") {
            vocab = v
        } else {
            throw CheckpointError.badConfig(file: g.path, field: "tokenizer.ggml.tokens",
                                            why: "is missing, and so is \(p).vocab_size: the vocabulary size is unknown")
        }
        let bos = try meta.optionalInt("tokenizer.ggml.bos_token_id")
        let eos = try meta.optionalInt("tokenizer.ggml.eos_token_id")

        switch arch {
        case .gpt2:
            let eps = try meta.double("\(p).attention.layer_norm_epsilon")
            return ModelConfig(architecture: .gpt2, vocabSize: vocab, hiddenSize: hidden, numLayers: layers,
                               numHeads: heads, numKVHeads: heads, headDim: heads > 0 ? hidden / heads : 0,
                               intermediateSize: ffn, maxPositions: ctx, normEps: eps, ropeTheta: 0,
                               tiedEmbeddings: tied, activation: "gelu_new", bosTokenID: bos, eosTokenID: eos)
        case .bert:
            preconditionFailure("GGUF import: bert is refused before the config is read")
        case .llama:
            let kvHeads = try meta.optionalInt("\(p).attention.head_count_kv") ?? heads
            let eps = try meta.double("\(p).attention.layer_norm_rms_epsilon")
            let theta = try meta.optionalDouble("\(p).rope.freq_base") ?? 10000
            let headDim: Int
            if let k = try meta.optionalInt("\(p).attention.key_length") {
                headDim = k
            } else {
                guard heads > 0, hidden % heads == 0 else {
                    throw CheckpointError.badConfig(file: g.path, field: "\(p).attention.head_count",
                                                    why: "(\(heads)) does not divide \(p).embedding_length (\(hidden)) and \(p).attention.key_length is absent")
                }
                headDim = hidden / heads
            }
            if let v = try meta.optionalInt("\(p).attention.value_length"), v != headDim {
                throw CheckpointError.badConfig(file: g.path, field: "\(p).attention.value_length",
                                                why: "is \(v) but the key length is \(headDim); different K and V head sizes are not supported")
            }
            if let r = try meta.optionalInt("\(p).rope.dimension_count"), r != headDim {
                throw CheckpointError.badConfig(file: g.path, field: "\(p).rope.dimension_count",
                                                why: "is \(r) but the head size is \(headDim); partial rotary embeddings are not supported")
            }
            if let s = g.metadata["\(p).rope.scaling.type"]?.string, s != "none" {
                throw CheckpointError.badConfig(file: g.path, field: "\(p).rope.scaling.type", why: "is '\(s)'; RoPE scaling is not supported")
            }
            return ModelConfig(architecture: .llama, vocabSize: vocab, hiddenSize: hidden, numLayers: layers,
                               numHeads: heads, numKVHeads: kvHeads, headDim: headDim, intermediateSize: ffn,
                               maxPositions: ctx, normEps: eps, ropeTheta: theta, tiedEmbeddings: tied,
                               activation: "silu", bosTokenID: bos, eosTokenID: eos)
        }
    }

    /// Typed access to metadata with `badConfig` errors naming the key.
    private struct Metadata {
        let values: [String: GGUFValue]
        let file: String

        func string(_ key: String) throws -> String {
            guard let v = values[key] else { throw CheckpointError.badConfig(file: file, field: key, why: "is missing") }
            guard let s = v.string else { throw CheckpointError.badConfig(file: file, field: key, why: "is a \(v.typeName), expected a string") }
            return s
        }

        func int(_ key: String) throws -> Int {
            guard let v = try optionalInt(key) else { throw CheckpointError.badConfig(file: file, field: key, why: "is missing") }
            return v
        }

        /// An integer, or a per-layer array of equal integers (per-layer differences are refused).
        func optionalInt(_ key: String) throws -> Int? {
            guard let v = values[key] else { return nil }
            if let i = v.int { return i }
            if let a = v.array, let f = a.first?.int, a.allSatisfy({ $0.int == f }) { return f }
            if let a = v.array, a.allSatisfy({ $0.int != nil }), !a.isEmpty {
                throw CheckpointError.badConfig(file: file, field: key, why: "differs between layers (\(a.compactMap(\.int).prefix(8).map(String.init).joined(separator: ", "))...); per-layer sizes are not supported")
            }
            throw CheckpointError.badConfig(file: file, field: key, why: "is a \(v.typeName), expected an integer")
        }

        func double(_ key: String) throws -> Double {
            guard let v = try optionalDouble(key) else { throw CheckpointError.badConfig(file: file, field: key, why: "is missing") }
            return v
        }

        func optionalDouble(_ key: String) throws -> Double? {
            guard let v = values[key] else { return nil }
            guard let d = v.double else { throw CheckpointError.badConfig(file: file, field: key, why: "is a \(v.typeName), expected a number") }
            return d
        }
    }

    // MARK: - Tensors

    /// The canonical tensors GGUF tensor `t` (named `id`) provides, in canonical layout.
    private static func imported(_ t: GGUFTensorInfo, id: TensorID, config: ModelConfig, in g: GGUFFile) throws -> [SourceTensor] {
        switch id.role {
        case .attnQ, .attnK:
            // Only llama's Q/K weights carry the converter's per-head row permutation.
            guard config.architecture == .llama, !id.isBias else { return [plain(t, in: g)] }
            return [unpermuted(t, heads: id.role == .attnQ ? config.numHeads : config.numKVHeads, in: g)]
        case .attnQKV:
            // gpt2 stores Q|K|V fused; elsewhere the tensor is unexpected (reported by `checkTensors`).
            guard config.architecture == .gpt2 else { return [plain(t, in: g)] }
            return try splitQKV(t, id: id, config: config, in: g)
        case .tokenEmbd, .posEmbd, .tokenTypes, .tokenEmbdNorm, .attnNorm, .attnV, .attnOutput, .attnOutNorm,
             .ffnNorm, .ffnGate, .ffnUp, .ffnDown, .layerOutNorm, .outputNorm, .output, .cls, .clsOut:
            // Stored as canonical; a role the config does not have is reported by `checkTensors`.
            return [plain(t, in: g)]
        }
    }

    /// The tensor as stored, under its own name.
    private static func plain(_ t: GGUFTensorInfo, in g: GGUFFile) -> SourceTensor {
        SourceTensor(name: t.name, sourceName: t.name, file: g.path, shape: t.shape, storage: t.type.name,
                     storedBytes: t.byteCount) { try g.floats(t) }
    }

    /// A llama Q or K weight with the per-head row permutation of `convert_hf_to_gguf.py` undone:
    /// canonical row `h*d + s*d/2 + i` is GGUF row `h*d + 2*i + s` (d = rows / heads, s in {0, 1}).
    private static func unpermuted(_ t: GGUFTensorInfo, heads: Int, in g: GGUFFile) -> SourceTensor {
        plain(t, in: g).with { [path = g.path] in
            let rows = t.rowCount, cols = t.rowLength
            guard heads > 0, rows % (2 * heads) == 0 else {
                throw CheckpointError.badOffsets(file: path, tensor: t.name,
                                                 why: "\(rows) rows cannot be split into \(heads) heads of even size to undo the Q/K permutation")
            }
            let src = try g.floats(t)
            let d = rows / heads, halfD = d / 2
            return [Float](unsafeUninitializedCapacity: src.count) { dst, n in
                src.withUnsafeBufferPointer { s in
                    for h in 0 ..< heads {
                        for sIdx in 0 ..< 2 {
                            for i in 0 ..< halfD {
                                let to = (h * d + sIdx * halfD + i) * cols, from = (h * d + 2 * i + sIdx) * cols
                                UnsafeMutableRawPointer(dst.baseAddress! + to)
                                    .copyMemory(from: s.baseAddress! + from, byteCount: cols * MemoryLayout<Float>.stride)
                            }
                        }
                    }
                }
                n = src.count
            }
        }
    }

    /// gpt2's fused `attn_qkv` weight ([q + 2 kv, h]) or bias ([q + 2 kv]) as three canonical tensors.
    private static func splitQKV(_ t: GGUFTensorInfo, id: TensorID, config: ModelConfig, in g: GGUFFile) throws -> [SourceTensor] {
        let q = config.numHeads * config.headDim, kv = config.numKVHeads * config.headDim
        let isWeight = !id.isBias
        let expected = isWeight ? [q + 2 * kv, config.hiddenSize] : [q + 2 * kv]
        guard t.shape == expected else {
            throw CheckpointError.shapeMismatch(file: g.path, tensor: t.name, expected: expected, got: t.shape)
        }
        let parts: [(TensorRole, Range<Int>)] = [(.attnQ, 0 ..< q), (.attnK, q ..< q + kv), (.attnV, q + kv ..< q + 2 * kv)]
        return parts.map { role, range in
            let shape = isWeight ? [range.count, config.hiddenSize] : [range.count]
            let part = TensorID(layer: id.layer, role, bias: id.isBias)
            return SourceTensor(name: part.name, sourceName: t.name, file: g.path, shape: shape,
                                storage: t.type.name, storedBytes: t.byteCount / (q + 2 * kv) * range.count) {
                if isWeight { return try g.floats(t, rows: range) }
                return Array(try g.floats(t)[range])
            }
        }
    }

    /// Whether `output.weight` is a byte-for-byte copy of `token_embd.weight` (tied weights stored twice).
    private static func outputDuplicatesEmbedding(_ g: GGUFFile) -> Bool {
        guard let o = g.tensor(named: TensorID.output.name), let e = g.tensor(named: TensorID.tokenEmbd.name),
              o.type == e.type, o.ne == e.ne else { return false }
        let a = g.data(of: o), b = g.data(of: e)
        return a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }
}
