import EdgeFormat
import EdgeKernels
import Foundation

/// Per-channel quantization, round-to-nearest or GPTQ: int8 per output channel (row), or int4 / 3-bit
/// in groups of `group_size` inputs (encodings q4 / q3); symmetric or asymmetric with an integer zero point, so a
/// pruned (zero) weight stays exactly zero. Embeddings are quantized per row. With `sub_bits`, int4 is the
/// q4k encoding instead: per group a scale and a real-valued min as codes under per-row super-scales
/// (`Q4KFit`), so the grid can sit anywhere, not only where an integer zero point puts it.
///
/// Each grid (per row or per group) is either spanned by the values' min/max (`rounding: minmax`)
/// or searched for the smallest weighted squared error (`rounding: mse`, see `QuantGrid.search`),
/// each weight's error counted with a weight from `weighting` (see `Weighting`).
///
/// Recipe: `{"pass": "quantize", "bits": 8 | 4 | 3, "symmetric": true, "group_size": 64 (bits 4 and 3 only),
/// "method": "rtn", "rounding": "minmax" | "mse", "weighting": "uniform", "sub_bits": 6 | 8 (q4k), <selector>}`; the
/// selector defaults to linear weights, embeddings and the output head.
public struct Quantize: Pass {
    public static let id = "quantize"
    public static let stage = PassStage.quantize

    public let bits: Int
    public let symmetric: Bool
    public let groupSize: Int?
    public let method: QuantMethod
    public let selector: TensorSelector
    /// GPTQ: fraction of the mean Hessian diagonal added as damping.
    public let damp: Double
    /// GPTQ: fraction of the Hessian's off-diagonal removed.
    public let shrink: Double
    /// GPTQ: quantize columns in order of decreasing Hessian diagonal.
    public let actOrder: Bool
    /// How each grid's scale and zero point are chosen.
    public let rounding: Rounding
    /// `rounding: mse` only: how each weight's squared error counts in the search.
    public let weighting: Weighting
    /// A tied embedding is quantized for its other role, the output head: GPTQ and activation
    /// weighting use the statistics of the head's input (the final norm's output). Off: it is
    /// rounded to nearest with uniform or magnitude weights, like an untied embedding.
    public let tiedAsHead: Bool
    /// bits 4, asymmetric: the q4k encoding (k-quant style) with group scale and min codes of this
    /// many bits (6 or 8) under per-row binary16 super-scales; nil: q4 with integer zero points.
    public let subBits: Int?

    private var tensors = 0
    private var weights = 0
    private var sumSquaredError = 0.0
    private var sumSquares = 0.0
    /// Tensors whose search was weighted by activations.
    private var weightedTensors = 0
    /// GPTQ: tensors it had no input statistics for (embeddings), quantized round-to-nearest.
    private var rtnFallbacks: [String] = []
    /// GPTQ factors by calibration site: Q/K/V (gate/up) share their input and so their factor.
    private var factors: [CalibrationStats.Site: GPTQ.Factor] = [:]
    /// Tensors `apply` rounded on grids `fit` fixed (`context.fitted`).
    private var fittedTensors = 0

    public init(bits: Int, symmetric: Bool, groupSize: Int? = nil, rounding: Rounding = .minmax,
                selector: TensorSelector = TensorSelector(kinds: [.linear, .embedding, .output])) {
        self.rounding = rounding
        weighting = .uniform
        self.bits = bits
        self.symmetric = symmetric
        self.groupSize = groupSize
        self.method = .rtn
        self.selector = selector
        damp = 0.01
        shrink = 0
        actOrder = false
        tiedAsHead = false
        subBits = nil
    }

    public init(fields f: inout RecipeFields) throws {
        bits = try f.int("bits", default: nil, range: 1 ... 64, allowed: [3, 4, 8])
        symmetric = try f.bool("symmetric", default: true)
        let g = try f.optionalInt("group_size", range: 1 ... 1 << 20)
        if bits == 8, g != nil {
            throw f.error("group_size", "applies to bits 4 and 3 only; int8 is quantized per output channel")
        }
        if bits != 8 {
            guard let g else { throw f.error("group_size", "is required for bits \(bits) (one of 16, 32, 64, 128, 256)") }
            guard [16, 32, 64, 128, 256].contains(g) else { throw f.error("group_size", "is \(g); expected one of: 16, 32, 64, 128, 256") }
        }
        groupSize = g
        method = try f.choice("method", default: QuantMethod.rtn)
        if method == .gptq {
            damp = try f.double("damp", default: 0.01, range: 0 ... 1)
            shrink = try f.double("shrink", default: 0, range: 0 ... 1)
            actOrder = try f.bool("act_order", default: false)
        } else {
            damp = 0.01
            shrink = 0
            actOrder = false
        }
        rounding = try f.choice("rounding", default: Rounding.minmax)
        weighting = try f.choice("weighting", default: Weighting.uniform)
        if weighting != .uniform, rounding != .mse {
            throw f.error("weighting", "applies to rounding 'mse' only (it weights the error the search minimizes)")
        }
        subBits = try f.optionalInt("sub_bits", range: 1 ... 64)
        if let b = subBits {
            guard b == 6 || b == 8 else { throw f.error("sub_bits", "is \(b); expected 6 or 8") }
            guard bits == 4 || bits == 3 else { throw f.error("sub_bits", "applies to bits 4 (the q4k encoding) and 3 (q3s) only") }
            guard !symmetric else { throw f.error("sub_bits", "needs \"symmetric\": false (q4k groups have a min, q3s groups a zero point)") }
            if actOrder { throw f.error("act_order", "does not apply with sub_bits (q4k / q3s groups are fitted as the sweep reaches them)") }
        }
        tiedAsHead = try f.bool("tied_as_head", default: false)
        if tiedAsHead, method != .gptq, !weighting.usesActivations {
            throw f.error("tied_as_head", "needs \"method\": \"gptq\" or an activation weighting; without statistics it changes nothing")
        }
        selector = try f.selector(defaultKinds: [.linear, .embedding, .output])
    }

