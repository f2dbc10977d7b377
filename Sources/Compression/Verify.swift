import Checkpoint
import EdgeFormat
import EdgeRuntime
import Foundation

/// Why `Verifier` refuses to compare two models. `description` is the one line the CLI prints.
public enum VerifyError: Error, Equatable, CustomStringConvertible {
    /// The two models' vocabularies differ in size, so their logit rows cannot be compared.
    case vocabMismatch(before: String, beforeVocab: Int, after: String, afterVocab: Int)
    /// An option is out of range (`why` says what is allowed).
    case badOption(name: String, value: Int, why: String)
    /// The two tokenizers turn the text into different ids (first difference at `index`).
    case tokenizerMismatch(before: String, after: String, index: Int, beforeID: Int32?, afterID: Int32?)

    public var description: String {
        switch self {
        case let .vocabMismatch(b, bv, a, av):
            return "\(b) has a vocabulary of \(bv) tokens but \(a) has \(av); verify compares models over the same vocabulary"
        case let .badOption(n, v, why): return "\(n) is \(v); \(why)"
        case let .tokenizerMismatch(b, a, i, bid, aid):
            func s(_ id: Int32?) -> String { id.map { "\($0)" } ?? "end of text" }
            return "the tokenizers of \(b) and \(a) disagree on the text: token \(i) is \(s(bid)) vs \(s(aid))"
        }
    }
}

/// Divergence between two next-token distributions given as logit rows.
public enum LogitComparison {
    /// KL(p || q) in nats, where p = softmax(`before`) and q = softmax(`after`), computed from
    /// log-softmax in double: sum_i p_i * (log p_i - log q_i). Rows of identical logits give exactly 0.
    /// - Precondition: both rows have the same, non-zero length.
    public static func klDivergence(before: UnsafeBufferPointer<Float>, after: UnsafeBufferPointer<Float>) -> Double {
        precondition(before.count == after.count && !before.isEmpty, "klDivergence: rows of \(before.count) and \(after.count) logits")
        let lb = logSumExp(before), la = logSumExp(after)
        var kl = 0.0
        for i in 0 ..< before.count {
            let lp = Double(before[i]) - lb, lq = Double(after[i]) - la
            kl += exp(lp) * (lp - lq)
        }
        // Rounding can leave a tiny negative for near-identical rows; KL is never below 0.
        return max(0, kl)
    }

    /// KL(softmax(before) || softmax(after)) for arrays (see the buffer version).
    public static func klDivergence(before: [Float], after: [Float]) -> Double {
        before.withUnsafeBufferPointer { b in after.withUnsafeBufferPointer { a in klDivergence(before: b, after: a) } }
    }

    /// Index of the largest logit (the first one on ties); 0 for an empty row.
    public static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1 ..< max(1, row.count) where row[i] > row[best] { best = i }
        return best
    }

    /// log(sum exp(x)) in double, shifted by the maximum for stability.
    static func logSumExp(_ row: UnsafeBufferPointer<Float>) -> Double {
        let m = Double(row.max() ?? 0)
        var sum = 0.0
        for x in row { sum += exp(Double(x) - m) }
        return m + log(sum)
    }
}

/// The measurements of one side of a verification (the float input or the `.edge` output).
public struct VerifySide: Equatable, Sendable {
    /// Perplexity of the scored tokens.
    public var ppl: Double
    /// Mean negative log-likelihood (nats per scored token).
    public var nll: Double
    /// Bytes on disk: the input's weight files, or the `.edge` file.
    public var bytes: Int
    /// Weights the forward pass uses (`EdgeModel.parameterCount`).
    public var parameters: Int
    /// bytes * 8 / parameters.
    public var bitsPerWeight: Double { parameters > 0 ? Double(bytes) * 8 / Double(parameters) : 0 }
}

/// A budget checked against a report: the limits, and each one exceeded as a readable line.
public struct BudgetCheck: Equatable, Sendable {
    /// The limits (nil: no budget, always ok).
    public var budget: Budget?
    /// One line per exceeded limit, e.g. "ppl increase 7.1% > max 5.0%".
    public var violations: [String]
    /// No limit exceeded.
    public var ok: Bool { violations.isEmpty }

    /// Checks `budget` against a relative perplexity increase and an output size.
    public init(budget: Budget?, pplIncrease: Double, bytes: Int) {
        self.budget = budget
        var v: [String] = []
        if let max = budget?.maxPPLIncrease, !(pplIncrease <= max) {
            v.append("ppl increase \(Self.percent(pplIncrease)) > max \(Self.percent(max))")
        }
        if let max = budget?.maxBytes, bytes > max {
            v.append("size \(bytes) bytes > max \(max) bytes")
        }
        violations = v
    }

    /// Checks `budget` against an encoder's mean cosine similarity and an output size (a
    /// `max_ppl_increase` does not apply to an encoder and is ignored).
    public init(budget: Budget?, meanCosine: Double, bytes: Int) {
        self.init(budget: budget.map { Budget(maxBytes: $0.maxBytes) }, pplIncrease: 0, bytes: bytes)
        self.budget = budget
        if let min = budget?.minCosine, !(meanCosine >= min) {
            violations.insert(String(format: "mean cosine %.4f < min %.4f", meanCosine, min), at: 0)
        }
    }

