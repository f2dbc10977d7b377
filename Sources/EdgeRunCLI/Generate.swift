import EdgeFormat
import EdgeRuntime
import RunSupport

/// `edge-run generate MODEL --prompt P`: continue a prompt, streaming the text to stdout.
struct GenerateCommand: Subcommand {
    static let spec = CommandSpec(
        name: "generate",
        abstract: "Continue a prompt with greedy or sampled decoding, streaming the text.",
        options: [
            .option("--prompt", "prompt", help: "The prompt text.", required: true),
            .option("-n", "n", help: "Tokens to generate at most.", default: "64"),
            .option("--temperature", "temperature", help: "0 for greedy decoding; above 0, sample from softmax(logits / temperature).", default: "0.0"),
            .option("--top-k", "top-k", help: "When sampling, keep only the K most likely tokens (0: all).", default: "0"),
            .option("--seed", "seed", help: "Seed of the sampler.", default: "0"),
            .flag("--ignore-eos", help: "Keep going after the end-of-sequence token."),
        ] + RunOptions.options
    )

    let model: String
    let prompt: String
    let n: Int
    let temperature: Float
    let topK: Int
    let seed: UInt64
    let ignoreEOS: Bool
    let runtime: RunOptions

    init(_ a: ParsedArguments) throws {
        model = a.positionals[0]
        prompt = a.required("--prompt")
        n = try a.valueOrDefault("-n") { Int($0) }
        temperature = try a.valueOrDefault("--temperature") { Float($0) }
        topK = try a.valueOrDefault("--top-k") { Int($0) }
        seed = try a.valueOrDefault("--seed") { UInt64($0) }
        ignoreEOS = a.flag("--ignore-eos")
        runtime = try RunOptions(a)
    }

    func validate() throws {
        try runtime.validate()
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
