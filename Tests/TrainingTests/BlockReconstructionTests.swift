import EdgeFormat
import EdgeRuntime
import XCTest
@testable import Training

/// One block at a time (`blockForward` / `blockBackward`, decoders and encoders) and the block-wise
/// reconstruction built on it.
final class BlockReconstructionTests: XCTestCase {
    /// Running the blocks one by one from the embeddings gives the whole forward pass's last hidden state.
    func testBlocksChainToTheWholeForward() throws {
        for arch in [ModelConfig.Architecture.llama, .gpt2] {
            let c = GradientTests.config(arch)
            let m = try GradientTests.randomModel(c, seed: 30)
            let batch: [[Int32]] = [[1, 5, 2, 12, 7, 3], [4, 4, 0, 9, 11, 2]]
            let (_, cache) = m.forward(batch)
            var x = m.embed(batch.flatMap { $0 }, length: 6)
            for l in 0 ..< c.numLayers { x = m.blockForward(l, x, batch: 2, length: 6).out }
            XCTAssertEqual(x.array, cache.xL.array, "\(arch)")
        }
        // An encoder: its embeddings (normalized) and blocks give the last hidden states.
        let e = try GradientTests.randomModel(EncoderTrainingTests.config(), seed: 33)
        let sentences: [[Int32]] = [[1, 5, 2, 12, 7, 3], [4, 4, 0, 9, 11, 2]]
        let (hidden, _) = e.forward(sentences)
        var x = e.embed(sentences.flatMap { $0 }, length: 6)
        for l in 0 ..< 2 { x = e.blockForward(l, x, batch: 2, length: 6).out }
        XCTAssertEqual(x.array, hidden.array, "bert")
    }

    /// `blockBackward` gives the gradient of L = sum(r * block output) for every tensor of the block (finite differences, Double).
    func testBlockGradients() throws {
        for arch in [ModelConfig.Architecture.llama, .gpt2, .bert] {
            let c = arch == .bert ? EncoderTrainingTests.config() : GradientTests.config(arch)
            let m = try GradientTests.randomModel(c, seed: 31)
            let tokens: [Int32] = [1, 5, 2, 12, 7, 3, 4, 4, 0, 9, 11, 2]
            let x = m.embed(tokens, length: 6)
            let r = randomWeights(tokens.count * c.hiddenSize, seed: 32)
            func loss() -> Double {
                try! m.refresh()
                let y = m.blockForward(1, x, batch: 2, length: 6).out
                return zip(y.array, r).reduce(0) { $0 + $1.0 * $1.1 }
            }
            m.zeroGrad()
            try m.refresh()
            let (y, pass) = m.blockForward(1, x, batch: 2, length: 6)
            for i in 0 ..< y.count { y.p[i] = r[i] }
            m.blockBackward(1, y, pass: pass)
            let params = m.blockParams(1)
            XCTAssertEqual(params.count, c.schema().filter { $0.name.hasPrefix("blk.1.") }.count)
            for p in params {
                check("\(arch) \(p.name)", p.value.p, count: p.value.count, grad: p.grad!.array, samples: 6, tolerance: 1e-5, loss)
            }
        }
    }

