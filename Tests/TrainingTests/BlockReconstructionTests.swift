import EdgeFormat
import EdgeRuntime
import XCTest
@testable import Training

/// One decoder block at a time (`blockForward` / `blockBackward`) and the block-wise reconstruction built on it.
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
    }

    /// `blockBackward` gives the gradient of L = sum(r * block output) for every tensor of the block (finite differences, Double).
    func testBlockGradients() throws {
        for arch in [ModelConfig.Architecture.llama, .gpt2] {
            let c = GradientTests.config(arch)
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
    /// block; the masked weights stay zero; frozen tensors do not move.
    func testReconstructionLowersEachBlocksError() throws {
        var c = GradientTests.config(.llama)
        c.vocabSize = 40
        c.maxPositions = 32
        var rng = SplitMix64(seed: 40)
        func uniform() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
        var teacherValues: [String: [Float]] = [:], studentValues: [String: [Float]] = [:], masks: [String: [Bool]] = [:]
        for (name, shape) in c.expectedTensors() {
            let n = shape.reduce(1, *)
            let norm = name.contains("norm")
            let t = (0 ..< n).map { _ in norm ? 1 + 0.1 * uniform() : 0.4 * uniform() }
            teacherValues[name] = t
            if name.hasPrefix("blk.") && !norm {
                let mask = (0 ..< n).map { $0 % 4 != 0 }
                masks[name] = mask
                studentValues[name] = (0 ..< n).map { mask[$0] ? t[$0] + 0.2 * uniform() : 0 }
            } else {
                studentValues[name] = t
            }
        }
        let trainable = Set(c.expectedTensors().map(\.0).filter { $0.hasPrefix("blk.") })
        let teacher = try TrainModel<Float>(config: c, tensors: teacherValues, trainable: [])
        let student = try TrainModel<Float>(config: c, tensors: studentValues, trainable: trainable, masks: masks)
        let tokens = (0 ..< 512).map { _ in Int32(rng.next() % 40) }
        var o = ReconstructOptions()
        o.epochs = 8
        o.tokens = 512
        o.length = 16
        o.batch = 4
        o.lr = 3e-3
        for target in ReconstructOptions.Target.allCases {
            o.target = target
            let s = try TrainModel<Float>(config: c, tensors: studentValues, trainable: trainable, masks: masks)
            let report = try BlockReconstruction(student: s, teacher: teacher, tokens: tokens, options: o).run()
            XCTAssertEqual(report.windows, 32)
            XCTAssertEqual(report.after.count, c.numLayers)
            for l in 0 ..< c.numLayers {
                XCTAssertLessThan(report.after[l], 0.7 * report.before[l], "\(target) block \(l): \(report.before[l]) -> \(report.after[l])")
            }
            for p in s.params {
                if let m = masks[p.name] {
                    for i in 0 ..< m.count where !m[i] { XCTAssertEqual(p.value.p[i], 0, "\(p.name)[\(i)] is pruned") }
                }
                if !trainable.contains(p.name) { XCTAssertEqual(p.value.array, studentValues[p.name]!, p.name) }
            }
        }
        _ = student
    }

    func testEncoderAndShortTextAreRefused() throws {
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
    }
}
