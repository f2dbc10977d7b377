import Foundation
import TestSupport
import XCTest

/// End-to-end tests of `compress verify`: the report (JSON and text), KL ordering across recipes,
/// the budget's exit code, and one-line errors.
final class VerifyCLITests: TempDirTestCase {
    let text = fixturePath("text/us-constitution.txt")

    func testF32AgainstItsOwnSourceIsExact() throws {
        for fixture in ["tiny-llama", "tiny-gpt2"] {
            let out = try convert(fixture, recipePath("f32"))
            let j = try verifyJSON([fixturePath(fixture), out, "--text", text, "--ctx", "64", "--chunks", "3", "--json"])
            XCTAssertEqual(j["kl"] as! Double, 0, accuracy: 1e-9, fixture)
            XCTAssertEqual(j["top1_agreement"] as? Double, 1, fixture)
            let before = j["before"] as! [String: Any], after = j["after"] as! [String: Any]
            XCTAssertEqual(before["ppl"] as? Double, after["ppl"] as? Double, fixture)
            XCTAssertEqual(j["ppl_increase"] as? Double, 0, fixture)
            XCTAssertEqual(j["scored_tokens"] as? Int, 3 * 31)
            XCTAssertEqual(j["ctx"] as? Int, 64)
        }
    }

    func testJSONSchema() throws {
        let out = try convert("tiny-llama", recipePath("int8"))
        let j = try verifyJSON([fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "2", "--json"])
        XCTAssertEqual(Set(j.keys), ["before", "after", "kl", "top1_agreement", "size", "ppl_increase", "tokens",
                                     "scored_tokens", "ctx", "seconds", "activations", "budget", "kernels"])
        let kernels = try XCTUnwrap(j["kernels"] as? [String: Any])
        XCTAssertEqual(kernels["gemm_mode"] as? String, "auto", "the default GEMM mode is recorded")
        XCTAssertNotNil(kernels["level"] as? String)
        XCTAssertEqual(j["activations"] as? String, "i16", "the default activation precision is recorded")
        for side in ["before", "after"] {
            XCTAssertEqual(Set((j[side] as! [String: Any]).keys), ["ppl", "bytes", "bits_per_weight"], side)
        }
        let size = j["size"] as! [String: Any]
        XCTAssertEqual(Set(size.keys), ["before", "after", "ratio"])
        let edgeBytes = try FileManager.default.attributesOfItem(atPath: out)[.size] as! Int
        XCTAssertEqual(size["after"] as? Int, edgeBytes)
        XCTAssertEqual(size["before"] as? Int, try FileManager.default.attributesOfItem(atPath: fixturePath("tiny-llama/model.safetensors"))[.size] as? Int)
        XCTAssertEqual(size["ratio"] as! Double, Double(size["before"] as! Int) / Double(edgeBytes), accuracy: 1e-9)
        let budget = j["budget"] as! [String: Any]
        XCTAssertEqual(budget["ok"] as? Bool, true)
        XCTAssertEqual(budget["violations"] as? [String], [])
        XCTAssertNil(budget["max_bytes"])
        let before = j["before"] as! [String: Any], after = j["after"] as! [String: Any]
        XCTAssertEqual(j["ppl_increase"] as! Double, (after["ppl"] as! Double) / (before["ppl"] as! Double) - 1, accuracy: 1e-12)
        // f32 input: close to 32 bits per weight; both sides count the same weights here.
        let beforeBPW = before["bits_per_weight"] as! Double
        XCTAssertEqual(beforeBPW, 32, accuracy: 1)
        let parameters = Double(before["bytes"] as! Int) * 8 / beforeBPW
        XCTAssertEqual(after["bits_per_weight"] as! Double, Double(edgeBytes) * 8 / parameters, accuracy: 1e-9)
    }

    /// `--activations` is an option of the run, recorded in both outputs; q8 activations change the
    /// int8 file's numbers, not the float input's.
    func testActivationsOption() throws {
        let out = try convert("tiny-llama", recipePath("int8"))
        let args = [fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "2"]
        let i16 = try verifyJSON(args + ["--json"]), q8 = try verifyJSON(args + ["--json", "--activations", "q8"])
        XCTAssertEqual(q8["activations"] as? String, "q8")
        let b16 = i16["before"] as! [String: Any], b8 = q8["before"] as! [String: Any]
        let a16 = i16["after"] as! [String: Any], a8 = q8["after"] as! [String: Any]
        XCTAssertEqual(b16["ppl"] as? Double, b8["ppl"] as? Double)
        XCTAssertNotEqual(a16["ppl"] as? Double, a8["ppl"] as? Double)
        let textReport = try runTool("compress", ["verify"] + args + ["--activations", "f32"])
        XCTAssertEqual(textReport.code, 0, textReport.stderr)
        XCTAssertTrue(textReport.stdout.contains("activations f32"), textReport.stdout)
        let bad = try runTool("compress", ["verify"] + args + ["--activations", "i8"])
        XCTAssertNotEqual(bad.code, 0)
        XCTAssertTrue(bad.stderr.contains("--activations"), bad.stderr)
    }

