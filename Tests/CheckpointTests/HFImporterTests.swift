@testable import Checkpoint
import EdgeFormat
import Foundation
import XCTest

/// A tensor as written to a test safetensors file.
struct HFTestTensor {
    var name: String
    var dtype: SafetensorsDType
    var shape: [Int]
    var values: [Float]
}

extension HFTest {
    static let fixtureNames = ["tiny-gpt2", "tiny-llama", "tiny-llama-f16", "tiny-llama-untied-sharded"]

    /// A copy of fixture `name` in a fresh temporary folder (which it returns).
    static func copyFixture(_ name: String) throws -> URL {
        let dest = try tempDir().appendingPathComponent(name)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: dest)
        return dest
    }

    /// Every tensor of the safetensors file at `path`, as stored.
    static func tensors(_ path: String) throws -> [HFTestTensor] {
        let st = try SafetensorsFile(path: path)
        return try st.entries.map { HFTestTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, values: try st.floats($0)) }
    }

    /// Replaces `file` in `folder` by `edit` applied to its tensors.
    static func rewrite(_ folder: URL, file: String = "model.safetensors", _ edit: (inout [HFTestTensor]) -> Void) throws {
        let path = folder.appendingPathComponent(file).path
        var ts = try tensors(path)
        edit(&ts)
        let byName = Dictionary(ts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        try SafetensorsWriter.write(to: path, tensors: ts.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) },
                                    metadata: ["format": "pt"]) { byName[$0.name]!.values }
    }

    /// Edits a JSON object file (config.json, the shard index) in place.
    static func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var o = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as! [String: Any]
        edit(&o)
        try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]).write(to: url)
    }
}

/// What scripts/expected_safetensors.py computed with numpy for one fixture.
struct SafetensorsExpected: Decodable {
    struct Tensor: Decodable {
        let name, source, storage: String
        let stored_bytes: Int
        let shape: [Int]
        let sum, abs_sum: Double
        let samples: [[Double]]
    }

    let config: ModelConfig
    let files: [String]
    let sha256: String
    let tensors: [Tensor]

    static func load(_ fixture: String) throws -> SafetensorsExpected {
        let url = HFTest.fixtures.appendingPathComponent("safetensors-expected/\(fixture).json")
        return try JSONDecoder().decode(SafetensorsExpected.self, from: Data(contentsOf: url))
    }
}

final class HFImporterTests: XCTestCase {
    /// Every fixture against the numpy reference: config, canonical names in order, shapes,
    /// storage, sums, sampled values, weight files and their hash.
    func testFixturesMatchNumpyReference() throws {
        for fixture in HFTest.fixtureNames {
            let expected = try SafetensorsExpected.load(fixture)
            let ckpt = try HFImporter.load(folder: HFTest.fixtures.appendingPathComponent(fixture).path)
            XCTAssertEqual(ckpt.format, .safetensors)
            XCTAssertEqual(ckpt.config, expected.config, fixture)
            XCTAssertEqual(ckpt.files.map { URL(fileURLWithPath: $0.path).lastPathComponent }, expected.files, fixture)
            XCTAssertEqual(ckpt.sourceSHA256(), expected.sha256, fixture)
            XCTAssertEqual(ckpt.tensors.map(\.name), expected.tensors.map(\.name), fixture)
            XCTAssertEqual(ckpt.tensors.map(\.name), ckpt.config.expectedTensors().map(\.name), fixture)
            for (t, e) in zip(ckpt.tensors, expected.tensors) {
                let what = "\(fixture) \(t.name)"
                XCTAssertEqual(t.sourceName, e.source, what)
                XCTAssertEqual(t.storage, e.storage, what)
                XCTAssertEqual(t.storedBytes, e.stored_bytes, what)
                XCTAssertEqual(t.shape, e.shape, what)
                let v = try t.floats()
                XCTAssertEqual(v.count, t.count, what)
                XCTAssertEqual(v.reduce(0.0) { $0 + Double($1) }, e.sum, accuracy: 1e-9 * max(1, e.abs_sum), what)
                XCTAssertEqual(v.reduce(0.0) { $0 + abs(Double($1)) }, e.abs_sum, accuracy: 1e-9 * max(1, e.abs_sum), what)
                for s in e.samples { XCTAssertEqual(v[Int(s[0])], Float(s[1]), "\(what)[\(Int(s[0]))]") }
            }
            let tokenizer = try Data(contentsOf: HFTest.fixtures.appendingPathComponent("\(fixture)/tokenizer.json"))
            XCTAssertEqual(ckpt.tokenizerJSON, tokenizer, fixture)
        }
    }

