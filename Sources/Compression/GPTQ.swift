import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation

/// GPTQ (Frantar et al., 2022): quantizes a weight matrix column by column, spreading each
/// column's rounding error over the columns not yet quantized through the inverse Hessian of the
/// layer's inputs, so the layer's *output* error ||(W - Q) X^T|| is minimised rather than the
/// weight error. Follows the reference implementation: damping, blocks of 128 columns with lazy
/// batch updates, and group grids fitted lazily: each group's scale and zero point are chosen
/// when the sweep reaches the group's first column, from the current weights (the originals plus
/// the error spread onto them so far), so the grid covers what is actually rounded. With
/// act-order (columns by decreasing Hessian diagonal) groups are static instead: the q4 / q3 layouts'
/// groups are contiguous input ranges, so their grids are fitted on the original weights before
/// reordering (also available without act-order as `staticGroups`, for comparison).
/// Pruned weights (exact zeros in the input) stay exactly zero; their error is compensated too.
enum GPTQ {
    /// H = (2/n) sum_t x_t x_t^T over calibration inputs x_t (cols values each), in double.
    struct Hessian {
        let cols: Int
        private(set) var h: [Double]
        private(set) var samples = 0

        init(cols: Int) {
            self.cols = cols
            h = [Double](repeating: 0, count: cols * cols)
        }

        /// Adds `tokens` input rows, X is [tokens, cols] row-major.
        mutating func add(_ x: UnsafeBufferPointer<Float>, tokens: Int) {
            precondition(x.count >= tokens * cols)
            let n = cols
            h.withUnsafeMutableBufferPointer { hp in
                for t in 0 ..< tokens {
                    let row = x.baseAddress! + t * n
                    for i in 0 ..< n {
                        let xi = Double(row[i])
                        if xi == 0 { continue }
                        let hrow = hp.baseAddress! + i * n
                        for j in i ..< n { hrow[j] += xi * Double(row[j]) }
                    }
                }
            }
            samples += tokens
        }

        /// The full symmetric matrix scaled by 2/n.
        func matrix() -> [Double] {
            var m = h
            let s = samples > 0 ? 2 / Double(samples) : 0
            for i in 0 ..< cols {
                for j in i ..< cols {
                    let v = h[i * cols + j] * s
                    m[i * cols + j] = v
                    m[j * cols + i] = v
                }
            }
            return m
        }
    }

    struct Options {
        var bits: Int
        var groupSize: Int?
        var symmetric: Bool
        /// Fraction of the mean Hessian diagonal added to the diagonal.
        var damp: Double = 0.01
        /// Fraction of the Hessian's off-diagonal removed (see `factor`).
        var shrink: Double = 0
        var actOrder: Bool = false
        var blockSize: Int = 128
        /// Fit every group's grid on the original weights up front (always so with `actOrder`),
        /// instead of lazily on the error-compensated weights when the sweep reaches the group.
        var staticGroups: Bool = false
        /// How the grids are fitted to the weights (same options as round-to-nearest).
        var rounding: Rounding = .minmax
        /// Grid search (`rounding: mse`): weigh each weight's error by its square.
        var magnitudeWeighted = false
        /// Per-input weights of the grid search's error (`rounding: mse`); nil = 1.
        var columnWeights: [Float]? = nil
        /// q4k: bits of the group scale and min codes, and every row's super-scales (fixed before
        /// the sweep, from the original weights); the groups' codes are chosen when the sweep reaches them.
        var subBits: Int? = nil
        var supers: [Q4KSuper]? = nil
    }

    enum Failure: Error { case notPositiveDefinite }

    /// What GPTQ needs from a Hessian, independent of the weights: the column order, which inputs
    /// are dead (never active), and U (upper, U^T U = H_damped^-1) in that order. Weights that
    /// share an input (Q/K/V, gate/up) share one factor.
    struct Factor {
        let cols: Int
        let perm: [Int]
        let dead: [Bool]
        /// [cols, cols] row-major, permuted.
        let u: [Float]
    }

