import EdgeFormat
import Foundation

/// Number type of exported weights.
public enum ExportDType: String, Sendable, CaseIterable {
    case f32, f16

    /// The safetensors dtype written.
    public var safetensors: SafetensorsDType { self == .f32 ? .f32 : .f16 }

    /// The `torch_dtype` recorded in `config.json`.
    public var torchName: String { self == .f32 ? "float32" : "float16" }
}

/// Writes a checkpoint as a Hugging Face folder that transformers' `from_pretrained` reads:
/// `model.safetensors` under the names `save_pretrained` produces (GPT-2: `transformer.`-prefixed,
/// Q/K/V fused back into `c_attn` and Conv1D weights transposed back to [in, out]; Llama:
/// `model.layers.N...`, Q/K rows in Hugging Face order as stored), `config.json`, and
/// `tokenizer.json` when the checkpoint has one. Each file is written atomically; tensors are
/// streamed one at a time, so the model is never wholly in memory.
public enum HFExporter {
    /// Exports `ckpt` into `folder` (created if missing).
    /// - Parameters:
    ///   - dtype: f32, or f16 (round to nearest even; a value too large for f16 is an error).
    ///   - progress: called after each tensor with (tensors written, total).
    /// - Throws: `FormatError.io` when `folder` is the input's folder, holds a shard index or a
    ///   stale `tokenizer.json` that would be mixed with the export, or cannot be written;
    ///   `CheckpointError.badConfig` when the config has no Hugging Face form (per-layer sizes);
    ///   the checkpoint's errors for bad weights (e.g. `.nonFinite`).
    public static func export(_ ckpt: Checkpoint, to folder: String, dtype: ExportDType,
                              progress: ((Int, Int) -> Void)? = nil) throws {
        let config = try HFConfig.encode(ckpt.config, torchDType: dtype.torchName)
        let out = try prepare(folder: folder, for: ckpt)
        let plan = try tensors(of: ckpt)
        let inputs = ckpt.files.map(\.path) + [ckpt.path]
        let byName = Dictionary(plan.map { ($0.name, $0.values) }, uniquingKeysWith: { a, _ in a })
        var done = 0
        try SafetensorsWriter.write(
            to: out.appendingPathComponent("model.safetensors").path,
            tensors: plan.map { SafetensorsWriter.Tensor(name: $0.name, dtype: dtype.safetensors, shape: $0.shape) },
            metadata: ["format": "pt"], protecting: inputs
        ) { t in
            let v = try byName[t.name]!()  // every name written comes from `plan`
            done += 1
            progress?(done, plan.count)
            return v
        }
        try write(config, to: out.appendingPathComponent("config.json").path, protecting: inputs)
        if let tokenizer = ckpt.tokenizerJSON {
            try write(tokenizer, to: out.appendingPathComponent("tokenizer.json").path, protecting: inputs)
        }
    }

