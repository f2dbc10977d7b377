import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation

/// SparseGPT (Frantar & Alistarh, 2023): prunes a weight matrix W [rows, cols] so that the
/// layer's *output* changes least, ||(W - W') X^T|| over calibration inputs X, rather than by
/// weight size alone. Follows the reference implementation (`sparsegpt.py`, `fasterprune`) on the
/// machinery GPTQ uses (`GPTQ.factor`, `GPTQ.sweep`: the same damping, the same Cholesky path):
/// with U upper-triangular, U^T U = H^-1 for the damped H = (2/n) X^T X, the columns are swept
/// in blocks; a weight's saliency is w^2 / U_jj^2 (the optimal-brain-surgeon loss of removing
/// it, with the reference's diagonal of U in place of [H^-1]_jj); every pruned weight becomes an
/// exact zero and its error (w / U_ii) is spread over the columns not yet swept through row i of U.
///
/// Where the mask is chosen (the weights it scores are the current ones, error spread included):
/// - unstructured, `per_row`: at the start of each block; each row prunes its share of the block,
///   so that after columns 0 ..< c it has lost floor(sparsity * c) weights, and the whole row
///   floor(sparsity * cols), as `wanda_prune` (ties: the lower column first).
/// - unstructured, `per_tensor`: at the start of each block, over all rows of the block at once
///   (the reference's choice); after columns 0 ..< c the matrix has lost floor(sparsity * rows * c)
///   weights (ties: row-major order first).
/// - N:M (`NMPattern`): when the sweep reaches a group's first column, from the group's current
///   weights; each row keeps the `keep(len)` most salient of the group (ties: the lower column
///   kept, as `NMPattern.apply`). Blocks are whole groups.
///
/// Weights already zero (an earlier pass, or an input never active, which GPTQ zeroes too) stay
/// zero and count as pruned; a row with more of them than its share keeps them all at zero.
enum SparseGPT {
    struct Options {
        /// Unstructured: the fraction to prune (ignored with a pattern).
        var sparsity: Double
        var pattern: NMPattern? = nil
        var scope: SparseGPTPrune.Scope = .perRow
        /// Columns per block (with a pattern, rounded down to whole groups, at least one).
        var blockSize = 128
        /// Fraction of the mean Hessian diagonal added to the diagonal (`GPTQ.factor`).
        var damp = 0.01
        /// Fraction of the Hessian's off-diagonal removed (`GPTQ.factor`); 1 leaves the diagonal:
        /// no error is spread and the saliency is Wanda's (w^2 * H_jj, up to damping).
        var shrink = 0.0
    }

    /// M = (C + dI)(H + dI)^-1 with d = damp x mean diag(H), so that W M is the ridge solution of
    /// min ||X_f W^T - X W'^T||^2 + d ||W' - W||^2 (C = X_f^T X, H = X^T X, both scaled alike):
    /// the weights that best reproduce the float model's output from the compressed model's inputs,
    /// pulled towards W. When X = X_f, M = I.
    /// - Throws: `GPTQ.Failure.notPositiveDefinite`.
    static func floatTargetMap(hessian h: [Double], cross c: [Double], cols: Int, damp: Double) throws -> [Float] {
        var meanDiag = 0.0
        for i in 0 ..< cols { meanDiag += h[i * cols + i] }
        let d = damp * max(meanDiag / Double(cols), 1e-12)
        var hd = h
        for i in 0 ..< cols { hd[i * cols + i] += d }
        let inverse = try GPTQ.symmetricInverse(hd, n: cols).map { Float($0) }
        var cd = c.map { Float($0) }
        for i in 0 ..< cols { cd[i * cols + i] += Float(d) }
        return multiply(cd, rows: cols, by: inverse, cols: cols)
    }

    /// A [rows, cols] times the symmetric-or-not M [cols, cols] (row-major): (A M)[r][j] = sum_i A[r][i] M[i][j].
    static func multiply(_ a: [Float], rows: Int, by m: [Float], cols: Int) -> [Float] {
        var mt = [Float](repeating: 0, count: cols * cols)
        for i in 0 ..< cols { for j in 0 ..< cols { mt[j * cols + i] = m[i * cols + j] } }
        // Y[t][r] = dot(W[r], X[t]) with W = M^T [cols, cols], X = A [rows, cols]: Y = A M.
        return CalibrationStats.product(mt, a, tokens: rows, rows: cols, cols: cols)
    }