    /// - Parameter shrink: fraction of the off-diagonal removed, H' = (1 - shrink) H + shrink diag(H)
    ///   (the correlations a short calibration text gives transfer less than the per-input scales;
    ///   at 1 GPTQ spreads no error and is round-to-nearest on its grids).
    static func factor(hessian: [Double], cols: Int, damp: Double, shrink: Double = 0, actOrder: Bool) throws -> Factor {
        precondition(hessian.count == cols * cols)
        var h = hessian
        if shrink > 0 {
            for i in 0 ..< cols { for j in 0 ..< cols where i != j { h[i * cols + j] *= 1 - shrink } }
        }
        var dead = [Bool](repeating: false, count: cols)
        for i in 0 ..< cols where h[i * cols + i] == 0 {
            h[i * cols + i] = 1
            dead[i] = true
        }
        var meanDiag = 0.0
        for i in 0 ..< cols { meanDiag += h[i * cols + i] }
        meanDiag /= Double(cols)
        for i in 0 ..< cols { h[i * cols + i] += damp * meanDiag }
        var perm = Array(0 ..< cols)
        if actOrder { perm.sort { h[$0 * cols + $0] > h[$1 * cols + $1] || (h[$0 * cols + $0] == h[$1 * cols + $1] && $0 < $1) } }
        var hp = [Double](repeating: 0, count: cols * cols)
        for i in 0 ..< cols { for j in 0 ..< cols { hp[i * cols + j] = h[perm[i] * cols + perm[j]] } }
        let u = try upperCholeskyOfInverse(hp, n: cols)
        return Factor(cols: cols, perm: perm, dead: dead, u: u.map { Float($0) })
    }

    /// Quantizes W [rows, cols] against Hessian H [cols, cols].
    /// - Returns: integer codes (row-major), the grids (`GroupLayout` order) and the dequantized weights.
    static func quantize(weights: [Float], rows: Int, cols: Int, hessian: [Double], options o: Options) throws
        -> (codes: [Float], grids: [QuantGrid], dequantized: [Float]) {
        let f = try factor(hessian: hessian, cols: cols, damp: o.damp, shrink: o.shrink, actOrder: o.actOrder)
        return quantize(weights: weights, rows: rows, cols: cols, factor: f, options: o)
    }

    /// Quantizes W [rows, cols] with a precomputed factor. Float arithmetic, as the reference
    /// implementation (see `sweep`).
    /// Rows are independent (each row's error is spread over its own later columns), so a tall
    /// matrix (a vocabulary-sized output head) is swept `rowChunk` rows at a time, which bounds the
    /// sweep's working copies.
    static func quantize(weights: [Float], rows: Int, cols: Int, factor f: Factor, options o: Options,
                         rowChunk: Int = 4096) -> (codes: [Float], grids: [QuantGrid], dequantized: [Float]) {
        precondition(weights.count == rows * cols && f.cols == cols && rowChunk > 0)
        if rows <= rowChunk { return quantizeRows(weights: weights, rows: rows, cols: cols, factor: f, options: o) }
        var codes: [Float] = [], grids: [QuantGrid] = [], deq: [Float] = []
        codes.reserveCapacity(rows * cols); deq.reserveCapacity(rows * cols)
        for r0 in stride(from: 0, to: rows, by: rowChunk) {
            let r1 = min(rows, r0 + rowChunk)
            var po = o
            po.supers = o.supers.map { Array($0[r0 ..< r1]) }
            let part = quantizeRows(weights: Array(weights[(r0 * cols) ..< (r1 * cols)]), rows: r1 - r0, cols: cols, factor: f, options: po)
            codes += part.codes; grids += part.grids; deq += part.dequantized
        }
        return (codes, grids, deq)
    }

