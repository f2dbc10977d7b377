import ArgumentParser
import CLISupport
import Compression
import EdgeFormat
import EdgeRuntime
import Foundation
import RunSupport

/// `compress verify IN OUT --text FILE`: perplexity before/after, KL divergence, top-1 agreement,
/// sizes, and the recipe's budget.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a float checkpoint with the .edge file made from it: perplexity, KL, top-1 agreement, size, budget (encoders: embedding cosine and retrieval agreement).",
        discussion: """
        Both models run through the same runtime forward pass over the same chunks of the text \
        (llama.cpp's perplexity convention: chunks of --ctx tokens, the second half of each scored). \
        Reported: perplexity of each, mean KL(before || after) per scored token in nats, the fraction of \
        positions whose most likely next token agrees, file bytes, bits per weight and size ratio.
        The budget is the "budget" of the recipe recorded in OUT, or of --recipe when given; when a limit \
        is exceeded the report is still printed, and one "budget exceeded: ..." line goes to stderr.
        For an encoder (BERT) each non-empty line of --text is a sentence; reported: mean and minimum \
        cosine similarity between the float and compressed embeddings of each sentence, retrieval \
        agreement (the fraction of sentences whose nearest other sentence is unchanged), sizes; the \
        budget's "min_cosine" applies.
        Exit codes: 0 ok (within budget, or no budget), 1 error, 3 budget exceeded.
        """
    )

    @Option(name: .long, help: "Evaluation text (UTF-8); it needs at least 2 * ctx tokens.")
    var text: String

    @Option(name: .long, help: "Tokens per chunk.")
    var ctx = 512

    @Option(name: .long, help: "Evaluate at most this many chunks (default: all).")
    var chunks: Int?

    @Option(name: .long, help: "Threads for the matrix products (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "What the activations of symmetric q8, q4 and q4k weights are quantized to: i16 (default), q8 (faster, less accurate) or f32; it changes results and is reported with them.")
    var activations: ActivationPrecision = .default

    @Flag(name: .long, help: "Print the report as JSON on stdout.")
    var json = false

    @OptionGroup var kernel: KernelOptions

    @Option(name: .long, help: "Recipe file whose budget replaces the one recorded in OUT.")
    var recipe: String?

    @Argument(help: "The float input: HF folder, .safetensors, .gguf or .edge.")
    var input: String

    @Argument(help: "The .edge file made from it.")
    var output: String

    func run() throws {
        try kernel.apply()
        let text = try TextFile.load(path: self.text, purpose: "evaluation text")
        // A --recipe replaces the recorded budget entirely (a recipe without a budget means none).
        let budget = try recipe.map { try Recipe.load(path: $0).budget }
        let verifier = try Verifier(input: input, output: output, threads: threads ?? EdgeModel.defaultThreads, activations: activations)
        if verifier.isEncoder {
            try runEncoder(verifier, text: text, budget: budget ?? verifier.embeddedBudget)
            return
        }
        let bar = ProgressBar(label: "verify")
        let report = try verifier.run(text: text, ctx: ctx, maxChunks: chunks,
                                      budget: budget ?? verifier.embeddedBudget) { done, total in
            bar.update(done: done, total: total)
        }
        bar.finish()
        if json {
            guard case .object(var o) = report.json else { preconditionFailure("a report is an object") }
            o["kernels"] = KernelInfo.current(batchTokens: report.ctx).jsonValue
            print(JSONValue.object(o).prettyText())
        } else {
            print(Self.table(report, input: input, output: output))
        }
        if !report.budget.ok {
            FileHandle.standardError.write(Data(("budget exceeded: " + report.budget.violations.joined(separator: "; ") + "\n").utf8))
            throw ExitCode(3)
        }
    }

    /// An encoder: the lines of the text are the sentences; cosine, retrieval agreement, sizes, budget.
    func runEncoder(_ verifier: Verifier, text: String, budget: Budget?) throws {
        let sentences = text.split(separator: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
            .filter { !$0.allSatisfy(\.isWhitespace) }
        let bar = ProgressBar(label: "verify")
        let report = try verifier.runEncoder(sentences: sentences, budget: budget) { done, total in bar.update(done: done, total: total) }
        bar.finish()
        if json {
            guard case .object(var o) = report.json else { preconditionFailure("a report is an object") }
            o["kernels"] = KernelInfo.current(batchTokens: max(1, report.tokens / max(1, report.sentences))).jsonValue
            print(JSONValue.object(o).prettyText())
        } else {
            print(Self.table(report, input: input, output: output))
        }
        if !report.budget.ok {
            FileHandle.standardError.write(Data(("budget exceeded: " + report.budget.violations.joined(separator: "; ") + "\n").utf8))
            throw ExitCode(3)
        }
    }

    /// The encoder's text report.
    static func table(_ r: EncoderVerifyReport, input: String, output: String) -> String {
        var lines = [
            "\(input) -> \(output): encoder, \(r.sentences) sentences, \(r.tokens) tokens, activations \(r.activations.rawValue), "
                + String(format: "%.1fs", r.seconds),
            String(format: "cosine (float vs compressed): mean %.5f, min %.5f", r.meanCosine, r.minCosine),
            String(format: "retrieval agreement:          %.2f%% (nearest other sentence unchanged)", r.retrievalAgreement * 100),
            String(format: "bytes: %ld -> %ld (%.2fx smaller); bits/weight %.3f -> %.3f", r.before.bytes, r.after.bytes, r.sizeRatio,
                   r.before.bitsPerWeight, r.after.bitsPerWeight),
        ]
        var limits: [String] = []
        if let m = r.budget.budget?.minCosine { limits.append(String(format: "min cosine %.4f", m)) }
        if let m = r.budget.budget?.maxBytes { limits.append("max \(m) bytes") }
        lines.append(limits.isEmpty ? "budget: none"
            : "budget (\(limits.joined(separator: ", "))): " + (r.budget.ok ? "ok" : "EXCEEDED: " + r.budget.violations.joined(separator: "; ")))
        return lines.joined(separator: "\n")
    }

    /// The text report: a small before/after table, then KL, top-1 agreement and the budget.
    static func table(_ r: VerifyReport, input: String, output: String) -> String {
        func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        func row(_ name: String, _ a: String, _ b: String, _ change: String) -> String {
            name.padding(toLength: 8, withPad: " ", startingAt: 0) + lpad(a, 14) + lpad(b, 14) + "  " + change
        }
        var lines = [
            "\(input) -> \(output): ctx \(r.ctx), \(r.chunks) chunks, \(r.scoredTokens) of \(r.tokens) tokens scored, "
                + "activations \(r.activations.rawValue), " + String(format: "%.1fs", r.seconds),
            row("", "before", "after", "change"),
            row("ppl", String(format: "%.4f", r.before.ppl), String(format: "%.4f", r.after.ppl),
                String(format: "%+.2f%% (x%.4f)", r.pplIncrease * 100, r.after.ppl / r.before.ppl)),
            row("bytes", "\(r.before.bytes)", "\(r.after.bytes)", String(format: "%.2fx smaller", r.sizeRatio)),
            row("bits/w", String(format: "%.3f", r.before.bitsPerWeight), String(format: "%.3f", r.after.bitsPerWeight), ""),
            String(format: "KL(before || after): %.6g nats/token", r.kl),
            String(format: "top-1 agreement:     %.2f%%", r.top1Agreement * 100),
        ]
        var limits: [String] = []
        if let m = r.budget.budget?.maxPPLIncrease { limits.append(String(format: "max ppl increase %.1f%%", m * 100)) }
        if let m = r.budget.budget?.maxBytes { limits.append("max \(m) bytes") }
        if limits.isEmpty {
            lines.append("budget: none")
        } else {
            lines.append("budget (\(limits.joined(separator: ", "))): "
                + (r.budget.ok ? "ok" : "EXCEEDED: " + r.budget.violations.joined(separator: "; ")))
        }
        return lines.joined(separator: "\n")
    }
}

extension ActivationPrecision: ExpressibleByArgument {}
