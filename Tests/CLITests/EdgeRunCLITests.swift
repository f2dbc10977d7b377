import Checkpoint
import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// End-to-end tests of the built `edge-run` binary on files the `compress` binary writes.
final class EdgeRunCLITests: TempDirTestCase {
    /// The CLI's perplexity of an f32 `.edge` equals the runtime's over the float checkpoint in
    /// memory (the compressor's "before" path), and follows the chunking convention.
    func testPerplexityOfFileEqualsInMemoryCheckpoint() throws {
        for fixture in ["tiny-gpt2", "tiny-llama"] {
            let edge = try convert(fixture, recipe: "f32")
            let text = root.appendingPathComponent("Fixtures/text/us-declaration.txt").path
            let r = try run("edge-run", ["perplexity", edge, "--text", text, "--ctx", "64", "--chunks", "4", "--json", "--threads", "2"])
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let ppl = try XCTUnwrap(json["ppl"] as? Double), tokens = try XCTUnwrap(json["tokens"] as? Int)
            XCTAssertGreaterThan(tokens, 4 * 64)
            XCTAssertEqual(json["chunks"] as? Int, 4)
            XCTAssertEqual(json["scored_tokens"] as? Int, 4 * 31)

            let ckpt = try Checkpoint.open(root.appendingPathComponent("Fixtures/\(fixture)").path)
            var sources: [String: WeightSource] = [:]
            for t in ckpt.tensors { sources[t.name] = .floats(try t.floats(), shape: t.shape) }
            let model = try EdgeModel(config: ckpt.config, tensors: sources, tokenizer: try Tokenizer(json: [UInt8](XCTUnwrap(ckpt.tokenizerJSON))))
            let mine = try model.perplexity(text: String(contentsOfFile: text, encoding: .utf8), ctx: 64, maxChunks: 4)
            XCTAssertEqual(mine.tokens, tokens)
            XCTAssertEqual(mine.ppl, ppl, accuracy: ppl * 1e-9, fixture)
        }
    }

    /// `--activations` is an explicit option, shown in the text and JSON outputs; no environment
    /// variable changes the numbers.
    func testActivationsOptionIsRecordedAndTheEnvironmentIgnored() throws {
        let edge = try convert("tiny-llama", recipe: "int8")
        let text = root.appendingPathComponent("Fixtures/text/us-declaration.txt").path
        let args = ["perplexity", edge, "--text", text, "--ctx", "64", "--chunks", "2", "--threads", "2"]
        func ppl(_ extra: [String], environment: [String: String]? = nil) throws -> (Double, String?) {
            let r = try runTool("edge-run", args + extra + ["--json"], environment: environment)
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return (try XCTUnwrap(json["ppl"] as? Double), json["activations"] as? String)
        }
        let i16 = try ppl([]), q8 = try ppl(["--activations", "q8"]), f32 = try ppl(["--activations", "f32"])
        XCTAssertEqual(i16.1, "i16")
        XCTAssertEqual(q8.1, "q8")
        XCTAssertEqual(f32.1, "f32")
        XCTAssertNotEqual(q8.0, f32.0, "q8 activations change an int8 model's numbers")
        var environment = ProcessInfo.processInfo.environment
        environment["EDGE_Q8_ACTIVATIONS"] = "q8"
        let withVariable = try ppl([], environment: environment)
        XCTAssertEqual(withVariable.0, i16.0, "the old environment variable changes nothing")
        XCTAssertEqual(withVariable.1, "i16")
        let line = try run("edge-run", args + ["--activations", "q8"])
        XCTAssertEqual(line.code, 0, line.stderr)
        XCTAssertTrue(line.stdout.hasSuffix(", activations q8\n"), line.stdout)
    }