    public var calibrationNeeds: CalibrationNeeds {
        var needs: CalibrationNeeds = method == .gptq ? .hessians : []
        if weighting.usesActivations { needs.insert(.columnNorms) }
        return needs
    }

    /// Every tensor it selects gets a q8, q4, q3 or q4k encoding, so it must be a matrix (checked in `Pipeline.plan`).
    public var encodesMatrices: Bool { true }

    /// GPTQ, and q4k's grid search, are too slow to run at every training step.
    public var refusesTrainingThrough: String? {
        let blockwise = "or give the distill pass a block-wise stage (blockwise_epochs), which fits it once per block before the block trains"
        if method == .gptq { return "(GPTQ): training fake-quantizes every step, which GPTQ is too slow for; use \"method\": \"rtn\", \(blockwise)" }
        if subBits != nil {
            return "(sub_bits, \(kQuantName)): training fake-quantizes every step, which the \(kQuantName) grid search is too slow for; quantize after training, \(blockwise)"
        }
        return nil
    }

    /// The encoding `sub_bits` selects: q3s for bits 3, q4k for bits 4.
    private var kQuantName: String { bits == 3 ? "q3s" : "q4k" }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        try Self.requireMatrix(t)
        if let grid = context.fitted.value(pass: context.index, tensor: t.name) as? FittedGrid {
            try round(&t, on: grid, context: context)
            return
        }
        // GPTQ needs the statistics of the inputs a matrix multiplies; an embedding is looked up,
        // not multiplied, so it is rounded to nearest, unless it is tied and `tied_as_head` asks
        // for it to be fitted as the output head (the statistics exist only when it is tied).
        let usesStatistics = TensorName.kind(of: t.name) != .embedding || tiedAsHead
        let norms = weighting.usesActivations && usesStatistics ? context.calibration?.columnNorms(for: t.name) : nil
        let hessian = method == .gptq && usesStatistics ? context.calibration?.hessian(for: t.name) : nil
        _ = try encode(&t, hessian: hessian, norms: norms, context: context)
    }

    private static func requireMatrix(_ t: WorkTensor) throws {
        guard t.shape.count == 2 else {
            throw PassError(pass: id, tensor: t.name, why: "is \(t.shape.count)-D; per-channel quantization needs a matrix (exclude it from the selector)")
        }
    }

    /// Quantizes `t` as `apply` does, with the Hessian (2/n) X^T X of its inputs given (GPTQ uses it;
    /// activation weighting uses its diagonal), and keeps the grids it fitted in `context.fitted`:
    /// from then on `apply` (this pass's and its copies', in the same run) rounds `t`'s values on
    /// them (`PassContext.fitters`).
    public mutating func fit(_ t: inout WorkTensor, hessian: [Double], context: PassContext) throws {
        try Self.requireMatrix(t)
        let cols = t.shape[1]
        guard hessian.count == cols * cols else {
            throw PassError(pass: Self.id, tensor: t.name, why: "fit: the Hessian has \(hessian.count) entries; expected \(cols * cols)")
        }
        let norms = weighting.usesActivations ? (0 ..< cols).map { Float(max(0, hessian[$0 * cols + $0]).squareRoot()) } : nil
        var grid = try encode(&t, hessian: method == .gptq ? hessian : nil, norms: norms, context: context)
        grid.weighted = norms != nil
        context.fitted.set(grid, pass: context.index, tensor: t.name)
    }

    /// Rounds `t`'s values on the grids `fit` fixed for it.
    private mutating func round(_ t: inout WorkTensor, on f: FittedGrid, context: PassContext) throws {
        let layout = f.layout, rows = layout.rows, cols = layout.cols
        guard t.shape == [rows, cols] else {
            throw PassError(pass: Self.id, tensor: t.name, why: "has shape \(t.shape); its grids were fitted for [\(rows), \(cols)]")
        }
        let (codes, deq) = layout.round(t.values, on: f.grids)
        countError(t.values, deq)
        let enc = f.supers.map { layout.encodeQ4K(name: t.name, codes: codes.map { UInt8($0) }, grids: f.grids, supers: $0) }
            ?? layout.encode(name: t.name, codes: codes, grids: f.grids)
        if f.weighted { weightedTensors += 1 }
        fittedTensors += 1
        tensors += 1
        weights += t.values.count
        t.values = deq
        t.encoded = enc
        t.encodedBy = context.index
    }

    /// The quantization of `apply` on the given statistics (nil: none), returning the grids it used.
    private mutating func encode(_ t: inout WorkTensor, hessian: [Double]?, norms: [Float]?, context: PassContext) throws -> FittedGrid {
        let rows = t.shape[0], cols = t.shape[1]
        var errWeights: [Float]? = nil
        if let norms, norms.count == cols { errWeights = Self.errorWeights(norms: norms) }
        let enc: EncodedTensor, grid: FittedGrid
        if let subBits {
            (enc, grid) = try quantizeQ4K(&t, rows: rows, cols: cols, subBits: subBits, errWeights: errWeights,
                                          hessian: hessian.flatMap { $0.count == cols * cols ? $0 : nil })
        } else if let h = hessian, h.count == cols * cols {
            let opts = GPTQ.Options(bits: bits, groupSize: groupSize, symmetric: symmetric, damp: damp, shrink: shrink,
                                    actOrder: actOrder, rounding: rounding, magnitudeWeighted: weighting.usesMagnitude, columnWeights: errWeights)
            let r = GPTQ.quantize(weights: t.values, rows: rows, cols: cols, factor: try factor(for: t.name, hessian: h, cols: cols), options: opts)
            if bits != 8, let bad = r.grids.firstIndex(where: { !$0.scale.isFinite }) {
                throw PassError(pass: Self.id, tensor: t.name, why: "group \(bad): scale does not fit in f16")
            }
            let layout = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: groupSize, symmetric: symmetric)
            enc = layout.encode(name: t.name, codes: r.codes, grids: r.grids)
            grid = FittedGrid(layout: layout, grids: r.grids, supers: nil)
            countError(t.values, r.dequantized)
            t.values = r.dequantized
        } else {
            if method == .gptq { rtnFallbacks.append(t.name) }
            // Round to nearest in place: the values become their dequantized form, so the tensor is
            // held once (plus its one-byte codes), not as values, codes and dequantized copies.
            let layout = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: bits == 8 ? nil : groupSize!, symmetric: symmetric)
            let r = try Self.roundInPlace(name: t.name, values: &t.values, layout: layout, rounding: rounding,
                                          magnitudeWeighted: weighting.usesMagnitude, columnWeights: errWeights)
            enc = r.encoded
            grid = FittedGrid(layout: layout, grids: r.grids, supers: nil)
            sumSquaredError += r.squaredError
            sumSquares += r.squares
        }
        if errWeights != nil { weightedTensors += 1 }
        tensors += 1
        weights += t.values.count
        t.encoded = enc
        t.encodedBy = context.index
        return grid
    }

    /// The GPTQ factor of `name`'s calibration site, computed once per site (Q/K/V and gate/up share
    /// their input) and kept until the next site. (`actOrder` is false whenever `subBits` is set.)
    private mutating func factor(for name: String, hessian h: [Double], cols: Int) throws -> GPTQ.Factor {
        let site = CalibrationStats.site(of: name)
        if let f = factors[site] { return f }
        do {
            let f = try GPTQ.factor(hessian: h, cols: cols, damp: damp, shrink: shrink, actOrder: actOrder)
            factors = [site: f]
            return f
        } catch {
            throw PassError(pass: Self.id, tensor: name, why: "GPTQ: the damped Hessian is not positive definite; raise 'damp'")
        }
    }

    /// q4k: super-scales per row from the original weights, then each group's grid under them, by
    /// GPTQ (`hessian` given) or on its own; `t.values` become the dequantized weights.
    private mutating func quantizeQ4K(_ t: inout WorkTensor, rows: Int, cols: Int, subBits: Int, errWeights: [Float]?,
                                      hessian: [Double]?) throws -> (EncodedTensor, FittedGrid) {
        let layout = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: groupSize!, symmetric: false, subBits: subBits)
        let magnitude = weighting.usesMagnitude && rounding == .mse
        let supers = layout.q4kSupers(layout.fitGrids(t.values, rounding: .mse, magnitudeWeighted: magnitude, columnWeights: errWeights))
        if let bad = supers.firstIndex(where: { !$0.d.isFinite || !$0.m.isFinite }) {
            throw PassError(pass: Self.id, tensor: t.name, why: "row \(bad): the group scales or mins do not fit in f16")
        }
        var codes: [UInt8], grids: [QuantGrid], deq: [Float]
        if let h = hessian {
            let opts = GPTQ.Options(bits: bits, groupSize: groupSize, symmetric: false, damp: damp, shrink: shrink, actOrder: false,
                                    rounding: .mse, magnitudeWeighted: magnitude, columnWeights: errWeights,
                                    subBits: subBits, supers: supers)
            let r = GPTQ.quantize(weights: t.values, rows: rows, cols: cols, factor: try factor(for: t.name, hessian: h, cols: cols), options: opts)
            codes = r.codes.map { UInt8($0) }
            grids = r.grids
            deq = r.dequantized
        } else {
            if method == .gptq { rtnFallbacks.append(t.name) }
            grids = layout.fitGrids(t.values, rounding: .mse, magnitudeWeighted: magnitude, columnWeights: errWeights, supers: supers)
            let rounded = layout.round(t.values, on: grids)
            codes = rounded.codes.map { UInt8($0) }
            deq = rounded.values
        }
        countError(t.values, deq)
        t.values = deq
        return (layout.encodeQ4K(name: t.name, codes: codes, grids: grids, supers: supers),
                FittedGrid(layout: layout, grids: grids, supers: supers))
    }

    /// Adds the squared error of `quantized` against `original`, and the squares of `original`, to the record's sums.
    private mutating func countError(_ original: [Float], _ quantized: [Float]) {
        for i in original.indices {
            let e = Double(original[i] - quantized[i])
            sumSquaredError += e * e
            sumSquares += Double(original[i]) * Double(original[i])
        }
    }

    /// Per-input error weights from activation norms: the mean square (norm^2 / its mean), with a
    /// floor of 1e-3 of the mean so that an input never seen active still counts a little.
    static func errorWeights(norms: [Float]) -> [Float] {
        var sq = norms.map { Double($0) * Double($0) }
        let mean = sq.reduce(0, +) / Double(max(1, sq.count))
        guard mean > 0, mean.isFinite else { return [Float](repeating: 1, count: norms.count) }
        sq = sq.map { max($0 / mean, 1e-3) }
        return sq.map { Float($0) }
    }

    /// int8 per row, round to nearest (see `QuantGrid` for the grids).
    static func quantizeQ8(name: String, values: [Float], rows: Int, cols: Int, symmetric: Bool,
                           rounding: Rounding = .minmax, magnitudeWeighted: Bool = false, columnWeights: [Float]? = nil,
                           dequantized deq: inout [Float]) -> EncodedTensor {
        deq = values
        let layout = GroupLayout(rows: rows, cols: cols, bits: 8, groupSize: nil, symmetric: symmetric)
        // q8 scales are f32: `roundInPlace` cannot fail for them.
        return try! roundInPlace(name: name, values: &deq, layout: layout, rounding: rounding,
                                 magnitudeWeighted: magnitudeWeighted, columnWeights: columnWeights).encoded
    }

    /// int4 in groups along the input dimension, round to nearest (`quantizeGrouped` with bits 4).
    static func quantizeQ4(name: String, values: [Float], rows: Int, cols: Int, groupSize g: Int, symmetric: Bool,
                           rounding: Rounding = .minmax, magnitudeWeighted: Bool = false, columnWeights: [Float]? = nil,
                           dequantized deq: inout [Float]) throws -> EncodedTensor {
        try quantizeGrouped(name: name, values: values, rows: rows, cols: cols, bits: 4, groupSize: g, symmetric: symmetric,
                            rounding: rounding, magnitudeWeighted: magnitudeWeighted, columnWeights: columnWeights, dequantized: &deq)
    }

    /// int4 (q4) or 3-bit (q3) in groups along the input dimension, round to nearest. Scales are stored
    /// as f16, and codes are computed against the f16-rounded scale, so decode(encode(w)) is what was measured.
    /// - Parameter bits: 4 or 3.
    static func quantizeGrouped(name: String, values: [Float], rows: Int, cols: Int, bits: Int, groupSize g: Int, symmetric: Bool,
                                rounding: Rounding = .minmax, magnitudeWeighted: Bool = false, columnWeights: [Float]? = nil,
                                dequantized deq: inout [Float]) throws -> EncodedTensor {
        precondition(bits == 4 || bits == 3, "quantizeGrouped: bits \(bits) is not 4 or 3")
        deq = values
        let layout = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: g, symmetric: symmetric)
        return try roundInPlace(name: name, values: &deq, layout: layout, rounding: rounding,
                                magnitudeWeighted: magnitudeWeighted, columnWeights: columnWeights).encoded
    }

    /// Rounds `values` ([rows, cols] of `layout`) to nearest on grids fitted per row (q8) or group
    /// (q4, q3) and replaces each value by its dequantized form, in place; returns the payload and
    /// the sums of squared error and of squared values. Codes go straight to their stored bytes, so
    /// the only copy besides the values is one byte per weight.
    /// - Throws: `PassError` when a q4/q3 group's scale does not fit in f16.
    /// Rows per block of `roundInPlace` (fixed, so its sums do not depend on the core count).
    static let roundBlock = 256

    static func roundInPlace(name: String, values: inout [Float], layout: GroupLayout, rounding: Rounding,
                             magnitudeWeighted: Bool, columnWeights: [Float]?) throws
        -> (encoded: EncodedTensor, squaredError: Double, squares: Double, grids: [QuantGrid]) {
        let grids = layout.fitGrids(values, rounding: rounding, magnitudeWeighted: magnitudeWeighted, columnWeights: columnWeights)
        if layout.bits != 8, let bad = grids.firstIndex(where: { !$0.scale.isFinite }) {
            throw PassError(pass: id, tensor: name, why: "row \(bad / layout.groups) group \(bad % layout.groups): scale does not fit in f16")
        }
        let rows = layout.rows, cols = layout.cols, groups = layout.groups, group = layout.group
        let offset = layout.storedCodeOffset
        var stored = [UInt8](repeating: 0, count: rows * cols)
        // Blocks of `roundBlock` rows, concurrently for large tensors; each block's error sums are
        // added in block order, so the result does not depend on the core count.
        let blocks = (rows + roundBlock - 1) / roundBlock
        var partial = [(sse: Double, ss: Double)](repeating: (0, 0), count: blocks)
        values.withUnsafeMutableBufferPointer { vb in
            stored.withUnsafeMutableBufferPointer { sb in
                grids.withUnsafeBufferPointer { gb in
                    partial.withUnsafeMutableBufferPointer { pb in
                        let v = vb.baseAddress!, st = sb.baseAddress!, g = gb.baseAddress!, part = pb.baseAddress!
                        // Each row's groups through `edge_round_to_grid` (QuantGrid.code and .value, in SIMD).
                        let round = { (b: Int) in
                            var sums = (0.0, 0.0)
                            withUnsafeMutableBytes(of: &sums) { sp in
                                let acc = sp.baseAddress!.assumingMemoryBound(to: Double.self)
                                for r in b * roundBlock ..< min(rows, (b + 1) * roundBlock) {
                                    for gi in 0 ..< groups {
                                        let j0 = gi * group, n = min(cols, j0 + group) - j0, grid = g[r * groups + gi]
                                        edge_round_to_grid(v + r * cols + j0, n, grid.scale, grid.zero, grid.qmin, grid.qmax,
                                                           Int32(offset), st + r * cols + j0, acc)
                                    }
                                }
                            }
                            part[b] = sums
                        }
                        if blocks > 1 && rows * cols >= 1 << 20 {
                            DispatchQueue.concurrentPerform(iterations: blocks, execute: round)
                        } else {
                            for b in 0 ..< blocks { round(b) }
                        }
                    }
                }
            }
        }
        var sse = 0.0, ss = 0.0
        for p in partial {
            sse += p.sse
            ss += p.ss
        }
        return (layout.encode(name: name, stored: stored, grids: grids), sse, ss, grids)
    }

    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "bits": .number(Double(bits)), "symmetric": .bool(symmetric),
            "method": .string(method.rawValue), "rounding": .string(subBits != nil ? Rounding.mse.rawValue : rounding.rawValue), "selector": selector.record, "tensors": .number(Double(tensors)),
            "weights": .number(Double(weights)),
            "relative_rmse": .number(sumSquares > 0 ? (sumSquaredError / sumSquares).squareRoot() : 0),
        ]
        if let groupSize { o["group_size"] = .number(Double(groupSize)) }
        if let subBits { o["sub_bits"] = .number(Double(subBits)); o["encoding"] = .string(kQuantName) }
        if rounding == .mse || subBits != nil { o["weighting"] = .string(weighting.rawValue) }
        if weighting.usesActivations { o["activation_weighted_tensors"] = .number(Double(weightedTensors)) }
        if method == .gptq {
            o["damp"] = .number(damp)
            if shrink > 0 { o["shrink"] = .number(shrink) }
            o["act_order"] = .bool(actOrder)
            o["round_to_nearest"] = .array(rtnFallbacks.map { .string($0) })
        }
        if tiedAsHead { o["tied_as_head"] = .bool(true) }
        // Tensors whose grids the distill pass's block-wise stage fitted (on its own inputs) and kept
        // while it trained them: their stored codes are the trained values rounded on those grids.
        if fittedTensors > 0 { o["fitted_before_training"] = .number(Double(fittedTensors)) }
        return .object(o)
    }
}

