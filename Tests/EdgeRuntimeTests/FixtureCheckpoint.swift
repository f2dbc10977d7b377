import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation
import XCTest

/// The package root, found by walking up from this file to Package.swift.
let packageRoot: URL = {
    var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while dir.path != "/" {
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: ".")
}()

/// A Hugging Face fixture folder read for the runtime tests without the Checkpoint module: a tiny
/// safetensors parser (F32/F16/BF16, every *.safetensors in the folder) and the HF -> canonical
/// name mapping of GPT2LMHeadModel and LlamaForCausalLM.
struct FixtureCheckpoint {
    var config: ModelConfig
    /// Canonical name -> (shape, values).
    var tensors: [String: (shape: [Int], values: [Float])]
    var tokenizerJSON: Data

    struct Failure: Error, CustomStringConvertible { var description: String }

    init(_ name: String) throws {
        let folder = packageRoot.appendingPathComponent("Fixtures").appendingPathComponent(name)
        guard let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("config.json"))) as? [String: Any] else {
            throw Failure(description: "\(name)/config.json is not an object")
        }
        var raw: [String: (shape: [Int], values: [Float])] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".safetensors") {
            try FixtureCheckpoint.readSafetensors(folder.appendingPathComponent(file), into: &raw)
        }
        tokenizerJSON = try Data(contentsOf: folder.appendingPathComponent("tokenizer.json"))
        func int(_ k: String) -> Int? { cfg[k] as? Int }
        func double(_ k: String) -> Double? { (cfg[k] as? NSNumber)?.doubleValue }
        let tied = (cfg["tie_word_embeddings"] as? Bool) ?? true
        if cfg["model_type"] as? String == "gpt2" {
            let h = int("n_embd")!, nh = int("n_head")!
            config = ModelConfig(architecture: .gpt2, vocabSize: int("vocab_size")!, hiddenSize: h, numLayers: int("n_layer")!,
                                 numHeads: nh, numKVHeads: nh, headDim: h / nh, intermediateSize: int("n_inner") ?? 4 * h,
                                 maxPositions: int("n_positions")!, normEps: double("layer_norm_epsilon")!, ropeTheta: 0,
                                 tiedEmbeddings: tied, activation: "gelu_new", bosTokenID: int("bos_token_id"), eosTokenID: int("eos_token_id"))
            tensors = try FixtureCheckpoint.mapGPT2(raw, config)
        } else {
            let h = int("hidden_size")!, nh = int("num_attention_heads")!
            config = ModelConfig(architecture: .llama, vocabSize: int("vocab_size")!, hiddenSize: h, numLayers: int("num_hidden_layers")!,
                                 numHeads: nh, numKVHeads: int("num_key_value_heads") ?? nh, headDim: int("head_dim") ?? h / nh,
                                 intermediateSize: int("intermediate_size")!, maxPositions: int("max_position_embeddings")!,
                                 normEps: double("rms_norm_eps")!, ropeTheta: double("rope_theta") ?? 10000, tiedEmbeddings: tied,
                                 activation: "silu", bosTokenID: int("bos_token_id"), eosTokenID: int("eos_token_id"))
            tensors = try FixtureCheckpoint.mapLlama(raw, config)
        }
    }

    /// The tensors as in-memory float sources.
    var floatSources: [String: WeightSource] {
        tensors.mapValues { .floats($0.values, shape: $0.shape) }
    }

    /// Writes the model as an f32 `.edge` file (tokenizer blob included) and returns its path.
    func writeEdge(to dir: URL, name: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        let prov = Provenance(sourceSHA256: String(repeating: "0", count: 64), sourceFormat: "safetensors")
        let w = try EdgeWriter(path: path, config: config, provenance: prov)
        for (n, shape) in config.expectedTensors() {
            try w.add(.f32(name: n, shape: shape, values: tensors[n]!.values))
        }
        try w.addBlob(name: "tokenizer.json", bytes: tokenizerJSON)
        try w.finish()
        return path
    }

    static func readSafetensors(_ url: URL, into out: inout [String: (shape: [Int], values: [Float])]) throws {
        let data = try Data(contentsOf: url)
        let bytes = [UInt8](data)
        var n = 0
        for i in 0 ..< 8 { n |= Int(bytes[i]) << (8 * i) }
        guard let header = try JSONSerialization.jsonObject(with: Data(bytes[8 ..< 8 + n])) as? [String: Any] else {
            throw Failure(description: "\(url.lastPathComponent): header is not an object")
        }
        let base = 8 + n
        for (name, any) in header where name != "__metadata__" {
            guard let info = any as? [String: Any], let dtype = info["dtype"] as? String, let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int] else { throw Failure(description: "\(name): bad header entry") }
            guard ["F32", "F16", "BF16"].contains(dtype) else { throw Failure(description: "\(name): dtype \(dtype)") }
            let count = shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            bytes.withUnsafeBytes { p in
                let src = p.baseAddress! + base + offsets[0]
                values.withUnsafeMutableBufferPointer { dst in
                    switch dtype {
                    case "F32": UnsafeMutableRawBufferPointer(dst).copyMemory(from: UnsafeRawBufferPointer(start: src, count: count * 4))
                    case "F16": edge_f16_to_f32_row(src, dst.baseAddress, count)
                    default: edge_bf16_to_f32_row(src, dst.baseAddress, count)
                    }
                }
            }
            out[name] = (shape, values)
        }
    }

    /// [rows, cols] -> [cols, rows].
    static func transpose(_ v: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: v.count)
        for r in 0 ..< rows { for c in 0 ..< cols { out[c * rows + r] = v[r * cols + c] } }
        return out
    }

    static func mapGPT2(_ raw: [String: (shape: [Int], values: [Float])], _ c: ModelConfig) throws -> [String: (shape: [Int], values: [Float])] {
        func get(_ n: String) throws -> (shape: [Int], values: [Float]) {
            guard let t = raw["transformer." + n] ?? raw[n] else { throw Failure(description: "missing \(n)") }
            return t
        }
        /// Conv1D weight [in, out] -> [out, in].
        func conv(_ n: String) throws -> (shape: [Int], values: [Float]) {
            let t = try get(n)
            return ([t.shape[1], t.shape[0]], transpose(t.values, rows: t.shape[0], cols: t.shape[1]))
        }
        let h = c.hiddenSize
        var out: [String: (shape: [Int], values: [Float])] = [
            TensorName.tokenEmbedding: try get("wte.weight"), TensorName.positionEmbedding: try get("wpe.weight"),
            "output_norm.weight": try get("ln_f.weight"), "output_norm.bias": try get("ln_f.bias"),
        ]
        for i in 0 ..< c.numLayers {
            let s = "h.\(i).", b = TensorName.block(i)
            out[b + "attn_norm.weight"] = try get(s + "ln_1.weight")
            out[b + "attn_norm.bias"] = try get(s + "ln_1.bias")
            let qkv = try conv(s + "attn.c_attn.weight"), qkvBias = try get(s + "attn.c_attn.bias")
            for (j, part) in ["q", "k", "v"].enumerated() {
                out[b + "attn_\(part).weight"] = ([h, h], Array(qkv.values[j * h * h ..< (j + 1) * h * h]))
                out[b + "attn_\(part).bias"] = ([h], Array(qkvBias.values[j * h ..< (j + 1) * h]))
            }
            out[b + "attn_output.weight"] = try conv(s + "attn.c_proj.weight")
            out[b + "attn_output.bias"] = try get(s + "attn.c_proj.bias")
            out[b + "ffn_norm.weight"] = try get(s + "ln_2.weight")
            out[b + "ffn_norm.bias"] = try get(s + "ln_2.bias")
            out[b + "ffn_up.weight"] = try conv(s + "mlp.c_fc.weight")
            out[b + "ffn_up.bias"] = try get(s + "mlp.c_fc.bias")
            out[b + "ffn_down.weight"] = try conv(s + "mlp.c_proj.weight")
            out[b + "ffn_down.bias"] = try get(s + "mlp.c_proj.bias")
        }
        return out
    }

    static func mapLlama(_ raw: [String: (shape: [Int], values: [Float])], _ c: ModelConfig) throws -> [String: (shape: [Int], values: [Float])] {
        func get(_ n: String) throws -> (shape: [Int], values: [Float]) {
            guard let t = raw[n] else { throw Failure(description: "missing \(n)") }
            return t
        }
        var out: [String: (shape: [Int], values: [Float])] = [
            TensorName.tokenEmbedding: try get("model.embed_tokens.weight"), "output_norm.weight": try get("model.norm.weight"),
        ]
        if !c.tiedEmbeddings { out[TensorName.output] = try get("lm_head.weight") }
        let names = ["attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight",
                     "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
                     "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
                     "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
                     "ffn_down.weight": "mlp.down_proj.weight"]
        for i in 0 ..< c.numLayers {
            for (canonical, hf) in names { out[TensorName.block(i) + canonical] = try get("model.layers.\(i).\(hf)") }
        }
        return out
    }
}