    /// Prunes W [rows, cols] against Hessian H [cols, cols] (row-major, double).
    /// - Throws: `GPTQ.Failure.notPositiveDefinite` when the damped H is not.
    static func prune(weights: [Float], rows: Int, cols: Int, hessian: [Double], options o: Options) throws
        -> (values: [Float], mask: [Bool]) {
        let f = try GPTQ.factor(hessian: hessian, cols: cols, damp: o.damp, shrink: o.shrink, actOrder: false)
        return prune(weights: weights, rows: rows, cols: cols, factor: f, options: o)
    }

    /// Prunes W [rows, cols] with a precomputed factor (no act-order: columns in their order).
    /// - Returns: the pruned and compensated weights and the mask (true: pruned, value exactly 0).
    static func prune(weights: [Float], rows: Int, cols: Int, factor f: GPTQ.Factor, options o: Options)
        -> (values: [Float], mask: [Bool]) {
        precondition(weights.count == rows * cols && f.cols == cols)
        precondition(f.perm.elementsEqual(0 ..< cols), "SparseGPT sweeps the columns in order")
        var w = weights
        for i in 0 ..< cols where f.dead[i] { for r in 0 ..< rows { w[r * cols + i] = 0 } }
        let zero = w.map { $0 == 0 }
        // 1 / U_jj^2: saliency = w^2 / U_jj^2; weights already zero score -1 (pruned first).
        let invDiag2 = (0 ..< cols).map { j -> Float in let d = f.u[j * cols + j]; return 1 / (d * d) }
        func saliency(_ wp: [Float], _ r: Int, _ j: Int) -> Float {
            zero[r * cols + j] ? -1 : wp[r * cols + j] * wp[r * cols + j] * invDiag2[j]
        }
        var mask = [Bool](repeating: false, count: rows * cols)
        var prunedInRow = [Int](repeating: 0, count: rows)
        var pruned = 0
        let blockSize = o.pattern.map { max(1, o.blockSize / $0.m) * $0.m } ?? o.blockSize
        var q = [Float](repeating: 0, count: rows)
        let swept = GPTQ.sweep(w, rows: rows, cols: cols, factor: f, blockSize: blockSize) { i, block, wp in
            if let p = o.pattern {
                if i % p.m == 0 {
                    let len = min(p.m, cols - i)
                    for r in 0 ..< rows {
                        let s = (i ..< i + len).map { saliency(wp, r, $0) }
                        let zeros = s.filter { $0 < 0 }.count
                        // Ascending saliency, ties: the higher column first (the lower one is kept).
                        let order = (0 ..< len).sorted { s[$0] < s[$1] || (s[$0] == s[$1] && $0 > $1) }
                        for k in order.prefix(max(len - p.keep(inGroupOf: len), zeros)) { mask[r * cols + i + k] = true }
                    }
                }
            } else if i == block.lowerBound {
                let b = block.count
                switch o.scope {
                case .perRow:
                    let target = Int((Double(block.upperBound) * o.sparsity).rounded(.down))
                    for r in 0 ..< rows {
                        let s = block.map { saliency(wp, r, $0) }
                        let zeros = s.filter { $0 < 0 }.count
                        let k = min(b, max(target - prunedInRow[r], zeros))
                        let order = (0 ..< b).sorted { s[$0] < s[$1] || (s[$0] == s[$1] && $0 < $1) }
                        for j in order.prefix(k) { mask[r * cols + block.lowerBound + j] = true }
                        prunedInRow[r] += k
                    }
                case .perTensor:
                    let target = Int((Double(rows * block.upperBound) * o.sparsity).rounded(.down))
                    var s = [Float](repeating: 0, count: rows * b)
                    for r in 0 ..< rows { for j in 0 ..< b { s[r * b + j] = saliency(wp, r, block.lowerBound + j) } }
                    let zeros = s.filter { $0 < 0 }.count
                    let k = min(rows * b, max(target - pruned, zeros))
                    let order = s.indices.sorted { s[$0] < s[$1] || (s[$0] == s[$1] && $0 < $1) }
                    for e in order.prefix(k) { mask[(e / b) * cols + block.lowerBound + e % b] = true }
                    pruned += k
                }
            }
            for r in 0 ..< rows { q[r] = mask[r * cols + i] ? 0 : wp[r * cols + i] }
            return q
        }
        return (swept, mask)
    }
}