/// How a quantize pass rounds (`"method"` in recipes).
public enum QuantMethod: String, CaseIterable, Codable, Sendable {
    /// Round to nearest, each weight on its own.
    case rtn
    /// Error-compensating rounding from the Hessian of the weight's inputs (`GPTQ`; needs `--data`).
    case gptq
}

/// How a quantization grid's scale and zero point are chosen.
public enum Rounding: String, CaseIterable, Codable, Sendable {
    /// The grid spans the values' minimum and maximum (and 0).
    case minmax
    /// The grid with the smallest squared error among candidates (`QuantGrid.search`).
    case mse
}

/// What the `mse` search weighs each weight's squared error by.
public enum Weighting: String, CaseIterable, Codable, Sendable {
    /// Every weight counts the same (plain squared error).
    case uniform
    /// w^2: large weights, which matter most to the outputs, are kept more exactly (no data needed).
    case magnitude
    /// The mean square of the weight's input over the calibration text, ||X_j||^2 / mean (needs
    /// `--data`), i.e. the diagonal of the output error's Hessian; embeddings count uniformly.
    case activation
    /// Both: w^2 * ||X_j||^2 / mean (needs `--data`).
    case activationMagnitude = "activation_magnitude"

    var usesActivations: Bool { self == .activation || self == .activationMagnitude }
    var usesMagnitude: Bool { self == .magnitude || self == .activationMagnitude }
}

