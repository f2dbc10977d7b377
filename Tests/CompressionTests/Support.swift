@testable import Compression
import EdgeFormat
import TestSupport

// The compression tests' own helpers; paths, temporary folders, running the tools and seeded
// randomness come from TestSupport.

/// A pass context over a toy Llama config (hidden 8, 2 heads, 1 KV head, MLP 16), for passes run
/// on hand-made tensors; `index` is the pass's position in its recipe.
func toyPassContext(index: Int = 0) -> PassContext {
    PassContext(config: ModelConfig(architecture: .llama, vocabSize: 8, hiddenSize: 8, numLayers: 1, numHeads: 2,
                                    numKVHeads: 1, headDim: 4, intermediateSize: 16, maxPositions: 16, normEps: 1e-5,
                                    ropeTheta: 10000, tiedEmbeddings: true, activation: "silu", bosTokenID: nil, eosTokenID: nil),
                index: index, recipeFile: "test")
}

/// The layer-output error ||(W - W') X^T||^2 of replacing `w` by `approx` (both [rows, cols]) on
/// the inputs `x` [tokens, cols], in double.
func outputError(_ w: [Float], _ approx: [Float], _ x: [Float], rows: Int, cols: Int, tokens: Int) -> Double {
    var e = 0.0
    for t in 0 ..< tokens {
        for r in 0 ..< rows {
            var s = 0.0
            for j in 0 ..< cols { s += Double(w[r * cols + j] - approx[r * cols + j]) * Double(x[t * cols + j]) }
            e += s * s
        }
    }
    return e
}

/// Correlated inputs [tokens, cols], as real activations are: 4 latent factors plus noise, every
/// 7th channel 4x (a few dominant input channels); deterministic in `seed`.
func correlatedInputs(tokens: Int, cols: Int, seed: UInt64) -> [Float] {
    var g = SplitMix(seed)
    let mix = (0 ..< cols * 4).map { _ in Float(g.nextDouble() * 2 - 1) }
    var x = [Float](repeating: 0, count: tokens * cols)
    for t in 0 ..< tokens {
        let z = (0 ..< 4).map { _ in Float(g.nextDouble() * 2 - 1) }
        for j in 0 ..< cols {
            var v = Float(g.nextDouble() * 2 - 1) * 0.3
            for k in 0 ..< 4 { v += mix[j * 4 + k] * z[k] }
            x[t * cols + j] = v * (j % 7 == 0 ? 4 : 1)
        }
    }
    return x
}
