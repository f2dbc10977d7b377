import EdgeKernels

/// One row's super-scales in the q4k encoding (docs/edge-format.md, "q4k"): each group's scale is
/// `d × sc` and its min `m × mn`, with sc, mn integer codes of `subBits` bits. Both are binary16
/// values (the payload stores them as such).
struct Q4KSuper: Equatable, Sendable {
    var d: Float
    var m: Float
}

/// Fitting q4k grids: w ≈ d·u − m with codes u in 0...15, a scale d ≥ 0 and a min m ≥ 0 per group,
/// as llama.cpp's k-quants do (`make_qkx2_quants`: candidate scales, a least-squares refit of scale
/// and min to each candidate's codes). The min is a real number, not an integer zero point, so the
/// grid can land on any 16-level grid `min + d·u` (a Q4_1 checkpoint's, exactly), which an integer
/// zero point can reach only when min / d happens to be an integer.
///
/// Two stages: each group's unconstrained (d, m) (`fit`); then per row the super-scales D = max d /
/// (2^b − 1) and M = max m / (2^b − 1) in binary16 (`supers`), and per group the codes sc, mn among the
/// nearest ones and their neighbours with the smallest error, the weights re-rounded for each (`constrained`).
enum Q4KFit {
    static let maxCode: Float = 15

    /// Σ h (x − (d·u − m))² with u = clamp(round((x + m) / d), 0, 15) (u = 0 when d = 0).
    static func error(_ x: UnsafeBufferPointer<Float>, _ h: UnsafeBufferPointer<Float>?, d: Float, m: Float) -> Double {
        let grid = QuantGrid(scale: d, zero: 0, qmin: 0, qmax: maxCode, offset: m)
        var e = 0.0
        for i in 0 ..< x.count {
            let r = Double(x[i] - grid.value(grid.code(x[i])))
            e += (h.map { Double($0[i]) } ?? 1) * r * r
        }
        return e
    }

    /// The unconstrained grid of one group (weighted by `h`, nil = 1): the min/max grid, then for
    /// 21 candidate steps (range / (15 + t), t in -1...1) the codes they give and the least-squares
    /// (d, m) for those codes (m clamped to ≥ 0), keeping the one with the smallest error.
    static func fit(_ x: UnsafeBufferPointer<Float>, _ h: UnsafeBufferPointer<Float>?) -> (d: Float, m: Float) {
        var lo: Float = 0, hi = -Float.infinity
        for e in x { lo = min(lo, e); hi = max(hi, e) }
        guard hi > lo, (hi - lo).isFinite else { return (0, -lo) }
        var best = (d: (hi - lo) / maxCode, m: -lo)
        var bestErr = error(x, h, d: best.d, m: best.m)
        if bestErr == 0 { return best }
        for step in -10 ... 10 {
            let iscale = (maxCode + Float(step) / 10) / (hi - lo)
            var sh = 0.0, su = 0.0, suu = 0.0, sx = 0.0, sux = 0.0
            for i in 0 ..< x.count {
                let u = Double(max(0, min(maxCode, ((x[i] - lo) * iscale).rounded(.toNearestOrEven))))
                let w = h.map { Double($0[i]) } ?? 1, v = Double(x[i])
                sh += w; su += w * u; suu += w * u * u; sx += w * v; sux += w * u * v
            }
            let det = sh * suu - su * su
            guard det > 0 else { continue }
            var d = (sh * sux - su * sx) / det, l = (suu * sx - su * sux) / det
            if l > 0 { l = 0; d = sux / suu }
            guard d > 0, d.isFinite, l.isFinite else { continue }
            let e = error(x, h, d: Float(d), m: Float(-l))
            if e < bestErr { bestErr = e; best = (Float(d), Float(-l)) }
        }
        return best
    }

    /// Rounds to binary16 and back.
    @inline(__always) static func f16(_ v: Float) -> Float { edge_f16_to_f32(edge_f32_to_f16(v)) }

