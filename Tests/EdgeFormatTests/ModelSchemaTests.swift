@testable import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// The typed schema: ids round-trip with canonical names, the schema lists exactly the tensors the
/// fixtures hold (names, shapes, order), and the generic block binding covers every tensor once.
final class ModelSchemaTests: XCTestCase {
    // MARK: Configs

    /// The canonical configs of the safetensors fixtures, with the tensors (name, shape, in order)
    /// that `scripts/` computed for them in Python, independently of this code.
    private func fixtures() throws -> [(name: String, config: ModelConfig, tensors: [(String, [Int])])] {
        let dir = packageRoot().appendingPathComponent("Fixtures/safetensors-expected")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertEqual(files.count, 4, "the four safetensors fixtures")
        return try files.map { f in
            let data = try Data(contentsOf: dir.appendingPathComponent(f))
            let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let configJSON = try JSONSerialization.data(withJSONObject: try XCTUnwrap(root["config"]))
            let config = try JSONDecoder().decode(ModelConfig.self, from: configJSON)
            let tensors = try XCTUnwrap(root["tensors"] as? [[String: Any]]).map { t in
                (t["name"] as? String ?? "", (t["shape"] as? [Int]) ?? [])
            }
            return (f, config, tensors)
        }
    }

    /// A sweep of configs: every architecture, tied and untied (decoders), 1 and 3 layers, uniform and per-layer sizes.
    private var sweep: [ModelConfig] {
        var out: [ModelConfig] = []
        for arch in ModelConfig.Architecture.allCases {
            for tied in arch == .bert ? [false] : [true, false] {
                for layers in [1, 3] {
                    let gpt2 = arch == .gpt2, bert = arch == .bert, fullKV = gpt2 || bert
                    var c = ModelConfig(architecture: arch, vocabSize: 40, hiddenSize: 16, numLayers: layers, numHeads: 4,
                                        numKVHeads: fullKV ? 4 : 2, headDim: 4, intermediateSize: 24, maxPositions: 32,
                                        normEps: 1e-5, ropeTheta: arch == .llama ? 10000 : 0, tiedEmbeddings: tied,
                                        activation: gpt2 ? "gelu_new" : bert ? "gelu" : "silu", bosTokenID: bert ? nil : 1,
                                        eosTokenID: bert ? nil : 2, typeVocabSize: bert ? 2 : nil,
                                        pooling: bert ? .init(mode: .cls, normalize: false) : nil)
                    out.append(c)
                    c.layers = (0 ..< layers).map { l in
                        ModelConfig.LayerSizes(numHeads: fullKV ? 4 - l % 2 : 4 - 2 * (l % 2), numKVHeads: fullKV ? 4 - l % 2 : 2 - l % 2,
                                               intermediateSize: 24 - 5 * l)
                    }
                    out.append(c)
                }
            }
        }
        return out
    }

    /// `expectedTensors()` as it was written before the schema (strings assembled by hand), frozen
    /// here as the reference the schema must reproduce.
    private func legacyExpectedTensors(_ c: ModelConfig) -> [(String, [Int])] {
        var out: [(String, [Int])] = []
        let h = c.hiddenSize
        out.append(("token_embd.weight", [c.vocabSize, h]))
        if c.architecture == .gpt2 { out.append(("position_embd.weight", [c.maxPositions, h])) }
        for i in 0 ..< c.numLayers {
            let s = c.sizes(layer: i)
            let q = s.numHeads * c.headDim, kv = s.numKVHeads * c.headDim, f = s.intermediateSize
            let b = "blk.\(i)."
            switch c.architecture {
            case .gpt2:
                out += [(b + "attn_norm.weight", [h]), (b + "attn_norm.bias", [h]),
                        (b + "attn_q.weight", [q, h]), (b + "attn_q.bias", [q]),
                        (b + "attn_k.weight", [kv, h]), (b + "attn_k.bias", [kv]),
                        (b + "attn_v.weight", [kv, h]), (b + "attn_v.bias", [kv]),
                        (b + "attn_output.weight", [h, q]), (b + "attn_output.bias", [h]),
                        (b + "ffn_norm.weight", [h]), (b + "ffn_norm.bias", [h]),
                        (b + "ffn_up.weight", [f, h]), (b + "ffn_up.bias", [f]),
                        (b + "ffn_down.weight", [h, f]), (b + "ffn_down.bias", [h])]
            case .llama:
                out += [(b + "attn_norm.weight", [h]),
                        (b + "attn_q.weight", [q, h]), (b + "attn_k.weight", [kv, h]),
                        (b + "attn_v.weight", [kv, h]), (b + "attn_output.weight", [h, q]),
                        (b + "ffn_norm.weight", [h]),
                        (b + "ffn_gate.weight", [f, h]), (b + "ffn_up.weight", [f, h]),
                        (b + "ffn_down.weight", [h, f])]
            case .bert:
                preconditionFailure("the legacy names predate encoders")
            }
        }
        out.append(("output_norm.weight", [h]))
        if c.architecture == .gpt2 { out.append(("output_norm.bias", [h])) }
        if !c.tiedEmbeddings { out.append(("output.weight", [c.vocabSize, h])) }
        return out
    }