/// Logits of `tokens` from scripts/reference_forward.py (numpy, float64) for a fixture folder.
func referenceLogits(_ fixture: String, _ tokens: [Int32]) throws -> [[Double]] {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(fixture)-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: out) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", packageRoot.appendingPathComponent("scripts/reference_forward.py").path,
                   packageRoot.appendingPathComponent("Fixtures/\(fixture)").path,
                   "--tokens", tokens.map(String.init).joined(separator: ","), "--out", out.path]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw FixtureCheckpoint.Failure(description: "reference_forward.py exited with \(p.terminationStatus)") }
    let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any]
    guard let rows = doc?["logits"] as? [[Double]] else { throw FixtureCheckpoint.Failure(description: "reference output has no logits") }
    return rows
}

/// max |a - b| / max |b|: the error relative to the reference's scale.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var diff = 0.0, scale = 0.0
    for (x, y) in zip(a, b) {
        diff = max(diff, abs(Double(x) - y))
        scale = max(scale, abs(y))
    }
    return scale == 0 ? diff : diff / scale
}

/// A fresh temporary folder, removed by the test case's teardown block.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rt-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

/// `relativeError` against a float32 reference.
func relativeError(_ a: [Float], _ b: [Float]) -> Double { relativeError(a, b.map(Double.init)) }
