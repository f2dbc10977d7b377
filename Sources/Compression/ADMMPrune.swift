import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation
import Training

/// Pruning by the alternating direction method of multipliers (Boža, "Fast and Effective Weight
/// Update for Pruned Large Language Models", 2024): like SparseGPT it minimizes the layer's output
/// change ||(W - W') X^T|| over calibration inputs X under a sparsity constraint, but instead of one
/// greedy sweep over the columns it alternates, over all weights at once,
///
///     W <- (W0 H + rho (Z - U)) (H + rho I)^-1     (the least-squares step, one shared inverse)
///     Z <- mask(W + U)                             (the projection onto the sparse set)
///     U <- U + W - Z                               (the scaled dual)
///
/// In coordinates where every input has unit scale (W_ij * sqrt(H_jj), H_ij / sqrt(H_ii H_jj), the
/// reference's normalization), so the mask keeps the largest |W + U|, which at the start is Wanda's
/// score |w| ||x_j||. The mask grows gradually: during the first `gradual` iterations the fraction
/// pruned follows s - s (1 - (i + 1) / gradual)^3 (the reference's cubic schedule); after that it
/// is fixed and the iterations only refine the kept weights. The result is Z: exact zeros where the
/// mask prunes.
///
/// Masks: `per_row` (each output row loses floor(s * cols) weights, as `wanda_prune`), `per_tensor`
/// (the matrix loses floor(s * rows * cols)), or N:M (each group of M columns keeps its `keep(len)`
/// largest; while the schedule grows, only the smallest of the weights outside those are pruned,
/// floor(s_i * cols) per row). Ties go to the lower index (kept last: pruned first is the smaller
/// value, then the lower column). Weights already zero (an earlier pass, or an input never active)
/// stay zero and count as pruned.
enum ADMM {
    struct Options {
        /// Unstructured: the fraction to prune (ignored with a pattern).
        var sparsity: Double
        var pattern: NMPattern? = nil
        var scope: SparseGPTPrune.Scope = .perRow
        /// Fraction of the mean diagonal of the normalized H added to it (the reference's 0.1).
        var damp = 0.1
        /// The penalty rho of the augmented Lagrangian, in the normalized coordinates (the reference's 1).
        var rho = 1.0
        /// ADMM iterations (the reference's 20).
        var iterations = 20
        /// Iterations over which the mask grows to its sparsity (the reference's 15); 0: the whole
        /// mask from the first iteration.
        var gradual = 15
    }

    /// What every matrix with one input shares: the input scales, the damped normalized Hessian
    /// and the inverse of it plus rho I.
    struct Factor {
        let cols: Int
        /// sqrt(H_jj), 1 for an input never active (`dead`).
        let norm: [Float]
        let dead: [Bool]
        /// H_n + d I, [cols, cols] row-major, with H_n the normalized H.
        let damped: [Float]
        /// (H_n + d I + rho I)^-1, [cols, cols] row-major.
        let inverse: [Float]
    }

    /// - Throws: `GPTQ.Failure.notPositiveDefinite`.
    static func factor(hessian h: [Double], cols: Int, damp: Double, rho: Double) throws -> Factor {
        precondition(h.count == cols * cols)
        var norm = [Double](repeating: 1, count: cols)
        var dead = [Bool](repeating: false, count: cols)
        for j in 0 ..< cols {
            let d = h[j * cols + j]
            if d > 0 { norm[j] = d.squareRoot() } else { dead[j] = true }
        }
        var hn = [Double](repeating: 0, count: cols * cols)
        var meanDiag = 0.0
        for i in 0 ..< cols {
            for j in 0 ..< cols where !dead[i] && !dead[j] { hn[i * cols + j] = h[i * cols + j] / (norm[i] * norm[j]) }
            meanDiag += hn[i * cols + i]
        }
        let d = damp * max(meanDiag / Double(cols), 1e-12)
        for i in 0 ..< cols { hn[i * cols + i] += d }
        let damped = hn.map { Float($0) }
        for i in 0 ..< cols { hn[i * cols + i] += rho }
        let inverse = try GPTQ.symmetricInverse(hn, n: cols).map { Float($0) }
        return Factor(cols: cols, norm: norm.map { Float($0) }, dead: dead, damped: damped, inverse: inverse)
    }

