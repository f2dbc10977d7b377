import EdgeFormat
import EdgeRuntime
import TestSupport
import XCTest
@testable import Training

/// A fixture model: float tensors, config, and the runtime over them (teacher and tokenizer).
struct Fixture {
    let config: ModelConfig
    let tensors: [String: [Float]]
    let runtime: EdgeModel

    init(_ name: String) throws {
        let model = try FixtureModel(name)
        config = model.config
        tensors = model.tensors.mapValues(\.values)
        runtime = try EdgeModel(config: model.config, tensors: model.floatSources, tokenizer: try Tokenizer(json: model.tokenizerJSON), threads: 2)
    }

    func tokens(_ text: String = "us-declaration.txt") throws -> [Int32] {
        try runtime.tokenize(String(contentsOf: URL(fileURLWithPath: fixturePath("text/\(text)")), encoding: .utf8))
    }

    /// Linear weights of the blocks, magnitude-pruned to 50% per row (the student's start).
    func pruned() -> (tensors: [String: [Float]], masks: [String: [Bool]]) {
        var t = tensors, masks: [String: [Bool]] = [:]
        for (name, shape) in config.expectedTensors() where name.hasPrefix("blk.") && shape.count == 2 {
            var v = t[name]!
            let cols = shape[1]
            for r in 0 ..< shape[0] {
                let row = v[r * cols ..< (r + 1) * cols].map(abs).sorted()
                let cut = row[cols / 2]
                for j in 0 ..< cols where abs(v[r * cols + j]) < cut { v[r * cols + j] = 0 }
            }
            t[name] = v
            masks[name] = v.map { $0 != 0 }
        }
        return (t, masks)
    }

    func student(trainable: ((String) -> Bool)? = nil) throws -> TrainModel<Float> {
        let (t, masks) = pruned()
        let names = Set(config.expectedTensors().map(\.name).filter { trainable?($0) ?? ($0.hasPrefix("blk.") || $0.hasPrefix("output_norm")) })
        return try TrainModel<Float>(config: config, tensors: t, trainable: names, masks: masks, threads: 2)
    }
}

final class TrainerTests: XCTestCase {
    /// The training forward pass is the runtime's: same logits on both fixture families.
    func testForwardMatchesRuntime() throws {
        for name in ["tiny-llama", "tiny-gpt2", "tiny-llama-untied-sharded"] {
            let f = try Fixture(name)
            let model = try TrainModel<Float>(config: f.config, tensors: f.tensors, trainable: [], threads: 2)
            let ids = Array(try f.tokens().prefix(40))
            let (logits, _) = model.forward([ids])
            let ref = try f.runtime.logits(ids)
            var worst: Float = 0, scale: Float = 0
            for i in 0 ..< ref.count {
                worst = max(worst, abs(logits.p[i] - ref[i]))
                scale = max(scale, abs(ref[i]))
            }
            XCTAssertLessThan(worst / scale, 1e-4, "\(name): max |diff| \(worst) of max |logit| \(scale)")
        }
    }

    /// Mean KL(teacher || student) per position over `windows`.
    func meanKL(_ model: TrainModel<Float>, teacher: EdgeModel, windows: [[Int32]]) throws -> Double {
        var total = 0.0, n = 0
        let V = model.config.vocabSize
        for w in windows {
            let (logits, _) = model.forward([w])
            let t = try teacher.logits(w)
            let none = [Int32](repeating: -1, count: w.count)
            let v = t.withUnsafeBufferPointer {
                distillationLoss(logits: logits, teacher: $0.baseAddress, targets: none, vocab: V, temperature: 1, alpha: 0)
            }
            total += v.kl * Double(w.count)
            n += w.count
        }
        return total / Double(n)
    }

    func options(steps: Int) -> TrainOptions {
        var o = TrainOptions()
        o.steps = steps
        o.batch = 4
        o.length = 32
        o.lr = 3e-3
        o.alpha = 0  // pure distillation: the random-weight fixtures' teacher is far from the text
        o.evalEvery = 0
        o.checkpointEvery = 3
        return o
    }

