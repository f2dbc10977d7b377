import EdgeFormat
import EdgeRuntime
import XCTest
@testable import Training

/// Finite-difference checks of every op's gradient and of a whole tiny model, in Double.
final class GradientTests: XCTestCase {
    static func config(_ arch: ModelConfig.Architecture, layers: [ModelConfig.LayerSizes]? = nil) -> ModelConfig {
        ModelConfig(architecture: arch, vocabSize: 13, hiddenSize: 8, numLayers: 2, numHeads: 2,
                    numKVHeads: arch == .llama ? 1 : 2, headDim: 4, intermediateSize: 12, maxPositions: 16,
                    normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: arch == .gpt2, activation: arch == .gpt2 ? "gelu" : "silu",
                    bosTokenID: nil, eosTokenID: nil, layers: layers)
    }

    static func randomModel(_ config: ModelConfig, seed: UInt64, scale: Double = 0.4) throws -> TrainModel<Double> {
        var rng = SplitMix64(seed: seed)
        var tensors: [String: [Double]] = [:]
        for (name, shape) in config.expectedTensors() {
            let n = shape.reduce(1, *)
            let isNormWeight = name.contains("norm") && name.hasSuffix(".weight")
            tensors[name] = (0 ..< n).map { _ in
                let u = Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1
                return isNormWeight ? 1 + 0.2 * u : scale * u
            }
        }
        return try TrainModel<Double>(config: config, tensors: tensors, trainable: Set(tensors.keys))
    }

    // MARK: Ops

