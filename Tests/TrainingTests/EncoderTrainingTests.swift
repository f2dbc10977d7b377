import EdgeFormat
import EdgeKernels
import EdgeRuntime
import TestSupport
import XCTest
@testable import Training

/// Training an encoder (BERT): finite-difference checks of its ops and of a whole tiny model in
/// Double, the training forward against the runtime on Fixtures/tiny-bert, and distillation.
final class EncoderTrainingTests: XCTestCase {
    static func config(layers: [ModelConfig.LayerSizes]? = nil, pooling: ModelConfig.Pooling.Mode = .mean) -> ModelConfig {
        ModelConfig(architecture: .bert, vocabSize: 13, hiddenSize: 8, numLayers: 2, numHeads: 2, numKVHeads: 2, headDim: 4,
                    intermediateSize: 12, maxPositions: 16, normEps: 1e-12, ropeTheta: 0, tiedEmbeddings: false,
                    activation: "gelu", bosTokenID: nil, eosTokenID: nil, layers: layers, typeVocabSize: 2,
                    pooling: .init(mode: pooling, normalize: true))
    }

    func testGeluErfDerivative() throws {
        let m = try GradientTests.randomModel(Self.config(), seed: 30)
        for x0 in stride(from: -5.0, through: 5.0, by: 0.31) {
            let e = 1e-6
            XCTAssertEqual(m.geluErfDerivative(x0), (m.geluErf(x0 + e) - m.geluErf(x0 - e)) / (2 * e), accuracy: 1e-8, "gelu_erf'(\(x0))")
        }
        // The runtime's kernel, in Float.
        let mf = try TrainModel<Float>(config: Self.config(), tensors: [:].merging(
            Self.config().expectedTensors().map { ($0.name, [Float](repeating: 0.5, count: $0.shape.reduce(1, *))) }) { a, _ in a },
            trainable: [])
        var xs: [Float] = stride(from: -6, through: 6, by: 0.25).map { Float($0) }
        let want = xs.map { mf.geluErf($0) }
        xs.withUnsafeMutableBufferPointer { edge_gelu_erf($0.baseAddress!, $0.count) }
        XCTAssertEqual(xs, want)
    }

