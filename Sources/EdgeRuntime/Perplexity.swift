import EdgeFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The outcome of a perplexity run (llama.cpp's `llama-perplexity` convention).
public struct PerplexityResult: Codable, Equatable, Sendable {
    /// exp(mean negative log-likelihood of the scored tokens).
    public var ppl: Double
    /// Mean negative log-likelihood (nats per scored token).
    public var nll: Double
    /// Tokens in the text (BOS included when the model adds one).
    public var tokens: Int
    /// Context length of each chunk.
    public var ctx: Int
    /// Chunks evaluated: tokens / ctx (the remainder is not used).
    public var chunks: Int
    /// Tokens whose probability was scored: chunks * (ctx - ctx/2 - 1).
    public var scoredTokens: Int
    /// Wall-clock seconds of the forward passes.
    public var seconds: Double
    /// Evaluated tokens (chunks * ctx) per second.
    public var tokensPerSecond: Double
    /// What the activations of symmetric q8 weights were quantized to (`EdgeModel.activations`).
    public var activations: ActivationPrecision

    enum CodingKeys: String, CodingKey {
        case ppl, nll, tokens, ctx, chunks, scoredTokens = "scored_tokens", seconds, tokensPerSecond = "tokens_per_second", activations
    }
}

/// One evaluated chunk, handed to the caller of `perplexity` (for KL divergence, top-1 agreement).
public struct PerplexityChunk {
    /// Chunk number, from 0.
    public var index: Int
    /// The `ctx` tokens fed to the model (the first replaced by BOS when the model adds one).
    public var tokens: [Int32]
    /// Position of the first scored logit row: ctx / 2.
    public var first: Int
    /// Logits of positions first ..< ctx - 1, [ctx - 1 - first, vocab] row-major; row j predicts tokens[first + j + 1].
    /// Empty when the run did not keep them (`scoreChunk`'s `keepLogits`: `perplexity` keeps them only for an `onChunk`).
    public var logits: [Float]
    /// Negative log-likelihood of each scored token (same order as the rows of `logits`).
    public var nll: [Double]
}

/// The chunking of `llama-perplexity` (examples/perplexity/perplexity.cpp, `perplexity()` without
/// `--ppl-stride`): consecutive non-overlapping chunks of `ctx` tokens, the first token of each
/// replaced by BOS when the vocabulary adds one, and in each chunk the logits at positions
/// ctx/2 ..< ctx-1 scoring the tokens at ctx/2+1 ..< ctx. It refuses texts under 2*ctx tokens.
public struct PerplexityPlan: Equatable, Sendable {
    /// Context length per chunk.
    public let ctx: Int
    /// Number of chunks: tokens / ctx.
    public let chunks: Int
    /// First scored logit row in each chunk: ctx / 2.
    public var first: Int { ctx / 2 }
    /// Tokens scored per chunk: ctx - ctx/2 - 1.
    public var scoredPerChunk: Int { ctx - first - 1 }
    /// Tokens scored in all: chunks * scoredPerChunk.
    public var scoredTokens: Int { chunks * scoredPerChunk }

    /// Plans a run over `tokens` tokens with chunks of `ctx`.
    /// - Parameter maxChunks: evaluate at most this many chunks (llama.cpp's `--chunks`).
    /// - Throws: `RuntimeError.badContext` when ctx < 4, `.textTooShort` when tokens < 2 * ctx.
    public init(tokens: Int, ctx: Int, maxChunks: Int? = nil) throws {
        guard ctx >= 4 else { throw RuntimeError.badContext(requested: ctx, limit: 4, why: "perplexity needs at least 4 positions per chunk") }
        guard tokens >= 2 * ctx else {
            throw RuntimeError.textTooShort(tokens: tokens, needed: 2 * ctx, why: "to evaluate perplexity with a context of \(ctx)")
        }
        self.ctx = ctx
        chunks = min(tokens / ctx, maxChunks ?? Int.max)
    }
}

extension EdgeModel {
    /// Perplexity of `text`, tokenized as llama.cpp does (BOS first when the model adds one).
    /// - Throws: `RuntimeError.noTokenizer`, and as `perplexity(tokens:ctx:)`.
    public func perplexity(text: String, ctx: Int, maxChunks: Int? = nil, stepwise: Bool = false,
                           onChunk: ((PerplexityChunk) throws -> Void)? = nil,
                           progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> PerplexityResult {
        try perplexity(tokens: try tokenize(text), ctx: ctx, maxChunks: maxChunks, stepwise: stepwise, onChunk: onChunk, progress: progress)
    }

    /// Perplexity of a token sequence by `PerplexityPlan` (llama.cpp's convention): the one chunk
    /// loop of the toolchain (`compress verify` runs its second model from `onChunk`). Each chunk
    /// is scored by `scoreChunk`; the chunk's NLL sum is added to a running double total.
    /// - Parameters:
    ///   - tokens: the whole text's tokens (with a leading BOS if the model adds one: see `tokenize`).
    ///   - ctx: tokens per chunk (at most `config.maxPositions`).
    ///   - maxChunks: stop after this many chunks.
    ///   - stepwise: feed each chunk one token at a time through the KV cache (the decoding path of
    ///     `generate`, its one-token kernels) instead of as one window; the same quantity, computed
    ///     the way generation computes it (ctx - 1 forward passes per chunk: slow).
    ///   - onChunk: receives every chunk's scored logits as it is done (without it they are not kept:
    ///     a window's memory then holds `perplexityRowsPerBlock` rows of logits at a time).
    ///   - progress: called after each chunk with (chunks done, chunks in all).
    /// - Throws: `RuntimeError` (text too short, bad context, token out of range), or what `onChunk` throws.
    public func perplexity(tokens: [Int32], ctx: Int, maxChunks: Int? = nil, stepwise: Bool = false,
                           onChunk: ((PerplexityChunk) throws -> Void)? = nil,
                           progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> PerplexityResult {
        let cache = try makeCache(capacity: ctx)
        let plan = try PerplexityPlan(tokens: tokens.count, ctx: ctx, maxChunks: maxChunks)
        var total = 0.0
        let start = monotonicSeconds()
        for i in 0 ..< plan.chunks {
            var chunk = Array(tokens[i * ctx ..< (i + 1) * ctx])
            if addsBOS, let bos = bosTokenID { chunk[0] = bos }
            let scored = try scoreChunk(chunk, index: i, cache: cache, stepwise: stepwise, keepLogits: onChunk != nil)
            total += scored.nll.reduce(0, +)
            try onChunk?(scored)
            progress?(i + 1, plan.chunks)
        }
        let seconds = monotonicSeconds() - start
        let mean = total / Double(plan.scoredTokens)
        return PerplexityResult(ppl: exp(mean), nll: mean, tokens: tokens.count, ctx: ctx, chunks: plan.chunks,
                                scoredTokens: plan.scoredTokens, seconds: seconds,
                                tokensPerSecond: seconds > 0 ? Double(plan.chunks * ctx) / seconds : 0, activations: activations)
    }

    /// Rows of logits computed at a time when a chunk's logits are not kept (`scoreChunk`): at most
    /// 64 (12.6 MB of SmolLM2's 49152-token vocabulary, where a 512-token window's 255 scored rows
    /// held at once are 50 MB); the blocks are computed in the forward pass's work buffers, which
    /// may make them up to a quarter smaller (`EdgeModel.headPlan`: 51 rows for that window).
    public static let perplexityRowsPerBlock = 64

    /// Runs one perplexity chunk as one window from position 0 with `cache` reset (or, `stepwise`,
    /// one token at a time), computing logits only for its scored positions ctx/2 ..< ctx-1, and the
    /// NLL of each scored token (log-softmax in double, rows split across `threads`).
    /// - Parameters:
    ///   - chunk: the chunk's `ctx` tokens, BOS already in place.
    ///   - index: the chunk number, recorded in the result.
    ///   - cache: a cache holding at least `chunk.count` positions.
    ///   - keepLogits: return the scored rows' logits (`PerplexityChunk.logits`); without it they are
    ///     made `perplexityRowsPerBlock` rows at a time and dropped once scored (the same NLLs, bit
    ///     for bit), and `logits` is empty.
    /// - Throws: `RuntimeError` (token out of range, context full).
    public func scoreChunk(_ chunk: [Int32], index: Int, cache: KVCache, stepwise: Bool = false,
                           keepLogits: Bool = true) throws -> PerplexityChunk {
        let vocab = config.vocabSize, ctx = chunk.count, first = ctx / 2, scored = ctx - first - 1
        cache.reset()
        var nll = [Double](repeating: 0, count: scored)
        // NLLs of rows j0 ..< j0 + rows (j: scored row index) from their logits, split across the threads.
        func score(_ j0: Int, _ rows: Int, _ lp: UnsafeBufferPointer<Float>) {
            nll.withUnsafeMutableBufferPointer { np in
                let parts = min(threads, rows)
                parallelFor(parts) { c in
                    for i in c * rows / parts ..< (c + 1) * rows / parts {
                        np[j0 + i] = Self.negativeLogLikelihood(UnsafeBufferPointer(rebasing: lp[i * vocab ..< (i + 1) * vocab]),
                                                                target: Int(chunk[first + j0 + i + 1]))
                    }
                }
            }
        }
        var logits: [Float] = []
        if stepwise {
            if keepLogits { logits.reserveCapacity(scored * vocab) }
            for p in 0 ..< ctx - 1 {
                let row = try forward([chunk[p]], cache: cache, outputs: p >= first ? 0 ..< 1 : 0 ..< 0)
                if p >= first {
                    row.withUnsafeBufferPointer { score(p - first, 1, $0) }
                    if keepLogits { logits.append(contentsOf: row) }
                }
            }
        } else if keepLogits {
            logits = try forward(chunk, cache: cache, outputs: first ..< ctx - 1)
            logits.withUnsafeBufferPointer { score(0, scored, $0) }
        } else {
            try forward(chunk, cache: cache, outputs: first ..< ctx - 1, rowsPerBlock: Self.perplexityRowsPerBlock) { r, rows, lp in
                score(r - first, rows, lp)
            }
        }
        return PerplexityChunk(index: index, tokens: chunk, first: first, logits: logits, nll: nll)
    }

    /// -log softmax(logits)[target] = log(sum exp(l - max)) + max - l[target], as llama-perplexity
    /// computes it: each exp in float, the sum in double.
    public static func negativeLogLikelihood(_ logits: UnsafeBufferPointer<Float>, target: Int) -> Double {
        let m = logits.max() ?? 0
        var sum = 0.0
        for l in logits { sum += Double(exp(l - m)) }
        return log(sum) + Double(m) - Double(logits[target])
    }
}
