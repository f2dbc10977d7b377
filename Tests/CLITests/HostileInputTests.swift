import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// Regression tests for the defects a mutation run over the parsers found (issue 14), run on the
/// built tools: each failed before its fix (a trap, exit 0 on a file a later tool refuses, a
/// partial output folder, a multi-line or overlong error). `scripts/fuzz.py` looks for more.
final class HostileInputTests: TempDirTestCase {
    private func compress(_ args: [String]) throws -> ToolResult { try runTool("compress", args) }
    private func edgeRun(_ args: [String]) throws -> ToolResult { try runTool("edge-run", args) }

    /// Fixtures/tiny-llama converted with `recipe` into tmp/<name>.edge.
    private func edge(_ name: String, recipe: String = "f32") throws -> String {
        let out = tmp.appendingPathComponent("\(name).edge").path
        let r = try compress(["--recipe", recipePath(recipe), fixturePath("tiny-llama"), out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    /// A copy of Fixtures/tiny-llama in tmp/<name>, its JSON file `file` edited.
    private func folder(_ name: String, editing file: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let dst = tmp.appendingPathComponent(name)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixturePath("tiny-llama")), to: dst)
        let path = dst.appendingPathComponent(file)
        var o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any])
        edit(&o)
        try JSONSerialization.data(withJSONObject: o).write(to: path)
        return dst.path
    }

    private var text: String {
        let p = tmp.appendingPathComponent("text.txt")
        if !FileManager.default.fileExists(atPath: p.path) {
            try? String(repeating: "We the People of the United States, in Order to form a more perfect Union. ", count: 8)
                .write(to: p, atomically: true, encoding: .utf8)
        }
        return p.path
    }

    /// The error is one line of at most 300 bytes with no control characters, and the tool did not trap.
    private func assertCleanRefusal(_ r: ToolResult, contains parts: [String], _ what: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        assertOneLineFailure(r, contains: parts, file: file, line: line)
        XCTAssertEqual(r.code, 1, "\(what): exit \(r.code) (a trap is 132/133): \(r.stderr)", file: file, line: line)
        XCTAssertLessThanOrEqual(r.stderr.utf8.count, 301, "\(what): \(r.stderr.utf8.count) bytes", file: file, line: line)
        let controls = r.stderr.dropLast().unicodeScalars.filter { $0.value < 0x20 }
        XCTAssertTrue(controls.isEmpty, "\(what): control characters in \(r.stderr.debugDescription)", file: file, line: line)
    }

    // MARK: 1. Token ids that do not fit in 32 bits (a trap at the Int32 conversion in Generate.swift)

    func testTokenIDsOutsideTheVocabularyAreRefusedInConfigJSON() throws {
        for (i, (field, value)) in [("eos_token_id", 1 << 32), ("bos_token_id", 1 << 40), ("eos_token_id", 512)].enumerated() {
            let input = try folder("m\(i)", editing: "config.json") { $0[field] = value }
            let out = tmp.appendingPathComponent("o\(i).edge").path
            let r = try compress(["--recipe", recipePath("int8"), input, out])
            assertCleanRefusal(r, contains: ["config.json", field, "\(value)", "0..<512"], "\(field) \(value)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    func testTokenIDsOutsideTheVocabularyAreRefusedInAnEdgeHeader() throws {
        for (field, value) in [("eos_token_id", Double(1 << 32)), ("eos_token_id", -Double(1 << 40)), ("bos_token_id", Double(1 << 32))] {
            let path = try edge("ids")
            try editEdgeHeader(path) { tree in
                guard case var .object(top) = tree, case var .object(config)? = top["config"] else { return }
                config[field] = .number(value)
                top["config"] = .object(config)
                tree = .object(top)
            }
            for args in [["generate", path, "--prompt", "We", "-n", "3"], ["perplexity", path, "--text", text, "--ctx", "16"]] {
                assertCleanRefusal(try edgeRun(args), contains: [field], "\(args[0]) \(field) \(value)")
            }
            assertCleanRefusal(try compress(["inspect", path]), contains: [field], "inspect \(field) \(value)")
            try FileManager.default.removeItem(atPath: path)
        }
    }

    // MARK: 2. Overflow in ModelConfig.expectedTensors() (num_heads x head_dim)

    func testHugePerLayerSizesAreRefusedBeforeAnyProduct() throws {
        let path = try edge("huge")
        try editEdgeHeader(path) { tree in
            guard case var .object(top) = tree, case var .object(config)? = top["config"],
                  let layers = config["num_layers"]?.doubleValue else { return }
            config["head_dim"] = .number(Double(1 << 20))
            let layer: JSONValue = .object(["num_heads": .number(Double(1 << 40)), "num_kv_heads": .number(1),
                                            "intermediate_size": .number(128)])
            config["layers"] = .array(Array(repeating: layer, count: Int(layers)))
            top["config"] = .object(config)
            tree = .object(top)
        }
        let export = tmp.appendingPathComponent("export").path
        for (tool, args) in [("compress", ["inspect", path]), ("compress", ["export", path, export]),
                             ("edge-run", ["perplexity", path, "--text", text, "--ctx", "16"]),
                             ("edge-run", ["generate", path, "--prompt", "We", "-n", "2"])] {
            assertCleanRefusal(try runTool(tool, args), contains: ["layers[0]"], "\(tool) \(args[0])")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: export))
        // The same product without per-layer sizes: num_heads x head_dim beyond the bound.
        let path2 = try edge("huge2")
        try editEdgeHeader(path2) { tree in
            guard case var .object(top) = tree, case var .object(config)? = top["config"] else { return }
            config["head_dim"] = .number(Double(1 << 22))
            config["num_heads"] = .number(Double(1 << 22))
            config["num_kv_heads"] = .number(Double(1 << 22))
            top["config"] = .object(config)
            tree = .object(top)
        }
        assertCleanRefusal(try compress(["inspect", path2]), contains: ["num_heads", "head_dim"], "inspect huge2")
    }

    // MARK: 3. `compress export` left an empty folder when a tensor failed to decode

    func testFailedExportLeavesNoFolderAndNoFiles() throws {
        let path = try edge("nan-export")
        try editEdgePayload(path, "blk.1.ffn_up.weight") { bytes, _ in putLE(Float.nan.bitPattern, into: &bytes, at: 4 * 37) }
        let fresh = tmp.appendingPathComponent("fresh/sub").path
        assertCleanRefusal(try compress(["export", path, fresh]), contains: ["blk.1.ffn_up.weight"], "export to a new folder")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh), "no folder after a failed export")
        let existing = tmp.appendingPathComponent("existing")
        try FileManager.default.createDirectory(at: existing, withIntermediateDirectories: true)
        assertCleanRefusal(try compress(["export", path, existing.path]), contains: ["blk.1.ffn_up.weight"], "export into a folder")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: existing.path), [], "no file after a failed export")
        // A good export still creates the folder (and its parents) with every file.
        let good = try edge("good")
        XCTAssertEqual(try compress(["export", good, fresh]).code, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fresh).sorted(), ["config.json", "model.safetensors", "tokenizer.json"])
    }

    // MARK: 4. Values a later tool refuses, accepted earlier

    func testNonFiniteLinearWeightsAreRefusedAtLoadNamingTheTensor() throws {
        // f32 values, f16 values and an int8 row scale: the runtime printed "perplexity nan".
        for recipe in ["f32", "f16", "int8"] {
            let path = try edge("nan-\(recipe)", recipe: recipe)
            try editEdgePayload(path, "blk.0.attn_q.weight") { bytes, e in
                switch PayloadLayout(encoding: e.encoding, shape: e.shape, params: e.params, nnz: e.nnz) {
                case .f32?: putLE(Float.infinity.bitPattern, into: &bytes, at: 4 * 21)
                case .f16?: putLE(UInt16(0x7E00), into: &bytes, at: 2 * 21)
                case let .q8(l)?: putLE(Float.nan.bitPattern, into: &bytes, at: l.scaleOffset + 4 * 3)
                default: XCTFail("\(e.encoding)")
                }
            }
            for args in [["perplexity", path, "--text", text, "--ctx", "16"], ["generate", path, "--prompt", "We", "-n", "2"]] {
                assertCleanRefusal(try edgeRun(args), contains: ["blk.0.attn_q.weight", "non-finite"], "\(recipe) \(args[0])")
            }
        }
    }

    func testTokenizerTheRuntimeRefusesIsRefusedAtConversion() throws {
        let cases: [(String, (inout [String: Any]) -> Void, [String])] = [
            ("merge", { t in
                var m = t["model"] as! [String: Any]
                m["merges"] = [["zq", "qz"]] + (m["merges"] as! [Any])
                t["model"] = m
            }, ["tokenizer.json", "merges"]),
            ("id", { t in
                var m = t["model"] as! [String: Any]
                var v = m["vocab"] as! [String: Any]
                v["zzz"] = 9000
                m["vocab"] = v
                t["model"] = m
            }, ["tokenizer.json", "9000", "vocab_size is 512"]),
        ]
        for (name, edit, parts) in cases {
            let input = try folder("tok-\(name)", editing: "tokenizer.json", edit)
            let out = tmp.appendingPathComponent("tok-\(name).edge").path
            assertCleanRefusal(try compress(["--recipe", recipePath("int8"), input, out]), contains: parts, name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        // A tokenizer kind the runtime does not implement is left out with a warning; the model converts.
        let input = try folder("tok-wordpiece", editing: "tokenizer.json") { t in
            var m = t["model"] as! [String: Any]
            m["type"] = "WordPiece"
            t["model"] = m
        }
        let out = tmp.appendingPathComponent("tok-wordpiece.edge").path
        let r = try compress(["--recipe", recipePath("int8"), input, out])
        XCTAssertEqual(r.code, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("warning:") && r.stderr.contains("no tokenizer"), r.stderr)
        XCTAssertNil(try EdgeFile(path: out).blob(named: "tokenizer.json"))
    }

    // MARK: 5. Input bytes echoed raw in errors

    func testErrorsEscapeControlCharactersAndStayShort() throws {
        // A newline in a recipe string, a newline and 4 KB in config.json's hidden_act.
        let recipe = tmp.appendingPathComponent("bad-recipe.json")
        try #"{"name": "x\ny", "passes": [{"pass": "quantize\nrm", "bits": 8}]}"#.write(to: recipe, atomically: true, encoding: .utf8)
        let out = tmp.appendingPathComponent("o.edge").path
        assertCleanRefusal(try compress(["--recipe", recipe.path, fixturePath("tiny-llama"), out]), contains: ["quantize\\nrm"], "recipe")
        for act in ["silu\nexit", String(repeating: "gelu", count: 1024)] {
            let input = try folder("act\(act.count)", editing: "config.json") { $0["hidden_act"] = act }
            assertCleanRefusal(try compress(["--recipe", recipePath("int8"), input, out]), contains: ["hidden_act"], "hidden_act \(act.count)")
        }
        // A GGUF whose first key claims 4096 bytes: they are binary (NULs included).
        var g = try readBytes(fixturePath("tiny-llama.gguf"))
        putLE(UInt64(4096), into: &g, at: 24)
        let gguf = tmp.appendingPathComponent("long-key.gguf").path
        try writeBytes(g, to: gguf)
        assertCleanRefusal(try compress(["--recipe", recipePath("int8"), gguf, out]), contains: ["long-key.gguf"], "gguf key")
    }
}
