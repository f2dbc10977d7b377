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
        try prepare(folder: folder, for: ckpt)
        let plan = try tensors(of: ckpt)
        // Every file is written into a staging folder first and moved into place only when all of
        // them are complete: a tensor that fails to decode leaves no folder and no partial files.
        let staging = try AtomicFolder(destination: folder)
        let out = URL(fileURLWithPath: staging.stagingPath)
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
        if let pooling = ckpt.config.pooling {  // an encoder: sentence-transformers' module files
            for (path, data) in try SentenceTransformers.files(for: pooling, hidden: ckpt.config.hiddenSize) {
                let url = out.appendingPathComponent(path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try write(data, to: url.path, protecting: inputs)
            }
        }
        try staging.commit()
    }

    /// Refuses folders whose contents would mix with the export (an absent folder is created by the commit).
    private static func prepare(folder: String, for ckpt: Checkpoint) throws {
        let fm = FileManager.default
        let out = URL(fileURLWithPath: folder).standardizedFileURL
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw FormatError.io(file: folder, what: "exists and is not a folder") }
        } else {
            return
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
    }

    private static func write(_ data: Data, to path: String, protecting inputs: [String]) throws {
        let out = try AtomicOutput(destination: path, protecting: inputs)
        try data.withUnsafeBytes { try out.write($0) }
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
        func source(_ id: TensorID) throws -> SourceTensor {
            guard let t = canonical[id.name] else { throw CheckpointError.missingTensor(file: ckpt.path, tensor: id.name) }
            return t
        }

        let c = ckpt.config
        var plan: [Planned] = []
        for spec in c.schema() {
            let id = spec.id
            guard let form = HFTensorNames.form(of: id, in: c.architecture) else {
                throw CheckpointError.badConfig(file: ckpt.path, field: "architecture",
                                                why: "(\(c.architecture.rawValue)) has no Hugging Face name for tensor '\(id.name)'")
            }
            switch form {
            case let .plain(hf):
                // The canonical tensor under a Hugging Face name, unchanged.
                let t = try source(id)
                plan.append(Planned(name: hf, shape: t.shape) { try t.floats() })
            case let .conv1D(hf):
                // A canonical [out, in] weight as a GPT-2 Conv1D [in, out].
                let t = try source(id)
                plan.append(Planned(name: hf, shape: [t.shape[1], t.shape[0]]) {
                    HFLayout.transpose(try t.floats(), rows: t.shape[0], cols: t.shape[1])
                })
            case let .fusedQKV(hf):
                // Written once, with the Q part; K and V go into the same tensor.
                guard id.role == .attnQ else { continue }
                let parts = try [TensorRole.attnQ, .attnK, .attnV].map { try source(TensorID(layer: id.layer, $0, bias: id.isBias)) }
                let widths = parts.map { $0.shape[0] }, fused = widths.reduce(0, +)
                if id.isBias {
                    plan.append(Planned(name: hf, shape: [fused]) { try parts.flatMap { try $0.floats() } })
                } else {
                    let hidden = c.hiddenSize
                    plan.append(Planned(name: hf, shape: [hidden, fused]) {
                        fuseQKV(try parts.map { try $0.floats() }, widths: widths, hidden: hidden)
                    })
                }
            }
        }
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