    /// Prunes W [rows, cols] with a factor of its inputs' Hessian.
    /// - Returns: the pruned and updated weights and the mask (true: pruned, value exactly 0).
    static func prune(weights: [Float], rows: Int, cols: Int, factor f: Factor, options o: Options) -> (values: [Float], mask: [Bool]) {
        precondition(weights.count == rows * cols && f.cols == cols)
        let n = rows * cols
        var w = [Float](repeating: 0, count: n)  // normalized W, dead inputs zero
        var zero = [Bool](repeating: false, count: n)
        for r in 0 ..< rows {
            for j in 0 ..< cols {
                let v = f.dead[j] ? 0 : weights[r * cols + j]
                zero[r * cols + j] = v == 0
                w[r * cols + j] = v * f.norm[j]
            }
        }
        // B = W0 (H_n + d I); H symmetric, so (M S)[r][j] = dot(M[r], S[j]) = product(S, M).
        let b = CalibrationStats.product(f.damped, w, tokens: rows, rows: cols, cols: cols)
        var u = [Float](repeating: 0, count: n)
        var z = [Float](repeating: 0, count: n)
        var m = [Float](repeating: 0, count: n)
        var pruned = [Bool](repeating: false, count: n)
        let rho = Float(o.rho)
        let sparsity = o.pattern?.sparsity ?? o.sparsity
        for it in 0 ..< max(1, o.iterations) {
            if it < max(1, o.gradual) {
                let grown = o.gradual > 0 ? sparsity - sparsity * pow(1 - Double(it + 1) / Double(o.gradual), 3) : sparsity
                for i in 0 ..< n { z[i] = w[i] + u[i] }
                pruned = mask(z, zero: zero, rows: rows, cols: cols, sparsity: grown, options: o)
            }
            // Z = mask(W + U); U += W - Z; W = (B + rho (Z - U)) (H_n + d I + rho I)^-1
            w.withUnsafeBufferPointer { wp in
                u.withUnsafeMutableBufferPointer { up in
                    m.withUnsafeMutableBufferPointer { mp in
                        pruned.withUnsafeBufferPointer { pp in
                            b.withUnsafeBufferPointer { bp in
                                parallelRanges(n, threads: EdgeModel.defaultThreads) { range in
                                    for i in range {
                                        let v = wp[i] + up[i]
                                        let zi: Float = pp[i] ? 0 : v
                                        up[i] = v - zi
                                        mp[i] = bp[i] + rho * (zi - up[i])
                                    }
                                }
                            }
                        }
                    }
                }
            }
            w = CalibrationStats.product(f.inverse, m, tokens: rows, rows: cols, cols: cols)
        }
        var out = [Float](repeating: 0, count: n)
        for r in 0 ..< rows {
            for j in 0 ..< cols where !pruned[r * cols + j] {
                let i = r * cols + j
                out[i] = (w[i] + u[i]) / f.norm[j]
            }
        }
        return (out, pruned)
    }

    /// The positions to prune (true) of scores `s` [rows, cols]: the smallest |s| at `sparsity`
    /// (see `ADMM`); positions in `zero` are always pruned, counting towards the share.
    static func mask(_ s: [Float], zero: [Bool], rows: Int, cols: Int, sparsity: Double, options o: Options) -> [Bool] {
        var out = [Bool](repeating: false, count: rows * cols)
        s.withUnsafeBufferPointer { sp in
            zero.withUnsafeBufferPointer { zp in
                out.withUnsafeMutableBufferPointer { op in
                    maskInto(op, scores: sp, zero: zp, rows: rows, cols: cols, sparsity: sparsity, options: o)
                }
            }
        }
        return out
    }

