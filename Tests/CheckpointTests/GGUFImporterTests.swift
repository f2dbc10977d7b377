@testable import Checkpoint
import EdgeFormat
import Foundation
import TestSupport
import XCTest

final class GGUFImporterTests: XCTestCase {
    private var fixtures: URL { fixturesFolder }

    private func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// Compares imported tensors with Fixtures/gguf-expected/<name>.json (gguf-py dequantization,
    /// llama Q/K permutation undone). Fused gpt2 `attn_qkv` is compared as q ++ k ++ v.
    private func assertMatchesExpected(_ ck: Checkpoint, _ expectedFile: String) throws {
        let exp = try json(fixtures.appendingPathComponent("gguf-expected/\(expectedFile)"))
        let entries = try XCTUnwrap(exp["tensors"] as? [[String: Any]])
        XCTAssertFalse(entries.isEmpty)
        for e in entries {
            let name = try XCTUnwrap(e["name"] as? String)
            let values: [Float]
            if name.contains("attn_qkv") {
                let (block, kind) = (String(name.prefix { $0 != "a" }), name.hasSuffix("weight") ? "weight" : "bias")
                values = try ["attn_q", "attn_k", "attn_v"].flatMap { try XCTUnwrap(ck.tensor(named: "\(block)\($0).\(kind)"), name).floats() }
            } else {
                let t = try XCTUnwrap(ck.tensor(named: name), name)
                XCTAssertEqual(t.shape, e["shape"] as? [Int], name)
                XCTAssertEqual(t.storage, e["type"] as? String, name)
                XCTAssertEqual(t.storedBytes, e["n_bytes"] as? Int, name)
                values = try t.floats()
            }
            XCTAssertEqual(values.count, e["n_elements"] as? Int, name)
            let first = try XCTUnwrap(e["first16"] as? [Double])
            for (i, w) in first.enumerated() { XCTAssertEqual(values[i], Float(w), "\(name)[\(i)]") }
            let sum = values.reduce(0.0) { $0 + Double($1) }, sumAbs = values.reduce(0.0) { $0 + Double(abs($1)) }
            XCTAssertEqual(sum, try XCTUnwrap(e["sum"] as? Double), accuracy: 1e-9 * max(1, sumAbs), name)
            XCTAssertEqual(sumAbs, try XCTUnwrap(e["sum_abs"] as? Double), accuracy: 1e-9 * max(1, sumAbs), name)
        }
    }

    // MARK: - Fixtures

    func testTinyLlamaImportMatchesGGUFPy() throws {
        let ck = try GGUFImporter.load(path: fixtures.appendingPathComponent("tiny-llama.gguf").path)
        XCTAssertEqual(ck.format, .gguf)
        XCTAssertEqual(ck.tensors.map(\.name), ck.config.expectedTensors().map(\.name))
        try assertMatchesExpected(ck, "tiny-llama.json")
        XCTAssertEqual(ck.sourceMetadata["general.name"], "tiny-llama")
        XCTAssertEqual(ck.sourceMetadata["gguf.types"], "F16:6,F32:5,Q4_0:4,Q8_0:3,Q4_1:2")
        XCTAssertEqual(ck.sourceMetadata["tokenizer.ggml.pre"], "smollm")
        XCTAssertNil(ck.sourceMetadata["tokenizer_warning"])
    }

    func testTinyLlamaConfig() throws {
        let c = try GGUFImporter.load(path: fixtures.appendingPathComponent("tiny-llama.gguf").path).config
        let want = ModelConfig(architecture: .llama, vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2,
                               headDim: 16, intermediateSize: 128, maxPositions: 128, normEps: Double(Float(1e-5)),
                               ropeTheta: 10000, tiedEmbeddings: true, activation: "silu", bosTokenID: 0, eosTokenID: 0)
        XCTAssertEqual(c, want)
    }

    func testTinyLlamaTokenizerEqualsHuggingFaceFile() throws {
        let ck = try GGUFImporter.load(path: fixtures.appendingPathComponent("tiny-llama.gguf").path)
        let mine = try XCTUnwrap(JSONSerialization.jsonObject(with: XCTUnwrap(ck.tokenizerJSON)) as? NSDictionary)
        let hf = try json(fixtures.appendingPathComponent("tiny-llama/tokenizer.json")) as NSDictionary
        XCTAssertEqual(mine, hf)
    }

