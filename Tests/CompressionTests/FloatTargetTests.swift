import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeRuntime
import TestSupport
import XCTest

/// Records a few entries of the statistics `floatCross` gives it, per tensor.
struct ToyRecordCross: Pass {
    static let id = "toy_record_cross"
    static let stage = PassStage.quantize
    let selector: TensorSelector
    private var seen: [String: JSONValue] = [:]
    init(fields f: inout RecipeFields) throws { selector = try f.selector(defaultKinds: [.linear]) }
    var calibrationNeeds: CalibrationNeeds { [.hessians, .floatCross] }
    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard let c = context.calibration?.floatCross(for: t.name), let h = context.calibration?.hessian(for: t.name) else { return }
        let n = t.cols
        seen[t.name] = .array([c[0], c[3 * n + 5], c[5 * n + 3], h[3 * n + 5]].map { .number($0) })
    }
    func record() -> JSONValue { .object(["pass": .string(Self.id), "seen": .object(seen)]) }
}

final class FloatTargetTests: XCTestCase {
    /// W M is the ridge solution: (H + dI) (W M)^T = (C^T + dI) W^T, checked in double; M = I when
    /// the compressed inputs are the float ones.
    func testFloatTargetMapIsTheRidgeSolution() throws {
        var rng = SplitMix(11)
        let n = 24, rows = 5, cols = 8
        let xf = (0 ..< n * cols).map { _ in Float(rng.nextDouble() * 2 - 1) }
        let x = xf.enumerated().map { i, v in v + Float(rng.nextDouble() - 0.5) * 0.3 + (i % cols == 2 ? 0.2 : 0) }
        let w = (0 ..< rows * cols).map { _ in Float(rng.nextDouble() * 2 - 1) }
        func product(_ a: [Float], _ b: [Float]) -> [Double] {  // (2/n) a^T b, [cols, cols]
            var m = [Double](repeating: 0, count: cols * cols)
            for t in 0 ..< n { for i in 0 ..< cols { for j in 0 ..< cols { m[i * cols + j] += Double(a[t * cols + i]) * Double(b[t * cols + j]) } } }
            return m.map { $0 * 2 / Double(n) }
        }
        let h = product(x, x), c = product(xf, x)
        let damp = 0.05
        let m = try SparseGPT.floatTargetMap(hessian: h, cross: c, cols: cols, damp: damp)
        let ws = SparseGPT.multiply(w, rows: rows, by: m, cols: cols)
        let d = damp * (0 ..< cols).map { h[$0 * cols + $0] }.reduce(0, +) / Double(cols)
        for r in 0 ..< rows {
            for i in 0 ..< cols {
                var lhs = d * Double(ws[r * cols + i]), rhs = d * Double(w[r * cols + i])
                for j in 0 ..< cols {
                    lhs += h[i * cols + j] * Double(ws[r * cols + j])
                    rhs += c[j * cols + i] * Double(w[r * cols + j])
                }
                XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(rhs)), "row \(r), col \(i)")
            }
        }
        let same = try SparseGPT.floatTargetMap(hessian: h, cross: h, cols: cols, damp: damp)
        for i in 0 ..< cols { for j in 0 ..< cols { XCTAssertEqual(same[i * cols + j], i == j ? 1 : 0, accuracy: 1e-4) } }
    }

    /// Sequential calibration pairs the float model's inputs with the compressed model's, token for
    /// token: C = (2/n) X_f^T X, computed here from two runtime models' observed inputs.
    func testCrossStatisticsPairTheFloatAndCompressedModels() throws {
        let model = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        let text = packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path
        let recipe = try Recipe.parse(Data(#"{"calibration": {"tokens": 128, "ctx": 64}, "passes": [{"pass": "toy_scale", "factor": 0.5, "include": ["blk.0.*"]}, {"pass": "toy_record_cross"}]}"#.utf8),
                                      file: "toy.json", passes: [ToyScale.self, ToyRecordCross.self])
        let dir = try makeTemporaryFolder(prefix: "cross")
        defer { try? FileManager.default.removeItem(at: dir) }
        let summary = try Pipeline(recipe: recipe, recipeFile: "toy.json").run(input: model, output: dir.appendingPathComponent("o.edge").path,
                                                                               calibrationText: text)
        guard case let .object(seen)? = summary.records[1]["seen"] else { return XCTFail("no record") }

        let graph = ModelGraph(try Checkpoint.open(model))
        var scaled = graph
        scaled.tensors = graph.tensors.map { t in
            guard t.name.hasPrefix("blk.0."), TensorName.kind(of: t.name) == .linear else { return t }
            return t.with { try t.floats().map { $0 * 0.5 } }
        }
        // The float stream is the input model's; the compressed one has layer 0 scaled.
        let float = try EdgeModel.floatModel(graph: graph), compressed = try EdgeModel.floatModel(graph: scaled)
        let ids = Array(try float.tokenize(String(contentsOfFile: text, encoding: .utf8)).prefix(128))
        func inputs(_ m: EdgeModel, _ name: String) throws -> [[Float]] {
            var out: [[Float]] = []
            m.activationObserver = { w, x, rows, cols in if w == name { out.append(Array(UnsafeBufferPointer(start: x, count: rows * cols))) } }
            for w in stride(from: 0, to: ids.count, by: 64) { _ = try m.forward(Array(ids[w ..< min(ids.count, w + 64)]), cache: try m.makeCache(capacity: 64)) }
            m.activationObserver = nil
            return out
        }
        for name in ["blk.1.attn_q.weight", "blk.1.ffn_down.weight"] {
            let xf = try inputs(float, name), xc = try inputs(compressed, name)
            let cols = try XCTUnwrap(graph.tensors.first { $0.name == name }).shape[1]
            func entry(_ a: [[Float]], _ b: [[Float]], _ i: Int, _ j: Int) -> Double {
                var s = 0.0
                for (wa, wb) in zip(a, b) { for t in 0 ..< wa.count / cols { s += Double(wa[t * cols + i]) * Double(wb[t * cols + j]) } }
                return s * 2 / Double(ids.count)
            }
            guard case let .array(v)? = seen[name] else { return XCTFail("\(name) not seen") }
            let got = v.compactMap(\.doubleValue)
            let want = [entry(xf, xc, 0, 0), entry(xf, xc, 3, 5), entry(xf, xc, 5, 3), entry(xc, xc, 3, 5)]
            for k in 0 ..< 4 { XCTAssertEqual(got[k], want[k], accuracy: 1e-3 * max(1, abs(want[k])), "\(name) entry \(k)") }
            XCTAssertGreaterThan(abs(want[1] - want[3]), 1e-3 * abs(want[3]), "\(name): the float and compressed inputs differ")
        }
    }
}