    /// A student made from the teacher by noise and a 25% mask gets closer to the teacher block by
    /// block; the masked weights stay zero; frozen tensors do not move. A decoder on windows of
    /// the text, an encoder on sentences of different lengths.
    func testReconstructionLowersEachBlocksError() throws {
        for arch in [ModelConfig.Architecture.llama, .bert] {
            var c = arch == .bert ? EncoderTrainingTests.config() : GradientTests.config(.llama)
            c.vocabSize = 40
            c.maxPositions = 32
            var rng = SplitMix64(seed: 40)
            func uniform() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
            var teacherValues: [String: [Float]] = [:], studentValues: [String: [Float]] = [:], masks: [String: [Bool]] = [:]
            for (name, shape) in c.expectedTensors() {
                let n = shape.reduce(1, *)
                let norm = name.contains("norm") && name.hasSuffix(".weight")
                let t = (0 ..< n).map { _ in norm ? 1 + 0.1 * uniform() : 0.4 * uniform() }
                teacherValues[name] = t
                if name.hasPrefix("blk.") && shape.count == 2 {
                    let mask = (0 ..< n).map { $0 % 4 != 0 }
                    masks[name] = mask
                    studentValues[name] = (0 ..< n).map { mask[$0] ? t[$0] + 0.2 * uniform() : 0 }
                } else {
                    studentValues[name] = t
                }
            }
            let trainable = Set(c.expectedTensors().map(\.0).filter { $0.hasPrefix("blk.") })
            let teacher = try TrainModel<Float>(config: c, tensors: teacherValues, trainable: [])
            let tokens = (0 ..< 512).map { _ in Int32(rng.next() % 40) }
            // Sentences of 4 to 19 tokens, 1104 tokens in all: the 512-token budget takes 44 of them.
            let sentences = (0 ..< 96).map { i in (0 ..< 4 + i % 16).map { _ in Int32(rng.next() % 40) } }
            var o = ReconstructOptions()
            o.epochs = 8
            o.tokens = 512
            o.length = 16
            o.batch = 4
            o.lr = 3e-3
            for target in ReconstructOptions.Target.allCases {
                o.target = target
                let s = try TrainModel<Float>(config: c, tensors: studentValues, trainable: trainable, masks: masks)
                let stage = arch == .bert
                    ? try BlockReconstruction(student: s, teacher: teacher, sentences: sentences, options: o)
                    : try BlockReconstruction(student: s, teacher: teacher, tokens: tokens, options: o)
                let report = try stage.run()
                XCTAssertEqual(report.windows, arch == .bert ? 44 : 32)
                XCTAssertEqual(report.after.count, c.numLayers)
                for l in 0 ..< c.numLayers {
                    XCTAssertLessThan(report.after[l], 0.7 * report.before[l], "\(arch) \(target) block \(l): \(report.before[l]) -> \(report.after[l])")
                }
                for p in s.params {
                    if let m = masks[p.name] {
                        for i in 0 ..< m.count where !m[i] { XCTAssertEqual(p.value.p[i], 0, "\(p.name)[\(i)] is pruned") }
                    }
                    if !trainable.contains(p.name) { XCTAssertEqual(p.value.array, studentValues[p.name]!, p.name) }
                }
            }
        }
    }

    /// A block whose training raises its error (here: a student a hair from the teacher, trained at a
    /// learning rate far too high) goes back to its values from before; the report names it and its
    /// error after is its error before, exactly.
    func testABlockThatTrainingMadeWorseIsRestored() throws {
        var c = GradientTests.config(.llama)
        c.vocabSize = 40
        c.maxPositions = 32
        var rng = SplitMix64(seed: 42)
        func uniform() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
        var teacherValues: [String: [Float]] = [:], studentValues: [String: [Float]] = [:]
        for (name, shape) in c.expectedTensors() {
            let norm = name.contains("norm") && name.hasSuffix(".weight")
            let t = (0 ..< shape.reduce(1, *)).map { _ in norm ? 1 + 0.1 * uniform() : 0.4 * uniform() }
            teacherValues[name] = t
            studentValues[name] = name.hasPrefix("blk.") && shape.count == 2 ? t.map { $0 + 1e-3 * uniform() } : t
        }
        let trainable = Set(c.expectedTensors().map(\.0).filter { $0.hasPrefix("blk.") })
        let teacher = try TrainModel<Float>(config: c, tensors: teacherValues, trainable: [])
        let s = try TrainModel<Float>(config: c, tensors: studentValues, trainable: trainable)
        var o = ReconstructOptions()
        o.epochs = 2
        o.tokens = 256
        o.length = 16
        o.lr = 0.5
        let tokens = (0 ..< 256).map { _ in Int32(rng.next() % 40) }
        let report = try BlockReconstruction(student: s, teacher: teacher, tokens: tokens, options: o).run()
        XCTAssertEqual(report.restored, Array(0 ..< c.numLayers))
        XCTAssertEqual(report.after, report.before)
        XCTAssertGreaterThan(report.before[0], 0)
        for p in s.params { XCTAssertEqual(p.value.array, studentValues[p.name]!, p.name) }
        // A student farther away, at a sensible rate: the same blocks train and none is restored.
        o.lr = 3e-3
        let far = Dictionary(uniqueKeysWithValues: studentValues.map { name, v in
            (name, name.hasPrefix("blk.") && !name.contains("norm") ? v.map { $0 + 0.1 * uniform() } : v)
        })
        let s2 = try TrainModel<Float>(config: c, tensors: far, trainable: trainable)
        let report2 = try BlockReconstruction(student: s2, teacher: teacher, tokens: tokens, options: o).run()
        XCTAssertEqual(report2.restored, [])
    }