    /// The same checkpoint through a single file path, the index path and the folder.
    func testLoadByFileAndIndexPath() throws {
        let llama = HFTest.fixtures.appendingPathComponent("tiny-llama")
        let byFile = try HFImporter.load(file: llama.appendingPathComponent("model.safetensors").path)
        let byFolder = try HFImporter.load(folder: llama.path)
        XCTAssertEqual(byFile.config, byFolder.config)
        XCTAssertEqual(try byFile.tensors[3].floats(), try byFolder.tensors[3].floats())
        XCTAssertNotNil(byFile.tokenizerJSON)

        let sharded = HFTest.fixtures.appendingPathComponent("tiny-llama-untied-sharded")
        let byIndex = try HFImporter.load(file: sharded.appendingPathComponent("model.safetensors.index.json").path)
        XCTAssertEqual(byIndex.files.count, 2)
        XCTAssertEqual(byIndex.tensors.last?.name, TensorName.output)
    }

    /// `Checkpoint.open` reaches this importer for a folder, a .safetensors file and an index file.
    func testCheckpointOpenDispatches() throws {
        let sharded = HFTest.fixtures.appendingPathComponent("tiny-llama-untied-sharded")
        for path in [HFTest.fixtures.appendingPathComponent("tiny-gpt2").path,
                     HFTest.fixtures.appendingPathComponent("tiny-llama/model.safetensors").path,
                     sharded.appendingPathComponent("model.safetensors.index.json").path] {
            let ckpt = try Checkpoint.open(path)
            XCTAssertEqual(ckpt.format, .safetensors)
            XCTAssertEqual(ckpt.path, path)
        }
    }

    /// F16 storage converts exactly: every value is the F32 fixture's value rounded to f16.
    func testF16FixtureIsF32RoundedToHalf() throws {
        let f32 = try HFImporter.load(folder: HFTest.fixtures.appendingPathComponent("tiny-llama").path)
        let f16 = try HFImporter.load(folder: HFTest.fixtures.appendingPathComponent("tiny-llama-f16").path)
        for (a, b) in zip(f32.tensors, f16.tensors) {
            XCTAssertEqual(try a.floats().map { Float(Float16($0)) }, try b.floats(), a.name)
        }
    }

    /// GPT-2 under bare names (no `transformer.`), with the attention-mask buffers and a tied
    /// lm_head present, imports to the same tensors.
    func testGPT2BareNamesBuffersAndTiedHeadIgnored() throws {
        let folder = try HFTest.copyFixture("tiny-gpt2")
        try HFTest.rewrite(folder) { ts in
            let wte = ts.first { $0.name == "transformer.wte.weight" }!
            for i in ts.indices { ts[i].name = String(ts[i].name.dropFirst("transformer.".count)) }
            ts.append(HFTestTensor(name: "h.0.attn.bias", dtype: .f32, shape: [1, 1, 4, 4], values: .init(repeating: 1, count: 16)))
            ts.append(HFTestTensor(name: "h.1.attn.masked_bias", dtype: .f32, shape: [], values: [-1e4]))
            ts.append(HFTestTensor(name: "lm_head.weight", dtype: .f32, shape: wte.shape, values: wte.values.map { $0 + 1 }))
        }
        let bare = try HFImporter.load(folder: folder.path)
        let original = try HFImporter.load(folder: HFTest.fixtures.appendingPathComponent("tiny-gpt2").path)
        XCTAssertEqual(bare.tensors.map(\.name), original.tensors.map(\.name))
        for (a, b) in zip(bare.tensors, original.tensors) {
            XCTAssertEqual(try a.floats(), try b.floats(), a.name)
        }
    }

    /// Untied GPT-2: lm_head.weight becomes output.weight.
    func testGPT2UntiedHeadBecomesOutput() throws {
        let folder = try HFTest.copyFixture("tiny-gpt2")
        try HFTest.editJSON(folder.appendingPathComponent("config.json")) { $0["tie_word_embeddings"] = false }
        HFTest.assertError(["tensor 'output.weight' is missing"]) { try HFImporter.load(folder: folder.path) }
        let head = (0 ..< 512 * 64).map { Float($0 % 97) / 97 }
        try HFTest.rewrite(folder) { $0.append(HFTestTensor(name: "lm_head.weight", dtype: .f32, shape: [512, 64], values: head)) }
        let ckpt = try HFImporter.load(folder: folder.path)
        XCTAssertFalse(ckpt.config.tiedEmbeddings)
        XCTAssertEqual(try ckpt.tensor(named: TensorName.output)?.floats(), head)
    }

