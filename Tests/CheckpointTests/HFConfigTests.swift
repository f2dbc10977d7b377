@testable import Checkpoint
import EdgeFormat
import Foundation
import XCTest

final class HFConfigTests: XCTestCase {
    private func parse(_ json: String) throws -> ModelConfig { try HFConfig.parse(Data(json.utf8), file: "config.json") }

    private let llama = """
        {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 128, "max_position_embeddings": 256, "vocab_size": 100 %@}
        """

    private func llama(_ extra: String = "") throws -> ModelConfig {
        try parse(llama.replacingOccurrences(of: "%@", with: extra))
    }

    func testLlamaDefaults() throws {
        let c = try llama()
        XCTAssertEqual(c, ModelConfig(architecture: .llama, vocabSize: 100, hiddenSize: 64, numLayers: 2, numHeads: 4,
                                      numKVHeads: 4, headDim: 16, intermediateSize: 128, maxPositions: 256, normEps: 1e-6,
                                      ropeTheta: 10000, tiedEmbeddings: false, activation: "silu", bosTokenID: nil, eosTokenID: nil))
    }

    func testLlamaExplicitFieldsAndTokenLists() throws {
        let c = try llama(#", "num_key_value_heads": 2, "head_dim": 32, "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": [2, 7], "rope_scaling": null"#)
        XCTAssertEqual(c.numKVHeads, 2)
        XCTAssertEqual(c.headDim, 32)
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.normEps, 1e-5)
        XCTAssertTrue(c.tiedEmbeddings)
        XCTAssertEqual(c.bosTokenID, 1)
        XCTAssertEqual(c.eosTokenID, 2)
    }

    func testModelTypeFallbackAndMistral() throws {
        let byType = try parse(#"{"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 64, "vocab_size": 10}"#)
        XCTAssertEqual(byType.architecture, .llama)
        // Mistral reads as Llama; the context is limited to the sliding window, where attention is exact.
        let mistral = try parse(#"{"architectures": ["MistralForCausalLM"], "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16, "max_position_embeddings": 32768, "sliding_window": 4096, "vocab_size": 10}"#)
        XCTAssertEqual(mistral.architecture, .llama)
        XCTAssertEqual(mistral.maxPositions, 4096)
        let gpt2 = try parse(#"{"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 10}"#)
        XCTAssertEqual(gpt2, ModelConfig(architecture: .gpt2, vocabSize: 10, hiddenSize: 8, numLayers: 1, numHeads: 2, numKVHeads: 2,
                                         headDim: 4, intermediateSize: 32, maxPositions: 16, normEps: 1e-5, ropeTheta: 0,
                                         tiedEmbeddings: true, activation: "gelu_new", bosTokenID: nil, eosTokenID: nil))
    }

    func testMissingAndMistypedFields() {
        HFTest.assertError(["config.json", "'hidden_size' is missing"]) {
            try self.parse(#"{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2}"#)
        }
        HFTest.assertError(["'n_embd' must be an integer, found a string"]) {
            try self.parse(#"{"architectures": ["GPT2LMHeadModel"], "n_embd": "64", "n_head": 4}"#)
        }
        HFTest.assertError(["'num_attention_heads' must be an integer, found 4.5"]) {
            try self.parse(#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4.5}"#)
        }
        HFTest.assertError(["'tie_word_embeddings' must be true or false"]) { try self.llama(#", "tie_word_embeddings": 1"#) }
        HFTest.assertError(["'eos_token_id' must list integers"]) { try self.llama(#", "eos_token_id": ["x"]"#) }
        HFTest.assertError(["'num_attention_heads' (5) does not divide hidden_size (64)"]) {
            try self.parse(#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 5}"#)
        }
        HFTest.assertError(["'architectures' is missing (and so is model_type)"]) { try self.parse("{}") }
        HFTest.assertError(["malformed header", "expected a JSON object"]) { try self.parse("[1]") }
        HFTest.assertError(["not valid JSON"]) { try self.parse("{\"a\": }") }
    }

    func testUnknownArchitecture() {
        HFTest.assertError(["config.json", "unsupported architecture 'RobertaModel'"]) {
            try self.parse(#"{"architectures": ["RobertaModel"], "model_type": "roberta"}"#)
        }
        HFTest.assertError(["unsupported architecture 'falcon'"]) { try self.parse(#"{"model_type": "falcon"}"#) }
    }

    func testUnsupportedSettingsAreRefusedByField() {
        HFTest.assertError(["'rope_scaling'", "unsupported field"]) { try self.llama(#", "rope_scaling": {"type": "linear", "factor": 2.0}"#) }
        HFTest.assertError(["'hidden_act' is 'gelu'"]) { try self.llama(#", "hidden_act": "gelu""#) }
        HFTest.assertError(["'attention_bias' is true"]) { try self.llama(#", "attention_bias": true"#) }
        HFTest.assertError(["'activation_function' is 'relu'"]) {
            try self.parse(#"{"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 10, "activation_function": "relu"}"#)
        }
        HFTest.assertError(["'scale_attn_by_inverse_layer_idx' is true"]) {
            try self.parse(#"{"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 10, "scale_attn_by_inverse_layer_idx": true}"#)
        }
    }

    /// encode -> parse gives the config back, for both architectures, and the bytes are sorted and stable.
    func testEncodeParseRoundTrip() throws {
        let configs = [
            try llama(#", "num_key_value_heads": 2, "head_dim": 8, "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "bos_token_id": 1, "eos_token_id": 2"#),
            try parse(#"{"model_type": "gpt2", "n_embd": 8, "n_layer": 3, "n_head": 2, "n_inner": 20, "n_positions": 16, "vocab_size": 10, "tie_word_embeddings": false, "layer_norm_epsilon": 1e-06}"#),
        ]
        for c in configs {
            let data = try HFConfig.encode(c, torchDType: "float32")
            XCTAssertEqual(try HFConfig.parse(data, file: "x"), c)
            XCTAssertEqual(try HFConfig.encode(c, torchDType: "float32"), data)
            let text = String(decoding: data, as: UTF8.self)
            XCTAssertTrue(text.hasSuffix("}\n"))
            let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
            XCTAssertEqual(keys, keys.sorted())
            XCTAssertTrue(text.contains(c.architecture == .gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"))
        }
    }

    func testEncodeRefusesPerLayerSizes() throws {
        var c = try llama()
        c.layers = [.init(numHeads: 4, numKVHeads: 4, intermediateSize: 128), .init(numHeads: 2, numKVHeads: 2, intermediateSize: 128)]
        HFTest.assertError(["'layers'", "per-layer sizes"]) { try HFConfig.encode(c, torchDType: "float32") }
        c.layers = [.init(numHeads: 4, numKVHeads: 4, intermediateSize: 128), .init(numHeads: 4, numKVHeads: 4, intermediateSize: 128)]
        XCTAssertNoThrow(try HFConfig.encode(c, torchDType: "float32"))
    }
}