    /// Creates `folder` if needed and refuses folders whose contents would mix with the export.
    private static func prepare(folder: String, for ckpt: Checkpoint) throws -> URL {
        let fm = FileManager.default
        let out = URL(fileURLWithPath: folder).standardizedFileURL
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw FormatError.io(file: folder, what: "exists and is not a folder") }
        } else {
            do {
                try fm.createDirectory(at: out, withIntermediateDirectories: true)
            } catch {
                throw FormatError.io(file: folder, what: "cannot create the folder: \(error.localizedDescription)")
            }
        }
        let resolved = out.resolvingSymlinksInPath().path
        var inputFolders = ckpt.files.map { URL(fileURLWithPath: $0.path).deletingLastPathComponent() }
        inputFolders.append(URL(fileURLWithPath: ckpt.path))
        if inputFolders.contains(where: { $0.standardizedFileURL.resolvingSymlinksInPath().path == resolved }) {
            throw FormatError.io(file: folder, what: "refusing to export into the input checkpoint's folder")
        }
        if fm.fileExists(atPath: out.appendingPathComponent("model.safetensors.index.json").path) {
            throw FormatError.io(file: folder, what: "holds a model.safetensors.index.json, which would take precedence over the exported model.safetensors")
        }
        if ckpt.tokenizerJSON == nil, fm.fileExists(atPath: out.appendingPathComponent("tokenizer.json").path) {
            throw FormatError.io(file: folder, what: "holds a tokenizer.json but the checkpoint has no tokenizer; it would be taken for this model's")
        }
        return out
    }

    private static func write(_ data: Data, to path: String, protecting inputs: [String]) throws {
        let out = try AtomicOutput(destination: path, protecting: inputs)
        try out.write(data)
        try out.commit()
    }

    /// One tensor of the export: Hugging Face name, shape, and how to produce its values.
    struct Planned {
        let name: String
        let shape: [Int]
        let values: () throws -> [Float]
    }

    /// The Hugging Face tensors of `ckpt`, each computed from canonical tensors on demand.
    /// - Throws: the shape/missing-tensor errors of `Checkpoint.checkTensors` when the tensors do not fit the config.
    static func tensors(of ckpt: Checkpoint) throws -> [Planned] {
        _ = try Checkpoint.checkTensors(ckpt.tensors, against: ckpt.config, file: ckpt.path)
        var canonical: [String: SourceTensor] = [:]
        for t in ckpt.tensors { canonical[t.name] = t }
        func source(_ name: String) throws -> SourceTensor {
            guard let t = canonical[name] else { throw CheckpointError.missingTensor(file: ckpt.path, tensor: name) }
            return t
        }
        /// The canonical tensor under a Hugging Face name, unchanged.
        func same(_ hf: String, _ name: String) throws -> Planned {
            let t = try source(name)
            return Planned(name: hf, shape: t.shape) { try t.floats() }
        }
        /// A canonical [out, in] weight as a GPT-2 Conv1D [in, out].
        func conv1D(_ hf: String, _ name: String) throws -> Planned {
            let t = try source(name)
            return Planned(name: hf, shape: [t.shape[1], t.shape[0]]) {
                HFLayout.transpose(try t.floats(), rows: t.shape[0], cols: t.shape[1])
            }
        }

        let c = ckpt.config
        var plan: [Planned] = []
        switch c.architecture {
        case .gpt2:
            let p = "transformer."
            plan += [try same(p + "wte.weight", TensorName.tokenEmbedding), try same(p + "wpe.weight", TensorName.positionEmbedding),
                     try same(p + "ln_f.weight", TensorName.outputNorm + ".weight"),
                     try same(p + "ln_f.bias", TensorName.outputNorm + ".bias")]
            for i in 0 ..< c.numLayers {
                let b = TensorName.block(i), h = p + "h.\(i)."
                let q = try source(b + "attn_q.weight"), k = try source(b + "attn_k.weight"), v = try source(b + "attn_v.weight")
                let qb = try source(b + "attn_q.bias"), kb = try source(b + "attn_k.bias"), vb = try source(b + "attn_v.bias")
                let hidden = c.hiddenSize, fused = q.shape[0] + k.shape[0] + v.shape[0]
                plan += [
                    try same(h + "ln_1.weight", b + "attn_norm.weight"), try same(h + "ln_1.bias", b + "attn_norm.bias"),
                    Planned(name: h + "attn.c_attn.weight", shape: [hidden, fused]) {
                        fuseQKV([try q.floats(), try k.floats(), try v.floats()], widths: [q.shape[0], k.shape[0], v.shape[0]], hidden: hidden)
                    },
                    Planned(name: h + "attn.c_attn.bias", shape: [fused]) { try qb.floats() + kb.floats() + vb.floats() },
                    try conv1D(h + "attn.c_proj.weight", b + "attn_output.weight"), try same(h + "attn.c_proj.bias", b + "attn_output.bias"),
                    try same(h + "ln_2.weight", b + "ffn_norm.weight"), try same(h + "ln_2.bias", b + "ffn_norm.bias"),
                    try conv1D(h + "mlp.c_fc.weight", b + "ffn_up.weight"), try same(h + "mlp.c_fc.bias", b + "ffn_up.bias"),
                    try conv1D(h + "mlp.c_proj.weight", b + "ffn_down.weight"), try same(h + "mlp.c_proj.bias", b + "ffn_down.bias"),
                ]
            }
        case .llama:
            plan += [try same("model.embed_tokens.weight", TensorName.tokenEmbedding),
                     try same("model.norm.weight", TensorName.outputNorm + ".weight")]
            let roles = [
                ("input_layernorm.weight", "attn_norm.weight"),
                ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
                ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight"),
                ("post_attention_layernorm.weight", "ffn_norm.weight"),
                ("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"),
                ("mlp.down_proj.weight", "ffn_down.weight"),
            ]
            for i in 0 ..< c.numLayers {
                for (hf, name) in roles { plan.append(try same("model.layers.\(i)." + hf, TensorName.block(i) + name)) }
            }
        }
        if !c.tiedEmbeddings { plan.append(try same("lm_head.weight", TensorName.output)) }
        return plan
    }

    /// GPT-2's `c_attn` [hidden, q + k + v] (Conv1D layout) from canonical Q, K, V ([width, hidden] each).
    static func fuseQKV(_ parts: [[Float]], widths: [Int], hidden: Int) -> [Float] {
        let fused = widths.reduce(0, +)
        var out = [Float](repeating: 0, count: hidden * fused)
        var lo = 0
        for (part, width) in zip(parts, widths) {
            let t = HFLayout.transpose(part, rows: width, cols: hidden)  // [hidden, width]
            for r in 0 ..< hidden {
                out.replaceSubrange(r * fused + lo ..< r * fused + lo + width, with: t[r * width ..< (r + 1) * width])
            }
            lo += width
        }
        return out
    }
}