    /// Llama: rotary inv_freq buffers and a tied lm_head are ignored; an unknown name is refused by name.
    func testLlamaIgnoredAndUnexpectedNames() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try HFTest.rewrite(folder) { ts in
            ts.append(HFTestTensor(name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: .f32, shape: [8], values: .init(repeating: 1, count: 8)))
            ts.append(HFTestTensor(name: "lm_head.weight", dtype: .f32, shape: [512, 64], values: .init(repeating: 0, count: 512 * 64)))
        }
        XCTAssertEqual(try HFImporter.load(folder: folder.path).tensors.count, 20)
        try HFTest.rewrite(folder) { $0.append(HFTestTensor(name: "model.layers.0.self_attn.q_norm.weight", dtype: .f32, shape: [16], values: .init(repeating: 1, count: 16))) }
        HFTest.assertError(["model.safetensors", "unexpected tensor 'model.layers.0.self_attn.q_norm.weight'"]) { try HFImporter.load(folder: folder.path) }
    }

    func testLayerBeyondConfigIsUnexpected() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try HFTest.rewrite(folder) { $0.append(HFTestTensor(name: "model.layers.2.input_layernorm.weight", dtype: .f32, shape: [64], values: .init(repeating: 1, count: 64))) }
        HFTest.assertError(["unexpected tensor 'model.layers.2.input_layernorm.weight'"]) { try HFImporter.load(folder: folder.path) }
    }

    func testMissingTensor() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try HFTest.rewrite(folder) { $0.removeAll { $0.name == "model.norm.weight" } }
        HFTest.assertError(["model.safetensors", "tensor 'output_norm.weight' is missing"]) { try HFImporter.load(folder: folder.path) }
    }

    /// Config says hidden 64, the embedding is 63 wide.
    func testShapeMismatchAgainstConfig() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try HFTest.rewrite(folder) { ts in
            let i = ts.firstIndex { $0.name == "model.embed_tokens.weight" }!
            ts[i].shape = [512, 63]
            ts[i].values = Array(ts[i].values[0 ..< 512 * 63])
        }
        HFTest.assertError(["tensor 'model.embed_tokens.weight'", "shape [512, 63]", "implies [512, 64]"]) { try HFImporter.load(folder: folder.path) }
    }

    /// GPT-2's fused and transposed weights are checked in their stored layout.
    func testGPT2ConvShapesCheckedAsStored() throws {
        let folder = try HFTest.copyFixture("tiny-gpt2")
        try HFTest.rewrite(folder) { ts in
            let i = ts.firstIndex { $0.name == "transformer.h.1.attn.c_attn.weight" }!
            ts[i].shape = [192, 64]
        }
        HFTest.assertError(["tensor 'transformer.h.1.attn.c_attn.weight'", "shape [192, 64]", "implies [64, 192]"]) { try HFImporter.load(folder: folder.path) }
        let folder2 = try HFTest.copyFixture("tiny-gpt2")
        try HFTest.rewrite(folder2) { ts in
            let i = ts.firstIndex { $0.name == "transformer.h.0.mlp.c_fc.weight" }!
            ts[i].shape = [256, 64]  // stored as nn.Linear instead of Conv1D
        }
        HFTest.assertError(["tensor 'transformer.h.0.mlp.c_fc.weight'", "shape [256, 64]", "implies [64, 256]"]) { try HFImporter.load(folder: folder2.path) }
    }

    /// An integer tensor where a weight belongs is refused by name, when the checkpoint is opened.
    func testNonFloatWeightDTypeIsNamed() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try HFTest.rewrite(folder) { _ in }  // our writer's header layout: "name":{"data_offsets":[..],"dtype":..,"shape":..}
        let path = folder.appendingPathComponent("model.safetensors")
        var bytes = [UInt8](try Data(contentsOf: path))
        let n = bytes[0 ..< 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = String(decoding: bytes[8 ..< 8 + n], as: UTF8.self)
        // Same byte count: 64 x F32 = 32 x I64; same header length.
        let start = try XCTUnwrap(header.range(of: #""model.norm.weight":{"#))
        let old = try XCTUnwrap(header.range(of: #""dtype":"F32","shape":[64]}"#, range: start.upperBound ..< header.endIndex))
        let patched = header.replacingCharacters(in: old, with: #""dtype":"I64","shape":[32]}"#)
        bytes.replaceSubrange(8 ..< 8 + n, with: Array(patched.utf8))
        try Data(bytes).write(to: path)
        HFTest.assertError(["tensor 'model.norm.weight'", "unsupported dtype I64"]) { try HFImporter.load(folder: folder.path) }
    }

    /// A NaN weight opens (loading is lazy) and is reported by source name and index when read.
    func testNaNWeightReportedOnRead() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try HFTest.rewrite(folder) { ts in
            let i = ts.firstIndex { $0.name == "model.layers.1.mlp.up_proj.weight" }!
            ts[i].values[77] = .nan
        }
        let ckpt = try HFImporter.load(folder: folder.path)
        HFTest.assertError(["model.safetensors", "tensor 'model.layers.1.mlp.up_proj.weight'", "index 77", "not finite"]) {
            try ckpt.tensor(named: "blk.1.ffn_up.weight")!.floats()
        }
        XCTAssertNoThrow(try ckpt.tensor(named: "blk.1.ffn_down.weight")!.floats())
    }

    func testConfigErrorsNameTheFile() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        let config = folder.appendingPathComponent("config.json")
        try HFTest.editJSON(config) { $0.removeValue(forKey: "hidden_size") }
        HFTest.assertError([config.path, "config field 'hidden_size' is missing"]) { try HFImporter.load(folder: folder.path) }
        try HFTest.editJSON(config) { $0["hidden_size"] = 64; $0["architectures"] = ["RobertaModel"] }
        HFTest.assertError([config.path, "unsupported architecture 'RobertaModel'"]) { try HFImporter.load(folder: folder.path) }
        try HFTest.editJSON(config) { $0["architectures"] = ["LlamaForCausalLM"]; $0["num_key_value_heads"] = 3 }
        HFTest.assertError([config.path, "'num_key_value_heads' (3) does not divide num_attention_heads (4)"]) { try HFImporter.load(folder: folder.path) }
        try FileManager.default.removeItem(at: config)
        HFTest.assertError(["no config.json"]) { try HFImporter.load(folder: folder.path) }
    }

    func testFolderWithoutWeights() throws {
        let dir = try HFTest.tempDir()
        HFTest.assertError(["neither model.safetensors nor model.safetensors.index.json"]) { try HFImporter.load(folder: dir.path) }
    }

    func testInvalidTokenizerJSONIsNamed() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        try Data("{\"model\": ".utf8).write(to: folder.appendingPathComponent("tokenizer.json"))
        HFTest.assertError(["tokenizer.json", "not a valid JSON object"]) { try HFImporter.load(folder: folder.path) }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("tokenizer.json"))
        XCTAssertNil(try HFImporter.load(folder: folder.path).tokenizerJSON)
    }

    // MARK: - Sharded

    private func shardedCopy() throws -> (URL, URL) {
        let folder = try HFTest.copyFixture("tiny-llama-untied-sharded")
        return (folder, folder.appendingPathComponent("model.safetensors.index.json"))
    }

    private func editMap(_ index: URL, _ edit: (inout [String: Any]) -> Void) throws {
        try HFTest.editJSON(index) { o in
            var map = o["weight_map"] as! [String: Any]
            edit(&map)
            o["weight_map"] = map
        }
    }

    func testIndexPointingAtMissingShard() throws {
        let (folder, index) = try shardedCopy()
        try editMap(index) { $0["model.norm.weight"] = "model-00003-of-00003.safetensors" }
        HFTest.assertError([index.path, "shard 'model-00003-of-00003.safetensors'", "'model.norm.weight'", "does not exist"]) {
            try HFImporter.load(folder: folder.path)
        }
    }

    func testShardTensorNotListedInIndex() throws {
        let (folder, index) = try shardedCopy()
        try editMap(index) { $0.removeValue(forKey: "model.layers.1.input_layernorm.weight") }
        HFTest.assertError([index.path, "tensor 'model.layers.1.input_layernorm.weight' of shard 'model-00002-of-00002.safetensors' is not listed"]) {
            try HFImporter.load(folder: folder.path)
        }
    }

    func testIndexListsTensorAbsentFromShard() throws {
        let (folder, index) = try shardedCopy()
        try editMap(index) { $0["model.layers.7.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors" }
        HFTest.assertError([index.path, "puts tensor 'model.layers.7.mlp.up_proj.weight' in 'model-00001-of-00002.safetensors', which does not contain it"]) {
            try HFImporter.load(folder: folder.path)
        }
    }

    func testIndexShardNameMustStayInFolder() throws {
        let (folder, index) = try shardedCopy()
        try editMap(index) { $0["model.norm.weight"] = "../model-00002-of-00002.safetensors" }
        HFTest.assertError([index.path, "expected a file name in the index's folder"]) { try HFImporter.load(folder: folder.path) }
        try HFTest.editJSON(index) { $0["weight_map"] = [String]() }
        HFTest.assertError([index.path, "'weight_map' is missing or not an object"]) { try HFImporter.load(folder: folder.path) }
    }
}
