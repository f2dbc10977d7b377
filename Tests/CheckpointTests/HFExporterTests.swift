@testable import Checkpoint
import EdgeFormat
import Foundation
import XCTest

final class HFExporterTests: XCTestCase {
    private func fixture(_ name: String) throws -> Checkpoint {
        try HFImporter.load(folder: HFTest.fixtures.appendingPathComponent(name).path)
    }

    /// f32 export then import gives the same config, tensors (bit for bit) and tokenizer, for every fixture.
    func testF32RoundTripIsExact() throws {
        for name in HFTest.fixtureNames {
            let ckpt = try fixture(name)
            let out = try HFTest.tempDir().appendingPathComponent("export")
            try HFExporter.export(ckpt, to: out.path, dtype: .f32)
            let back = try HFImporter.load(folder: out.path)
            XCTAssertEqual(back.config, ckpt.config, name)
            XCTAssertEqual(back.tokenizerJSON, ckpt.tokenizerJSON, name)
            XCTAssertEqual(back.tensors.map(\.name), ckpt.tensors.map(\.name), name)
            for (a, b) in zip(back.tensors, ckpt.tensors) {
                XCTAssertEqual(a.storage, "F32")
                XCTAssertEqual(try a.floats().map(\.bitPattern), try b.floats().map(\.bitPattern), "\(name) \(a.name)")
            }
        }
    }

    /// f16 export: every value is the f32 value rounded to nearest-even f16.
    func testF16RoundTripWithinHalfRounding() throws {
        for name in ["tiny-gpt2", "tiny-llama-untied-sharded"] {
            let ckpt = try fixture(name)
            let out = try HFTest.tempDir()
            try HFExporter.export(ckpt, to: out.path, dtype: .f16)
            let back = try HFImporter.load(folder: out.path)
            XCTAssertEqual(back.config, ckpt.config)
            for (a, b) in zip(back.tensors, ckpt.tensors) {
                XCTAssertEqual(a.storage, "F16")
                let original = try b.floats(), exported = try a.floats()
                XCTAssertEqual(exported, original.map { Float(Float16($0)) }, a.name)
                for (x, y) in zip(original, exported) { XCTAssertLessThanOrEqual(abs(x - y), abs(x) / 2048 + 3e-8) }
            }
            let config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
            XCTAssertTrue(config.contains("\"float16\""))
        }
    }

    /// The exported file has the names, shapes and values `save_pretrained` gives: for GPT-2, the
    /// re-fused c_attn and re-transposed Conv1D weights equal the fixture's stored tensors exactly.
    func testExportMatchesTransformersLayout() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let out = try HFTest.tempDir()
            try HFExporter.export(try fixture(name), to: out.path, dtype: .f32)
            let exported = try HFTest.tensors(out.appendingPathComponent("model.safetensors").path)
            let original = try HFTest.tensors(HFTest.fixtures.appendingPathComponent("\(name)/model.safetensors").path)
            XCTAssertEqual(exported.map(\.name), original.map(\.name).sorted(), name)
            let byName = Dictionary(original.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for t in exported {
                XCTAssertEqual(t.shape, byName[t.name]?.shape, t.name)
                XCTAssertEqual(t.values, byName[t.name]?.values, t.name)
            }
            XCTAssertEqual(try SafetensorsFile(path: out.appendingPathComponent("model.safetensors").path).metadata, ["format": "pt"])
        }
    }

    func testExportIsDeterministicAndReportsProgress() throws {
        let ckpt = try fixture("tiny-gpt2")
        var seen: [(Int, Int)] = []
        let a = try HFTest.tempDir(), b = try HFTest.tempDir()
        try HFExporter.export(ckpt, to: a.path, dtype: .f16) { seen.append(($0, $1)) }
        try HFExporter.export(ckpt, to: b.path, dtype: .f16)
        for file in ["model.safetensors", "config.json", "tokenizer.json"] {
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(file)), try Data(contentsOf: b.appendingPathComponent(file)), file)
        }
        // 4 top-level + 12 per layer x 2 layers (c_attn fused: 2 tensors for the 6 Q/K/V ones).
        XCTAssertEqual(seen.map(\.0), Array(1 ... 28))
        XCTAssertTrue(seen.allSatisfy { $0.1 == 28 })
    }

    func testRefusesInputFolderAndMixedFolders() throws {
        let folder = try HFTest.copyFixture("tiny-llama")
        let ckpt = try HFImporter.load(folder: folder.path)
        HFTest.assertError(["refusing to export into the input checkpoint's folder"]) {
            try HFExporter.export(ckpt, to: folder.path, dtype: .f32)
        }
        let sharded = try HFTest.copyFixture("tiny-llama-untied-sharded")
        HFTest.assertError(["model.safetensors.index.json, which would take precedence"]) {
            try HFExporter.export(ckpt, to: sharded.path, dtype: .f32)
        }
        let noTokenizer = Checkpoint(path: ckpt.path, format: ckpt.format, config: ckpt.config, tokenizerJSON: nil,
                                     tensors: ckpt.tensors, files: ckpt.files)
        let stale = try HFTest.tempDir()
        try Data("{}".utf8).write(to: stale.appendingPathComponent("tokenizer.json"))
        HFTest.assertError(["holds a tokenizer.json but the checkpoint has no tokenizer"]) {
            try HFExporter.export(noTokenizer, to: stale.path, dtype: .f32)
        }
        let file = stale.appendingPathComponent("tokenizer.json").path
        HFTest.assertError(["exists and is not a folder"]) { try HFExporter.export(ckpt, to: file, dtype: .f32) }
    }

    /// A weight too large for f16 or a NaN stops the export, and no model.safetensors is left behind.
    func testBadWeightsLeaveNoModelFile() throws {
        let ckpt = try fixture("tiny-llama")
        for (bad, message) in [(Float(1e6), "overflows F16"), (.nan, "not finite")] {
            let tensors = ckpt.tensors.map { t in
                t.name == "blk.0.ffn_up.weight" ? t.with { [bad] + Array(repeating: 0, count: t.count - 1) } : t
            }
            let edited = Checkpoint(path: ckpt.path, format: ckpt.format, config: ckpt.config, tokenizerJSON: nil,
                                    tensors: tensors, files: ckpt.files)
            let out = try HFTest.tempDir()
            HFTest.assertError([message]) { try HFExporter.export(edited, to: out.path, dtype: .f16) }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), [])
        }
    }

    func testPerLayerSizesAreRefusedBeforeWriting() throws {
        let ckpt = try fixture("tiny-llama")
        var config = ckpt.config
        config.layers = [.init(numHeads: 4, numKVHeads: 2, intermediateSize: 128), .init(numHeads: 4, numKVHeads: 2, intermediateSize: 64)]
        let pruned = Checkpoint(path: ckpt.path, format: ckpt.format, config: config, tokenizerJSON: nil, tensors: ckpt.tensors, files: ckpt.files)
        let out = try HFTest.tempDir().appendingPathComponent("never")
        HFTest.assertError(["per-layer sizes"]) { try HFExporter.export(pruned, to: out.path, dtype: .f32) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