    static func quantizeRows(weights: [Float], rows: Int, cols: Int, factor f: Factor, options o: Options)
        -> (codes: [Float], grids: [QuantGrid], dequantized: [Float]) {
        precondition(weights.count == rows * cols && f.cols == cols)
        let layout = GroupLayout(rows: rows, cols: cols, bits: o.bits, groupSize: o.groupSize, symmetric: o.symmetric, subBits: o.subBits)
        var w = weights
        let mask = weights.map { $0 != 0 }
        for i in 0 ..< cols where f.dead[i] { for r in 0 ..< rows { w[r * cols + i] = 0 } }
        let group = layout.group, groups = layout.groups
        // Lazy group grids (the reference without act-order): fitted per group from the current
        // weights when the sweep reaches it. Per-row grids (no groups) and act-order's permuted
        // sweep need them up front, from the weights before any error is spread.
        let lazy = o.groupSize != nil && !o.actOrder && !o.staticGroups
        var grids = lazy ? [QuantGrid](repeating: QuantGrid(scale: 0, zero: 0, qmin: 0, qmax: 0), count: rows * groups)
            : layout.fitGrids(w, rounding: o.rounding, magnitudeWeighted: o.magnitudeWeighted, columnWeights: o.columnWeights,
                              supers: o.supers)
        // Lazily, a group must not reach past the block being swept (its later columns would miss
        // the block's pending update): blocks are whole groups.
        let blockSize = lazy ? max(1, o.blockSize / group) * group : o.blockSize
        let perm = f.perm
        var codes = [Float](repeating: 0, count: rows * cols)
        var q = [Float](repeating: 0, count: rows)
        let swept = sweep(permuted(w, rows: rows, cols: cols, perm: perm), rows: rows, cols: cols, factor: f, blockSize: blockSize) { i, _, wp in
            let col = perm[i]
            if lazy, col % group == 0 {
                // perm is the identity here: the group is wp[:, col ..< col + n], up to date.
                let n = min(cols, col + group) - col, gi = col / group
                var sub = [Float](repeating: 0, count: rows * n)
                for r in 0 ..< rows {
                    for k in 0 ..< n where mask[r * cols + col + k] { sub[r * n + k] = wp[r * cols + col + k] }
                }
                let fitted = GroupLayout(rows: rows, cols: n, bits: o.bits, groupSize: n, symmetric: o.symmetric, subBits: o.subBits)
                    .fitGrids(sub, rounding: o.rounding, magnitudeWeighted: o.magnitudeWeighted,
                              columnWeights: o.columnWeights.map { Array($0[col ..< col + n]) }, supers: o.supers)
                for r in 0 ..< rows { grids[r * groups + gi] = fitted[r] }
            }
            for r in 0 ..< rows {
                let grid = grids[r * groups + col / group]
                // A pruned weight takes the code nearest 0 (the zero point, except on a q4k grid).
                let c: Float = grid.code(mask[r * cols + col] ? wp[r * cols + i] : 0)
                codes[r * cols + col] = c
                q[r] = grid.value(c)
            }
            return q
        }
        var deq = [Float](repeating: 0, count: rows * cols)
        for r in 0 ..< rows { for j in 0 ..< cols { deq[r * cols + perm[j]] = swept[r * cols + j] } }
        return (codes, grids, deq)
    }

    /// W [rows, cols] row-major with its columns in `perm` order: column j is W's column perm[j].
    static func permuted(_ w: [Float], rows: Int, cols: Int, perm: [Int]) -> [Float] {
        var wp = [Float](repeating: 0, count: rows * cols)
        for r in 0 ..< rows { for j in 0 ..< cols { wp[r * cols + j] = w[r * cols + perm[j]] } }
        return wp
    }

