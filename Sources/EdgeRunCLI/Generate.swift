import CLISupport
import ArgumentParser
import EdgeFormat
import EdgeRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `edge-run generate MODEL --prompt P`: continue a prompt, streaming the text to stdout.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with greedy or sampled decoding, streaming the text."
    )

    @Argument(help: "The .edge model file.")
    var model: String

    @Option(name: .long, help: "The prompt text.")
    var prompt: String

    @Option(name: .short, help: "Tokens to generate at most.")
    var n = 64

    @Option(name: .long, help: "0 for greedy decoding; above 0, sample from softmax(logits / temperature).")
    var temperature: Float = 0

    @Option(name: .customLong("top-k"), help: "When sampling, keep only the K most likely tokens (0: all).")
    var topK = 0

    @Option(name: .long, help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Flag(name: .customLong("ignore-eos"), help: "Keep going after the end-of-sequence token.")
    var ignoreEOS = false

    @OptionGroup var runtime: RunOptions

    func validate() throws {
        if n < 1 { throw UsageError("-n must be at least 1 (got \(n))") }
        if !(temperature >= 0 && temperature.isFinite) { throw UsageError("--temperature must be a finite number >= 0 (got \(temperature))") }
        if topK < 0 { throw UsageError("--top-k must be at least 0 (got \(topK))") }
    }

    func run() throws {
        let m = try runtime.open(model)
        let options = GenerationOptions(maxTokens: n, temperature: temperature, topK: topK, seed: seed, stopAtEOS: !ignoreEOS)
        writeStandardOutput(prompt)
        _ = try m.generate(text: prompt, options: options) { writeStandardOutput($0) }
        writeStandardOutput("\n")
    }
}
