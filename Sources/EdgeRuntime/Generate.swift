#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator, so sampled generations (and
/// training's shuffles) repeat exactly for a seed on every platform. The toolchain's one seeded generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// How `generate` picks each token.
public struct GenerationOptions: Equatable, Sendable {
    /// Tokens to generate at most.
    public var maxTokens: Int
    /// 0: greedy (the arg-max logit, lowest id on ties); > 0: sample from softmax(logits / temperature).
    public var temperature: Float
    /// When sampling, keep only the `topK` most likely tokens (0: all).
    public var topK: Int
    /// Seed of the sampling generator.
    public var seed: UInt64
    /// Stop after the model emits its EOS token (the token is still returned and streamed).
    public var stopAtEOS: Bool

    public init(maxTokens: Int = 64, temperature: Float = 0, topK: Int = 0, seed: UInt64 = 0, stopAtEOS: Bool = true) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topK = topK
        self.seed = seed
        self.stopAtEOS = stopAtEOS
    }
}

extension EdgeModel {
    /// Continues `prompt` (token ids, BOS included if wanted) one token at a time with a KV cache:
    /// the prompt runs as one window, then each new token alone. Stops after `maxTokens`, at EOS
    /// (if `stopAtEOS`), when `onToken` returns false, or when the context (max_positions) is full.
    /// - Parameter onToken: receives each new token as soon as it is chosen; return false to stop.
    /// - Returns: the new tokens (not the prompt).
    /// - Throws: `RuntimeError` for an empty or out-of-range prompt, or one longer than max_positions.
    public func generate(prompt: [Int32], options: GenerationOptions = .init(),
                         onToken: (Int32) -> Bool = { _ in true }) throws -> [Int32] {
        guard !prompt.isEmpty else { throw RuntimeError.textTooShort(tokens: 0, needed: 1, why: "in the prompt to generate from") }
        let capacity = min(config.maxPositions, prompt.count + max(0, options.maxTokens))
        guard prompt.count <= capacity else { throw RuntimeError.contextFull(needed: prompt.count, capacity: config.maxPositions) }
        let cache = try makeCache(capacity: capacity)
        var rng = SplitMix64(seed: options.seed)
        var out: [Int32] = []
        var logits = try forward(prompt, cache: cache, outputs: prompt.count - 1 ..< prompt.count)
        let eos = config.eosTokenID.map(Int32.init) ?? tokenizer?.eosTokenID
        while out.count < options.maxTokens {
            let next = Self.pick(logits, options: options, rng: &rng)
            out.append(next)
            guard onToken(next), !(options.stopAtEOS && next == eos), out.count < options.maxTokens,
                  cache.count < cache.capacity else { break }
            logits = try forward([next], cache: cache)
        }
        return out
    }

    /// Continues the text `prompt` (tokenized with BOS first when the model adds one) and streams
    /// the decoded text piece by piece (UTF-8 sequences split across tokens are held back until whole).
    /// - Returns: the generated text.
    /// - Throws: `RuntimeError.noTokenizer`, and as `generate(prompt:options:onToken:)`.
    public func generate(text prompt: String, options: GenerationOptions = .init(),
                         onText: (String) -> Void = { _ in }) throws -> String {
        guard let tokenizer else { throw RuntimeError.noTokenizer(source: source) }
        var decoder = TokenStreamDecoder(tokenizer: tokenizer)
        var text = ""
        _ = try generate(prompt: try tokenize(prompt), options: options) { id in
            let piece = decoder.push(id)
            if !piece.isEmpty { text += piece; onText(piece) }
            return true
        }
        let rest = decoder.finish()
        if !rest.isEmpty { text += rest; onText(rest) }
        return text
    }

    /// The next token from one row of logits.
    static func pick(_ logits: [Float], options: GenerationOptions, rng: inout SplitMix64) -> Int32 {
        guard options.temperature > 0 else {
            var best = 0
            for i in logits.indices where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        var ids = Array(logits.indices)
        if options.topK > 0, options.topK < ids.count {
            ids.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            ids.removeLast(ids.count - options.topK)
        }
        let t = Double(options.temperature)
        let m = Double(ids.map { logits[$0] }.max() ?? 0)
        let weights = ids.map { exp((Double(logits[$0]) - m) / t) }
        var u = rng.unit() * weights.reduce(0, +)
        for (i, w) in zip(ids, weights) {
            u -= w
            if u < 0 { return Int32(i) }
        }
        return Int32(ids.last ?? 0)
    }
}