/// One quantization grid: w ~ scale * (code - zero) - offset with integer codes in qmin...qmax.
/// The q8, q4 and q3 grids have offset 0 and an integer zero point, so they contain 0 exactly and
/// pruned weights stay zero; q4k grids (`Q4KFit`) have zero 0 and a real offset, the group's min.
struct QuantGrid {
    var scale: Float
    var zero: Float
    var qmin: Float
    var qmax: Float
    /// q4k: the min m of w = scale * code - m (0 for every other encoding).
    var offset: Float = 0

    /// The grid for values in [lo, hi]. Symmetric grids are centred on 0 (int8: -127...127,
    /// int4: -8...7 with scale max|w|/7, 3-bit: -4...3 with scale max|w|/3); asymmetric ones span
    /// [min(lo,0), max(hi,0)] over 0...2^bits-1.
    /// - Parameter f16Scale: round the scale to binary16 first (the q4 and q3 layouts store f16 scales).
    static func fit(lo: Float, hi: Float, bits: Int, symmetric: Bool, f16Scale: Bool) -> QuantGrid {
        let lo = min(lo, 0), hi = max(hi, 0)
        var g: QuantGrid
        if symmetric {
            // int8 keeps -128 unused (-127...127); the grouped widths use the whole two's-complement range.
            let half = Float(bits == 8 ? 127 : (1 << (bits - 1)) - 1)
            g = QuantGrid(scale: max(hi, -lo) / half, zero: 0, qmin: bits == 8 ? -127 : -half - 1, qmax: half)
        } else {
            let top = Float((1 << bits) - 1)
            g = QuantGrid(scale: (hi - lo) / top, zero: 0, qmin: 0, qmax: top)
        }
        if f16Scale { g.scale = edge_f16_to_f32(edge_f32_to_f16(g.scale)) }
        if !symmetric, g.scale > 0 { g.zero = max(g.qmin, min(g.qmax, (-lo / g.scale).rounded(.toNearestOrEven))) }
        return g
    }