    private static func maskInto(_ op: UnsafeMutableBufferPointer<Bool>, scores s: UnsafeBufferPointer<Float>, zero: UnsafeBufferPointer<Bool>,
                                 rows: Int, cols: Int, sparsity: Double, options o: Options) {
        // Key: |s| bits (monotonic for non-negative floats) above the index, so ties go to the lower
        // index and every key is distinct; positions already zero sort first.
        func key(_ i: Int, _ local: Int) -> UInt64 {
            zero[i] ? UInt64(local) : (UInt64(s[i].magnitude.bitPattern) + 1) << 32 | UInt64(local)
        }
        if o.scope == .perTensor && o.pattern == nil {
            let k = Int((Double(rows * cols) * sparsity).rounded(.down))
            var keys = (0 ..< rows * cols).map { key($0, $0) }
            let zeros = zero.reduce(0) { $0 + ($1 ? 1 : 0) }
            selectSmallest(&keys, max(k, zeros))
            for e in keys.prefix(max(k, zeros)) { op[Int(e & 0xFFFF_FFFF)] = true }
            return
        }
        let k = Int((Double(cols) * sparsity).rounded(.down))
        parallelRanges(rows, threads: EdgeModel.defaultThreads, cost: cols) { range in
            var keys = [UInt64]()
            keys.reserveCapacity(cols)
            for r in range {
                let base = r * cols
                keys.removeAll(keepingCapacity: true)
                if let p = o.pattern {
                    // The pattern's mask first: each group drops all but its keep(len) largest.
                    var g = 0
                    while g < cols {
                        let len = min(p.m, cols - g)
                        var group = (0 ..< len).map { key(base + g + $0, g + $0) }
                        let drop = len - p.keep(inGroupOf: len)
                        let zerosHere = (0 ..< len).filter { zero[base + g + $0] }.count
                        selectSmallest(&group, max(drop, zerosHere))
                        for e in group.prefix(max(drop, zerosHere)) { keys.append(e) }
                        g += len
                    }
                    // Of those, the share the schedule reaches now (all of them at the end).
                    let want = sparsity >= p.sparsity ? keys.count : min(keys.count, k)
                    selectSmallest(&keys, want)
                    for e in keys.prefix(want) { op[base + Int(e & 0xFFFF_FFFF)] = true }
                } else {
                    var zeros = 0
                    for j in 0 ..< cols {
                        keys.append(key(base + j, j))
                        if zero[base + j] { zeros += 1 }
                    }
                    let want = min(cols, max(k, zeros))
                    selectSmallest(&keys, want)
                    for e in keys.prefix(want) { op[base + Int(e & 0xFFFF_FFFF)] = true }
                }
            }
        }
    }

    /// Reorders `a` so that its first `k` elements are its k smallest (in no particular order).
    /// The elements must be distinct for the result to be unique; quickselect, median-of-three pivots.
    static func selectSmallest(_ a: inout [UInt64], _ k: Int) {
        guard k > 0, k < a.count else { return }
        a.withUnsafeMutableBufferPointer { p in
            var lo = 0, hi = p.count - 1
            let target = k - 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                if p[mid] < p[lo] { p.swapAt(mid, lo) }
                if p[hi] < p[lo] { p.swapAt(hi, lo) }
                if p[hi] < p[mid] { p.swapAt(hi, mid) }
                let pivot = p[mid]
                var i = lo, j = hi
                while i <= j {
                    while p[i] < pivot { i += 1 }
                    while p[j] > pivot { j -= 1 }
                    if i <= j {
                        p.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if target <= j { hi = j } else if target >= i { lo = i } else { return }
            }
        }
    }
}

/// The `admm_prune` pass: ADMM pruning (see `ADMM`) of every selected matrix, from the Hessians
/// of its calibration inputs (layer by layer, as `sparsegpt_prune`). Weights sharing an input
/// (Q/K/V, gate/up) share one factor.
///
/// Recipe: `{"pass": "admm_prune", "sparsity": 0.5, "scope": "per_row" | "per_tensor", "damp": 0.1,
/// "rho": 1, "iterations": 20, "gradual": 15, <selector>}` or with `"pattern": "2:4"` instead of
/// `sparsity` and `scope`; the selector defaults to the linear weights.
public struct ADMMPrune: Pass {
    public static let id = "admm_prune"
    public static let stage = PassStage.prune