/// The `sparsegpt_prune` pass: SparseGPT (see `SparseGPT`) on every selected matrix, from the
/// Hessians of its calibration inputs (needs `--data`). Weights sharing an input (Q/K/V,
/// gate/up) share one factor.
///
/// Recipe: `{"pass": "sparsegpt_prune", "sparsity": 0.5, "scope": "per_row" | "per_tensor",
/// "block_size": 128, "damp": 0.01, "shrink": 0, "layer_sparsity": "uniform" | "owl", "owl_lambda": 0.08,
/// "owl_threshold": 5, <selector>}` (OWL: `LayerSparsity`) or `{"pass": "sparsegpt_prune", "pattern": "2:4", ...}`
/// (`pattern` excludes `sparsity` and `scope`); the selector defaults to the linear weights.
///
/// Pruning and the quantization after it are separate sweeps: a later `quantize` (rtn, or
/// `method: gptq`, which compensates its rounding error on the kept weights) keeps the zeros.
public struct SparseGPTPrune: Pass {
    public static let id = "sparsegpt_prune"
    public static let stage = PassStage.prune

    /// Where unstructured pruning chooses its mask (see `SparseGPT`).
    public enum Scope: String, CaseIterable, Codable, Sendable {
        /// Each row loses its share of every block.
        case perRow = "per_row"
        /// Each block of columns loses its share over all rows (the reference implementation).
        case perTensor = "per_tensor"
    }

    /// The fraction pruned; with a pattern, the implied 1 - N/M.
    public let sparsity: Double
    /// N:M semi-structured instead of unstructured.
    public let pattern: NMPattern?
    /// Unstructured only (`.perRow` with a pattern).
    public let scope: Scope
    /// Columns swept per block (with a pattern, whole groups).
    public let blockSize: Int
    /// Fraction of the mean Hessian diagonal added to the diagonal.
    public let damp: Double
    /// Fraction of the Hessian's off-diagonal removed before factoring (as GPTQ's `shrink`).
    public let shrink: Double
    public let selector: TensorSelector
    /// What the pruned layer's output is fitted to on the inputs the compressed layers before it produce.
    public enum Target: String, CaseIterable, Codable, Sendable {
        /// Its own output on those inputs (SparseGPT as published): ||(W - W') X||.
        case compressed
        /// The float model's output, ||W X_f - W' X||: the weights first move to the ridge solution
        /// W* = W (C + d I)(H + d I)^-1 (C = X_f^T X, H = X^T X, d = `targetDamp` x mean diag H),
        /// which also corrects the error of the layers before, then SparseGPT prunes W*.
        case float
    }
    /// What the pruned output is fitted to (`Target`).
    public let target: Target
    /// The ridge strength of `Target.float`, as a fraction of the mean of H's diagonal.
    public let targetDamp: Double
    /// How unstructured sparsity is spread over the blocks (`LayerSparsity`).
    public let layerSparsity: LayerSparsity
    public let owl: LayerSparsity.OWL
    /// With `.owl`, the sparsity of each block (from `prepare`).
    public private(set) var blockSparsity: [Int: Double] = [:]

    private var options: SparseGPT.Options
    /// The last factor, by calibration site (tensors stream in order, so Q/K/V follow each other).
    private var factor: (site: CalibrationStats.Site, factor: GPTQ.Factor)?
    /// With `Target.float`, the site's (C + dI)(H + dI)^-1 [cols, cols] (row-major, float).
    private var correction: [Float]?
    private var corrected = 0
    private var perTensor: [String: Double] = [:]
    private var pruned = 0
    private var total = 0
    /// Time spent factoring and sweeping (reported, not recorded).
    private var seconds = 0.0

