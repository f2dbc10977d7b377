import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// `compress` with a distill recipe: Ctrl-C mid-training leaves a whole checkpoint and no output;
/// the same command again resumes from it. Also `compress train`.
final class DistillCLITests: TempDirTestCase {
    func writeRecipe(steps: Int) throws -> String {
        let path = tmp.appendingPathComponent("distill.json").path
        let json = """
        {"passes": [
          {"pass": "magnitude_prune", "sparsity": 0.5, "kinds": ["linear"], "include": ["blk.*"]},
          {"pass": "quantize", "bits": 8, "symmetric": true},
          {"pass": "distill", "steps": \(steps), "batch": 2, "length": 32, "lr": 1e-3, "eval_every": 0, "checkpoint_every": 1},
          {"pass": "pack", "format": "auto"}]}
        """
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testInterruptLeavesCheckpointAndResumes() throws {
        let recipe = try writeRecipe(steps: 80)
        let out = tmp.appendingPathComponent("out.edge").path
        let ckptDir = tmp.appendingPathComponent("ckpt").path
        let args = ["--recipe", recipe, fixturePath("tiny-llama"), out, "--data", fixturePath("text/us-constitution.txt"),
                    "--checkpoint-dir", ckptDir, "--json"]
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("compress")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let ckpt = ckptDir + "/student.ckpt"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: ckpt), Date() < deadline, p.isRunning { usleep(20_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: ckpt), "no checkpoint appeared")
        usleep(300_000)  // interrupt at any moment, possibly mid-save
        p.interrupt()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130, "SIGINT ends the run with 128 + 2")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output after an interrupt")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: ckptDir).filter { $0 != "student.ckpt" }
        XCTAssertEqual(leftovers, [], "temporary checkpoint files are removed")

        // The same command resumes from the whole checkpoint and finishes.
        let r = try runTool("compress", args)
        XCTAssertEqual(r.code, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let distill = (json["passes"] as! [[String: Any]]).first { $0["pass"] as? String == "distill" }!
        let resumed = distill["resumed_from_step"] as! Double
        XCTAssertGreaterThan(resumed, 0)
        XCTAssertLessThan(resumed, 80)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }

    /// Without --data distillation trains on the bundled calibration set.
    func testDistillWithoutDataTrainsOnTheBundledSet() throws {
        let out = tmp.appendingPathComponent("o.edge").path
        let r = try runTool("compress", ["--recipe", try writeRecipe(steps: 2), fixturePath("tiny-llama"), out])
        XCTAssertEqual(r.code, 0, r.stderr)
        XCTAssertEqual(try EdgeFile(path: out).provenance.metrics["calibration"]?["source"]?.stringValue, "bundled")
    }

    func testTrainWritesAFloatModelThatScoresBetter() throws {
        let out = tmp.appendingPathComponent("trained.edge").path
        // Start from the trained fixture and train on the Declaration: its held-out part improves.
        let r = try runTool("compress", ["train", fixturePath("tiny-gpt2"), out, "--data", fixturePath("text/us-declaration.txt"),
                                         "--steps", "20", "--batch", "4", "--length", "32", "--lr", "1e-3", "--json"])
        XCTAssertEqual(r.code, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertLessThan(json["held_out_ppl_after"] as! Double, json["held_out_ppl_before"] as! Double)
        XCTAssertGreaterThan(json["tokens_per_second"] as! Double, 0)
        let info = try runTool("compress", ["inspect", out, "--json"])
        XCTAssertEqual(info.code, 0, info.stderr)
        XCTAssertTrue(info.stdout.contains("\"f32\""), info.stdout)
        let bad = try runTool("compress", ["train", fixturePath("tiny-gpt2"), out, "--data", "/nonexistent.txt"])
        XCTAssertNotEqual(bad.code, 0)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }
}