    /// `--kernels` and `--gemm` choose the SIMD level and GEMM kernel; the JSON output names what
    /// ran, a level the CPU lacks is refused in one line, and the old variables change nothing.
    func testKernelOptionsAreRecordedAndTheEnvironmentIgnored() throws {
        let edge = try convert("tiny-llama", recipe: "f32")
        let text = root.appendingPathComponent("Fixtures/text/us-declaration.txt").path
        let args = ["perplexity", edge, "--text", text, "--ctx", "64", "--chunks", "2", "--threads", "2", "--json"]
        func run(_ extra: [String], environment: [String: String]? = nil) throws -> (ppl: Double, kernels: [String: Any]) {
            let r = try runTool("edge-run", args + extra, environment: environment)
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return (try XCTUnwrap(json["ppl"] as? Double), try XCTUnwrap(json["kernels"] as? [String: Any]))
        }
        let auto = try run([])
        XCTAssertEqual(auto.kernels["gemm_mode"] as? String, "auto")
        XCTAssertNotEqual(auto.kernels["level"] as? String, "auto", "the report names the level that ran")
        XCTAssertEqual(auto.kernels["batch_tokens"] as? Int, 64)
        let ref = try run(["--kernels", "ref", "--gemm", "dot"])
        XCTAssertEqual(ref.kernels["level"] as? String, "ref")
        XCTAssertEqual(ref.kernels["gemm_mode"] as? String, "dot")
        XCTAssertEqual((ref.kernels["batch"] as? [String: String])?["f32"], "ref")
        XCTAssertEqual(ref.ppl, auto.ppl, accuracy: auto.ppl * 1e-4, "kernels differ in the last bits only")
        var environment = ProcessInfo.processInfo.environment
        environment["EDGE_KERNELS"] = "ref"
        environment["EDGE_GEMM"] = "dot"
        let withVariables = try run([], environment: environment)
        XCTAssertEqual(withVariables.ppl, auto.ppl, "the old environment variables change nothing")
        XCTAssertEqual(withVariables.kernels["level"] as? String, auto.kernels["level"] as? String)
        XCTAssertEqual(withVariables.kernels["gemm_mode"] as? String, "auto")
        #if arch(x86_64)
        let refused = try runTool("edge-run", args + ["--kernels", "neon"])
        XCTAssertNotEqual(refused.code, 0)
        XCTAssertTrue(refused.stderr.contains("--kernels neon: this CPU or build cannot run it"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, "one line, no usage text: \(refused.stderr)")
        #endif
    }

    func testInfoAndGenerate() throws {
        let edge = try convert("tiny-llama", recipe: "int8")
        let info = try run("edge-run", ["info", edge])
        XCTAssertEqual(info.code, 0, info.stderr)
        XCTAssertTrue(info.stdout.contains("valid .edge v1"), info.stdout)
        XCTAssertTrue(info.stdout.contains("llama: 2 layers"), info.stdout)
        XCTAssertTrue(info.stdout.contains("q8 sym"), info.stdout)

        let a = try run("edge-run", ["generate", edge, "--prompt", "We the People", "-n", "6"])
        XCTAssertEqual(a.code, 0, a.stderr)
        XCTAssertTrue(a.stdout.hasPrefix("We the People"))
        XCTAssertGreaterThan(a.stdout.count, "We the People\n".count)
        XCTAssertEqual(try run("edge-run", ["generate", edge, "--prompt", "We the People", "-n", "6"]).stdout, a.stdout, "greedy is deterministic")
        let s1 = try run("edge-run", ["generate", edge, "--prompt", "We", "-n", "6", "--temperature", "1", "--seed", "9"])
        let s2 = try run("edge-run", ["generate", edge, "--prompt", "We", "-n", "6", "--temperature", "1", "--seed", "9"])
        XCTAssertEqual(s1.code, 0, s1.stderr)
        XCTAssertEqual(s1.stdout, s2.stdout, "a seed fixes the sample")
    }

    /// `edge-run bench`: pp and tg series with the asked-for repetitions, medians of them, the peak
    /// RSS and the file size in the JSON; a run longer than the model's positions is one clear line.
    func testBench() throws {
        let edge = try convert("tiny-llama", recipe: "int8")
        let r = try run("edge-run", ["bench", edge, "-p", "16", "-n", "8", "-r", "3", "--json", "--threads", "2"])
        XCTAssertEqual(r.code, 0, r.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for (key, tokens) in [("pp", 16), ("tg", 8)] {
            let series = try XCTUnwrap(json[key] as? [String: Any], key)
            XCTAssertEqual(series["tokens"] as? Int, tokens)
            let each = try XCTUnwrap(series["tokens_per_second"] as? [Double])
            XCTAssertEqual(each.count, 3)
            XCTAssertTrue(each.allSatisfy { $0 > 0 && $0.isFinite }, "\(each)")
            XCTAssertEqual(try XCTUnwrap(series["median"] as? Double), each.sorted()[1])
        }
        let bytes = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: edge)[.size] as? Int)
        XCTAssertEqual(json["file_bytes"] as? Int, bytes)
        XCTAssertGreaterThan(try XCTUnwrap(json["peak_rss_bytes"] as? Int), bytes)
        XCTAssertEqual(json["threads"] as? Int, 2)
        XCTAssertNotNil((json["kernels"] as? [String: Any])?["level"])
        XCTAssertEqual(json["load"] as? String, Residency.automatic(bytes: bytes).rawValue, "--load auto resolves to map or copy")
        for load in ["map", "copy"] {  // either way the file's bytes run; the JSON says which
            let l = try run("edge-run", ["bench", edge, "-p", "4", "-n", "2", "-r", "1", "--json", "--load", load])
            XCTAssertEqual(l.code, 0, l.stderr)
            let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(l.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(j["load"] as? String, load)
        }
        let gen = try ["map", "copy"].map { try run("edge-run", ["generate", edge, "--prompt", "We", "-n", "6", "--load", $0]) }
        XCTAssertEqual(gen[0].code, 0, gen[0].stderr)
        XCTAssertEqual(gen[0].stdout, gen[1].stdout, "the same bytes, the same tokens")
        let badLoad = try run("edge-run", ["bench", edge, "--load", "swap"])
        XCTAssertNotEqual(badLoad.code, 0)
        XCTAssertTrue(badLoad.stderr.contains("--load"), badLoad.stderr)

        let text = try run("edge-run", ["bench", edge, "-p", "0", "-n", "4", "-r", "1"])
        XCTAssertEqual(text.code, 0, text.stderr)
        XCTAssertTrue(text.stdout.hasPrefix("tg4: "), text.stdout)
        XCTAssertFalse(text.stdout.contains("pp"), text.stdout)

        let long = try run("edge-run", ["bench", edge, "-p", "100000", "-n", "0"])
        XCTAssertNotEqual(long.code, 0)
        XCTAssertEqual(long.stderr.split(separator: "\n").count, 1, long.stderr)
        XCTAssertTrue(long.stderr.contains("100000") && long.stderr.contains("max_positions"), long.stderr)
        // -d: the runs start from a cache already holding that many positions (llama-bench's -d).
        let deep = try run("edge-run", ["bench", edge, "-p", "4", "-n", "4", "-r", "1", "-d", "40", "--json"])
        XCTAssertEqual(deep.code, 0, deep.stderr)
        let dj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(deep.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(dj["depth"] as? Int, 40)
        XCTAssertEqual((dj["tg"] as? [String: Any])?["tokens"] as? Int, 4)
        XCTAssertEqual(json["depth"] as? Int, 0, "no -d: an empty cache")
        let deepText = try run("edge-run", ["bench", edge, "-p", "0", "-n", "4", "-r", "1", "-d", "40"])
        XCTAssertTrue(deepText.stdout.hasPrefix("tg4 @ d40: "), deepText.stdout)
        let positions = try FixtureModel("tiny-llama").config.maxPositions
        let over = try run("edge-run", ["bench", edge, "-p", "0", "-n", "4", "-d", "\(positions - 3)"])
        XCTAssertNotEqual(over.code, 0)
        XCTAssertEqual(over.stderr.split(separator: "\n").count, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("\(positions + 1)") && over.stderr.contains("depth"), over.stderr)
        for bad in [["-r", "0"], ["-p", "0", "-n", "0"], ["-n", "-1"], ["-d", "-1"]] {
            let u = try run("edge-run", ["bench", edge] + bad)
            XCTAssertNotEqual(u.code, 0, "\(bad)")
            XCTAssertTrue(u.stderr.hasPrefix("Error: "), u.stderr)
        }
    }

    func testErrorsAreOneLine() throws {
        let edge = try convert("tiny-gpt2", recipe: "f32")
        let short = tmp.appendingPathComponent("short.txt")
        try "We the People".write(to: short, atomically: true, encoding: .utf8)
        // Runtime failures: exactly one line. Argument errors: ArgumentParser's "Error: ..." line, then usage.
        for (args, parts, oneLine) in [
            (["perplexity", edge, "--text", short.path, "--ctx", "64"], ["tokens", "128"], true),
            (["perplexity", edge, "--text", short.path, "--ctx", "1024"], ["1024", "128"], true),
            (["perplexity", edge, "--text", tmp.appendingPathComponent("none.txt").path], ["none.txt"], true),
            (["info", short.path], ["short.txt", "not an .edge file"], true),
            (["generate", edge, "--prompt", "x", "--threads", "0"], ["--threads must be at least 1"], false),
        ] {
            let r = try run("edge-run", args)
            XCTAssertNotEqual(r.code, 0, "\(args)")
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            if oneLine { XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)") }
            XCTAssertTrue(lines.first?.hasPrefix("Error: ") ?? false, "\(args): \(r.stderr)")
            for p in parts { XCTAssertTrue(lines.first?.contains(p) ?? false, "\(args): '\(r.stderr)' lacks '\(p)'") }
            XCTAssertFalse(r.stderr.contains("Fatal error"))
        }
    }

    // MARK: helpers

    var root: URL { packageRoot() }

    /// `compress --recipe Recipes/<recipe>.json Fixtures/<fixture> tmp/<fixture>-<recipe>.edge`.
    func convert(_ fixture: String, recipe: String) throws -> String {
        let out = tmp.appendingPathComponent("\(fixture)-\(recipe).edge").path
        let r = try run("compress", ["--recipe", root.appendingPathComponent("Recipes/\(recipe).json").path,
                                     root.appendingPathComponent("Fixtures/\(fixture)").path, out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    func run(_ tool: String, _ args: [String]) throws -> ToolResult { try runTool(tool, args) }
}
