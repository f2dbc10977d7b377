#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Throughput of one kind of run (prompt processing or generation) over `reps` timed repetitions.
public struct BenchmarkSeries: Codable, Equatable, Sendable {
    /// Tokens per repetition.
    public var tokens: Int
    /// Tokens per second of each repetition, in the order run.
    public var tokensPerSecond: [Double]
    /// The median of `tokensPerSecond` (the mean of the middle two for an even count).
    public var median: Double

    /// A series from its per-repetition figures.
    public init(tokens: Int, tokensPerSecond: [Double]) {
        self.tokens = tokens
        self.tokensPerSecond = tokensPerSecond
        median = BenchmarkSeries.median(tokensPerSecond)
    }

    /// The median of `values` (0 for none).
    public static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    enum CodingKeys: String, CodingKey { case tokens, tokensPerSecond = "tokens_per_second", median }
}

/// What `EdgeModel.benchmark` measured, as llama.cpp's `llama-bench` does: prompt processing (`pp`:
/// one forward pass over `promptTokens` tokens) and generation (`tg`: `genTokens` forward passes of
/// one token each), each after one untimed warm-up run, from a cache holding `depth` positions
/// (`llama-bench -d`: filled by an untimed forward pass before every run; 0, an empty cache, by default).
public struct BenchmarkResult: Codable, Equatable, Sendable {
    /// Prompt processing (nil when 0 prompt tokens were asked for).
    public var pp: BenchmarkSeries?
    /// Generation (nil when 0 generated tokens were asked for).
    public var tg: BenchmarkSeries?
    /// Threads the model ran with.
    public var threads: Int
    /// What the activations of symmetric q8 weights were quantized to.
    public var activations: ActivationPrecision
    /// The process's peak resident set size so far, in bytes (getrusage), after the runs.
    public var peakRSSBytes: Int
    /// Positions in the cache before each run.
    public var depth: Int = 0

    enum CodingKeys: String, CodingKey { case pp, tg, threads, activations, peakRSSBytes = "peak_rss_bytes", depth }
}

extension EdgeModel {
    /// Measures prompt-processing and generation throughput (see `BenchmarkResult`). The tokens are
    /// seeded pseudo-random ids below the vocabulary size (the same for every model of that vocabulary);
    /// what a token is does not change the work done.
    /// - Parameters:
    ///   - promptTokens: tokens of the prompt-processing run (0: skip it).
    ///   - genTokens: tokens of the generation run (0: skip it).
    ///   - reps: timed repetitions of each (at least 1).
    ///   - depth: positions filled before each run (untimed; `llama-bench -d`), so that decoding is
    ///     measured against a long context.
    ///   - progress: called after each run (warm-ups included) with (done, total).
    /// - Throws: `RuntimeError.badContext` when a run needs more positions than the model has.
    public func benchmark(promptTokens: Int, genTokens: Int, reps: Int, depth: Int = 0,
                          progress: (Int, Int) -> Void = { _, _ in }) throws -> BenchmarkResult {
        precondition(promptTokens >= 0 && genTokens >= 0 && reps >= 1 && depth >= 0, "benchmark: bad counts")
        for n in [promptTokens, genTokens] where depth + n > config.maxPositions {
            throw RuntimeError.badContext(requested: depth + n, limit: config.maxPositions,
                                          why: depth > 0 ? "the depth and a benchmark run together cannot be longer than the model's max_positions"
                                                         : "a benchmark run cannot be longer than the model's max_positions")
        }
        var rng = SplitMix64(seed: 0x6265_6E63_68)
        let vocab = UInt64(config.vocabSize)
        let ids = (0 ..< depth + max(promptTokens, genTokens)).map { _ in Int32(truncatingIfNeeded: rng.next() % vocab) }
        let context = Array(ids.prefix(depth)), run = ids[depth...]
        func fill(_ cache: KVCache) throws {
            cache.reset()
            if depth > 0 { _ = try forward(context, cache: cache, outputs: depth - 1 ..< depth) }
        }
        let total = ((promptTokens > 0 ? 1 : 0) + (genTokens > 0 ? 1 : 0)) * (reps + 1)
        var done = 0
        func timed(_ body: () throws -> Void) rethrows -> Double {
            let clock = ContinuousClock()
            let d = try clock.measure(body)
            done += 1
            progress(done, total)
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        var pp: BenchmarkSeries?, tg: BenchmarkSeries?
        if promptTokens > 0 {
            let prompt = Array(run.prefix(promptTokens))
            let cache = try makeCache(capacity: depth + promptTokens)
            var rates: [Double] = []
            for rep in 0 ... reps {
                try fill(cache)
                let s = try timed { _ = try forward(prompt, cache: cache, outputs: promptTokens - 1 ..< promptTokens) }
                if rep > 0 { rates.append(Double(promptTokens) / s) }
            }
            pp = BenchmarkSeries(tokens: promptTokens, tokensPerSecond: rates)
        }
        if genTokens > 0 {
            let cache = try makeCache(capacity: depth + genTokens)
            let gen = Array(run.prefix(genTokens))
            var rates: [Double] = []
            for rep in 0 ... reps {
                try fill(cache)
                let s = try timed { for t in 0 ..< genTokens { _ = try forward([gen[t]], cache: cache) } }
                if rep > 0 { rates.append(Double(genTokens) / s) }
            }
            tg = BenchmarkSeries(tokens: genTokens, tokensPerSecond: rates)
        }
        return BenchmarkResult(pp: pp, tg: tg, threads: threads, activations: activations, peakRSSBytes: Self.peakRSSBytes(),
                               depth: depth)
    }

    /// The process's peak resident set size in bytes (getrusage; 0 where it is unavailable).
    public static func peakRSSBytes() -> Int {
        var u = rusage()
        #if canImport(Glibc)
        guard getrusage(RUSAGE_SELF.rawValue, &u) == 0 else { return 0 }
        #else
        guard getrusage(RUSAGE_SELF, &u) == 0 else { return 0 }
        #endif
        #if canImport(Darwin)
        return Int(u.ru_maxrss)          // bytes on Darwin
        #else
        return Int(u.ru_maxrss) * 1024   // KiB on Linux
        #endif
    }
}