    /// A row's super-scales from its groups' unconstrained fits: the largest scale and min over
    /// the largest code, in binary16 (not finite when they overflow it).
    static func supers(_ fits: some Sequence<(d: Float, m: Float)>, subBits: Int) -> Q4KSuper {
        let top = Float((1 << subBits) - 1)
        // `>`, not `max`: Swift's max(0, -0.0) is -0.0, whose binary16 the format refuses (a sign bit),
        // and a group of equal tiny values can fit a min of -0.0.
        var dMax: Float = 0, mMax: Float = 0
        for f in fits {
            if f.d > dMax { dMax = f.d }
            if f.m > mMax { mMax = f.m }
        }
        return Q4KSuper(d: f16(dMax / top), m: f16(mMax / top))
    }

    /// The grid of a group under super-scales `s`: scale D·sc, min M·mn (`QuantGrid.offset`), with
    /// sc and mn each the code nearest the unconstrained fit's or a neighbour, whichever pair gives the
    /// smallest error.
    static func constrained(_ x: UnsafeBufferPointer<Float>, _ h: UnsafeBufferPointer<Float>?, fit: (d: Float, m: Float),
                            super s: Q4KSuper, subBits: Int) -> QuantGrid {
        let top = (1 << subBits) - 1
        func nearest(_ v: Float, _ unit: Float) -> Int {
            guard unit > 0 else { return 0 }
            return max(0, min(top, Int((v / unit).rounded(.toNearestOrEven))))
        }
        let s0 = nearest(fit.d, s.d), n0 = nearest(fit.m, s.m)
        var best = QuantGrid(scale: s.d * Float(s0), zero: 0, qmin: 0, qmax: maxCode, offset: s.m * Float(n0))
        var bestErr = Double.infinity
        for sc in max(0, s0 - 1) ... min(top, s0 + 1) {
            if sc > 0, s.d == 0 { break }
            for mn in max(0, n0 - 1) ... min(top, n0 + 1) {
                if mn > 0, s.m == 0 { break }
                let d = s.d * Float(sc), m = s.m * Float(mn)
                let e = error(x, h, d: d, m: m)
                if e < bestErr {
                    bestErr = e
                    best = QuantGrid(scale: d, zero: 0, qmin: 0, qmax: maxCode, offset: m)
                }
            }
        }
        return best
    }

    /// The integer code of a stored scale or min: value / unit (exact, the value being unit × code).
    static func code(_ value: Float, unit: Float) -> UInt8 {
        unit > 0 ? UInt8((value / unit).rounded(.toNearestOrEven)) : 0
    }
}

/// Fitting q3s grids (docs/edge-format.md, "q3s"): q3's grids s·(u − z), u and z in 0...7, with the
/// scale s a `subBits`-bit code times the row's binary16 super-scale D. The unconstrained grid of a
/// group is q3's search (`QuantGrid.search`, an unrounded scale); the row's D is the largest scale over
/// 2^b − 1 (`Q4KFit.supers`, its min part unused); each group then takes the scale code nearest its
/// scale or a neighbour and any zero point 0...7, whichever pair gives the smallest error.
enum Q3SFit {
    static func constrained(_ x: UnsafeBufferPointer<Float>, _ h: UnsafeBufferPointer<Float>?, grid: QuantGrid, unit: Float,
                            subBits: Int) -> QuantGrid {
        let top = (1 << subBits) - 1
        guard unit > 0 else { return QuantGrid(scale: 0, zero: 0, qmin: 0, qmax: 7) }
        let s0 = max(0, min(top, Int((grid.scale / unit).rounded(.toNearestOrEven))))
        var best = QuantGrid(scale: unit * Float(s0), zero: grid.zero, qmin: 0, qmax: 7)
        var bestErr = best.squaredError(x, weights: h)
        for sc in max(1, s0 - 1) ... max(1, min(top, s0 + 1)) {
            for z in 0 ... 7 {
                let g = QuantGrid(scale: unit * Float(sc), zero: Float(z), qmin: 0, qmax: 7)
                let e = g.squaredError(x, weights: h)
                if e < bestErr { bestErr = e; best = g }
            }
        }
        return best
    }
}