    func testKLGrowsWithCompression() throws {
        for fixture in ["tiny-llama", "tiny-gpt2"] {
            var kl: [String: Double] = [:], top1: [String: Double] = [:]
            for recipe in ["int8", "int8-prune50"] {
                let out = try convert(fixture, recipePath(recipe))
                let j = try verifyJSON([fixturePath(fixture), out, "--text", text, "--ctx", "64", "--chunks", "4", "--json"])
                kl[recipe] = j["kl"] as? Double
                top1[recipe] = j["top1_agreement"] as? Double
            }
            XCTAssertGreaterThan(kl["int8"]!, 0, fixture)
            XCTAssertLessThan(kl["int8"]!, 0.05, fixture)
            XCTAssertGreaterThan(kl["int8-prune50"]!, kl["int8"]!, fixture)
            XCTAssertLessThanOrEqual(top1["int8-prune50"]!, top1["int8"]!, fixture)
        }
    }

    func testTextReport() throws {
        let out = try convert("tiny-gpt2", recipePath("int8"))
        let r = try run(["verify", fixturePath("tiny-gpt2"), out, "--text", text, "--ctx", "32", "--chunks", "2", "--threads", "1"])
        XCTAssertEqual(r.code, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        for part in ["ppl", "bytes", "bits/w", "KL(before || after)", "top-1 agreement", "budget: none", "30 of"] {
            XCTAssertTrue(r.stdout.contains(part), "'\(r.stdout)' lacks '\(part)'")
        }
    }

    func testBudgetExceededPrintsReportAndExitsThree() throws {
        // The budget recorded in the .edge file's recipe.
        let tight = try writeRecipe("tight", #"{"name":"tight","passes":[{"pass":"quantize","bits":8}],"budget":{"max_bytes":1000}}"#)
        let out = try convert("tiny-llama", tight)
        let r = try run(["verify", fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "1", "--json"])
        XCTAssertEqual(r.code, 3, r.stderr)
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let budget = j["budget"] as! [String: Any]
        XCTAssertEqual(budget["ok"] as? Bool, false)
        XCTAssertEqual(budget["max_bytes"] as? Int, 1000)
        XCTAssertEqual((budget["violations"] as? [String])?.count, 1)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("budget exceeded: size "), r.stderr)
        XCTAssertTrue(r.stderr.contains("> max 1000 bytes"), r.stderr)
        // Text mode prints the report too.
        let t = try run(["verify", fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "1"])
        XCTAssertEqual(t.code, 3)
        XCTAssertTrue(t.stdout.contains("EXCEEDED"), t.stdout)
        // --recipe replaces the recorded budget: a generous one passes.
        let loose = try writeRecipe("loose", #"{"passes":[],"budget":{"max_ppl_increase":1000}}"#)
        let ok = try run(["verify", fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "1", "--json", "--recipe", loose])
        XCTAssertEqual(ok.code, 0, ok.stderr)
        let b = (try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as! [String: Any])["budget"] as! [String: Any]
        XCTAssertEqual(b["ok"] as? Bool, true)
        XCTAssertEqual(b["max_ppl_increase"] as? Double, 1000)
        XCTAssertNil(b["max_bytes"])
        // and a ppl budget of 0 fails on the quantized file's ppl change
        let zero = try writeRecipe("zero", #"{"passes":[],"budget":{"max_ppl_increase":0}}"#)
        let z = try run(["verify", fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "2", "--recipe", zero])
        let increased = try verifyJSON([fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "2", "--json", "--recipe", loose])["ppl_increase"] as! Double
        if increased > 0 {
            XCTAssertEqual(z.code, 3)
            XCTAssertTrue(z.stderr.hasPrefix("budget exceeded: ppl increase "), z.stderr)
        } else {
            XCTAssertEqual(z.code, 0, z.stderr)
        }
    }

    func testErrorsAreOneLine() throws {
        let out = try convert("tiny-llama", recipePath("f32"))
        let missing = try run(["verify", fixturePath("tiny-llama"), out, "--text", tmp.appendingPathComponent("no.txt").path])
        assertOneLineError(missing, ["no.txt"])
        let short = tmp.appendingPathComponent("short.txt")
        try "We the People of the United States".write(to: short, atomically: true, encoding: .utf8)
        assertOneLineError(try run(["verify", fixturePath("tiny-llama"), out, "--text", short.path, "--ctx", "64"]), ["tokens", "128"])
        // The default --ctx 512 is beyond these models' 128 positions.
        assertOneLineError(try run(["verify", fixturePath("tiny-llama"), out, "--text", text]), ["512", "128"])
        assertOneLineError(try run(["verify", fixturePath("tiny-gpt2"), out, "--text", text, "--ctx", "64"]), ["tokenizers", "disagree"])
        assertOneLineError(try run(["verify", fixturePath("tiny-llama"), tmp.appendingPathComponent("none.edge").path, "--text", text]), ["none.edge"])
        assertOneLineError(try run(["verify", fixturePath("tiny-llama"), out, "--text", text, "--ctx", "64", "--chunks", "0"]), ["chunks"])
    }

    // MARK: helpers

    func run(_ args: [String]) throws -> ToolResult { try runTool("compress", args) }

    /// Converts a fixture with a recipe file; returns the `.edge` path.
    func convert(_ fixture: String, _ recipe: String) throws -> String {
        let out = tmp.appendingPathComponent("\(fixture)-\(URL(fileURLWithPath: recipe).lastPathComponent).edge").path
        let r = try run(["--recipe", recipe, fixturePath(fixture), out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    func verifyJSON(_ args: [String]) throws -> [String: Any] {
        let r = try run(["verify"] + args)
        XCTAssertEqual(r.code, 0, r.stderr)
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    }

    func writeRecipe(_ name: String, _ json: String) throws -> String {
        let url = tmp.appendingPathComponent("\(name).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func assertOneLineError(_ r: ToolResult, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertOneLineFailure(r, contains: parts, exitCode: 1, file: file, line: line)
    }
}