    /// The optimal-brain-surgeon sweep GPTQ and SparseGPT share, as their reference
    /// implementations: the columns of W [rows, cols] (in the factor's order) are fixed one at a
    /// time, in blocks of `blockSize` with lazy batch updates. At column i, `fix(i, block, w)`
    /// returns the column's final values (one per row: a grid point, or 0 for a pruned weight) and
    /// each row's error (w - q) / U[i, i] is spread over the columns after i through row i of U
    /// (U^T U = H^-1): at once within the block, as one GEMM (`edge_matmul_f32`) on the columns
    /// after the block when it ends.
    ///
    /// `fix` sees W as it stands: columns before i final, columns i ..< block.upperBound updated
    /// by every earlier column's error, later columns not yet by the current block's.
    /// - Returns: W with every column fixed, still in the factor's order.
    static func sweep(_ w: [Float], rows: Int, cols: Int, factor f: Factor, blockSize: Int,
                      fix: (_ i: Int, _ block: Range<Int>, _ w: [Float]) -> [Float]) -> [Float] {
        precondition(w.count == rows * cols && f.cols == cols && blockSize > 0)
        let u = f.u
        var wp = w
        var i1 = 0
        while i1 < cols {
            let i2 = min(cols, i1 + blockSize), b = i2 - i1
            var err = [Float](repeating: 0, count: rows * b)  // [rows, b]
            for i in i1 ..< i2 {
                let q = fix(i, i1 ..< i2, wp)
                precondition(q.count == rows)
                let d = u[i * cols + i]
                for r in 0 ..< rows {
                    let x = wp[r * cols + i]
                    wp[r * cols + i] = q[r]
                    let e = (x - q[r]) / d
                    err[r * b + (i - i1)] = e
                    if e == 0 { continue }
                    for j in (i + 1) ..< i2 { wp[r * cols + j] -= e * u[i * cols + j] }
                }
            }
            // W[:, i2:] -= Err [rows, b] x U[i1:i2, i2:] [b, n], as Y[r, c] = dot(Ut[c, :], Err[r, :]).
            let n = cols - i2
            if n > 0 {
                var ut = [Float](repeating: 0, count: n * b)
                for k in 0 ..< b { for c in 0 ..< n { ut[c * b + k] = u[(i1 + k) * cols + i2 + c] } }
                var y = [Float](repeating: 0, count: rows * n)
                ut.withUnsafeBufferPointer { up in
                    err.withUnsafeBufferPointer { ep in
                        y.withUnsafeMutableBufferPointer { yp in
                            let chunks = max(1, min(EdgeModel.defaultThreads, n / 64))
                            DispatchQueue.concurrentPerform(iterations: chunks) { ch in
                                edge_matmul_f32(up.baseAddress, ep.baseAddress, yp.baseAddress, rows, n, b, n * ch / chunks, n * (ch + 1) / chunks)
                            }
                        }
                    }
                }
                for r in 0 ..< rows { for c in 0 ..< n { wp[r * cols + i2 + c] -= y[r * n + c] } }
            }
            i1 = i2
        }
        return wp
    }

    /// U upper-triangular with U^T U = A^-1, for symmetric positive-definite A [n, n] (as
    /// torch: cholesky -> cholesky_inverse -> cholesky(upper=True)).
    static func upperCholeskyOfInverse(_ a: [Double], n: Int) throws -> [Double] {
        let inv = try symmetricInverse(a, n: n)
        let lt = try cholesky(inv, n: n)
        var u = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n { for j in 0 ... i { u[j * n + i] = lt[i * n + j] } }
        return u
    }

    /// A^-1 [n, n] (row-major) of symmetric positive-definite A, as L^-T L^-1 with L = `cholesky(A)`
    /// (torch's cholesky_inverse).
    static func symmetricInverse(_ a: [Double], n: Int) throws -> [Double] {
        let l = try cholesky(a, n: n)
        // L^-1 row by row: row i = (e_i - sum_{k<i} L[i,k] row k) / L[i,i] (row-major, cache-friendly).
        var li = [Double](repeating: 0, count: n * n)
        li.withUnsafeMutableBufferPointer { lip in
            l.withUnsafeBufferPointer { lp in
                for i in 0 ..< n {
                    let row = lip.baseAddress! + i * n
                    row[i] = 1
                    for k in 0 ..< i {
                        let c = lp[i * n + k]
                        if c == 0 { continue }
                        let rk = lip.baseAddress! + k * n
                        for j in 0 ... k { row[j] -= c * rk[j] }
                    }
                    let d = lp[i * n + i]
                    for j in 0 ... i { row[j] /= d }
                }
            }
        }
        // A^-1 = L^-T L^-1: inv[i][j] = sum_k li[k][i] li[k][j], accumulated over rows k (lower half, then mirrored).
        // Each row i sums over k in order; the rows are split over two threads (about equal work:
        // row i costs (i + 1)(n - i)), which leaves every sum as it was.
        var inv = [Double](repeating: 0, count: n * n)
        inv.withUnsafeMutableBufferPointer { ip in
            li.withUnsafeBufferPointer { lip in
                let I = ip.baseAddress!, Li = lip.baseAddress!
                let halves = n >= 256 ? [0 ..< n / 2, n / 2 ..< n] : [0 ..< n]
                DispatchQueue.concurrentPerform(iterations: halves.count) { h in
                    let rows = halves[h]
                    for k in rows.lowerBound ..< n {
                        let rk = Li + k * n
                        for i in rows.lowerBound ... min(k, rows.upperBound - 1) {
                            let c = rk[i]
                            if c == 0 { continue }
                            let row = I + i * n
                            for j in 0 ... i { row[j] += c * rk[j] }
                        }
                    }
                }
                for i in 0 ..< n { for j in 0 ..< i { ip[j * n + i] = ip[i * n + j] } }
            }
        }
        return inv
    }

