import EdgeFormat
import EdgeRuntime
import RunSupport

/// `edge-run perplexity MODEL --text FILE`: llama.cpp's perplexity convention with the bundled runtime.
struct PerplexityCommand: Subcommand {
    static let spec = CommandSpec(
        name: "perplexity",
        abstract: "Perplexity of a text file, as llama.cpp's llama-perplexity computes it.",
        discussion: """
        The text is tokenized whole (BOS first when the tokenizer adds one) and split into \
        consecutive chunks of --ctx tokens; each chunk starts with BOS (when the tokenizer adds one) \
        and only its second half is scored. Needs at least 2 x ctx tokens.
        """,
        options: [
            .option("--text", "text", help: "Text file to evaluate (UTF-8).", required: true),
            .option("--ctx", "ctx", help: "Tokens per chunk (default: 512, or the model's max_positions if smaller)."),
            .option("--chunks", "chunks", help: "Evaluate at most this many chunks."),
            .flag("--stepwise", help: "Feed each chunk one token at a time through the KV cache (the decoding kernels generate uses): slow; for checking their accuracy."),
        ] + RunOptions.options + [
            .flag("--json", help: "Print the result as JSON on stdout."),
        ]
    )

    let model: String
    let text: String
    let ctx: Int?
    let chunks: Int?
    let stepwise: Bool
    let runtime: RunOptions
    let json: Bool

    init(_ a: ParsedArguments) throws {
        model = a.positionals[0]
        text = a.required("--text")
        ctx = try a.value("--ctx") { Int($0) }
        chunks = try a.value("--chunks") { Int($0) }
        stepwise = a.flag("--stepwise")
        runtime = try RunOptions(a)
        json = a.flag("--json")
    }

    func validate() throws {
        try runtime.validate()
        if let ctx, ctx < 4 { throw UsageError("--ctx must be at least 4 (got \(ctx))") }
        if let chunks, chunks < 1 { throw UsageError("--chunks must be at least 1 (got \(chunks))") }
    }

    func run() throws {
        let m = try runtime.open(model)
        let content = try TextFile.load(path: text, purpose: "evaluation text")
        let n = ctx ?? min(512, m.config.maxPositions)
        let bar = ProgressBar(label: "perplexity")
        let r = try m.perplexity(text: content, ctx: n, maxChunks: chunks, stepwise: stepwise, progress: { done, total in bar.update(done: done, total: total) })
        bar.finish()
        if json {
            // the result's fields plus the kernels that computed it
            guard case .object(var o) = try JSONValue(encoding: r) else { preconditionFailure("a result encodes as an object") }
            o["kernels"] = KernelInfo.current(batchTokens: stepwise ? 1 : n).jsonValue
            o["stepwise"] = .bool(stepwise)
            o["dense_copies"] = .number(Double(m.denseCopies.count))  // --sparse: the same results under i16 only
            o["micro_batch"] = .number(Double(m.microBatch))
            o["kv_cache"] = .string(m.kvCache.rawValue)
            print(JSONValue.object(o).prettyText())
        } else {
            print(cFormat("perplexity %.4f over %ld scored tokens (%ld chunks of %ld, %ld tokens), %.1f tokens/s, %.2f s",
                         r.ppl, r.scoredTokens, r.chunks, r.ctx, r.tokens, r.tokensPerSecond, r.seconds) + ", activations \(r.activations.rawValue)" + (stepwise ? ", stepwise" : "") + (m.kvCache == .f32 ? "" : ", KV cache \(m.kvCache.rawValue)")
                  + (m.denseCopies.isEmpty ? "" : ", \(m.denseCopies.count) sparse matrices as dense copies"))
        }
    }
}