    /// Distillation lowers the student's KL from the teacher on text it did not train on, keeps
    /// pruned weights at exactly zero and leaves frozen tensors untouched.
    func testDistillationLowersKLAndKeepsMasks() throws {
        for name in ["tiny-llama", "tiny-gpt2"] {
            let f = try Fixture(name)
            let student = try f.student()
            let teacher = f.runtime
            let other = try f.tokens("us-constitution.txt")
            let eval = (0 ..< 6).map { Array(other[($0 * 32) ..< ($0 + 1) * 32]) }
            let before = try meanKL(student, teacher: teacher, windows: eval)
            let trainer = try Trainer(model: student, tokens: try f.tokens(), options: options(steps: 20)) { try teacher.logits($0) }
            let report = try trainer.run()
            let after = try meanKL(student, teacher: teacher, windows: eval)
            XCTAssertLessThan(after, before * 0.8, "\(name): KL \(before) -> \(after)")
            XCTAssertEqual(report.steps, 20)
            let (pruned, masks) = f.pruned()
            for p in student.params {
                if let m = masks[p.name] {
                    let v = p.value.array
                    XCTAssertTrue(zip(v, m).allSatisfy { $1 || $0 == 0 }, "\(name) \(p.name): a pruned weight moved")
                    XCTAssertNotEqual(v, pruned[p.name]!, "\(name) \(p.name): did not train")
                }
                if !p.trainable { XCTAssertEqual(p.value.array, pruned[p.name]!, "\(name) \(p.name) is frozen") }
            }
        }
    }