    func testTinyGPT2ImportMatchesGGUFPy() throws {
        let ck = try GGUFImporter.load(path: fixtures.appendingPathComponent("tiny-gpt2.gguf").path)
        try assertMatchesExpected(ck, "tiny-gpt2.json")
        let want = ModelConfig(architecture: .gpt2, vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 4,
                               headDim: 16, intermediateSize: 256, maxPositions: 128, normEps: Double(Float(1e-5)),
                               ropeTheta: 0, tiedEmbeddings: true, activation: "gelu_new", bosTokenID: 0, eosTokenID: 0)
        XCTAssertEqual(ck.config, want)
        let q = try XCTUnwrap(ck.tensor(named: "blk.1.attn_q.weight"))
        XCTAssertEqual(q.shape, [64, 64])
        XCTAssertEqual(q.sourceName, "blk.1.attn_qkv.weight")
        XCTAssertEqual(q.storedBytes, 64 * 64 * 4)
        XCTAssertEqual(try XCTUnwrap(ck.tensor(named: "blk.0.attn_v.bias")).shape, [64])
    }

    func testTinyGPT2TokenizerEqualsHuggingFaceFile() throws {
        let ck = try GGUFImporter.load(path: fixtures.appendingPathComponent("tiny-gpt2.gguf").path)
        let mine = try XCTUnwrap(JSONSerialization.jsonObject(with: XCTUnwrap(ck.tokenizerJSON)) as? [String: Any])
        var hf = try json(fixtures.appendingPathComponent("tiny-gpt2/tokenizer.json"))
        // The fixture writes merges in the legacy "a b" form; ours are pairs. Same merges either way.
        var model = try XCTUnwrap(hf["model"] as? [String: Any])
        model["merges"] = try XCTUnwrap(model["merges"] as? [String]).map { $0.split(separator: " ", maxSplits: 1).map(String.init) }
        hf["model"] = model
        XCTAssertEqual(mine as NSDictionary, hf as NSDictionary)
    }

    func testOpenDispatchesGGUFByExtensionAndByMagic() throws {
        let src = fixtures.appendingPathComponent("tiny-llama.gguf")
        XCTAssertEqual(try Checkpoint.open(src.path).format, .gguf)
        let renamed = try GGUFBuilder.writeTemp(Array(Data(contentsOf: src)), "model.bin")
        XCTAssertEqual(try Checkpoint.open(renamed).config.numLayers, 2)
    }

    // MARK: - Hand-built models

    /// A complete one-layer llama (vocab 6, hidden 8, 2 heads of 4, 1 KV head, ffn 6). Q and K rows
    /// hold their GGUF row index, so the un-permutation is visible; everything else small ramps.
    private func llama(output: [Float]? = nil) -> GGUFBuilder {
        var b = GGUFBuilder()
        b.string("general.architecture", "llama")
        b.string("general.name", "hand")
        for (k, v) in [("block_count", 1), ("context_length", 32), ("embedding_length", 8), ("feed_forward_length", 6),
                       ("attention.head_count", 2), ("attention.head_count_kv", 1), ("rope.dimension_count", 4)] {
            b.u32("llama.\(k)", UInt32(v))
        }
        b.f32("llama.attention.layer_norm_rms_epsilon", 1e-6)
        b.string("tokenizer.ggml.model", "gpt2")
        b.string("tokenizer.ggml.pre", "gpt-2")
        b.strings("tokenizer.ggml.tokens", ["<s>", "a", "b", "Ġ", "ab", "Ġa"])
        b.i32s("tokenizer.ggml.token_type", [3, 1, 1, 1, 1, 1])
        b.strings("tokenizer.ggml.merges", ["a b", "Ġ a"])
        b.u32("tokenizer.ggml.bos_token_id", 0)
        b.u32("tokenizer.ggml.eos_token_id", 0)
        func ramp(_ n: Int) -> [Float] { (0 ..< n).map { Float($0) * 0.01 } }
        func rowIndex(_ rows: Int, _ cols: Int) -> [Float] { (0 ..< rows * cols).map { Float($0 / cols) } }
        b.f32Tensor("token_embd.weight", shape: [6, 8], ramp(48))
        b.f32Tensor("blk.0.attn_norm.weight", shape: [8], ramp(8))
        b.f32Tensor("blk.0.attn_q.weight", shape: [8, 8], rowIndex(8, 8))
        b.f32Tensor("blk.0.attn_k.weight", shape: [4, 8], rowIndex(4, 8))
        b.f32Tensor("blk.0.attn_v.weight", shape: [4, 8], ramp(32))
        b.f32Tensor("blk.0.attn_output.weight", shape: [8, 8], ramp(64))
        b.f32Tensor("blk.0.ffn_norm.weight", shape: [8], ramp(8))
        b.f32Tensor("blk.0.ffn_gate.weight", shape: [6, 8], ramp(48))
        b.f32Tensor("blk.0.ffn_up.weight", shape: [6, 8], ramp(48))
        b.f32Tensor("blk.0.ffn_down.weight", shape: [8, 6], ramp(48))
        b.f32Tensor("output_norm.weight", shape: [8], ramp(8))
        if let output { b.f32Tensor("output.weight", shape: [6, 8], output) }
        return b
    }