    /// Unstructured SparseGPT.
    public init(sparsity: Double, scope: Scope = .perRow, blockSize: Int = 128, damp: Double = 0.01, shrink: Double = 0,
                layerSparsity: LayerSparsity = .uniform, owl: LayerSparsity.OWL = LayerSparsity.OWL(),
                selector: TensorSelector = TensorSelector(kinds: [.linear])) {
        self.layerSparsity = layerSparsity
        self.owl = owl
        target = .compressed
        targetDamp = 0.1
        self.sparsity = sparsity
        pattern = nil
        self.scope = scope
        self.blockSize = blockSize
        self.damp = damp
        self.shrink = shrink
        self.selector = selector
        options = SparseGPT.Options(sparsity: sparsity, scope: scope, blockSize: blockSize, damp: damp, shrink: shrink)
    }

    /// N:M SparseGPT; `blockSize` is rounded down to whole groups.
    public init(pattern: NMPattern, blockSize: Int = 128, damp: Double = 0.01, shrink: Double = 0,
                selector: TensorSelector = TensorSelector(kinds: [.linear])) {
        sparsity = pattern.sparsity
        target = .compressed
        targetDamp = 0.1
        layerSparsity = .uniform
        owl = LayerSparsity.OWL()
        self.pattern = pattern
        scope = .perRow
        self.blockSize = max(1, blockSize / pattern.m) * pattern.m
        self.damp = damp
        self.shrink = shrink
        self.selector = selector
        options = SparseGPT.Options(sparsity: sparsity, pattern: pattern, blockSize: self.blockSize, damp: damp, shrink: shrink)
    }

    public init(fields f: inout RecipeFields) throws {
        (sparsity, pattern) = try f.pruneAmount()
        scope = pattern != nil ? .perRow : try f.choice("scope", default: Scope.perRow)
        if let b = try f.optionalInt("block_size", range: 1 ... 1 << 16) {
            if let p = pattern, b % p.m != 0 {
                throw f.error("block_size", "is \(b); with pattern \(p) it must be a multiple of \(p.m) (a group's mask is chosen within one block)")
            }
            blockSize = b
        } else {
            blockSize = pattern.map { max(1, 128 / $0.m) * $0.m } ?? 128
        }
        damp = try f.double("damp", default: 0.01, range: 0 ... 1)
        shrink = try f.double("shrink", default: 0, range: 0 ... 1)
        target = try f.choice("target", default: Target.compressed)
        targetDamp = try f.double("target_damp", default: 0.1, range: 0 ... 100)
        layerSparsity = try f.choice("layer_sparsity", default: LayerSparsity.uniform)
        if layerSparsity == .owl, let p = pattern {
            throw f.error("layer_sparsity", "is 'owl'; with pattern \(p) every block has the pattern's sparsity (use 'uniform')")
        }
        owl = LayerSparsity.OWL(lambda: try f.double("owl_lambda", default: 0.08, range: 0 ... 0.5),
                                threshold: try f.double("owl_threshold", default: 5, range: 1 ... 1000))
        selector = try f.selector(defaultKinds: [.linear])
        options = SparseGPT.Options(sparsity: sparsity, pattern: pattern, scope: scope, blockSize: blockSize, damp: damp, shrink: shrink)
    }

    public var calibrationNeeds: CalibrationNeeds { target == .float ? [.hessians, .floatCross] : .hessians }
    /// OWL reads the weights and their input norms (float model) to spread the sparsity.
    public var prepareCalibrationNeeds: CalibrationNeeds { layerSparsity == .owl ? .columnNorms : [] }
    public var readsWeightsInPrepare: Bool { layerSparsity == .owl }