    /// Sum over `x` of w_i * (x_i - value(code(x_i)))^2 (w = 1 without weights), in double.
    func squaredError(_ x: UnsafeBufferPointer<Float>, weights w: UnsafeBufferPointer<Float>?) -> Double {
        var e = 0.0
        if let w {
            for i in 0 ..< x.count { let d = Double(x[i] - value(code(x[i]))); e += Double(w[i]) * d * d }
        } else {
            for i in 0 ..< x.count { let d = Double(x[i] - value(code(x[i]))); e += d * d }
        }
        return e
    }

    /// Relative clipping candidates of the search: the min/max grid's step times 1/r for these r
    /// (r < 1 widens the grid by up to one step, r > 1 clips the extremes, up to a third of the range).
    static let searchRatios: [Float] = (0 ... 16).map { 1 + Float($0 - 2) / 30 }

    /// The grid with the smallest (weighted) squared error over `x` among candidates, in the
    /// spirit of llama.cpp's `make_qkx2_quants`: the min/max grid itself; steps of
    /// (min/max step) / r for each r in `searchRatios`, each with every integer zero point between
    /// the one that keeps the minimum and the one that keeps the maximum; then, from the best,
    /// two least-squares refits of the scale to its codes (zero point fixed). Scales are rounded
    /// to f16 first when `f16Scale`. Never worse than `fit` (it is a candidate); zero points
    /// stay integers in the code range, so 0 stays exactly 0.
    static func search(_ x: UnsafeBufferPointer<Float>, weights w: UnsafeBufferPointer<Float>?, bits: Int, symmetric: Bool,
                       f16Scale: Bool) -> QuantGrid {
        var lo: Float = 0, hi: Float = 0
        for e in x { lo = min(lo, e); hi = max(hi, e) }
        let base = fit(lo: lo, hi: hi, bits: bits, symmetric: symmetric, f16Scale: f16Scale)
        guard base.scale > 0, base.scale.isFinite else { return base }
        var best = base, bestErr = base.squaredError(x, weights: w)
        if bestErr == 0 { return best }
        func roundScale(_ s: Float) -> Float { f16Scale ? edge_f16_to_f32(edge_f32_to_f16(s)) : s }
        func consider(_ g: QuantGrid) {
            guard g.scale > 0, g.scale.isFinite else { return }
            let e = g.squaredError(x, weights: w)
            if e < bestErr { bestErr = e; best = g }
        }
        let lo0 = min(lo, 0), hi0 = max(hi, 0)
        if symmetric {
            let amax = max(hi0, -lo0)
            for r in searchRatios {
                consider(QuantGrid(scale: roundScale(amax / (base.qmax * r)), zero: 0, qmin: base.qmin, qmax: base.qmax))
            }
            // int4 / 3-bit: the largest magnitude on the -8 / -4 side when it is negative (llama.cpp's Q4_0 grid).
            if base.qmin < -base.qmax, -lo0 >= hi0 {
                consider(QuantGrid(scale: roundScale(-lo0 / -base.qmin), zero: 0, qmin: base.qmin, qmax: base.qmax))
            }
        } else {
            let top = base.qmax
            for r in searchRatios {
                let s = roundScale((hi0 - lo0) / (top * r))
                guard s > 0, s.isFinite else { continue }
                let keepLo = max(0, min(top, (-lo0 / s).rounded(.toNearestOrEven)))
                let keepHi = max(0, min(top, top - (hi0 / s).rounded(.toNearestOrEven)))
                var z = min(keepLo, keepHi)
                while z <= max(keepLo, keepHi) {
                    consider(QuantGrid(scale: s, zero: z, qmin: 0, qmax: top))
                    z += 1
                }
            }
        }
        // Least-squares scale for the best grid's codes: s = sum w x (q - z) / sum w (q - z)^2.
        for _ in 0 ..< 2 {
            var num = 0.0, den = 0.0
            for i in 0 ..< x.count {
                let c = Double(best.code(x[i]) - best.zero), wi = w.map { Double($0[i]) } ?? 1
                num += wi * Double(x[i]) * c
                den += wi * c * c
            }
            guard den > 0 else { break }
            let before = bestErr
            var g = best
            g.scale = roundScale(Float(num / den))
            consider(g)
            if bestErr >= before { break }
        }
        return best
    }

