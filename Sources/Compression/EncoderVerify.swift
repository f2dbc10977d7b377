import EdgeFormat
import EdgeRuntime
import Foundation

/// The outcome of `Verifier.runEncoder`: how close the compressed encoder's sentence embeddings
/// stay to the float encoder's, and whether nearest-neighbour retrieval still finds the same sentences.
public struct EncoderVerifyReport: Equatable, Sendable {
    /// Bytes and weights of each side (`ppl` and `nll` are 0: an encoder has none).
    public var before: VerifySide
    public var after: VerifySide
    /// Sentences compared (the non-empty lines of the text).
    public var sentences: Int
    /// Tokens over all sentences (special tokens included).
    public var tokens: Int
    /// Mean and minimum over the sentences of cos(float embedding, compressed embedding).
    public var meanCosine: Double
    public var minCosine: Double
    /// Fraction of sentences whose nearest neighbour among the other sentences (by cosine) is the
    /// same sentence under both models.
    public var retrievalAgreement: Double
    public var seconds: Double
    public var activations: ActivationPrecision
    public var budget: BudgetCheck

    public var sizeRatio: Double { after.bytes > 0 ? Double(before.bytes) / Double(after.bytes) : 0 }

    /// {"kind": "encoder", "before": {bytes, bits_per_weight}, "after": {...}, "sentences", "tokens",
    /// "mean_cosine", "min_cosine", "retrieval_agreement", "size": {before, after, ratio}, "seconds",
    /// "activations", "budget": {min_cosine?, max_bytes?, ok, violations}}.
    public var json: JSONValue {
        func side(_ s: VerifySide) -> JSONValue { ["bytes": .number(Double(s.bytes)), "bits_per_weight": .number(s.bitsPerWeight)] }
        var b: [String: JSONValue] = ["ok": .bool(budget.ok), "violations": .array(budget.violations.map { .string($0) })]
        if let m = budget.budget?.minCosine { b["min_cosine"] = .number(m) }
        if let m = budget.budget?.maxBytes { b["max_bytes"] = .number(Double(m)) }
        return [
            "kind": "encoder", "before": side(before), "after": side(after),
            "sentences": .number(Double(sentences)), "tokens": .number(Double(tokens)),
            "mean_cosine": .number(meanCosine), "min_cosine": .number(minCosine), "retrieval_agreement": .number(retrievalAgreement),
            "size": ["before": .number(Double(before.bytes)), "after": .number(Double(after.bytes)), "ratio": .number(sizeRatio)],
            "seconds": .number(seconds), "activations": .string(activations.rawValue), "budget": .object(b),
        ]
    }
}

/// Cosine similarities of sentence embeddings.
public enum EmbeddingComparison {
    /// cos(a, b) in double; 0 when either vector is zero.
    public static func cosine(_ a: [Float], _ b: [Float]) -> Double { cosineSimilarity(a, b) }

    /// For each vector, the index of its most similar other vector by cosine (the first on ties);
    /// -1 when there is no other.
    public static func nearestNeighbours(_ v: [[Float]]) -> [Int] {
        let unit = v.map { x -> [Double] in
            let n = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            return x.map { n > 0 ? Double($0) / n : 0 }
        }
        return unit.indices.map { i in
            var best = -1, bestSim = -Double.infinity
            for j in unit.indices where j != i {
                var s = 0.0
                for k in unit[i].indices { s += unit[i][k] * unit[j][k] }
                if s > bestSim { best = j; bestSim = s }
            }
            return best
        }
    }
}

extension Verifier {
    /// Whether the models are encoders (verify them with `runEncoder`).
    public var isEncoder: Bool { after.config.isEncoder }

    /// Embeds `sentences` with both encoders and compares: mean and minimum cosine between each
    /// sentence's two embeddings, retrieval agreement, sizes; checks `budget` (`min_cosine`, `max_bytes`).
    /// - Throws: `VerifyError.badOption` for fewer than 2 sentences; `.tokenizerMismatch` when the
    ///   two tokenizers disagree on a sentence; the runtime's errors.
    public func runEncoder(sentences: [String], budget: Budget?, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> EncoderVerifyReport {
        let started = Date()
        guard sentences.count >= 2 else {
            throw VerifyError.badOption(name: "sentences", value: sentences.count, why: "at least 2 non-empty lines are needed (retrieval compares each with the others)")
        }
        let tokens = try sentences.map(after.sentenceTokens)
        for (i, s) in sentences.enumerated() {
            let b = try before.sentenceTokens(s)
            if b != tokens[i] {
                let j = zip(b, tokens[i]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(b.count, tokens[i].count)
                throw VerifyError.tokenizerMismatch(before: before.source, after: after.source, index: j,
                                                    beforeID: j < b.count ? b[j] : nil, afterID: j < tokens[i].count ? tokens[i][j] : nil)
            }
        }
        let n = sentences.count
        let e0 = try before.embed(tokens: tokens, progress: { progress?($0, 2 * n) })
        let e1 = try after.embed(tokens: tokens, progress: { progress?(n + $0, 2 * n) })
        let cos = zip(e0, e1).map { EmbeddingComparison.cosine($0, $1) }
        let nn0 = EmbeddingComparison.nearestNeighbours(e0), nn1 = EmbeddingComparison.nearestNeighbours(e1)
        let agree = zip(nn0, nn1).filter { $0 == $1 }.count
        let mean = cos.reduce(0, +) / Double(n)
        return EncoderVerifyReport(
            before: VerifySide(ppl: 0, nll: 0, bytes: beforeBytes, parameters: before.parameterCount),
            after: VerifySide(ppl: 0, nll: 0, bytes: afterBytes, parameters: after.parameterCount),
            sentences: n, tokens: tokens.reduce(0) { $0 + $1.count }, meanCosine: mean, minCosine: cos.min() ?? 0,
            retrievalAgreement: Double(agree) / Double(n), seconds: Date().timeIntervalSince(started),
            activations: after.activations, budget: BudgetCheck(budget: budget, meanCosine: mean, bytes: afterBytes))
    }
}