    public let sparsity: Double
    public let pattern: NMPattern?
    public let scope: SparseGPTPrune.Scope
    public let damp: Double
    public let rho: Double
    public let iterations: Int
    public let gradual: Int
    public let selector: TensorSelector

    private var options: ADMM.Options
    private var factor: (site: CalibrationStats.Site, factor: ADMM.Factor)?
    private var perTensor: [String: Double] = [:]
    private var pruned = 0
    private var total = 0
    private var seconds = 0.0

    public init(fields f: inout RecipeFields) throws {
        (sparsity, pattern) = try f.pruneAmount()
        scope = pattern != nil ? .perRow : try f.choice("scope", default: SparseGPTPrune.Scope.perRow)
        damp = try f.double("damp", default: 0.1, range: 0 ... 100)
        rho = try f.double("rho", default: 1, range: 1e-6 ... 1e6)
        iterations = try f.optionalInt("iterations", range: 1 ... 1000) ?? 20
        let g = try f.optionalInt("gradual", range: 0 ... 1000) ?? min(15, iterations)
        if g > iterations {
            throw f.error("gradual", "is \(g); the mask must reach its sparsity within the \(iterations) iterations (at most 'iterations')")
        }
        gradual = g
        selector = try f.selector(defaultKinds: [.linear])
        options = ADMM.Options(sparsity: sparsity, pattern: pattern, scope: scope, damp: damp, rho: rho, iterations: iterations, gradual: gradual)
    }

    public var calibrationNeeds: CalibrationNeeds { .hessians }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard t.shape.count == 2 else {
            throw PassError(pass: Self.id, tensor: t.name, why: "is \(t.shape.count)-D; ADMM pruning prunes a matrix")
        }
        let start = Date()
        defer { seconds += Date().timeIntervalSince(start) }
        let cols = t.cols
        let site = CalibrationStats.site(of: t.name)
        if factor?.site != site || factor?.factor.cols != cols {
            factor = nil
            guard let h = context.calibration?.hessian(for: t.name), h.count == cols * cols else {
                throw PassError(pass: Self.id, tensor: t.name, why: "no calibration statistics for its inputs (is it a linear weight the model multiplies?)")
            }
            do {
                factor = (site, try ADMM.factor(hessian: h, cols: cols, damp: damp, rho: rho))
            } catch {
                throw PassError(pass: Self.id, tensor: t.name, why: "the damped Hessian is not positive definite; raise 'damp'")
            }
        }
        let r = ADMM.prune(weights: t.values, rows: t.rows, cols: cols, factor: factor!.factor, options: options)
        t.values = r.values
        let n = r.mask.reduce(0) { $0 + ($1 ? 1 : 0) }
        perTensor[t.name] = t.values.isEmpty ? 0 : Double(n) / Double(t.values.count)
        pruned += n
        total += t.values.count
    }

    /// `pruned` counts the positions the mask set to zero (including weights that were zero already).
    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "sparsity": .number(sparsity), "damp": .number(damp), "rho": .number(rho),
            "iterations": .number(Double(iterations)), "gradual": .number(Double(gradual)),
            "selector": selector.record, "tensors": .number(Double(perTensor.count)),
            "weights": .number(Double(total)), "pruned": .number(Double(pruned)),
            "achieved_sparsity": .number(total > 0 ? Double(pruned) / Double(total) : 0),
            "per_tensor_sparsity": .object(perTensor.mapValues { .number($0) }),
        ]
        if let pattern { o["pattern"] = .string(pattern.description) } else { o["scope"] = .string(scope.rawValue) }
        return .object(o)
    }

    public func timings() -> JSONValue? { .object(["seconds": .number((seconds * 10).rounded() / 10)]) }
}