    @inline(__always) func code(_ x: Float) -> Float {
        guard scale > 0 else { return zero }
        return max(qmin, min(qmax, ((x + offset) / scale).rounded(.toNearestOrEven) + zero))
    }

    /// scale * (code - zero) - offset: for offset 0 exactly scale * (code - zero); for q4k (zero 0)
    /// the payload's d * u - m, the product exact (docs/edge-format.md, "q4k").
    @inline(__always) func value(_ code: Float) -> Float { scale * (code - zero) - offset }
}

/// The grids of a [rows, cols] tensor: one per row (int8) or per (row, group of inputs) (int4, 3-bit),
/// and the payload built from integer codes.
struct GroupLayout {
    let rows: Int, cols: Int, bits: Int, groupSize: Int?, symmetric: Bool
    /// q4k (bits 4) and q3s (bits 3), asymmetric: bits of each group's scale code (q4k: and min code);
    /// nil for q8, q4, q3.
    var subBits: Int? = nil

    var group: Int { groupSize ?? cols }
    var groups: Int { (cols + group - 1) / max(1, group) }

    /// Grid for element (r, j) is `grids[r * groups + j / group]`.
    /// - Parameters:
    ///   - rounding: min/max grids, or the squared-error search (`QuantGrid.search`).
    ///   - magnitudeWeighted: the search weighs each value's error by the value squared.
    ///   - columnWeights: per input (cols values), weights of the error the search minimizes; nil = 1.
    ///   - supers: q4k only: the rows' super-scales; the grids are then `Q4KFit.constrained` to them.
    ///     Without them a q4k layout gives each group's unconstrained `Q4KFit.fit` (for `q4kSupers`).
    ///     q4k grids are always searched (the `rounding` is not used), weighted as `mse` would be.
    func fitGrids(_ values: [Float], rounding: Rounding = .minmax, magnitudeWeighted: Bool = false,
                  columnWeights: [Float]? = nil, supers: [Q4KSuper]? = nil) -> [QuantGrid] {
        precondition(values.count == rows * cols && (columnWeights == nil || columnWeights!.count == cols))
        precondition(supers == nil || (subBits != nil && supers!.count == rows))
        let groups = self.groups, group = self.group, cols = self.cols, bits = self.bits, symmetric = self.symmetric
        let subBits = self.subBits
        var grids = [QuantGrid](repeating: QuantGrid(scale: 0, zero: 0, qmin: 0, qmax: 0), count: rows * groups)
        let f16 = bits != 8  // q4 and q3 store f16 scales
        values.withUnsafeBufferPointer { v in
            grids.withUnsafeMutableBufferPointer { buffer in
                let out = buffer
                let fitRows = { (r0: Int, r1: Int) in
                    var local = [Float](repeating: 0, count: group)
                    for r in r0 ..< r1 {
                        for gi in 0 ..< groups {
                            let j0 = gi * group, n = min(cols, j0 + group) - j0
                            let x = UnsafeBufferPointer(rebasing: v[(r * cols + j0) ..< (r * cols + j0 + n)])
                            // The search's weights into `local` (x^2 plus a floor, so that a group's small
                            // values still count a little, times the column weights; or the column weights).
                            func searchWeights() -> Bool {
                                if magnitudeWeighted {
                                    var ss: Float = 0
                                    for e in x { ss += e * e }
                                    let floor = 1e-6 * ss / Float(n)
                                    for i in 0 ..< n { local[i] = (x[i] * x[i] + floor) * (columnWeights?[j0 + i] ?? 1) }
                                    return true
                                }
                                guard let columnWeights else { return false }
                                for i in 0 ..< n { local[i] = columnWeights[j0 + i] }
                                return true
                            }
                            if rounding == .minmax, subBits == nil {
                                var lo: Float = 0, hi: Float = 0
                                edge_minmax(x.baseAddress!, n, &lo, &hi)
                                out[r * groups + gi] = .fit(lo: lo, hi: hi, bits: bits, symmetric: symmetric, f16Scale: f16)
                                continue
                            }
                            let weighted = searchWeights()
                            out[r * groups + gi] = local.withUnsafeBufferPointer { lb in
                                let h = weighted ? UnsafeBufferPointer(rebasing: lb[0 ..< n]) : nil
                                guard let subBits else { return QuantGrid.search(x, weights: h, bits: bits, symmetric: symmetric, f16Scale: f16) }
                                if bits == 3 {  // q3s: q3's grid, its scale then a code under the row's super-scale
                                    let g = QuantGrid.search(x, weights: h, bits: 3, symmetric: false, f16Scale: false)
                                    guard let s = supers?[r] else { return g }
                                    return Q3SFit.constrained(x, h, grid: g, unit: s.d, subBits: subBits)
                                }
                                // q4k (searched whatever `rounding` says): the free fit, or constrained to the row's super-scales.
                                let f = Q4KFit.fit(x, h)
                                guard let s = supers?[r] else {
                                    return QuantGrid(scale: f.d, zero: 0, qmin: 0, qmax: Q4KFit.maxCode, offset: f.m)
                                }
                                return Q4KFit.constrained(x, h, fit: f, super: s, subBits: subBits)
                            }
                        }
                    }
                }
                // The search costs ~100 evaluations per group: spread rows over the cores.
                // Min/max fits are cheap, but a large matrix still takes the cores (each row's grid is its own).
                let cores = ProcessInfo.processInfo.activeProcessorCount
                let chunks = rounding == .mse || subBits != nil ? max(1, min(cores * 2, rows / 16))
                    : rows * cols >= 1 << 20 ? max(1, min(cores, rows / 16)) : 1
                if chunks == 1 { fitRows(0, rows); return }
                DispatchQueue.concurrentPerform(iterations: chunks) { c in fitRows(rows * c / chunks, rows * (c + 1) / chunks) }
            }
        }
        return grids
    }

