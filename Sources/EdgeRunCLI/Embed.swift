import EdgeFormat
import EdgeRuntime
import RunSupport

/// `edge-run embed MODEL --text FILE`: sentence embeddings with an encoder (one sentence per line),
/// written as JSON or .npy, or ranked against a query by cosine similarity.
struct EmbedCommand: Subcommand {
    static let spec = CommandSpec(
        name: "embed",
        abstract: "Sentence embeddings of an encoder model (one sentence per line), or the lines ranked by similarity to a query.",
        discussion: """
        Each non-empty line of --text is one sentence: tokenized with the model's tokenizer \
        ([CLS] ... [SEP]), truncated to the model's max tokens, run through the encoder and pooled \
        (and L2-normalized) as the model's pooling config says. With --out the embeddings are \
        written as JSON ({"sentences", "embeddings", ...}) or, for a path ending in .npy, as a \
        float32 NumPy array [sentences, hidden]. With --query the lines are ranked by cosine \
        similarity to the query's embedding and the best --top are printed.
        """,
        options: [
            .option("--text", "text", help: "Sentences, one per line (UTF-8).", required: true),
            .option("--out", "path", help: "Write the embeddings here: .npy for a float32 array, anything else for JSON."),
            .option("--query", "text", help: "Rank the lines by cosine similarity to this sentence instead of writing embeddings."),
            .option("--top", "n", help: "Lines to print with --query (default: 10)."),
        ] + RunOptions.options + [
            .flag("--json", help: "Print the summary (or the ranking) as JSON on stdout."),
        ]
    )

    let model: String
    let text: String
    let out: String?
    let query: String?
    let top: Int
    let runtime: RunOptions
    let json: Bool

    init(_ a: ParsedArguments) throws {
        model = a.positionals[0]
        text = a.required("--text")
        out = try a.value("--out") { $0 }
        query = try a.value("--query") { $0 }
        top = try a.value("--top") { Int($0) } ?? 10
        runtime = try RunOptions(a)
        json = a.flag("--json")
    }

    func validate() throws {
        try runtime.validate()
        if top < 1 { throw UsageError("--top must be at least 1 (got \(top))") }
        if out == nil && query == nil { throw UsageError("give --out (write the embeddings) or --query (rank the lines)") }
    }

    /// The non-empty lines of `content` (a trailing "\r" removed).
    static func sentences(_ content: String) -> [String] {
        content.split(separator: "\n", omittingEmptySubsequences: true).map { line in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }.filter { !$0.allSatisfy(\.isWhitespace) }
    }

    func run() throws {
        let m = try runtime.open(model)
        let lines = Self.sentences(try TextFile.load(path: text, purpose: "sentences"))
        guard !lines.isEmpty else { throw UsageError("\(text): no sentences (every line is empty)") }
        let bar = ProgressBar(label: "embed")
        let t0 = monotonicSeconds()
        let tokens = try lines.map(m.sentenceTokens)
        let vectors = try m.embed(tokens: tokens, progress: { bar.update(done: $0, total: lines.count) })
        bar.finish()
        let seconds = monotonicSeconds() - t0
        let dim = m.config.hiddenSize
        // The kernels of a mean-length sentence's products, named in every --json output.
        let kernels = KernelInfo.current(batchTokens: max(1, tokens.reduce(0) { $0 + $1.count } / lines.count)).jsonValue
        if let query {
            let q = try m.embed([query])[0]
            let ranked = vectors.enumerated().map { (i, v) in (i, cosineSimilarity(q, v)) }.sorted { $0.1 > $1.1 }.prefix(top)
            if json {
                print(JSONValue.object([
                    "query": .string(query), "activations": .string(runtime.activations.rawValue), "kernels": kernels,
                    "results": .array(ranked.map { i, c in .object(["line": .number(Double(i + 1)), "cosine": .number(Double(c)), "text": .string(lines[i])]) }),
                ]).prettyText())
            } else {
                for (rank, (i, c)) in ranked.enumerated() { print(cFormat("%3ld  %.4f  ", rank + 1, c) + "line \(i + 1): \(lines[i])") }
            }
        }
        if let out {
            let bytes: [UInt8]
            if out.hasSuffix(".npy") {
                bytes = Self.npy(vectors, dim: dim)
            } else {
                bytes = try JSONValue.object([
                    "model": .string(model),
                    "dim": .number(Double(dim)),
                    "pooling": try JSONValue(encoding: m.config.pooling),
                    "sentences": .array(lines.map(JSONValue.string)),
                    "ids": .array(tokens.map { .array($0.map { .number(Double($0)) }) }),
                    "embeddings": .array(vectors.map { .array($0.map { .number(Double($0)) }) }),
                ]).jsonBytes() + [0x0A]
            }
            let file = try AtomicOutput(destination: out, protecting: [model, text])
            try file.write(bytes)
            try file.commit()
        }
        let tokenCount = tokens.reduce(0) { $0 + $1.count }
        if json && query == nil {
            print(JSONValue.object([
                "sentences": .number(Double(lines.count)), "tokens": .number(Double(tokenCount)), "dim": .number(Double(dim)),
                "seconds": .number(seconds), "sentences_per_second": .number(Double(lines.count) / max(seconds, 1e-9)),
                "out": out.map(JSONValue.string) ?? .null,
                "activations": .string(runtime.activations.rawValue), "kernels": kernels,
            ]).prettyText())
        } else if !json {
            writeStandardError(cFormat("embedded %ld sentences (%ld tokens, dim %ld) in %.2f s, %.1f sentences/s", lines.count, tokenCount, dim,
                                       seconds, Double(lines.count) / max(seconds, 1e-9)) + (out.map { " -> \($0)" } ?? "") + "\n")
        }
    }

    /// A NumPy v1.0 `.npy` file: little-endian float32, C order, shape (rows, dim).
    static func npy(_ rows: [[Float]], dim: Int) -> [UInt8] {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows.count), \(dim)), }"
        let unpadded = 10 + header.utf8.count + 1  // magic + version + length, header, "\n"
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Array(header.utf8)
        out.reserveCapacity(out.count + rows.count * dim * 4)
        for r in rows {
            for v in r {
                let bits = v.bitPattern
                out += [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
            }
        }
        return out
    }
}