    func testLinearGradients() throws {
        let m = try Self.randomModel(Self.config(.gpt2), seed: 1)
        let w = m.byName["blk.0.ffn_up.weight"]!, b = m.byName["blk.0.ffn_up.bias"]!
        let n = 5, x = Buf<Double>(randomWeights(n * w.cols, seed: 2)), r = randomWeights(n * w.rows, seed: 3)
        func loss() -> Double {
            try! m.refresh()
            let y = Buf<Double>(n * w.rows)
            m.linear(x, n, w, b, y)
            return zip(y.array, r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        m.zeroGrad()
        let dx = Buf<Double>(n * w.cols)
        m.linearBackward(Buf(r), input: x, rows: n, w, b, dx: dx, accumulate: false)
        check("x", x.p, count: x.count, grad: dx.array, loss)
        check("W", w.value.p, count: w.value.count, grad: w.grad!.array, loss)
        check("b", b.value.p, count: b.value.count, grad: b.grad!.array, loss)
    }

    func testNormGradients() throws {
        for arch in [ModelConfig.Architecture.llama, .gpt2] {
            let m = try Self.randomModel(Self.config(arch), seed: 4)
            let w = m.byName["blk.1.ffn_norm.weight"]!, b = m.byName["blk.1.ffn_norm.bias"]
            let n = 4, h = 8
            let x = Buf<Double>(randomWeights(n * h, seed: 5).map { $0 * 3 + 0.5 }), r = randomWeights(n * h, seed: 6)
            let rstd = Buf<Double>(n), mean = arch == .gpt2 ? Buf<Double>(n) : nil
            func loss() -> Double {
                let y = Buf<Double>(n * h)
                m.norm(x, y, rows: n, w, b, rstd: rstd, mean: mean)
                return zip(y.array, r).reduce(0) { $0 + $1.0 * $1.1 }
            }
            _ = loss()
            m.zeroGrad()
            let dx = Buf<Double>(n * h)
            m.normBackward(Buf(r), x: x, rows: n, w, b, rstd: rstd, mean: mean, dx: dx)
            check("\(arch) x", x.p, count: x.count, grad: dx.array, loss)
            check("\(arch) weight", w.value.p, count: h, grad: w.grad!.array, loss)
            if let b { check("\(arch) bias", b.value.p, count: h, grad: b.grad!.array, loss) }
        }
    }

    func testActivationGradients() throws {
        let m = try Self.randomModel(Self.config(.gpt2), seed: 7)
        for x0 in stride(from: -4.0, through: 4.0, by: 0.37) {
            let e = 1e-6
            XCTAssertEqual(m.geluDerivative(x0), (m.gelu(x0 + e) - m.gelu(x0 - e)) / (2 * e), accuracy: 1e-8, "gelu'(\(x0))")
            let s = m.sigmoid(x0)
            XCTAssertEqual(s * (1 + x0 * (1 - s)), (m.silu(x0 + e) - m.silu(x0 - e)) / (2 * e), accuracy: 1e-8, "silu'(\(x0))")
        }
    }

    func testRopeGradient() {
        let S = 6, heads = 2, hd = 4
        let rope = RopeTable<Double>(positions: S, headDim: hd, theta: 10000)
        let x = Buf<Double>(randomWeights(S * heads * hd, seed: 8)), r = randomWeights(S * heads * hd, seed: 9)
        func loss() -> Double {
            let y = Buf<Double>(x.array)
            rope.apply(y, rows: S, length: S, heads: heads, inverse: false)
            return zip(y.array, r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let g = Buf<Double>(r)
        rope.apply(g, rows: S, length: S, heads: heads, inverse: true)
        check("x", x.p, count: x.count, grad: g.array, loss)
    }

    func testAttentionGradients() throws {
        // GQA (2 query heads on 1 KV head) and plain multi-head, two sequences each.
        for (arch, nkv) in [(ModelConfig.Architecture.llama, 1), (.gpt2, 2)] {
            let m = try Self.randomModel(Self.config(arch), seed: 10)
            let B = 2, S = 5, nh = 2, hd = 4
            let q = Buf<Double>(randomWeights(B * S * nh * hd, seed: 11).map { $0 * 2 })
            let k = Buf<Double>(randomWeights(B * S * nkv * hd, seed: 12).map { $0 * 2 })
            let v = Buf<Double>(randomWeights(B * S * nkv * hd, seed: 13))
            let r = randomWeights(B * S * nh * hd, seed: 14)
            let probs = Buf<Double>(B * nh * S * S)
            func loss() -> Double {
                let out = Buf<Double>(B * S * nh * hd)
                m.attention(q: q, k: k, v: v, probs: probs, out: out, batch: B, length: S, heads: nh, kvHeads: nkv)
                return zip(out.array, r).reduce(0) { $0 + $1.0 * $1.1 }
            }
            _ = loss()
            let dq = Buf<Double>(q.count), dk = Buf<Double>(k.count), dv = Buf<Double>(v.count)
            m.attentionBackward(dOut: Buf(r), q: q, k: k, v: v, probs: probs, dq: dq, dk: dk, dv: dv,
                                batch: B, length: S, heads: nh, kvHeads: nkv)
            check("\(arch) q", q.p, count: q.count, grad: dq.array, samples: 20, loss)
            check("\(arch) k", k.p, count: k.count, grad: dk.array, samples: 20, loss)
            check("\(arch) v", v.p, count: v.count, grad: dv.array, samples: 20, loss)
            // Causality: the first position's output ignores later keys.
            XCTAssertEqual(probs.p[1], 0)
        }
    }

    func testLossGradients() {
        let N = 4, V = 7
        let z = Buf<Double>(randomWeights(N * V, seed: 15).map { $0 * 3 })
        let teacher = randomWeights(N * V, seed: 16).map { Float($0 * 3) }
        let targets: [Int32] = [3, -1, 0, 6]
        for (useTeacher, alpha) in [(true, 0.5), (false, 1.0), (true, 0.0)] {
            func loss() -> Double {
                let copy = Buf<Double>(z.array)
                return teacher.withUnsafeBufferPointer {
                    distillationLoss(logits: copy, teacher: useTeacher ? $0.baseAddress : nil, targets: targets, vocab: V,
                                     temperature: 2, alpha: alpha).loss
                }
            }
            let g = Buf<Double>(z.array)
            let value = teacher.withUnsafeBufferPointer {
                distillationLoss(logits: g, teacher: useTeacher ? $0.baseAddress : nil, targets: targets, vocab: V,
                                 temperature: 2, alpha: alpha)
            }
            XCTAssertEqual(value.loss, loss(), accuracy: 1e-12)
            check("logits teacher=\(useTeacher) alpha=\(alpha)", z.p, count: z.count, grad: g.array, samples: 28, loss)
        }
        // KL of a distribution with itself is zero, and so is its gradient.
        let same = Buf<Double>(teacher.map(Double.init))
        let v = teacher.withUnsafeBufferPointer {
            distillationLoss(logits: same, teacher: $0.baseAddress, targets: [Int32](repeating: -1, count: N), vocab: V,
                             temperature: 2, alpha: 0)
        }
        XCTAssertEqual(v.kl, 0, accuracy: 1e-7)
        XCTAssertLessThan(same.array.map(abs).max()!, 1e-7)
    }

    // MARK: Whole model

    func wholeModelCheck(_ config: ModelConfig, seed: UInt64) throws {
        let m = try Self.randomModel(config, seed: seed)
        let batch: [[Int32]] = [[1, 5, 2, 12, 7, 3], [4, 4, 0, 9, 11, 2]]
        let N = 12, V = config.vocabSize
        let teacher = randomWeights(N * V, seed: seed + 1).map { Float($0 * 2) }
        let targets = Trainer.targets(batch)
        func loss() -> Double {
            try! m.refresh()
            let (logits, _) = m.forward(batch)
            return teacher.withUnsafeBufferPointer {
                distillationLoss(logits: logits, teacher: $0.baseAddress, targets: targets, vocab: V, temperature: 2, alpha: 0.5).loss
            }
        }
        m.zeroGrad()
        try! m.refresh()
        let (logits, cache) = m.forward(batch)
        _ = teacher.withUnsafeBufferPointer {
            distillationLoss(logits: logits, teacher: $0.baseAddress, targets: targets, vocab: V, temperature: 2, alpha: 0.5)
        }
        m.backward(logits, cache: cache)
        for p in m.params {
            check("\(config.architecture) \(p.name)", p.value.p, count: p.value.count, grad: p.grad!.array, samples: 6,
                  tolerance: 1e-5, loss)
        }
    }

    func testWholeLlamaModelGradients() throws {
        try wholeModelCheck(Self.config(.llama), seed: 20)
        // Layers of different widths (after structured pruning), untied head.
        var c = Self.config(.llama, layers: [.init(numHeads: 2, numKVHeads: 1, intermediateSize: 12),
                                             .init(numHeads: 1, numKVHeads: 1, intermediateSize: 5)])
        c.tiedEmbeddings = false
        try wholeModelCheck(c, seed: 21)
    }

    func testWholeGPT2ModelGradients() throws {
        try wholeModelCheck(Self.config(.gpt2), seed: 22)
    }
}