    /// What is added to a code to get its stored byte: q4 symmetric codes -8...7 are stored +8, q3
    /// symmetric -4...3 +4; q8 symmetric int8 codes are stored as their bit pattern (offset 0 with
    /// truncation), asymmetric codes as they are.
    var storedCodeOffset: Int {
        guard symmetric else { return 0 }
        return bits == 4 ? 8 : bits == 3 ? Q3Layout.symmetricZero : 0
    }

    /// `values` ([rows, cols]) rounded to nearest on `grids` (`QuantGrid.code` / `.value`): the codes
    /// and the values they decode to.
    func round(_ values: [Float], on grids: [QuantGrid]) -> (codes: [Float], values: [Float]) {
        precondition(values.count == rows * cols && grids.count == rows * groups)
        var codes = [Float](repeating: 0, count: values.count), deq = values
        for r in 0 ..< rows {
            for j in 0 ..< cols {
                let grid = grids[r * groups + j / group], c = grid.code(values[r * cols + j])
                codes[r * cols + j] = c
                deq[r * cols + j] = grid.value(c)
            }
        }
        return (codes, deq)
    }

    /// q4k: each row's super-scales from its groups' unconstrained grids (`fitGrids` without supers).
    func q4kSupers(_ grids: [QuantGrid]) -> [Q4KSuper] {
        precondition(subBits != nil && grids.count == rows * groups)
        return (0 ..< rows).map { r in
            Q4KFit.supers(grids[r * groups ..< (r + 1) * groups].map { (d: $0.scale, m: $0.offset) }, subBits: subBits!)
        }
    }