    /// An encoder's schema: embeddings (+ token types, + their norm), post-norm blocks with biases, no head.
    func testBertSchema() throws {
        let c = ModelConfig(architecture: .bert, vocabSize: 100, hiddenSize: 8, numLayers: 2, numHeads: 2, numKVHeads: 2, headDim: 4,
                            intermediateSize: 16, maxPositions: 32, normEps: 1e-12, ropeTheta: 0, tiedEmbeddings: false,
                            activation: "gelu", bosTokenID: nil, eosTokenID: nil, typeVocabSize: 2,
                            pooling: .init(mode: .mean, normalize: true, maxTokens: 16))
        try c.validate(source: "t")
        let names = c.schema().map(\.name)
        XCTAssertEqual(Array(names.prefix(5)), ["token_embd.weight", "position_embd.weight", "token_types.weight",
                                                "token_embd_norm.weight", "token_embd_norm.bias"])
        XCTAssertEqual(Array(names[5 ..< 21]), ["attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down",
                                                "layer_output_norm"].flatMap { ["blk.0.\($0).weight", "blk.0.\($0).bias"] })
        XCTAssertEqual(names.count, 5 + 2 * 16)
        XCTAssertEqual(c.schema()[name: "token_types.weight"]?.shape, [2, 8])
        XCTAssertEqual(c.schema()[name: "blk.1.ffn_down.weight"]?.shape, [8, 16])
        // Pooling round-trips through JSON; decoders refuse encoder fields and encoders need them.
        let decoded = try JSONValue(encoding: c).decode(ModelConfig.self)
        XCTAssertEqual(decoded, c)
        var noPooling = c
        noPooling.pooling = nil
        XCTAssertThrowsError(try noPooling.validate(source: "t")) { XCTAssertTrue("\($0)".contains("pooling"), "\($0)") }
        var badTokens = c
        badTokens.pooling?.maxTokens = 64
        XCTAssertThrowsError(try badTokens.validate(source: "t")) { XCTAssertTrue("\($0)".contains("max_tokens"), "\($0)") }
    }

    /// The kind rule as it was before the schema (name heuristics), for canonical names.
    private func legacyKind(_ name: String) -> TensorKind {
        if name == "token_embd.weight" || name == "position_embd.weight" || name == "token_types.weight" { return .embedding }
        if name == "output.weight" { return .output }
        if name.hasSuffix(".bias") { return .bias }
        if name.contains("norm") { return .norm }
        return .linear
    }

    // MARK: Schema

    func testSchemaMatchesTheFixturesTensorsInOrder() throws {
        for (file, config, tensors) in try fixtures() {
            let schema = config.schema()
            XCTAssertEqual(schema.map(\.name), tensors.map(\.0), file)
            XCTAssertEqual(schema.map(\.shape), tensors.map(\.1), file)
            XCTAssertEqual(config.expectedTensors().map(\.name), tensors.map(\.0), file)
        }
    }

    func testSchemaMatchesLegacyExpectedTensors() throws {
        let configs = try fixtures().map(\.config) + sweep.filter { !$0.isEncoder }
        XCTAssertEqual(configs.count, 20)
        for c in configs {
            let legacy = legacyExpectedTensors(c), schema = c.schema()
            let label = "\(c.architecture) layers \(c.numLayers) tied \(c.tiedEmbeddings) per-layer \(c.layers != nil)"
            XCTAssertEqual(schema.map(\.name), legacy.map(\.0), label)
            XCTAssertEqual(schema.map(\.shape), legacy.map(\.1), label)
            XCTAssertEqual(schema.map(\.kind), legacy.map { legacyKind($0.0) }, label)
            XCTAssertEqual(c.expectedTensors().map(\.shape), legacy.map(\.1), label)
        }
    }

