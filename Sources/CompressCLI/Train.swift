import ArgumentParser
import CLISupport
import Compression
import EdgeFormat
import EdgeRuntime
import Foundation
import RunSupport
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train every tensor of a model on text (next-token cross-entropy) and write a float32 .edge file.",
        discussion: """
        Starts from the input's weights. The text is cut into windows of --length tokens; the last \
        --held-out fraction of them is held out and its perplexity reported before and after. \
        Used to train the test fixtures, and as the training-throughput benchmark (see docs/performance.md).
        """
    )

    @Argument(help: "Input checkpoint: HF folder, .safetensors, .gguf or .edge.")
    var input: String

    @Argument(help: "Output .edge file (float32, written atomically).")
    var output: String

    @Option(name: .long, help: "Training text (UTF-8).")
    var data: String

    @Option(name: .long, help: "Optimizer steps.") var steps = 100
    @Option(name: .long, help: "Sequences per step.") var batch = 4
    @Option(name: .long, help: "Tokens per sequence (capped by the model's context).") var length = 256
    @Option(name: .long, help: "Peak learning rate (AdamW, warmup then cosine decay).") var lr = 1e-3
    @Option(name: .long, help: "Fraction of the steps spent warming up.") var warmup = 0.1
    @Option(name: .long, help: "AdamW weight decay (matrices only).") var weightDecay = 0.0
    @Option(name: .long, help: "Seed of the window order.") var seed = 0
    @Option(name: .long, help: "Fraction of the text held out for perplexity.") var heldOut = 0.1
    @Option(name: .long, help: "Held-out perplexity every N steps (0: start and end only).") var evalEvery = 0
    @Option(name: .long, help: "Folder for checkpoints: a run started again with the same folder resumes.") var checkpointDir: String?
    @Option(name: .long, help: "How AdamW stores its moments: f32, or bf16 (half their memory, stochastic rounding). f32 by default, as the fixtures were trained.")
    var moments = "f32"
    @Option(name: .long, help: "How the linear layers multiply: f32, or bf16 (operands rounded to bfloat16, sums in f32; twice the multiply-adds per instruction where the CPU has AVX512_BF16, the same results on every CPU).")
    var matmul = "f32"
    @Flag(name: .long, help: "Print a JSON summary on stdout.") var json = false
    @OptionGroup var kernel: KernelOptions

    func run() throws {
        guard FileManager.default.fileExists(atPath: data) else { throw UsageError("--data \(data): no such file") }
        for (name, ok) in [("--steps", steps >= 1), ("--batch", batch >= 1), ("--length", length >= 8), ("--lr", lr > 0 && lr < 1),
                           ("--warmup", (0 ... 1).contains(warmup)), ("--weight-decay", (0 ... 1).contains(weightDecay)),
                           ("--seed", seed >= 0), ("--held-out", heldOut > 0 && heldOut < 1), ("--eval-every", evalEvery >= 0)] where !ok {
            throw UsageError("\(name) is out of range (see compress train --help)")
        }
        guard let momentPrecision = MomentPrecision(rawValue: moments) else {
            throw UsageError("--moments must be f32 or bf16, not \(Excerpt.quoted(moments))")
        }
        guard let matmulPrecision = MatmulPrecision(rawValue: matmul) else {
            throw UsageError("--matmul must be f32 or bf16, not \(Excerpt.quoted(matmul))")
        }
        try kernel.apply()
        var o = TrainOptions()
        o.moments = momentPrecision
        o.matmul = matmulPrecision == .f32 ? nil : matmulPrecision
        o.steps = steps
        o.batch = batch
        o.length = length
        o.lr = lr
        o.warmup = warmup
        o.weightDecay = weightDecay
        o.seed = UInt64(seed)
        o.heldOut = heldOut
        o.evalEvery = evalEvery
        o.alpha = 1
        let bar = ProgressBar(label: "train")
        let s = try TrainModelFile.run(input: input, output: output, textFile: data, options: o, checkpointDir: checkpointDir) { p in
            var item = ""
            if let l = p.loss { item += String(format: "loss %.3f", l.loss) }
            if let ppl = p.heldOutPPL { item += String(format: " held-out ppl %.2f", ppl) }
            bar.update(done: p.step, total: p.steps, item: item)
        }
        bar.finish()
        let r = s.report
        if json {
            let o: JSONValue = .object([
                "output": .string(s.output), "steps": .number(Double(r.steps)), "resumed_from": .number(Double(r.resumedFrom)),
                "length": .number(Double(r.length)), "batch": .number(Double(batch)),
                "train_windows": .number(Double(r.trainWindows)), "held_out_windows": .number(Double(r.heldOutWindows)),
                "held_out_ppl_before": .number(r.heldOutBefore), "held_out_ppl_after": .number(r.heldOutAfter),
                "final_loss": .number(r.log.last?.loss ?? 0), "tokens": .number(Double(r.tokensThisRun)),
                "train_seconds": .number(r.trainSeconds), "tokens_per_second": .number(r.tokensPerSecond),
                "seconds": .number(s.seconds), "kernels": KernelInfo.current(batchTokens: r.length).jsonValue,
                "matmul": .string(matmul == "bf16" ? "bf16 (\(KernelInfo.bf16Kernel))" : "f32"),
                "held_out_log": .array(r.log.compactMap { e in
                    e.heldOutPPL.map { .object(["step": .number(Double(e.step)), "loss": .number(e.loss), "held_out_ppl": .number($0)]) }
                }),
            ])
            print(o.prettyText())
        } else {
            print(String(format: "%@: %d steps, held-out ppl %.3f -> %.3f, %.1f tokens/s (forward + backward), %.1fs",
                         s.output, r.steps, r.heldOutBefore, r.heldOutAfter, r.tokensPerSecond, s.seconds))
        }
    }
}
