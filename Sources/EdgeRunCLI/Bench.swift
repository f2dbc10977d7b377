import EdgeFormat
import EdgeRuntime
import RunSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `edge-run bench MODEL -p 512 -n 128 -r 3`: prompt-processing and generation throughput, as
/// llama.cpp's `llama-bench` measures them (scripts/bench-decode.py runs both side by side).
struct BenchCommand: Subcommand {
    static let spec = CommandSpec(
        name: "bench",
        abstract: "Prompt-processing and generation throughput (tokens/s), as llama-bench measures them.",
        discussion: """
        pp: one forward pass over -p tokens; tg: -n forward passes of one token each (llama-bench's \
        pp512 / tg128); both from an empty cache, or with -d from a cache already holding that many \
        positions (filled, untimed, before every run; llama-bench's -d). Each runs once untimed, then \
        -r times; the median and every repetition are reported, with the process's peak RSS.
        """,
        options: [
            .option("-p", "p", help: "Prompt tokens (0 skips prompt processing).", default: "512"),
            .option("-n", "n", help: "Generated tokens (0 skips generation).", default: "128"),
            .option("-r", "r", help: "Timed repetitions of each.", default: "3"),
            .option("-d", "d", help: "Positions already in the cache before each run (context depth).", default: "0"),
        ] + RunOptions.options + [
            .flag("--json", help: "Print the result as JSON on stdout."),
        ]
    )

    let model: String
    let promptTokens: Int
    let genTokens: Int
    let reps: Int
    let depth: Int
    let runtime: RunOptions
    let json: Bool

    init(_ a: ParsedArguments) throws {
        model = a.positionals[0]
        promptTokens = try a.valueOrDefault("-p") { Int($0) }
        genTokens = try a.valueOrDefault("-n") { Int($0) }
        reps = try a.valueOrDefault("-r") { Int($0) }
        depth = try a.valueOrDefault("-d") { Int($0) }
        runtime = try RunOptions(a)
        json = a.flag("--json")
    }

    func validate() throws {
        try runtime.validate()
        if promptTokens < 0 { throw UsageError("-p must be at least 0 (got \(promptTokens))") }
        if genTokens < 0 { throw UsageError("-n must be at least 0 (got \(genTokens))") }
        if promptTokens == 0 && genTokens == 0 { throw UsageError("-p and -n are both 0: nothing to measure") }
        if reps < 1 { throw UsageError("-r must be at least 1 (got \(reps))") }
        if depth < 0 { throw UsageError("-d must be at least 0 (got \(depth))") }
    }

    func run() throws {
        let m = try runtime.open(model)
        let bar = ProgressBar(label: "bench")
        let r = try m.benchmark(promptTokens: promptTokens, genTokens: genTokens, reps: reps, depth: depth,
                                progress: { done, total in bar.update(done: done, total: total) })
        bar.finish()
        var st = stat()
        let bytes = stat(model, &st) == 0 ? Int(st.st_size) : 0
        if json {
            guard case .object(var o) = try JSONValue(encoding: r) else { preconditionFailure("a result encodes as an object") }
            o["model"] = .string(model)
            o["file_bytes"] = .number(Double(bytes))
            o["kernels"] = KernelInfo.current(batchTokens: max(1, promptTokens)).jsonValue
            o["load"] = .string((m.residency ?? .map).rawValue)
            o["dense_copies"] = .number(Double(m.denseCopies.count))
            o["micro_batch"] = .number(Double(m.microBatch))
            o["kv_cache"] = .string(m.kvCache.rawValue)
            print(JSONValue.object(o).prettyText())
            return
        }
        for (name, s) in [("pp", r.pp), ("tg", r.tg)] {
            guard let s else { continue }
            let each = s.tokensPerSecond.map { cFormat("%.1f", $0) }.joined(separator: " ")
            print(name + cFormat("%ld", s.tokens) + (depth > 0 ? cFormat(" @ d%ld", depth) : "")
                  + cFormat(": %.2f tokens/s (median of %ld: ", s.median, s.tokensPerSecond.count) + each + ")")
        }
        print(cFormat("threads %ld, peak RSS %.1f MB, file %.1f MB", r.threads, Double(r.peakRSSBytes) / 1e6, Double(bytes) / 1e6)
              + ", activations \(r.activations.rawValue), load \((m.residency ?? .map).rawValue)" + (m.kvCache == .f32 ? "" : ", KV cache \(m.kvCache.rawValue)")
              + (m.denseCopies.isEmpty ? "" : ", \(m.denseCopies.count) sparse matrices as dense copies"))
    }
}
