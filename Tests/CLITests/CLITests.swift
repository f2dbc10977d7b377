import Checkpoint
import Compression
import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// End-to-end tests of the built `compress` binary: exit codes, the one-line errors, atomic output.
final class CLITests: TempDirTestCase {
    func testConvertEveryRecipeEveryFixture() throws {
        for fixture in ["tiny-llama", "tiny-gpt2", "tiny-llama-untied-sharded", "tiny-llama-f16", "tiny-llama.gguf", "tiny-gpt2.gguf"] {
            for recipe in ["f32", "f16", "int8", "int8-prune50"] {
                let out = tmp.appendingPathComponent("\(fixture)-\(recipe).edge").path
                let r = try compress(["--recipe", recipePath(recipe), fixturePath(fixture), out])
                XCTAssertEqual(r.code, 0, "\(fixture) \(recipe): \(r.stderr)")
                XCTAssertTrue(FileManager.default.fileExists(atPath: out))
                // The .edge decodes to (nearly) the input values.
                let src = try Checkpoint.open(fixturePath(fixture)), edge = try Checkpoint.open(out)
                XCTAssertEqual(src.config, edge.config)
                XCTAssertEqual(edge.tensors.map(\.name), src.tensors.map(\.name))
                for (a, b) in zip(src.tensors, edge.tensors) {
                    let x = try a.floats(), y = try b.floats()
                    let scale = x.map(\.magnitude).max() ?? 0
                    let tol: Float = recipe == "f32" ? 0 : recipe == "f16" ? scale / 1000 : scale / 100
                    if recipe == "int8-prune50" { continue }  // pruning changes values on purpose; checked below
                    for i in x.indices where (x[i] - y[i]).magnitude > tol {
                        XCTFail("\(fixture) \(recipe) \(a.name)[\(i)]: \(x[i]) vs \(y[i])"); break
                    }
                }
            }
        }
    }

    func testPrune50IsHalfSparseAndQuantized() throws {
        let out = tmp.appendingPathComponent("p.edge").path
        XCTAssertEqual(try compress(["--recipe", recipePath("int8-prune50"), fixturePath("tiny-llama"), out]).code, 0)
        let edge = try Checkpoint.open(out)
        for t in edge.tensors where t.name.hasPrefix("blk.") && t.shape.count == 2 {
            let v = try t.floats()
            XCTAssertEqual(Double(v.filter { $0 == 0 }.count) / Double(v.count), 0.5, accuracy: 0.01, t.name)
            XCTAssertTrue(["bitmask", "csr"].contains(t.storage), "\(t.name): packed sparse, got \(t.storage)")
        }
        XCTAssertEqual(edge.tensor(named: "blk.0.attn_norm.weight")?.storage, "f32")
    }

