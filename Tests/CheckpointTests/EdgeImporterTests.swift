@testable import Checkpoint
import EdgeFormat
import Foundation
import XCTest

/// `.edge` files as input checkpoints: written from known values, imported, compared.
final class EdgeImporterTests: XCTestCase {
    private let config = ModelConfig(architecture: .llama, vocabSize: 12, hiddenSize: 8, numLayers: 2, numHeads: 2,
                                     numKVHeads: 1, headDim: 4, intermediateSize: 6, maxPositions: 16, normEps: 1e-6,
                                     ropeTheta: 10000, tiedEmbeddings: false, activation: "silu", bosTokenID: 0, eosTokenID: 1)
    private let provenance = Provenance(sourceSHA256: String(repeating: "0f", count: 32), sourceFormat: "gguf", sourcePath: "tiny.gguf",
                                        recipe: ["passes": [["quantize": ["bits": 8]]]], passes: [["pass": "quantize"]],
                                        metrics: ["kl": 0.5])
    /// A byte-level BPE tokenizer the runtime loads (ids within the config's 12).
    private let tokenizer = Data(#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},"decoder":{"type":"ByteLevel"}}"#.utf8)

    private func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "edge-importer-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Writes every tensor the config requires: linear weights as symmetric q8 (values s * q),
    /// the rest f32, each value distinct. Returns the values the importer must produce.
    private func writeModel(to path: String, skipping: String? = nil, deflate: Bool, tokenizer: Data? = nil) throws -> [String: [Float]] {
        let tokenizer = tokenizer ?? self.tokenizer
        let w = try EdgeWriter(path: path, config: config, provenance: provenance, deflate: deflate)
        var expected: [String: [Float]] = [:]
        for (k, (name, shape)) in config.expectedTensors().enumerated() where name != skipping {
            let n = shape.reduce(1, *)
            if TensorName.kind(of: name) == .linear {
                let rows = shape[0], cols = shape[1]
                let q = (0 ..< n).map { UInt8(bitPattern: Int8(($0 * 7 + k) % 255 - 127)) }
                let scales = (0 ..< rows).map { Float($0 + 1 + k) / 256 }
                try w.add(.q8(name: name, rows: rows, cols: cols, q: q, scales: scales, zeros: nil))
                expected[name] = (0 ..< n).map { scales[$0 / cols] * Float(Int8(bitPattern: q[$0])) }
            } else {
                let v = (0 ..< n).map { Float($0 - n / 2) / 16 + Float(k) }
                try w.add(.f32(name: name, shape: shape, values: v))
                expected[name] = v
            }
        }
        try w.addBlob(name: "tokenizer.json", bytes: [UInt8](tokenizer))
        try w.finish()
        return expected
    }

    /// The tokenizer blob is checked as the runtime loads it: one it would refuse is refused on
    /// import, naming the file (issue 14: such a file converted, and `edge-run` refused the output).
    func testTokenizerTheRuntimeRefusesIsRefused() throws {
        let dir = try folder()
        for (blob, words) in [(#"{"model":{"type":"BPE"}}"#, "missing field"),
                              (#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":40},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"}}"#, "vocab_size is 12")] {
            let path = dir + "/bad-tokenizer.edge"
            _ = try writeModel(to: path, deflate: false, tokenizer: Data(blob.utf8))
            XCTAssertThrowsError(try EdgeImporter.load(path: path)) { e in
                XCTAssertTrue("\(e)".contains("bad-tokenizer.edge") && "\(e)".contains(words), "\(e)")
            }
        }
    }

    func testImportsValuesConfigTokenizerAndProvenance() throws {
        let dir = try folder()
        for deflate in [false, true] {
            let path = dir + "/model-\(deflate).edge"
            let expected = try writeModel(to: path, deflate: deflate)
            for ckpt in [try EdgeImporter.load(path: path), try Checkpoint.open(path)] {
                XCTAssertEqual(ckpt.format, .edge)
                XCTAssertEqual(ckpt.config, config)
                XCTAssertEqual(ckpt.tokenizerJSON, tokenizer)
                XCTAssertEqual(ckpt.tensors.map(\.name), config.expectedTensors().map(\.name))
                for t in ckpt.tensors {
                    XCTAssertEqual(try t.floats(), expected[t.name], "\(t.name), deflate \(deflate)")
                    XCTAssertEqual(t.storage, TensorName.kind(of: t.name) == .linear ? "q8" : "f32")
                }
                XCTAssertEqual(ckpt.sourceMetadata["source_sha256"], provenance.sourceSHA256)
                XCTAssertEqual(ckpt.sourceMetadata["source_format"], "gguf")
                XCTAssertEqual(ckpt.sourceMetadata["source_path"], "tiny.gguf")
                XCTAssertEqual(ckpt.sourceMetadata["toolchain"], Provenance.currentToolchain)
                XCTAssertEqual(ckpt.sourceMetadata["recipe"], #"{"passes":[{"quantize":{"bits":8}}]}"#)
                XCTAssertEqual(ckpt.sourceMetadata["passes"], #"[{"pass":"quantize"}]"#)
                XCTAssertEqual(ckpt.sourceMetadata["metrics"], #"{"kl":0.5}"#)
                // Provenance of a re-compression hashes the .edge file itself.
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                XCTAssertEqual(ckpt.sourceSHA256(), bytes.withUnsafeBytes { SHA256.hex($0) })
            }
        }
    }

    func testMissingTensorAndCorruptFileAreRefused() throws {
        let dir = try folder()
        let path = dir + "/model.edge"
        _ = try writeModel(to: path, skipping: "blk.1.ffn_up.weight", deflate: false)
        XCTAssertThrowsError(try EdgeImporter.load(path: path)) {
            guard case let .missingTensor(_, tensor)? = $0 as? CheckpointError else { return XCTFail("\($0)") }
            XCTAssertEqual(tensor, "blk.1.ffn_up.weight")
        }
        _ = try writeModel(to: path, deflate: false)
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        b[100] ^= 0xFF
        try Data(b).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Checkpoint.open(path)) {
            guard case .checksum(_, .tensor("token_embd.weight"), _, _, _)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
        }
    }
}