    /// A fraction as a percentage with one decimal ("7.1%"), or two significant digits when that
    /// would round a non-zero value to 0.0 ("0.0059%").
    static func percent(_ x: Double) -> String {
        let p = x * 100
        return p == 0 || abs(p) >= 0.05 || !p.isFinite ? String(format: "%.1f%%", p) : String(format: "%.2g%%", p)
    }
}

/// The outcome of `Verifier.run`: before/after perplexity, KL divergence, top-1 agreement and sizes.
public struct VerifyReport: Equatable, Sendable {
    /// The float input, run by the runtime from its float32 values.
    public var before: VerifySide
    /// The `.edge` file, run from its mapped bytes.
    public var after: VerifySide
    /// Mean KL(before || after) over the scored tokens, in nats.
    public var kl: Double
    /// Fraction of scored positions where both models' most likely next token is the same.
    public var top1Agreement: Double
    /// Tokens in the text (BOS included when the models add one).
    public var tokens: Int
    /// Tokens scored (chunks * (ctx - ctx/2 - 1)).
    public var scoredTokens: Int
    /// Context length per chunk.
    public var ctx: Int
    /// Chunks evaluated.
    public var chunks: Int
    /// Wall-clock seconds of the evaluation (tokenizing and both models' forward passes).
    public var seconds: Double
    /// What the activations of symmetric q8 weights were quantized to, in both models.
    public var activations: ActivationPrecision
    /// The budget and what exceeded it.
    public var budget: BudgetCheck

    /// Relative perplexity increase: after.ppl / before.ppl - 1.
    public var pplIncrease: Double { after.ppl / before.ppl - 1 }
    /// Compression ratio: before.bytes / after.bytes.
    public var sizeRatio: Double { after.bytes > 0 ? Double(before.bytes) / Double(after.bytes) : 0 }

    /// The report as JSON: {"before": {ppl, bytes, bits_per_weight}, "after": {...}, "kl", "top1_agreement",
    /// "size": {before, after, ratio}, "ppl_increase", "tokens", "scored_tokens", "ctx", "seconds",
    /// "activations", "budget": {max_ppl_increase?, max_bytes?, ok, violations}}.
    public var json: JSONValue {
        func side(_ s: VerifySide) -> JSONValue {
            ["ppl": .number(s.ppl), "bytes": .number(Double(s.bytes)), "bits_per_weight": .number(s.bitsPerWeight)]
        }
        var b: [String: JSONValue] = ["ok": .bool(budget.ok), "violations": .array(budget.violations.map { .string($0) })]
        if let m = budget.budget?.maxPPLIncrease { b["max_ppl_increase"] = .number(m) }
        if let m = budget.budget?.maxBytes { b["max_bytes"] = .number(Double(m)) }
        if let m = budget.budget?.minCosine { b["min_cosine"] = .number(m) }
        return [
            "before": side(before), "after": side(after), "kl": .number(kl), "top1_agreement": .number(top1Agreement),
            "size": ["before": .number(Double(before.bytes)), "after": .number(Double(after.bytes)), "ratio": .number(sizeRatio)],
            "ppl_increase": .number(pplIncrease), "tokens": .number(Double(tokens)), "scored_tokens": .number(Double(scoredTokens)),
            "ctx": .number(Double(ctx)), "seconds": .number(seconds), "activations": .string(activations.rawValue), "budget": .object(b),
        ]
    }
}

/// Compares a float checkpoint ("before") with the `.edge` file made from it ("after") on a text:
/// both run through the same runtime forward pass over the same llama.cpp-style chunks
/// (`PerplexityPlan`), so the numbers differ only because the weights do.
///
/// The chunks are those of the runtime's perplexity loop (`EdgeModel.perplexity(tokens:)`, run by the
/// after model); from its per-chunk callback the before model scores the same chunk
/// (`EdgeModel.scoreChunk`) and each row pair is compared: memory is one chunk of logits per model.
public struct Verifier {
    /// Float model built from the input checkpoint (weights as float32 in memory).
    public let before: EdgeModel
    /// The `.edge` file's model (weights served from the mapping).
    public let after: EdgeModel
    /// Bytes of the input's weight files.
    public let beforeBytes: Int
    /// Bytes of the `.edge` file.
    public let afterBytes: Int
    /// The budget recorded in the `.edge` file's recipe (`recipe.budget`), if any.
    public let embeddedBudget: Budget?

