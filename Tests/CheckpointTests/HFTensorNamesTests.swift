@testable import Checkpoint
import EdgeFormat
import Foundation
import XCTest

/// The role-keyed Hugging Face name table that the importer and the exporter share.
final class HFTensorNamesTests: XCTestCase {
    private func config(_ arch: ModelConfig.Architecture, tied: Bool) -> ModelConfig {
        let bert = arch == .bert
        return ModelConfig(architecture: arch, vocabSize: 32, hiddenSize: 16, numLayers: 2, numHeads: 4, numKVHeads: arch == .llama ? 2 : 4,
                           headDim: 4, intermediateSize: 24, maxPositions: 16, normEps: 1e-5, ropeTheta: arch == .llama ? 10000 : 0,
                           tiedEmbeddings: tied && !bert, activation: arch == .gpt2 ? "gelu_new" : bert ? "gelu" : "silu",
                           bosTokenID: nil, eosTokenID: nil, typeVocabSize: bert ? 2 : nil,
                           pooling: bert ? .init(mode: .mean, normalize: true) : nil)
    }

    /// Every tensor of every schema has a Hugging Face form; distinct tensors have distinct names,
    /// except GPT-2's Q, K and V, which share their layer's fused `c_attn` (weight and bias apart).
    func testEveryTensorHasOneForm() {
        for arch in ModelConfig.Architecture.allCases {
            for tied in [true, false] {
                let c = config(arch, tied: tied)
                var byName: [String: [TensorID]] = [:]
                for spec in c.schema() {
                    guard let form = HFTensorNames.form(of: spec.id, in: arch) else { return XCTFail("\(arch): no form for \(spec.name)") }
                    byName[form.name, default: []].append(spec.id)
                    if case .fusedQKV = form {
                        XCTAssertEqual(arch, .gpt2)
                        XCTAssertTrue([.attnQ, .attnK, .attnV].contains(spec.id.role), spec.name)
                    }
                    if case .conv1D = form { XCTAssertEqual(arch, .gpt2); XCTAssertFalse(spec.id.isBias) }
                }
                for (name, ids) in byName where ids.count > 1 {
                    XCTAssertEqual(ids.map(\.role), [.attnQ, .attnK, .attnV], name)
                    XCTAssertEqual(Set(ids.map(\.layer)).count, 1, name)
                    XCTAssertEqual(Set(ids.map(\.isBias)).count, 1, name)
                }
                let fused = byName.values.filter { $0.count > 1 }.count
                XCTAssertEqual(fused, arch == .gpt2 ? 2 * c.numLayers : 0, "\(arch): c_attn weight and bias per layer")
            }
        }
    }

    func testNamesAreThoseSavePretrainedWrites() {
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 1, .attnQ, bias: true), in: .gpt2), .fusedQKV("transformer.h.1.attn.c_attn.bias"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 0, .ffnDown), in: .gpt2), .conv1D("transformer.h.0.mlp.c_proj.weight"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 0, .ffnDown, bias: true), in: .gpt2), .plain("transformer.h.0.mlp.c_proj.bias"))
        XCTAssertEqual(HFTensorNames.form(of: .output, in: .gpt2), .plain("lm_head.weight"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 3, .ffnNorm), in: .llama), .plain("model.layers.3.post_attention_layernorm.weight"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(.outputNorm), in: .llama), .plain("model.norm.weight"))
        XCTAssertNil(HFTensorNames.form(of: TensorID(layer: 0, .ffnGate), in: .gpt2), "GPT-2 has no gate")
        XCTAssertNil(HFTensorNames.form(of: .posEmbd, in: .llama), "Llama has no learned positions")
        XCTAssertNil(HFTensorNames.form(of: TensorID(layer: 0, .attnQKV), in: .gpt2), "the fused QKV is a GGUF-side role")
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 2, .attnOutNorm, bias: true), in: .bert), .plain("encoder.layer.2.attention.output.LayerNorm.bias"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 0, .ffnUp), in: .bert), .plain("encoder.layer.0.intermediate.dense.weight"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(layer: 0, .ffnDown), in: .bert), .plain("encoder.layer.0.output.dense.weight"))
        XCTAssertEqual(HFTensorNames.form(of: TensorID(.tokenTypes), in: .bert), .plain("embeddings.token_type_embeddings.weight"))
    }

    func testIgnoredBuffers() {
        let gpt2 = config(.gpt2, tied: true), llama = config(.llama, tied: false)
        XCTAssertTrue(HFTensorNames.isIgnored("transformer.h.0.attn.bias", config: gpt2))
        XCTAssertTrue(HFTensorNames.isIgnored("h.12.attn.masked_bias", config: gpt2))
        XCTAssertTrue(HFTensorNames.isIgnored("lm_head.weight", config: gpt2), "tied head")
        XCTAssertFalse(HFTensorNames.isIgnored("transformer.h.0.attn.c_attn.bias", config: gpt2))
        XCTAssertFalse(HFTensorNames.isIgnored("transformer.h.x.attn.bias", config: gpt2))
        XCTAssertFalse(HFTensorNames.isIgnored("lm_head.weight", config: llama), "untied head is a weight")
        XCTAssertTrue(HFTensorNames.isIgnored("model.layers.0.self_attn.rotary_emb.inv_freq", config: llama))
        XCTAssertFalse(HFTensorNames.isIgnored("model.layers.0.self_attn.q_norm.weight", config: llama))
        let bert = config(.bert, tied: false)
        for name in ["embeddings.position_ids", "pooler.dense.weight", "bert.pooler.dense.bias", "cls.predictions.bias"] {
            XCTAssertTrue(HFTensorNames.isIgnored(name, config: bert), name)
        }
        XCTAssertFalse(HFTensorNames.isIgnored("encoder.layer.0.output.dense.weight", config: bert))
    }
}