    /// The q4k payload for codes 0...15 (row-major) on `grids` fitted under `supers`; for bits 3 the
    /// q3s payload for codes 0...7 (the grids' zero points stored as 3-bit codes, their mins unused).
    func encodeQ4K(name: String, codes: [UInt8], grids: [QuantGrid], supers: [Q4KSuper]) -> EncodedTensor {
        precondition(subBits != nil && grids.count == rows * groups && supers.count == rows)
        var sc = [UInt8](repeating: 0, count: grids.count), mn = sc
        for r in 0 ..< rows {
            for k in 0 ..< groups {
                sc[r * groups + k] = Q4KFit.code(grids[r * groups + k].scale, unit: supers[r].d)
                mn[r * groups + k] = Q4KFit.code(grids[r * groups + k].offset, unit: supers[r].m)
            }
        }
        if bits == 3 {
            return .q3s(name: name, rows: rows, cols: cols, groupSize: group, subBits: subBits!, u: codes, sc: sc,
                        z: grids.map { UInt8($0.zero) }, superScale: supers.map(\.d))
        }
        return .q4k(name: name, rows: rows, cols: cols, groupSize: group, subBits: subBits!, u: codes, sc: sc, mn: mn,
                    superScale: supers.map(\.d), superMin: supers.map(\.m))
    }

    /// The q8, q4 or q3 payload for integer `codes` (row-major) on `grids`.
    func encode(name: String, codes: [Float], grids: [QuantGrid]) -> EncodedTensor {
        let offset = storedCodeOffset
        return encode(name: name, stored: codes.map { UInt8(truncatingIfNeeded: Int($0) + offset) }, grids: grids)
    }

    /// The q8, q4 or q3 payload for codes already in their stored bytes (`storedCodeOffset` applied).
    func encode(name: String, stored: [UInt8], grids: [QuantGrid]) -> EncodedTensor {
        let zeros = symmetric ? nil : grids.map { UInt8($0.zero) }
        switch bits {
        case 8: return .q8(name: name, rows: rows, cols: cols, q: stored, scales: grids.map(\.scale), zeros: zeros)
        case 3: return .q3(name: name, rows: rows, cols: cols, groupSize: group, u: stored, scales: grids.map(\.scale), zeros: zeros)
        default: return .q4(name: name, rows: rows, cols: cols, groupSize: group, u: stored, scales: grids.map(\.scale), zeros: zeros)
        }
    }
}

/// The grids `Quantize.fit` fixed for one tensor (kept in `PassContext.fitted`).
struct FittedGrid {
    let layout: GroupLayout
    let grids: [QuantGrid]
    /// q4k / q3s: the rows' super-scales; nil for q8, q4, q3.
    let supers: [Q4KSuper]?
    /// Whether the fit weighted its errors by activations.
    var weighted = false
}