    /// Lower Cholesky factor L (L L^T = A).
    static func cholesky(_ a: [Double], n: Int) throws -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        var ok = true
        l.withUnsafeMutableBufferPointer { lp in
            a.withUnsafeBufferPointer { ap in
                let L = lp.baseAddress!, A = ap.baseAddress!
                for j in 0 ..< n {
                    let rj = L + j * n
                    var s = A[j * n + j]
                    for k in 0 ..< j { s -= rj[k] * rj[k] }
                    guard s > 0, s.isFinite else { ok = false; return }
                    let d = s.squareRoot()
                    rj[j] = d
                    // Rows j+1 ..< n of column j, each a dot product summed in k order: split over two
                    // threads when the column is large, 8 rows at a time (independent sums).
                    let rows = n - j - 1
                    if rows * j >= 1 << 16 {
                        let mid = j + 1 + rows / 2
                        DispatchQueue.concurrentPerform(iterations: 2) { h in
                            Self.choleskyColumn(L, A, n: n, j: j, d: d, rows: h == 0 ? j + 1 ..< mid : mid ..< n)
                        }
                    } else {
                        Self.choleskyColumn(L, A, n: n, j: j, d: d, rows: j + 1 ..< n)
                    }
                }
            }
        }
        guard ok else { throw Failure.notPositiveDefinite }
        return l
    }

    /// L[i][j] = (A[i][j] - sum_{k<j} L[i][k] L[j][k]) / d for the rows i in `rows`; each sum runs in k
    /// order as one subtraction of a product at a time, 8 rows side by side.
    private static func choleskyColumn(_ L: UnsafeMutablePointer<Double>, _ A: UnsafePointer<Double>, n: Int, j: Int, d: Double, rows: Range<Int>) {
        let rj = L + j * n
        var i = rows.lowerBound
        while i + 8 <= rows.upperBound {
            let r0 = L + i * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n, r4 = r3 + n, r5 = r4 + n, r6 = r5 + n, r7 = r6 + n
            var t0 = A[i * n + j], t1 = A[(i + 1) * n + j], t2 = A[(i + 2) * n + j], t3 = A[(i + 3) * n + j]
            var t4 = A[(i + 4) * n + j], t5 = A[(i + 5) * n + j], t6 = A[(i + 6) * n + j], t7 = A[(i + 7) * n + j]
            for k in 0 ..< j {
                let b = rj[k]
                t0 -= r0[k] * b
                t1 -= r1[k] * b
                t2 -= r2[k] * b
                t3 -= r3[k] * b
                t4 -= r4[k] * b
                t5 -= r5[k] * b
                t6 -= r6[k] * b
                t7 -= r7[k] * b
            }
            r0[j] = t0 / d
            r1[j] = t1 / d
            r2[j] = t2 / d
            r3[j] = t3 / d
            r4[j] = t4 / d
            r5[j] = t5 / d
            r6[j] = t6 / d
            r7[j] = t7 / d
            i += 8
        }
        while i < rows.upperBound {
            let ri = L + i * n
            var t = A[i * n + j]
            for k in 0 ..< j { t -= ri[k] * rj[k] }
            ri[j] = t / d
            i += 1
        }
    }
}