    func testBidirectionalAttentionGradients() throws {
        let m = try GradientTests.randomModel(Self.config(), seed: 31)
        let B = 2, S = 5, nh = 2, hd = 4
        let q = Buf<Double>(randomWeights(B * S * nh * hd, seed: 32).map { $0 * 2 })
        let k = Buf<Double>(randomWeights(B * S * nh * hd, seed: 33).map { $0 * 2 })
        let v = Buf<Double>(randomWeights(B * S * nh * hd, seed: 34))
        let r = randomWeights(B * S * nh * hd, seed: 35)
        let probs = Buf<Double>(B * nh * S * S)
        func loss() -> Double {
            let out = Buf<Double>(B * S * nh * hd)
            m.attention(q: q, k: k, v: v, probs: probs, out: out, batch: B, length: S, heads: nh, kvHeads: nh, causal: false)
            return zip(out.array, r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        _ = loss()
        let dq = Buf<Double>(q.count), dk = Buf<Double>(k.count), dv = Buf<Double>(v.count)
        m.attentionBackward(dOut: Buf(r), q: q, k: k, v: v, probs: probs, dq: dq, dk: dk, dv: dv,
                            batch: B, length: S, heads: nh, kvHeads: nh, causal: false)
        check("q", q.p, count: q.count, grad: dq.array, samples: 20, loss)
        check("k", k.p, count: k.count, grad: dk.array, samples: 20, loss)
        check("v", v.p, count: v.count, grad: dv.array, samples: 20, loss)
        // Bidirectional: the first position attends to later ones.
        XCTAssertGreaterThan(probs.p[1], 0)
    }

    func testHiddenStateLossGradients() {
        let B = 2, S = 3, h = 5
        let z = Buf<Double>(randomWeights(B * S * h, seed: 36))
        let teacher = randomWeights(B * S * h, seed: 37).map { Float($0 * 2) }
        for (cosine, cls) in [(0.0, false), (0.7, false), (0.7, true)] {
            func loss() -> Double {
                let copy = Buf<Double>(z.array)
                return teacher.withUnsafeBufferPointer {
                    hiddenStateLoss(hidden: copy, teacher: $0.baseAddress!, batch: B, length: S, width: h, cosine: cosine, firstToken: cls).loss
                }
            }
            let g = Buf<Double>(z.array)
            let value = teacher.withUnsafeBufferPointer {
                hiddenStateLoss(hidden: g, teacher: $0.baseAddress!, batch: B, length: S, width: h, cosine: cosine, firstToken: cls)
            }
            XCTAssertEqual(value.loss, loss(), accuracy: 1e-12)
            check("hidden cosine=\(cosine) cls=\(cls)", z.p, count: z.count, grad: g.array, samples: 30, loss)
        }
        // The teacher against itself: no loss, no gradient.
        let same = Buf<Double>(teacher.map(Double.init))
        let v = teacher.withUnsafeBufferPointer {
            hiddenStateLoss(hidden: same, teacher: $0.baseAddress!, batch: B, length: S, width: h, cosine: 1)
        }
        XCTAssertEqual(v.loss, 0, accuracy: 1e-7)
        XCTAssertLessThan(same.array.map(abs).max()!, 1e-7)
    }

    /// The similarity-structure loss against a direct numpy-style computation and finite differences;
    /// zero with no gradient when the student's geometry is the teacher's (even at other norms).
    func testSimilarityStructureLossGradients() {
        let B = 4, h = 6
        let s = Buf<Double>(randomWeights(B * h, seed: 41))
        let t = randomWeights(B * h, seed: 42)
        func cos(_ v: [Double], _ i: Int, _ j: Int) -> Double {
            let a = v[(i * h) ..< ((i + 1) * h)], b = v[(j * h) ..< ((j + 1) * h)]
            let d = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            return d / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
        }
        var direct = 0.0
        for i in 0 ..< B { for j in 0 ..< B where j != i { direct += pow(cos(s.array, i, j) - cos(t, i, j), 2) / Double(B * (B - 1)) } }
        let (loss, grad) = similarityStructureLoss(student: s.array, teacher: t, batch: B, width: h)
        XCTAssertGreaterThan(loss, 1e-3)
        XCTAssertEqual(loss, direct, accuracy: 1e-12)
        check("similarity", s.p, count: s.count, grad: grad, samples: 24) {
            similarityStructureLoss(student: s.array, teacher: t, batch: B, width: h).loss
        }
        let scaled = t.enumerated().map { $1 * Double(1 + $0 / h) }
        let same = similarityStructureLoss(student: scaled, teacher: t, batch: B, width: h)
        XCTAssertEqual(same.loss, 0, accuracy: 1e-15)
        XCTAssertLessThan(same.gradient.map(abs).max()!, 1e-12)
        XCTAssertEqual(similarityStructureLoss(student: Array(t[..<h]), teacher: Array(t[..<h]), batch: 1, width: h).loss, 0)
    }

    func wholeModelCheck(_ config: ModelConfig, seed: UInt64) throws {
        let m = try GradientTests.randomModel(config, seed: seed)
        let batch: [[Int32]] = [[1, 5, 2, 12, 7, 3], [4, 4, 0, 9, 11, 2]]
        let N = 12, h = config.hiddenSize
        let teacher = randomWeights(N * h, seed: seed + 1).map { Float($0 * 2) }
        func loss() -> Double {
            try! m.refresh()
            let (hidden, _) = m.forward(batch)
            return teacher.withUnsafeBufferPointer {
                hiddenStateLoss(hidden: hidden, teacher: $0.baseAddress!, batch: 2, length: 6, width: h, cosine: 0.5).loss
            }
        }
        m.zeroGrad()
        try m.refresh()
        let (hidden, cache) = m.forward(batch)
        _ = teacher.withUnsafeBufferPointer {
            hiddenStateLoss(hidden: hidden, teacher: $0.baseAddress!, batch: 2, length: 6, width: h, cosine: 0.5)
        }
        m.backward(hidden, cache: cache)
        for p in m.params {
            check("bert \(p.name)", p.value.p, count: p.value.count, grad: p.grad!.array, samples: 6, tolerance: 1e-5, loss)
        }
        // Token type 1 is never used; its row has no gradient.
        let types = try XCTUnwrap(m.byName["token_types.weight"]?.grad)
        XCTAssertEqual(Array(types.array[h...]), [Double](repeating: 0, count: h))
    }

    func testWholeBertModelGradients() throws {
        try wholeModelCheck(Self.config(), seed: 40)
        // Layers of different widths (after structured pruning).
        try wholeModelCheck(Self.config(layers: [.init(numHeads: 2, numKVHeads: 2, intermediateSize: 12),
                                                  .init(numHeads: 1, numKVHeads: 1, intermediateSize: 5)]), seed: 41)
    }

    /// A loss that also reads block 0's output (`blockOutputGradients`), in Double.
    func testIntermediateBlockGradients() throws {
        let config = Self.config()
        let m = try GradientTests.randomModel(config, seed: 42)
        let batch: [[Int32]] = [[1, 5, 2, 12, 7], [4, 4, 0, 9, 2]]
        let N = 10, h = config.hiddenSize
        let t0 = randomWeights(N * h, seed: 43).map { Float($0) }, t1 = randomWeights(N * h, seed: 44).map { Float($0) }
        func loss(backward: Bool) -> Double {
            try! m.refresh()
            let (hidden, cache) = m.forward(batch)
            let mid = Buf<Double>(m.encoderBlockOutput(0, cache: cache).array)
            let a = t0.withUnsafeBufferPointer { hiddenStateLoss(hidden: mid, teacher: $0.baseAddress!, batch: 2, length: 5, width: h, cosine: 0) }
            let b = t1.withUnsafeBufferPointer { hiddenStateLoss(hidden: hidden, teacher: $0.baseAddress!, batch: 2, length: 5, width: h, cosine: 0.5) }
            if backward { m.backward(hidden, cache: cache, blockOutputGradients: [0: mid]) }
            return a.loss + b.loss
        }
        m.zeroGrad()
        _ = loss(backward: true)
        for p in m.params {
            check("bert+block0 \(p.name)", p.value.p, count: p.value.count, grad: p.grad!.array, samples: 6, tolerance: 1e-5) { loss(backward: false) }
        }
    }

    /// The training forward is the runtime's `hiddenStates` on the tiny-bert fixture (several
    /// sentences of one length in one batch).
    func testEncoderForwardMatchesRuntime() throws {
        let f = try Fixture("tiny-bert")
        let model = try TrainModel<Float>(config: f.config, tensors: f.tensors, trainable: [], threads: 2)
        let tok = try XCTUnwrap(f.runtime.tokenizer)
        let text = try String(contentsOf: URL(fileURLWithPath: fixturePath("text/us-declaration.txt")), encoding: .utf8)
        let ids = tok.encode(text)
        let S = 20
        let batch = (0 ..< 3).map { b in tok.specialTokenPrefix + ids[(b * 18) ..< (b * 18 + 18)] + tok.specialTokenSuffix }
        XCTAssertEqual(batch[0].count, S)
        let (hidden, _) = model.forward(batch)
        let ref = try f.runtime.hiddenStates(batch)
        XCTAssertEqual(hidden.count, ref.count)
        var d = 0.0, n = 0.0
        for i in 0 ..< ref.count {
            d += Double(hidden.p[i] - ref[i]) * Double(hidden.p[i] - ref[i])
            n += Double(ref[i]) * Double(ref[i])
        }
        XCTAssertLessThan((d / n).squareRoot(), 1e-4)
    }

    /// A short, fast distillation run on tiny-bert: 16 steps of 4 sequences, lr 3e-3, cosine 0.5.
    static func distillOptions() -> TrainOptions {
        var o = TrainOptions()
        o.steps = 16
        o.batch = 4
        o.lr = 3e-3
        o.evalEvery = 0
        o.cosine = 0.5
        return o
    }

    /// Distillation of a magnitude-pruned tiny-bert lowers the held-out loss, keeps pruned weights
    /// at zero, and an encoder without a teacher is refused.
    func testEncoderDistillationLowersTheLossAndKeepsMasks() throws {
        let f = try Fixture("tiny-bert")
        let student = try f.student()
        let tok = try XCTUnwrap(f.runtime.tokenizer)
        let text = try String(contentsOf: URL(fileURLWithPath: fixturePath("text/us-constitution.txt")), encoding: .utf8)
        var o = Self.distillOptions()
        o.length = 24
        let runtime = f.runtime
        let trainer = try Trainer(model: student, tokens: tok.encode(text), options: o,
                                  frame: (tok.specialTokenPrefix, tok.specialTokenSuffix)) { try runtime.hiddenStates([$0]) }
        XCTAssertEqual(trainer.length, 24)
        XCTAssertEqual(trainer.train[0].first, tok.specialTokenPrefix.first)
        XCTAssertEqual(trainer.train[0].last, tok.specialTokenSuffix.last)
        let r = try trainer.run()
        XCTAssertLessThan(r.heldOutAfter, r.heldOutBefore * 0.7, "held-out loss \(r.heldOutBefore) -> \(r.heldOutAfter)")
        for p in student.params where p.mask != nil {
            for i in 0 ..< p.value.count where !p.mask![i] { XCTAssertEqual(p.value.p[i], 0, p.name) }
        }
        XCTAssertThrowsError(try Trainer(model: student, tokens: tok.encode(text), options: o, teacher: nil)) { e in
            XCTAssertEqual(e as? TrainingError, .unsupportedArchitecture("bert"))
        }
    }

    /// Training on whole sentences of different lengths with the similarity-structure loss: the
    /// batch's loss includes it, the held-out loss falls, and too few sentences are refused.
    func testEncoderDistillationOnSentencesWithSimilarity() throws {
        let f = try Fixture("tiny-bert")
        let tok = try XCTUnwrap(f.runtime.tokenizer)
        let text = try String(contentsOf: URL(fileURLWithPath: fixturePath("text/us-constitution.txt")), encoding: .utf8)
        let sentences = text.split(whereSeparator: { ".;".contains($0) }).map { tok.encodeWithSpecialTokens(String($0)) }
            .filter { $0.count >= 6 && $0.count <= 40 }
        XCTAssertGreaterThan(Set(sentences.map(\.count)).count, 10)
        var o = Self.distillOptions()
        let runtime = f.runtime
        var losses: [Double] = []
        for similarity in [nil, 5.0] {
            o.similarity = similarity
            let student = try f.student()
            let trainer = try Trainer(model: student, sequences: Array(sentences.prefix(120)), options: o) { try runtime.hiddenStates([$0]) }
            XCTAssertEqual(trainer.length, sentences.prefix(120).map(\.count).max())
            var a = 0.0, b = 0.0
            let first = try trainer.accumulateGradients(windows: [0, 1, 2, 3], step: 0, teacherSeconds: &a, trainSeconds: &b)
            losses.append(first.loss - first.ce * 0.5 - first.kl)  // what the similarity term adds
            let r = try trainer.run()
            XCTAssertLessThan(r.heldOutAfter, r.heldOutBefore * 0.8, "similarity \(String(describing: similarity)): \(r.heldOutBefore) -> \(r.heldOutAfter)")
        }
        XCTAssertEqual(losses[0], 0, accuracy: 1e-9)
        XCTAssertGreaterThan(losses[1], 1e-6)
        XCTAssertThrowsError(try Trainer(model: try f.student(), sequences: [sentences[0]], options: o) { try runtime.hiddenStates([$0]) }) { e in
            guard case .textTooShort = e as? TrainingError else { return XCTFail("\(e)") }
        }
    }
}