    func testSchemaLookups() {
        let c = sweep.first { $0.architecture == .llama && !$0.tiedEmbeddings && $0.layers != nil && $0.numLayers == 3 }!
        let schema = c.schema()
        XCTAssertEqual(schema.shape(of: TensorID(layer: 1, .attnQ)), [8, 16], "layer 1 keeps 2 heads of 4")
        XCTAssertEqual(schema.shape(of: TensorID(layer: 1, .ffnDown)), [16, 19])
        XCTAssertNil(schema.shape(of: TensorID(layer: 3, .attnQ)), "no layer 3")
        XCTAssertNil(schema[TensorID(layer: 0, .attnQ, bias: true)], "llama has no biases")
        XCTAssertNil(schema[TensorID(.posEmbd)], "llama has no learned positions")
        XCTAssertTrue(schema.contains(.output))
        XCTAssertEqual(schema[name: "blk.2.ffn_gate.weight"]?.id, TensorID(layer: 2, .ffnGate))
        XCTAssertNil(schema[name: "blk.2.ffn_gate.bias"])
        XCTAssertNil(schema[name: "not a tensor"])
        XCTAssertFalse(c.schema().contains(where: { $0.id.role == .attnQKV }), "the fused QKV is a source role only")
    }

    // MARK: Names

    func testEveryTensorOfEveryConfigRoundTrips() throws {
        for c in try fixtures().map(\.config) + sweep {
            for spec in c.schema() {
                XCTAssertEqual(TensorID(name: spec.name), spec.id, spec.name)
                XCTAssertEqual(spec.id.name, spec.name)
                XCTAssertEqual(TensorName.kind(of: spec.name), legacyKind(spec.name), spec.name)
                XCTAssertEqual(TensorName.layer(of: spec.name), spec.id.layer, spec.name)
            }
        }
    }

    func testEveryRoleRoundTrips() {
        var names = Set<String>()
        for role in TensorRole.allCases {
            for layer in role.isPerLayer ? [0, 1, 9, 10, 123] : [nil] {
                for bias in role.canHaveBias ? [false, true] : [false] {
                    let id = TensorID(layer: layer, role, bias: bias)
                    XCTAssertEqual(TensorID(name: id.name), id, id.name)
                    XCTAssertTrue(names.insert(id.name).inserted, "\(id.name) named twice")
                    XCTAssertEqual(id.kind, bias ? .bias : role.kind)
                    XCTAssertEqual(id.weight, TensorID(layer: layer, role))
                }
            }
        }
        XCTAssertEqual(TensorID(layer: 3, .attnQ).name, "blk.3.attn_q.weight")
        XCTAssertEqual(TensorID(layer: 0, .ffnDown, bias: true).name, "blk.0.ffn_down.bias")
        XCTAssertEqual(TensorID.tokenEmbd.name, "token_embd.weight")
        XCTAssertEqual(TensorID(.outputNorm, bias: true).name, "output_norm.bias")
        XCTAssertEqual(TensorID(.clsOut).name, "cls.output.weight")
        XCTAssertEqual(TensorName.tokenEmbedding, "token_embd.weight")
        XCTAssertEqual(TensorName.positionEmbedding, "position_embd.weight")
        XCTAssertEqual(TensorName.output, "output.weight")
    }

    func testUnknownNamesAreRejected() {
        let bad = [
            "", "token_embd", "token_embd.bias", "token_embd.scale", "blk.0.token_embd.weight", "attn_q.weight",
            "blk.x.attn_q.weight", "blk.01.attn_q.weight", "blk.-1.attn_q.weight", "blk.+1.attn_q.weight",
            "blk..attn_q.weight", "blk.0.attn_q", "blk.0.attn_q.scale", "blk.0.attn_qq.weight", "blk.0.attn_q.weight ",
            "blk.0.blk.0.attn_q.weight", "output.weight.weight", "blk.0.output.weight", "model.layers.0.self_attn.q_proj.weight",
            "transformer.h.0.attn.c_attn.weight", "blk.0.weight", ".weight", "blk.0..weight", "BLK.0.attn_q.weight",
            "blk.0.ATTN_Q.weight", "position_embd.bias", "blk.99999999999999999999.attn_q.weight",
        ]
        for name in bad {
            XCTAssertNil(TensorID(name: name), name)
            XCTAssertEqual(TensorName.layer(of: name), nil, name)
        }
    }