    private func load(_ b: GGUFBuilder) throws -> Checkpoint { try GGUFImporter.load(path: GGUFBuilder.writeTemp(b.bytes())) }

    private func assertConfigError(_ b: GGUFBuilder, field: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(b), file: file, line: line) { e in
            guard case let CheckpointError.badConfig(_, f, why) = e else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(f, field, file: file, line: line)
            XCTAssertTrue(why.contains(fragment), why, file: file, line: line)
        }
    }

    func testQAndKAreUnpermutedToHuggingFaceOrder() throws {
        let ck = try load(llama())
        // convert_hf_to_gguf.py put HF row h*d + s*d/2 + i at GGUF row h*d + 2i + s (d = 4).
        func hfRowsFromGGUF(heads: Int, d: Int) -> [Float] {
            (0 ..< heads).flatMap { h in (0 ..< 2).flatMap { s in (0 ..< d / 2).map { i in Float(h * d + 2 * i + s) } } }
        }
        let q = try XCTUnwrap(ck.tensor(named: "blk.0.attn_q.weight")).floats()
        XCTAssertEqual(stride(from: 0, to: 64, by: 8).map { q[$0] }, hfRowsFromGGUF(heads: 2, d: 4))
        XCTAssertEqual(stride(from: 0, to: 64, by: 8).map { q[$0 + 7] }, hfRowsFromGGUF(heads: 2, d: 4), "whole rows move")
        let k = try XCTUnwrap(ck.tensor(named: "blk.0.attn_k.weight")).floats()
        XCTAssertEqual(stride(from: 0, to: 32, by: 8).map { k[$0] }, hfRowsFromGGUF(heads: 1, d: 4))
        XCTAssertEqual(try XCTUnwrap(ck.tensor(named: "blk.0.attn_v.weight")).floats(), (0 ..< 32).map { Float($0) * 0.01 })
        XCTAssertEqual(ck.config.headDim, 4)
        XCTAssertEqual(ck.config.ropeTheta, 10000, "rope.freq_base defaults to 10000")
        XCTAssertEqual(ck.config.vocabSize, 6)
        XCTAssertTrue(ck.config.tiedEmbeddings)
    }

    /// Issue 14: an EOS id of 2^31 was imported, and `edge-run generate` trapped converting it to Int32.
    func testTokenIDsOutsideTheVocabularyAreRefused() throws {
        for (key, id) in [("tokenizer.ggml.eos_token_id", UInt32(1) << 31), ("tokenizer.ggml.bos_token_id", UInt32(6))] {
            var b = llama()
            b.kvs.removeAll { $0.0 == key }
            b.u32(key, id)
            XCTAssertThrowsError(try load(b)) { e in
                let field = key.hasSuffix("eos_token_id") ? "eos_token_id" : "bos_token_id"
                XCTAssertTrue("\(e)".contains(field) && "\(e)".contains("\(id)") && "\(e)".contains("0..<6"), "\(e)")
            }
        }
    }

    /// Issue 14: merges naming tokens that are not in the vocabulary were converted, and `edge-run` refused the output.
    func testMergesTheRuntimeRefusesAreRefusedAtImport() throws {
        var b = llama()
        b.kvs.removeAll { $0.0 == "tokenizer.ggml.merges" }
        b.strings("tokenizer.ggml.merges", ["a b", "q z"])
        XCTAssertThrowsError(try load(b)) { e in
            guard case let CheckpointError.badHeader(_, why) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("merges"), why)
        }
    }

    func testNaNWeightIsReportedWithTensorNameOnFloats() throws {
        var b = llama()
        var vals = [Float](repeating: 0.5, count: 48)
        vals[13] = .nan
        b.tensors[8] = GGUFBuilder.Tensor(name: "blk.0.ffn_up.weight", ne: [8, 6], type: 0, data: GGUFBuilder.f32s(vals))
        let ck = try load(b)  // import itself reads no values
        XCTAssertThrowsError(try XCTUnwrap(ck.tensor(named: "blk.0.ffn_up.weight")).floats()) { e in
            guard case let CheckpointError.nonFinite(_, tensor, index, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(tensor, "blk.0.ffn_up.weight")
            XCTAssertEqual(index, 13)
            XCTAssertTrue("\(e)".contains("blk.0.ffn_up.weight"))
        }
    }

    func testOutputWeightTiedOrNot() throws {
        let copy = try load(llama(output: (0 ..< 48).map { Float($0) * 0.01 }))
        XCTAssertTrue(copy.config.tiedEmbeddings, "a byte-identical output.weight is the tied embedding stored twice")
        XCTAssertNil(copy.tensor(named: "output.weight"))
        let untied = try load(llama(output: (0 ..< 48).map { Float($0) * -0.02 }))
        XCTAssertFalse(untied.config.tiedEmbeddings)
        XCTAssertEqual(try XCTUnwrap(untied.tensor(named: "output.weight")).floats()[1], -0.02)
        XCTAssertEqual(untied.tensors.last?.name, "output.weight")
    }

    func testConfigErrorsNameTheKey() throws {
        var b = llama()
        b.kvs.removeAll { $0.0 == "llama.feed_forward_length" }
        assertConfigError(b, field: "llama.feed_forward_length", "is missing")

        b = llama()
        b.kvs.removeAll { $0.0 == "general.architecture" }
        assertConfigError(b, field: "general.architecture", "is missing")

        b = llama()
        b.kvs.removeAll { $0.0 == "llama.attention.layer_norm_rms_epsilon" }
        b.string("llama.attention.layer_norm_rms_epsilon", "tiny")
        assertConfigError(b, field: "llama.attention.layer_norm_rms_epsilon", "is a string, expected a number")

        b = llama()
        b.kvs.removeAll { $0.0 == "llama.rope.dimension_count" }
        b.u32("llama.rope.dimension_count", 2)
        assertConfigError(b, field: "llama.rope.dimension_count", "partial rotary")

        b = llama()
        b.kvs.removeAll { $0.0 == "llama.attention.head_count_kv" }
        b.u32s("llama.attention.head_count_kv", [1, 2])
        assertConfigError(b, field: "llama.attention.head_count_kv", "differs between layers (1, 2")

        b = llama()
        b.string("llama.rope.scaling.type", "linear")
        assertConfigError(b, field: "llama.rope.scaling.type", "'linear'")

        b = llama()
        b.kvs.removeAll { $0.0 == "tokenizer.ggml.merges" }
        assertConfigError(b, field: "tokenizer.ggml.merges", "is missing")

        b = llama()
        b.kvs.removeAll { $0.0 == "tokenizer.ggml.merges" }
        b.strings("tokenizer.ggml.merges", ["a b", "ab"])
        assertConfigError(b, field: "tokenizer.ggml.merges", "entry 1 'ab'")

        b = llama()
        b.kvs.removeAll { $0.0 == "tokenizer.ggml.token_type" }
        b.i32s("tokenizer.ggml.token_type", [1, 1])
        assertConfigError(b, field: "tokenizer.ggml.token_type", "has 2 entries but tokenizer.ggml.tokens has 6")
    }

    func testUniformPerLayerArrayIsAccepted() throws {
        var b = llama()
        b.kvs.removeAll { $0.0 == "llama.attention.head_count_kv" }
        b.u32s("llama.attention.head_count_kv", [1])
        XCTAssertEqual(try load(b).config.numKVHeads, 1)
    }

    func testUnknownArchitecture() throws {
        var b = llama()
        b.kvs.removeAll { $0.0 == "general.architecture" }
        b.string("general.architecture", "mamba")
        XCTAssertThrowsError(try load(b)) { e in
            guard case CheckpointError.unknownArchitecture(_, "mamba") = e else { return XCTFail("\(e)") }
        }
    }

    func testShapeDisagreeingWithConfigIsRefused() throws {
        var b = llama()
        b.kvs.removeAll { $0.0 == "llama.feed_forward_length" }
        b.u32("llama.feed_forward_length", 7)
        XCTAssertThrowsError(try load(b)) { e in
            guard case CheckpointError.shapeMismatch(_, "blk.0.ffn_gate.weight", [7, 8], [6, 8]) = e else { return XCTFail("\(e)") }
        }
    }

    func testUnexpectedAndMissingTensors() throws {
        var b = llama()
        b.f32Tensor("rope_freqs.weight", shape: [2], [1, 1])
        XCTAssertThrowsError(try load(b)) { e in
            guard case CheckpointError.unexpectedTensor(_, "rope_freqs.weight") = e else { return XCTFail("\(e)") }
        }
        b = llama()
        b.tensors.removeAll { $0.name == "blk.0.ffn_norm.weight" }
        XCTAssertThrowsError(try load(b)) { e in
            guard case CheckpointError.missingTensor(_, "blk.0.ffn_norm.weight") = e else { return XCTFail("\(e)") }
        }
    }

    // MARK: - Tokenizer conversion

    func testHandBuiltTokenizerDocument() throws {
        let ck = try load(llama())
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: XCTUnwrap(ck.tokenizerJSON)) as? [String: Any])
        let added = try XCTUnwrap(doc["added_tokens"] as? [[String: Any]])
        XCTAssertEqual(added.count, 1)
        XCTAssertEqual(added[0]["content"] as? String, "<s>")
        XCTAssertEqual(added[0]["special"] as? Bool, true)
        let model = try XCTUnwrap(doc["model"] as? [String: Any])
        XCTAssertEqual(model["vocab"] as? [String: Int], ["<s>": 0, "a": 1, "b": 2, "Ġ": 3, "ab": 4, "Ġa": 5])
        XCTAssertEqual(model["merges"] as? [[String]], [["a", "b"], ["Ġ", "a"]])
        XCTAssertEqual((doc["pre_tokenizer"] as? [String: Any])?["type"] as? String, "ByteLevel")
    }

    func testPreTokenizerChoices() throws {
        func pre(_ name: String) throws -> (Any?, Checkpoint) {
            var b = llama()
            b.kvs.removeAll { $0.0 == "tokenizer.ggml.pre" }
            b.string("tokenizer.ggml.pre", name)
            let ck = try load(b)
            let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: XCTUnwrap(ck.tokenizerJSON)) as? [String: Any])
            return (doc["pre_tokenizer"], ck)
        }
        let (l3, _) = try pre("llama-bpe")
        let seq = try XCTUnwrap((l3 as? [String: Any])?["pretokenizers"] as? [[String: Any]])
        XCTAssertEqual(seq.map { $0["type"] as? String }, ["Split", "ByteLevel"])
        XCTAssertEqual((seq[0]["pattern"] as? [String: String])?["Regex"], TokenizerJSON.llama3Pattern)
        XCTAssertEqual(seq[1]["use_regex"] as? Bool, false)
        // Same as the Llama-3 style reference document the runtime's tokenizer is tested with.
        let ref = try json(fixtures.appendingPathComponent("tokenizer-reference/tiny-llama3-tokenizer.json"))
        XCTAssertEqual(l3 as? NSDictionary, ref["pre_tokenizer"] as? NSDictionary)

        let (sm, _) = try pre("smollm")
        let smSeq = try XCTUnwrap((sm as? [String: Any])?["pretokenizers"] as? [[String: Any]])
        XCTAssertEqual(smSeq.map { $0["type"] as? String }, ["Digits", "ByteLevel"])

        let (unknown, ck) = try pre("brand-new")
        XCTAssertEqual((unknown as? [String: Any])?["type"] as? String, "ByteLevel")
        XCTAssertEqual(ck.sourceMetadata["tokenizer.ggml.pre"], "brand-new")
        XCTAssertTrue(try XCTUnwrap(ck.sourceMetadata["tokenizer_warning"]).contains("'brand-new'"))
    }

    func testSentencePieceTokenizerIsLeftOutWithAWarning() throws {
        var b = llama()
        b.kvs.removeAll { $0.0 == "tokenizer.ggml.model" || $0.0 == "tokenizer.ggml.merges" }
        b.string("tokenizer.ggml.model", "llama")
        let ck = try load(b)
        XCTAssertNil(ck.tokenizerJSON)
        XCTAssertTrue(try XCTUnwrap(ck.sourceMetadata["tokenizer_warning"]).contains("'llama' (SentencePiece)"))
        XCTAssertEqual(ck.config.vocabSize, 6, "the vocabulary size still comes from the token list")
    }

    func testJSONEscaping() throws {
        let doc = TokenizerJSON.byteLevelBPE(tokens: ["q\"b\\s\n\t\u{01}é"], tokenTypes: nil, merges: [], preTokenizer: .gpt2)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: doc) as? [String: Any])
        XCTAssertEqual((obj["model"] as? [String: Any])?["vocab"] as? [String: Int], ["q\"b\\s\n\t\u{01}é": 0])
    }
}
