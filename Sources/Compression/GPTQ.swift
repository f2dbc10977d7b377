import EdgeFormat
import Foundation

/// GPTQ (Frantar et al., 2022): quantizes a weight matrix column by column, spreading each
/// column's rounding error over the columns not yet quantized through the inverse Hessian of the
/// layer's inputs, so the layer's *output* error ||(W - Q) X^T|| is minimised rather than the
/// weight error. Follows the reference implementation: damping, blocks of 128 columns with lazy
/// batch updates, optional act-order (columns by decreasing Hessian diagonal) with static groups
/// (the q4 layout's groups are contiguous input ranges, so grids are fitted before reordering).
/// Pruned weights (exact zeros in `mask`) stay exactly zero; their error is compensated too.
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
        var actOrder: Bool = false
        var blockSize: Int = 128
    }

    enum Failure: Error { case notPositiveDefinite }

    /// Quantizes W [rows, cols] against Hessian H [cols, cols].
    /// - Returns: integer codes (row-major), the grids (`GroupLayout` order) and the dequantized weights.
    static func quantize(weights: [Float], rows: Int, cols: Int, hessian: [Double], options o: Options) throws
        -> (codes: [Float], grids: [QuantGrid], dequantized: [Float]) {
        precondition(weights.count == rows * cols && hessian.count == cols * cols)
        let layout = GroupLayout(rows: rows, cols: cols, bits: o.bits, groupSize: o.groupSize, symmetric: o.symmetric)
        var h = hessian
        var w = weights
        let mask = weights.map { $0 != 0 }
        // Dead inputs (never active): their weights cannot matter; zero them, make H invertible.
        for i in 0 ..< cols where h[i * cols + i] == 0 {
            h[i * cols + i] = 1
            for r in 0 ..< rows { w[r * cols + i] = 0 }
        }
        var meanDiag = 0.0
        for i in 0 ..< cols { meanDiag += h[i * cols + i] }
        meanDiag /= Double(cols)
        for i in 0 ..< cols { h[i * cols + i] += o.damp * meanDiag }

        // Grids come from the weights before any error is spread (static groups), as the layout needs.
        let grids = layout.fitGrids(w)

        // Column order.
        var perm = Array(0 ..< cols)
        if o.actOrder { perm.sort { h[$0 * cols + $0] > h[$1 * cols + $1] || (h[$0 * cols + $0] == h[$1 * cols + $1] && $0 < $1) } }
        var hp = [Double](repeating: 0, count: cols * cols)
        for i in 0 ..< cols { for j in 0 ..< cols { hp[i * cols + j] = h[perm[i] * cols + perm[j]] } }
        let u = try upperCholeskyOfInverse(hp, n: cols)

        // W in permuted column order, as double for the updates.
        var wp = [Double](repeating: 0, count: rows * cols)
        for r in 0 ..< rows { for j in 0 ..< cols { wp[r * cols + j] = Double(w[r * cols + perm[j]]) } }
        var codes = [Float](repeating: 0, count: rows * cols)
        var deq = [Float](repeating: 0, count: rows * cols)
        let group = layout.group, groups = layout.groups

        var i1 = 0
        while i1 < cols {
            let i2 = min(cols, i1 + o.blockSize)
            var err = [Double](repeating: 0, count: rows * (i2 - i1))
            for i in i1 ..< i2 {
                let col = perm[i]
                let d = u[i * cols + i]
                for r in 0 ..< rows {
                    let x = wp[r * cols + i]
                    let grid = grids[r * groups + col / group]
                    let c: Float = mask[r * cols + col] ? grid.code(Float(x)) : grid.zero
                    codes[r * cols + col] = c
                    let q = grid.value(c)
                    deq[r * cols + col] = q
                    let e = (x - Double(q)) / d
                    err[r * (i2 - i1) + (i - i1)] = e
                    // spread inside the block
                    for j in (i + 1) ..< i2 { wp[r * cols + j] -= e * u[i * cols + j] }
                }
            }
            // lazy batch update of the columns after the block
            if i2 < cols {
                for r in 0 ..< rows {
                    for k in i1 ..< i2 {
                        let e = err[r * (i2 - i1) + (k - i1)]
                        if e == 0 { continue }
                        for j in i2 ..< cols { wp[r * cols + j] -= e * u[k * cols + j] }
                    }
                }
            }
            i1 = i2
        }
        return (codes, grids, deq)
    }

    /// U upper-triangular with U^T U = A^-1, for symmetric positive-definite A [n, n] (as
    /// torch: cholesky -> cholesky_inverse -> cholesky(upper=True)).
    static func upperCholeskyOfInverse(_ a: [Double], n: Int) throws -> [Double] {
        let l = try cholesky(a, n: n)
        // A^-1 = L^-T L^-1: invert L (lower) by forward substitution.
        var li = [Double](repeating: 0, count: n * n)
        for j in 0 ..< n {
            li[j * n + j] = 1 / l[j * n + j]
            for i in (j + 1) ..< n {
                var s = 0.0
                for k in j ..< i { s += l[i * n + k] * li[k * n + j] }
                li[i * n + j] = -s / l[i * n + i]
            }
        }
        var inv = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n {
            for j in 0 ... i {
                var s = 0.0
                for k in i ..< n { s += li[k * n + i] * li[k * n + j] }
                inv[i * n + j] = s
                inv[j * n + i] = s
            }
        }
        let lt = try cholesky(inv, n: n)
        var u = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n { for j in 0 ... i { u[j * n + i] = lt[i * n + j] } }
        return u
    }

    /// Lower Cholesky factor L (L L^T = A).
    static func cholesky(_ a: [Double], n: Int) throws -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        for j in 0 ..< n {
            var s = a[j * n + j]
            for k in 0 ..< j { s -= l[j * n + k] * l[j * n + k] }
            guard s > 0, s.isFinite else { throw Failure.notPositiveDefinite }
            let d = s.squareRoot()
            l[j * n + j] = d
            for i in (j + 1) ..< n {
                var t = a[i * n + j]
                for k in 0 ..< j { t -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = t / d
            }
        }
        return l
    }
}