    /// GGUF files name their tensors canonically, GPT-2's fused `attn_qkv` included.
    func testGGUFFixtureNamesParse() throws {
        let dir = packageRoot().appendingPathComponent("Fixtures/gguf-expected")
        for f in ["tiny-gpt2.json", "tiny-llama.json"] {
            let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(f))) as? [String: Any])
            let names = try XCTUnwrap(root["tensors"] as? [[String: Any]]).compactMap { $0["name"] as? String }
            XCTAssertFalse(names.isEmpty)
            for n in names { XCTAssertEqual(TensorID(name: n)?.name, n, "\(f): \(n)") }
        }
        XCTAssertEqual(TensorID(name: "blk.1.attn_qkv.bias"), TensorID(layer: 1, .attnQKV, bias: true))
    }

    // MARK: Binding

    func testBindingCoversTheSchemaOnce() throws {
        for c in try fixtures().map(\.config) + sweep {
            var asked: [TensorID] = []
            let w = try ModelWeights<TensorID, TensorID>(config: c, matrix: { asked.append($0); return $0 }, vector: { asked.append($0); return $0 })
            let label = "\(c.architecture) tied \(c.tiedEmbeddings)"
            XCTAssertEqual(asked, c.schema().map(\.id), "every tensor bound once, in canonical order: \(label)")
            XCTAssertEqual(w.tokenEmbd, .tokenEmbd)
            let bert = c.isEncoder
            XCTAssertEqual(w.output, bert ? nil : c.tiedEmbeddings ? .tokenEmbd : .output, label)
            XCTAssertEqual(w.posEmbd, c.architecture == .llama ? nil : .posEmbd)
            XCTAssertEqual(w.outputNorm, bert ? nil : TensorID(.outputNorm))
            XCTAssertEqual(w.tokenTypes, bert ? TensorID(.tokenTypes) : nil)
            XCTAssertEqual(w.embedNorm, bert ? TensorID(.tokenEmbdNorm) : nil)
            XCTAssertEqual(w.embedNormBias, bert ? TensorID(.tokenEmbdNorm, bias: true) : nil)
            XCTAssertEqual(w.blocks.count, c.numLayers)
            // Post-norm blocks bind their two norms (after attention, after the MLP) to attnNorm / ffnNorm.
            let n1: TensorRole = bert ? .attnOutNorm : .attnNorm, n2: TensorRole = bert ? .layerOutNorm : .ffnNorm
            for (l, b) in w.blocks.enumerated() {
                func id(_ r: TensorRole, bias: Bool = false) -> TensorID { TensorID(layer: l, r, bias: bias) }
                XCTAssertEqual([b.attnNorm, b.q, b.k, b.v, b.o, b.ffnNorm, b.up, b.down],
                               [id(n1), id(.attnQ), id(.attnK), id(.attnV), id(.attnOutput), id(n2), id(.ffnUp), id(.ffnDown)])
                XCTAssertEqual(b.gate, c.architecture == .llama ? id(.ffnGate) : nil)
                let biases = [b.attnNormBias, b.qBias, b.kBias, b.vBias, b.oBias, b.ffnNormBias, b.upBias, b.downBias]
                let roles: [TensorRole] = [n1, .attnQ, .attnK, .attnV, .attnOutput, n2, .ffnUp, .ffnDown]
                XCTAssertEqual(biases, roles.map { c.hasBiases ? id($0, bias: true) : nil })
                XCTAssertEqual(b.sizes, c.sizes(layer: l))
                XCTAssertEqual(b.matrices.count, c.architecture == .llama ? 7 : 6)
            }
        }
    }

    func testBindingStopsAtTheFirstError() {
        struct Missing: Error, Equatable { let id: TensorID }
        let c = sweep[0]
        XCTAssertThrowsError(try ModelWeights<TensorID, TensorID>(config: c, matrix: { id in
            if id == TensorID(layer: 0, .attnK) { throw Missing(id: id) }
            return id
        }, vector: { $0 })) { error in
            XCTAssertEqual(error as? Missing, Missing(id: TensorID(layer: 0, .attnK)))
        }
    }
}