    /// With `.owl`, each block's sparsity from the outlier ratios of its selected weights.
    public mutating func prepare(graph: ModelGraph, context: PassContext) throws {
        guard layerSparsity == .owl else { return }
        var ratios: [Int: (ratio: Double, weights: Int)] = [:]
        for l in 0 ..< graph.config.numLayers {
            var matrices: [(values: [Float], norms: [Float])] = []
            for t in graph.tensors where t.shape.count == 2 && TensorID(name: t.name)?.layer == l
                && selector.selects(t.name, numLayers: graph.config.numLayers) {
                guard let norms = context.calibration?.columnNorms(for: t.name), norms.count == t.shape[1] else {
                    throw PassError(pass: Self.id, tensor: t.name, why: "no calibration statistics for its inputs (layer_sparsity 'owl' needs them)")
                }
                matrices.append((try t.floats(), norms))
            }
            guard !matrices.isEmpty else { continue }
            ratios[l] = (LayerSparsity.outlierRatio(matrices, threshold: owl.threshold), matrices.reduce(0) { $0 + $1.values.count })
        }
        blockSparsity = LayerSparsity.owlSparsities(ratios: ratios, target: sparsity, lambda: owl.lambda)
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard t.shape.count == 2 else {
            throw PassError(pass: Self.id, tensor: t.name, why: "is \(t.shape.count)-D; SparseGPT prunes a matrix")
        }
        let start = Date()
        defer { seconds += Date().timeIntervalSince(start) }
        let rows = t.rows, cols = t.cols
        let site = CalibrationStats.site(of: t.name)
        if factor?.site != site || factor?.factor.cols != cols {
            factor = nil
            correction = nil
            guard let h = context.calibration?.hessian(for: t.name), h.count == cols * cols else {
                throw PassError(pass: Self.id, tensor: t.name, why: "no calibration statistics for its inputs (is it a linear weight the model multiplies?)")
            }
            if target == .float, let c = context.calibration?.floatCross(for: t.name), c.count == cols * cols {
                do {
                    correction = try SparseGPT.floatTargetMap(hessian: h, cross: c, cols: cols, damp: targetDamp)
                } catch {
                    throw PassError(pass: Self.id, tensor: t.name, why: "H + target_damp I is not positive definite; raise 'target_damp'")
                }
            }
            do {
                factor = (site, try GPTQ.factor(hessian: h, cols: cols, damp: damp, shrink: shrink, actOrder: false))
            } catch {
                throw PassError(pass: Self.id, tensor: t.name, why: "the damped Hessian is not positive definite; raise 'damp'")
            }
        }
        var o = options
        if let l = TensorID(name: t.name)?.layer, let s = blockSparsity[l] { o.sparsity = s }
        var w = t.values
        if let m = correction {
            w = SparseGPT.multiply(w, rows: rows, by: m, cols: cols)
            corrected += 1
        }
        let r = SparseGPT.prune(weights: w, rows: rows, cols: cols, factor: factor!.factor, options: o)
        t.values = r.values
        let n = r.mask.reduce(0) { $0 + ($1 ? 1 : 0) }
        perTensor[t.name] = t.values.isEmpty ? 0 : Double(n) / Double(t.values.count)
        pruned += n
        total += t.values.count
    }

    /// `pruned` counts the positions the mask set to zero (including weights that were zero
    /// already); `per_tensor_sparsity` is that fraction per tensor name.
    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "sparsity": .number(sparsity), "block_size": .number(Double(blockSize)),
            "damp": .number(damp), "selector": selector.record, "tensors": .number(Double(perTensor.count)),
            "weights": .number(Double(total)), "pruned": .number(Double(pruned)),
            "achieved_sparsity": .number(total > 0 ? Double(pruned) / Double(total) : 0),
            "per_tensor_sparsity": .object(perTensor.mapValues { .number($0) }),
        ]
        if let pattern { o["pattern"] = .string(pattern.description) } else { o["scope"] = .string(scope.rawValue) }
        if shrink > 0 { o["shrink"] = .number(shrink) }
        if target == .float {
            o["target"] = .string(target.rawValue)
            o["target_damp"] = .number(targetDamp)
            o["corrected"] = .number(Double(corrected))
        }
        if layerSparsity == .owl {
            o["layer_sparsity"] = .string(layerSparsity.rawValue)
            o["owl_lambda"] = .number(owl.lambda)
            o["owl_threshold"] = .number(owl.threshold)
            o["block_sparsity"] = .array(blockSparsity.keys.sorted().map { .number((blockSparsity[$0]! * 1e6).rounded() / 1e6) })
        }
        return .object(o)
    }

    public func timings() -> JSONValue? { .object(["seconds": .number((seconds * 10).rounded() / 10)]) }
}