    /// An encoder's updates: sentences of one length share a call; each update's gradient is the
    /// mean over all its tokens, the same as running its sentences one at a time.
    func testEncoderUpdatesGroupSentencesByLength() throws {
        let c = EncoderTrainingTests.config()
        var values: [String: [Float]] = [:]
        var rng = SplitMix64(seed: 41)
        for (name, shape) in c.expectedTensors() {
            values[name] = (0 ..< shape.reduce(1, *)).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53) * 0.8 - 0.4) + (name.contains("norm") && name.hasSuffix(".weight") ? 1 : 0) }
        }
        let m = try TrainModel<Float>(config: c, tensors: values, trainable: [])
        var o = ReconstructOptions()
        o.batch = 3
        o.tokens = 1000
        let sentences: [[Int32]] = [[1, 2, 3, 4], [5, 6], [7, 8, 9, 10], [11, 12], [1, 1, 1, 1, 1], [2, 3]]
        let stage = try BlockReconstruction(student: m, teacher: m, sentences: sentences, options: o)
        // Sorted by length: [2, 2, 2], [4, 4, 5].
        XCTAssertEqual(stage.updates.map { $0.map { stage.chunks[$0].length } }, [[2], [4, 5]])
        XCTAssertEqual(stage.updates.map { $0.map { stage.chunks[$0].count } }, [[3], [2, 1]])
        XCTAssertEqual(stage.options.length, 5)
        // One call over two sentences of one length = the two calls alone (no attention across sentences).
        let x = m.embed([1, 2, 3, 4, 7, 8, 9, 10], length: 4)
        let both = m.blockForward(0, x, batch: 2, length: 4).out.array
        let one = m.blockForward(0, m.embed([1, 2, 3, 4], length: 4), batch: 1, length: 4).out.array
        let two = m.blockForward(0, m.embed([7, 8, 9, 10], length: 4), batch: 1, length: 4).out.array
        for (a, b) in zip(both, one + two) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        let h = c.hiddenSize, t = Buf<Float>((0 ..< 8 * h).map { Float($0 % 7) - 3 })
        let y = Buf<Float>(both)
        _ = BlockReconstruction.errorGradient(y, t, hidden: h, tokens: 16)
        let g = Buf<Float>(both)
        _ = BlockReconstruction.errorGradient(g, t, hidden: h)
        for i in 0 ..< y.count { XCTAssertEqual(y.p[i], g.p[i] / 2, accuracy: 1e-6) }
    }

    func testWrongInputKindAndShortTextAreRefused() throws {
        let c = GradientTests.config(.llama)
        var values: [String: [Float]] = [:]
        for (name, shape) in c.expectedTensors() { values[name] = [Float](repeating: 0.1, count: shape.reduce(1, *)) }
        let m = try TrainModel<Float>(config: c, tensors: values, trainable: [])
        var o = ReconstructOptions()
        o.length = 16
        o.epochs = 1
        XCTAssertThrowsError(try BlockReconstruction(student: m, teacher: m, tokens: [1, 2, 3], options: o)) {
            XCTAssertEqual($0 as? TrainingError, .textTooShort(tokens: 3, needed: 16))
        }
        // A decoder reads windows of the text, an encoder sentences.
        XCTAssertThrowsError(try BlockReconstruction(student: m, teacher: m, sentences: [[1, 2, 3]], options: o)) {
            guard case .unsupportedArchitecture = $0 as? TrainingError else { return XCTFail("\($0)") }
        }
        let ec = EncoderTrainingTests.config()
        var ev: [String: [Float]] = [:]
        for (name, shape) in ec.expectedTensors() { ev[name] = [Float](repeating: 0.1, count: shape.reduce(1, *)) }
        let e = try TrainModel<Float>(config: ec, tensors: ev, trainable: [])
        XCTAssertThrowsError(try BlockReconstruction(student: e, teacher: e, tokens: Array(repeating: 1, count: 64), options: o)) {
            guard case .unsupportedArchitecture = $0 as? TrainingError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try BlockReconstruction(student: e, teacher: e, sentences: [], options: o)) {
            XCTAssertEqual($0 as? TrainingError, .textTooShort(tokens: 0, needed: 1))
        }
    }
}