    /// A run stopped after a checkpoint and started again from it ends bit-for-bit where an
    /// uninterrupted run ends.
    func testResumeMatchesUninterruptedRun() throws {
        let f = try Fixture("tiny-llama")
        let tokens = try f.tokens()
        let teacher = f.runtime
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edge-resume-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let opts = options(steps: 8)

        let a = try f.student()
        _ = try Trainer(model: a, tokens: tokens, options: opts) { try teacher.logits($0) }.run()

        var stopped = 0
        let b1 = try f.student()
        let r1 = try Trainer(model: b1, tokens: tokens, options: opts) { try teacher.logits($0) }
            .run(checkpointDir: dir.path, fingerprint: "x", shouldStop: { stopped += 1; return stopped == 5 })
        XCTAssertEqual(r1.steps, 5)
        let b2 = try f.student()
        let r2 = try Trainer(model: b2, tokens: tokens, options: opts) { try teacher.logits($0) }
            .run(checkpointDir: dir.path, fingerprint: "x")
        XCTAssertEqual(r2.resumedFrom, 5)
        XCTAssertEqual(r2.steps, 8)
        for (p, q) in zip(a.params, b2.params) {
            XCTAssertEqual(p.value.array, q.value.array, "\(p.name) differs after resuming")
        }
        // Another run's checkpoint is refused with the path named.
        let c = try f.student()
        XCTAssertThrowsError(try Trainer(model: c, tokens: tokens, options: opts) { try teacher.logits($0) }
            .run(checkpointDir: dir.path, fingerprint: "y")) { error in
            XCTAssertTrue("\(error)".contains("student.ckpt") && "\(error)".contains("different run"), "\(error)")
        }
        // A truncated checkpoint is refused, not trusted.
        let path = dir.appendingPathComponent("student.ckpt")
        let data = try Data(contentsOf: path)
        try data.prefix(data.count - 100).write(to: path)
        XCTAssertThrowsError(try Trainer(model: try f.student(), tokens: tokens, options: opts) { try teacher.logits($0) }
            .run(checkpointDir: dir.path, fingerprint: "x")) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    /// The teacher cache holds a window only while a later step of the run draws it again
    /// (issue 14: the cache kept up to 2 GB of logits that a 24-step run never read back).
    func testTeacherCacheKeepsOnlyWindowsDrawnAgain() throws {
        let f = try Fixture("tiny-llama")
        final class Counter: @unchecked Sendable { var calls = 0 }
        for steps in [2, 40] {
            let counter = Counter()
            let trainer = try Trainer(model: try f.student(), tokens: try f.tokens(), options: options(steps: steps)) {
                counter.calls += 1
                return try f.runtime.logits($0)
            }
            let drawn = (0 ..< steps).map { trainer.windows(step: $0) }
            for s in 0 ..< steps {
                for w in 0 ..< trainer.train.count {
                    XCTAssertEqual(trainer.usedAgain(window: w, after: s), drawn[(s + 1)...].contains { $0.contains(w) }, "step \(s) window \(w)")
                }
            }
            _ = try trainer.run()
            XCTAssertEqual(counter.calls, Set(drawn.joined()).count, "\(steps) steps: the teacher runs once per distinct window")
            XCTAssertTrue(trainer.teacherCache.isEmpty, "\(steps) steps: nothing is kept after its last use")
            if steps == 40 { XCTAssertGreaterThan(drawn.joined().count, Set(drawn.joined()).count, "windows recur in the longer run") }
        }
    }

    /// Accumulating the gradient window by window gives the gradient of the whole batch.
    func testWindowByWindowGradientIsTheBatchGradient() throws {
        let f = try Fixture("tiny-llama")
        var opts = options(steps: 1)
        opts.alpha = 0.5  // both terms of the loss
        let a = try f.student(), b = try f.student()
        let trainer = try Trainer(model: a, tokens: try f.tokens(), options: opts) { try f.runtime.logits($0) }
        let picked = trainer.windows(step: 0)
        var ts = 0.0, tr = 0.0
        a.zeroGrad()
        let byWindow = try trainer.accumulateGradients(windows: picked, step: 0, teacherSeconds: &ts, trainSeconds: &tr)
        let batch = picked.map { trainer.train[$0] }
        let teacher = try batch.flatMap { try f.runtime.logits($0) }
        b.zeroGrad()
        let (logits, cache) = b.forward(batch)
        let whole = teacher.withUnsafeBufferPointer {
            distillationLoss(logits: logits, teacher: $0.baseAddress, targets: Trainer.targets(batch), vocab: f.config.vocabSize,
                             temperature: opts.temperature, alpha: opts.alpha)
        }
        b.backward(logits, cache: cache)
        XCTAssertEqual(byWindow.loss, whole.loss, accuracy: 1e-9 * whole.loss)
        XCTAssertEqual(byWindow.kl, whole.kl, accuracy: 1e-9 * whole.kl)
        for (pa, pb) in zip(a.params, b.params) where pa.trainable {
            let ga = try XCTUnwrap(pa.grad).array, gb = try XCTUnwrap(pb.grad).array
            let scale = gb.map(\.magnitude).max() ?? 0
            XCTAssertGreaterThan(scale, 0, pa.name)
            let worst = zip(ga, gb).map { ($0 - $1).magnitude }.max() ?? 0
            XCTAssertLessThan(worst, 1e-4 * scale, "\(pa.name): gradients differ by \(worst) (scale \(scale))")
        }
    }

    func testSchedule() {
        var c = AdamW<Float>.Config(lr: 1)
        c.warmupSteps = 4
        c.totalSteps = 14
        c.minLRFraction = 0.1
        let o = AdamW<Float>(params: [], config: c)
        XCTAssertEqual(o.learningRate(at: 0), 0.25, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(at: 3), 1, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(at: 4), 1, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(at: 9), 0.55, accuracy: 1e-12)
        XCTAssertEqual(o.learningRate(at: 14), 0.1, accuracy: 1e-12)
    }

    func testTextTooShortIsRefused() throws {
        let f = try Fixture("tiny-llama")
        XCTAssertThrowsError(try Trainer(model: try f.student(), tokens: [1, 2, 3, 4, 5], options: options(steps: 1), teacher: nil)) {
            XCTAssertEqual($0 as? TrainingError, .textTooShort(tokens: 5, needed: 16))
        }
    }
}