    func testDeterministicBytes() throws {
        for fixture in ["tiny-llama", "tiny-llama.gguf"] {
            let a = tmp.appendingPathComponent("a.edge").path, b = tmp.appendingPathComponent("b.edge").path
            XCTAssertEqual(try compress(["--recipe", recipePath("int8-prune50"), fixturePath(fixture), a]).code, 0)
            XCTAssertEqual(try compress(["--recipe", recipePath("int8-prune50"), fixturePath(fixture), b]).code, 0)
            XCTAssertEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: b), fixture)
        }
    }

    func testDeflateShrinksAndDecodesTheSame() throws {
        let plain = tmp.appendingPathComponent("plain.edge").path, packed = tmp.appendingPathComponent("packed.edge").path
        XCTAssertEqual(try compress(["--recipe", recipePath("f32"), fixturePath("tiny-gpt2"), plain]).code, 0)
        XCTAssertEqual(try compress(["--recipe", recipePath("f32"), "--deflate", fixturePath("tiny-gpt2"), packed]).code, 0)
        let a = try Checkpoint.open(plain), b = try Checkpoint.open(packed)
        for (x, y) in zip(a.tensors, b.tensors) { XCTAssertEqual(try x.floats(), try y.floats(), x.name) }
        XCTAssertEqual(a.tokenizerJSON, b.tokenizerJSON)
        let size = { (p: String) in try FileManager.default.attributesOfItem(atPath: p)[.size] as! Int }
        XCTAssertLessThan(try size(packed), try size(plain), "the tokenizer blob at least deflates")
    }

    func testBadRecipeIsOneLineAndLeavesNoOutput() throws {
        let recipe = tmp.appendingPathComponent("bad.json")
        try #"{"passes":[{"pass":"magnitude_prune","sparsity":1.7}]}"#.write(to: recipe, atomically: true, encoding: .utf8)
        let out = tmp.appendingPathComponent("o.edge").path
        let r = try compress(["--recipe", recipe.path, fixturePath("tiny-llama"), out])
        assertOneLineError(r, contains: ["bad.json", "passes[0].sparsity", "1.7"])
        assertNoOutput(out)
    }

    /// Without --data a calibration recipe runs on the bundled calibration set and the output says
    /// so (`metrics.calibration.source`); --data overrides it; a bad --data is one line.
    func testCalibrationPassesUseTheBundledSetOrData() throws {
        let out = tmp.appendingPathComponent("w.edge").path
        let r = try compress(["--recipe", recipePath("wanda50-int8"), "--json", fixturePath("tiny-llama"), out])
        XCTAssertEqual(r.code, 0, r.stderr)
        let header = try EdgeFile(path: out).provenance.metrics["calibration"]
        XCTAssertEqual(header?["source"]?.stringValue, "bundled")
        let ok = try compress(["--recipe", recipePath("wanda50-int8"), "--data", fixturePath("text/us-declaration.txt"), fixturePath("tiny-gpt2"), out])
        XCTAssertEqual(ok.code, 0, ok.stderr)
        let r2 = try compress(["--recipe", recipePath("gptq-int4-g64"), "--data", tmp.appendingPathComponent("none.txt").path, fixturePath("tiny-gpt2"), out])
        assertOneLineError(r2, contains: ["none.txt"])
    }

    func testMissingInput() throws {
        let out = tmp.appendingPathComponent("o.edge").path
        let r = try compress(["--recipe", recipePath("int8"), tmp.appendingPathComponent("nope").path, out])
        assertOneLineError(r, contains: ["nope", "no such file"])
        assertNoOutput(out)
    }

    func testTruncatedSafetensorsNamesTheFile() throws {
        let dir = try copyFixture("tiny-gpt2")
        let model = dir.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: model)
        for cut in [4, 100, data.count / 2, data.count - 1] {
            try data.prefix(cut).write(to: model)
            let out = tmp.appendingPathComponent("o.edge").path
            let r = try compress(["--recipe", recipePath("int8"), dir.path, out])
            assertOneLineError(r, contains: ["model.safetensors"])
            assertNoOutput(out)
        }
    }

    func testNaNWeightNamesTheTensor() throws {
        let dir = try copyFixture("tiny-llama")
        let model = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: model)
        let headerLen = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: data[8 ..< 8 + headerLen]) as! [String: Any]
        // the tensor whose data starts at offset 0 of the buffer
        let (name, _) = header.first { k, v in k != "__metadata__" && ((v as? [String: Any])?["data_offsets"] as? [Int])?.first == 0 }!
        let nan = Float.nan.bitPattern.littleEndian
        withUnsafeBytes(of: nan) { data.replaceSubrange(8 + headerLen + 4 ..< 8 + headerLen + 8, with: $0) }
        try data.write(to: model)
        let out = tmp.appendingPathComponent("o.edge").path
        let r = try compress(["--recipe", recipePath("int8"), dir.path, out])
        assertOneLineError(r, contains: [name, "not finite", "index 1"])
        assertNoOutput(out)
    }

    func testShapeMismatchWithConfig() throws {
        let dir = try copyFixture("tiny-llama")
        let cfg = dir.appendingPathComponent("config.json")
        let text = try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(of: "\"intermediate_size\": 128", with: "\"intermediate_size\": 96")
        XCTAssertTrue(text.contains("96"), "fixture config layout changed")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        let r = try compress(["--recipe", recipePath("int8"), dir.path, tmp.appendingPathComponent("o.edge").path])
        assertOneLineError(r, contains: ["gate_proj", "96"])
    }

    func testUnknownArchitecture() throws {
        let dir = try copyFixture("tiny-llama")
        let cfg = dir.appendingPathComponent("config.json")
        let text = try String(contentsOf: cfg, encoding: .utf8)
            .replacingOccurrences(of: "LlamaForCausalLM", with: "FalconForCausalLM").replacingOccurrences(of: "\"llama\"", with: "\"falcon\"")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        let r = try compress(["--recipe", recipePath("int8"), dir.path, tmp.appendingPathComponent("o.edge").path])
        assertOneLineError(r, contains: ["Falcon"])
    }

    func testRefusesToOverwriteInputAndKeepsExistingOutputOnFailure() throws {
        let first = tmp.appendingPathComponent("a.edge").path
        XCTAssertEqual(try compress(["--recipe", recipePath("int8"), fixturePath("tiny-llama"), first]).code, 0)
        let before = FileManager.default.contents(atPath: first)
        let r = try compress(["--recipe", recipePath("f32"), first, first])
        assertOneLineError(r, contains: ["overwrite the input"])
        XCTAssertEqual(FileManager.default.contents(atPath: first), before)
        // a failing run over an existing output leaves the old output intact
        let bad = tmp.appendingPathComponent("bad.json")
        try #"{"passes":[{"pass":"quantize","bits":8,"kinds":["norm"]}]}"#.write(to: bad, atomically: true, encoding: .utf8)
        let r2 = try compress(["--recipe", bad.path, fixturePath("tiny-llama"), first])
        assertOneLineError(r2, contains: ["passes[0]", "attn_norm"])
        XCTAssertEqual(FileManager.default.contents(atPath: first), before)
    }

    func testInspectJSONAndText() throws {
        let out = tmp.appendingPathComponent("p.edge").path
        XCTAssertEqual(try compress(["--recipe", recipePath("int8-prune50"), fixturePath("tiny-gpt2"), out]).code, 0)
        let r = try compress(["inspect", "--json", out])
        XCTAssertEqual(r.code, 0, r.stderr)
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(j["format"] as? String, "edge")
        let tensors = j["tensors"] as! [[String: Any]]
        let q = tensors.first { $0["name"] as? String == "blk.0.attn_q.weight" }!
        XCTAssertTrue(["bitmask", "csr"].contains(q["encoding"] as? String ?? ""), "\(q)")
        XCTAssertEqual(q["sparsity"] as! Double, 0.5, accuracy: 0.01)
        let size = try FileManager.default.attributesOfItem(atPath: out)[.size] as! Int
        XCTAssertEqual(j["file_bytes"] as? Int, size)
        XCTAssertEqual(j["bits_per_weight"] as! Double, Double(size) * 8 / (j["parameters"] as! Double), accuracy: 1e-9)
        for input in [fixturePath("tiny-gpt2"), fixturePath("tiny-llama.gguf")] {
            let t = try compress(["inspect", input])
            XCTAssertEqual(t.code, 0, t.stderr)
            XCTAssertTrue(t.stdout.contains("total:"))
        }
    }

    func testExportRoundTripFromEveryFormat() throws {
        for fixture in ["tiny-gpt2", "tiny-llama.gguf", "tiny-gpt2.gguf"] {
            let dir = tmp.appendingPathComponent("exp-\(fixture)")
            let r = try compress(["export", fixturePath(fixture), dir.path])
            XCTAssertEqual(r.code, 0, r.stderr)
            let a = try Checkpoint.open(fixturePath(fixture)), b = try Checkpoint.open(dir.path)
            XCTAssertEqual(a.config, b.config)
            for (x, y) in zip(a.tensors, b.tensors) { XCTAssertEqual(try x.floats(), try y.floats(), x.name) }
            XCTAssertNotNil(b.tokenizerJSON)
        }
        // and from an .edge file (dequantized)
        let edge = tmp.appendingPathComponent("e.edge").path
        XCTAssertEqual(try compress(["--recipe", recipePath("int8"), fixturePath("tiny-llama"), edge]).code, 0)
        let dir = tmp.appendingPathComponent("exp-edge")
        XCTAssertEqual(try compress(["export", "--dtype", "f16", edge, dir.path]).code, 0)
        let b = try Checkpoint.open(dir.path)
        XCTAssertEqual(b.tensors.count, try Checkpoint.open(edge).tensors.count)
    }

    // MARK: helpers

    typealias Result = ToolResult

    func compress(_ args: [String]) throws -> ToolResult { try runTool("compress", args) }

    func assertOneLineError(_ r: Result, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertOneLineFailure(r, contains: parts, file: file, line: line)
    }

    func assertNoOutput(_ path: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "output left behind", file: file, line: line)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let temps = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.contains(".tmp-") } ?? []
        XCTAssertEqual(temps, [], "temporary files left behind", file: file, line: line)
    }

    func copyFixture(_ name: String) throws -> URL {
        let dst = tmp.appendingPathComponent(name)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixturePath(name)), to: dst)
        return dst
    }
}