    /// Opens both models.
    /// - Parameters:
    ///   - input: any input `Checkpoint.open` accepts (its tokenizer is used for the before model;
    ///     an input without one borrows the `.edge` file's).
    ///   - output: the `.edge` file (checksums verified).
    ///   - threads: threads for the matrix products of each model.
    ///   - activations: what both models quantize the activations of symmetric q8 weights to.
    /// - Throws: `CheckpointError`, `EdgeFormatError`, `RuntimeError`, `TokenizerError` from opening,
    ///   `VerifyError.vocabMismatch`, or `RecipeError` for a bad budget in the embedded recipe.
    public init(input: String, output: String, threads: Int = EdgeModel.defaultThreads,
                activations: ActivationPrecision = .default) throws {
        let file = try EdgeFile(path: output)
        after = try EdgeModel(file: file, threads: threads)
        after.activations = activations
        afterBytes = file.fileSize
        embeddedBudget = try Verifier.budget(in: file.provenance.recipe, file: output)
        let ckpt = try Checkpoint.open(input)
        guard ckpt.config.vocabSize == file.config.vocabSize else {
            throw VerifyError.vocabMismatch(before: input, beforeVocab: ckpt.config.vocabSize, after: output, afterVocab: file.config.vocabSize)
        }
        before = try EdgeModel.floatModel(graph: ModelGraph(ckpt), fallbackTokenizer: after.tokenizer, threads: threads)
        before.activations = activations
        beforeBytes = ckpt.files.reduce(0) { $0 + $1.size }
    }

    /// The budget of a recipe recorded in provenance (its "budget" object), validated as `Recipe.parse` does.
    /// - Throws: `RecipeError` naming `budget.<field>` when the recorded budget is invalid.
    static func budget(in recipe: JSONValue, file: String) throws -> Budget? {
        guard let b = recipe["budget"], !b.isNull else { return nil }
        let minimal: JSONValue = ["passes": [], "budget": b]
        return try Recipe.parse(Data(try minimal.jsonBytes()), file: "\(file) (embedded recipe)").budget
    }

    /// Evaluates both models on `text` and checks the budget.
    /// - Parameters:
    ///   - text: the evaluation text (tokenized by both models; the ids must agree).
    ///   - ctx: tokens per chunk (the text needs at least 2 * ctx tokens).
    ///   - maxChunks: evaluate at most this many chunks.
    ///   - budget: limits to check (typically `embeddedBudget`, or a recipe's budget that overrides it); nil: none.
    ///   - progress: called after each chunk with (chunks done, chunks in all).
    /// - Throws: `VerifyError.tokenizerMismatch`, `.badOption` (maxChunks < 1), `RuntimeError` (no tokenizer, text too short, bad context).
    public func run(text: String, ctx: Int, maxChunks: Int? = nil, budget: Budget?,
                    progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> VerifyReport {
        let started = Date()
        if let m = maxChunks, m < 1 { throw VerifyError.badOption(name: "chunks", value: m, why: "at least 1 chunk is needed") }
        let tokens = try after.tokenize(text)
        let beforeTokens = try before.tokenize(text)
        if beforeTokens != tokens {
            let i = zip(beforeTokens, tokens).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(beforeTokens.count, tokens.count)
            throw VerifyError.tokenizerMismatch(before: before.source, after: after.source, index: i,
                                                beforeID: i < beforeTokens.count ? beforeTokens[i] : nil,
                                                afterID: i < tokens.count ? tokens[i] : nil)
        }
        let beforeCache = try before.makeCache(capacity: ctx)
        let vocab = after.config.vocabSize
        var nllBefore = 0.0, kl = 0.0, agree = 0
        let result = try after.perplexity(tokens: tokens, ctx: ctx, maxChunks: maxChunks, onChunk: { a in
            let b = try before.scoreChunk(a.tokens, index: a.index, cache: beforeCache)
            nllBefore += b.nll.reduce(0, +)
            b.logits.withUnsafeBufferPointer { bp in
                a.logits.withUnsafeBufferPointer { ap in
                    for j in 0 ..< a.nll.count {
                        let rb = UnsafeBufferPointer(rebasing: bp[j * vocab ..< (j + 1) * vocab])
                        let ra = UnsafeBufferPointer(rebasing: ap[j * vocab ..< (j + 1) * vocab])
                        kl += LogitComparison.klDivergence(before: rb, after: ra)
                        if LogitComparison.argmax(rb) == LogitComparison.argmax(ra) { agree += 1 }
                    }
                }
            }
        }, progress: progress)
        let n = Double(result.scoredTokens)
        let b = VerifySide(ppl: exp(nllBefore / n), nll: nllBefore / n, bytes: beforeBytes, parameters: before.parameterCount)
        let a = VerifySide(ppl: result.ppl, nll: result.nll, bytes: afterBytes, parameters: after.parameterCount)
        return VerifyReport(before: b, after: a, kl: kl / n, top1Agreement: Double(agree) / n, tokens: tokens.count,
                            scoredTokens: result.scoredTokens, ctx: ctx, chunks: result.chunks,
                            seconds: Date().timeIntervalSince(started), activations: after.activations,
                            budget: BudgetCheck(budget: budget, pplIncrease: b.ppl > 0 ? a.ppl / b.ppl - 1 : 0, bytes: afterBytes))
    }
}
