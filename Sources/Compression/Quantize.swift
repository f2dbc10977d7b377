import EdgeFormat
import EdgeKernels
import Foundation

/// Per-channel quantization with round-to-nearest: int8 per output channel (row) or int4 in
/// groups of `group_size` inputs; symmetric or asymmetric with an integer zero point, so a
/// pruned (zero) weight stays exactly zero. Embeddings are quantized per row.
///
/// Recipe: `{"pass": "quantize", "bits": 8 | 4, "symmetric": true, "group_size": 64 (int4 only),
/// "method": "rtn", <selector>}`; the selector defaults to linear weights, embeddings and the output head.
public struct Quantize: Pass {
    public static let id = "quantize"
    public static let stage = PassStage.quantize

    public let bits: Int
    public let symmetric: Bool
    public let groupSize: Int?
    public let method: String
    public let selector: TensorSelector
    /// GPTQ: fraction of the mean Hessian diagonal added as damping.
    public let damp: Double
    /// GPTQ: quantize columns in order of decreasing Hessian diagonal.
    public let actOrder: Bool

    private var tensors = 0
    private var weights = 0
    private var sumSquaredError = 0.0
    private var sumSquares = 0.0
    /// GPTQ: tensors it had no input statistics for (embeddings), quantized round-to-nearest.
    private var rtnFallbacks: [String] = []
    /// GPTQ factors by calibration site: Q/K/V (gate/up) share their input and so their factor.
    private var factors: [String: GPTQ.Factor] = [:]

    public init(bits: Int, symmetric: Bool, groupSize: Int? = nil,
                selector: TensorSelector = TensorSelector(kinds: [.linear, .embedding, .output])) {
        self.bits = bits
        self.symmetric = symmetric
        self.groupSize = groupSize
        self.method = "rtn"
        self.selector = selector
        damp = 0.01
        actOrder = false
    }

    public init(fields f: inout RecipeFields) throws {
        bits = try f.int("bits", default: nil, range: 1 ... 64, allowed: [4, 8])
        symmetric = try f.bool("symmetric", default: true)
        let g = try f.optionalInt("group_size", range: 1 ... 1 << 20)
        if bits == 8, g != nil {
            throw f.error("group_size", "applies to bits 4 only; int8 is quantized per output channel")
        }
        if bits == 4 {
            guard let g else { throw f.error("group_size", "is required for bits 4 (one of 32, 64, 128)") }
            guard [16, 32, 64, 128, 256].contains(g) else { throw f.error("group_size", "is \(g); expected one of: 16, 32, 64, 128, 256") }
        }
        groupSize = g
        method = try f.string("method", default: "rtn", allowed: ["rtn", "gptq"])
        if method == "gptq" {
            damp = try f.double("damp", default: 0.01, range: 0 ... 1)
            actOrder = try f.bool("act_order", default: false)
        } else {
            damp = 0.01
            actOrder = false
        }
        selector = try f.selector(defaultKinds: [.linear, .embedding, .output])
    }

    public var calibrationNeeds: CalibrationNeeds { method == "gptq" ? .hessians : [] }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard t.shape.count == 2 else {
            throw PassError(pass: Self.id, tensor: t.name, why: "is \(t.shape.count)-D; per-channel quantization needs a matrix (exclude it from the selector)")
        }
        let rows = t.shape[0], cols = t.shape[1]
        let enc: EncodedTensor
        var deq = [Float](repeating: 0, count: t.values.count)
        // GPTQ needs the statistics of the inputs a matrix multiplies; an embedding is looked up,
        // not multiplied (a tied one is also the output head, but its rows must serve both), so it
        // is rounded to nearest.
        let gptqHessian = method == "gptq" && TensorName.kind(of: t.name) != .embedding ? context.calibration?.hessian(for: t.name) : nil
        if let h = gptqHessian, h.count == cols * cols {
            let opts = GPTQ.Options(bits: bits, groupSize: groupSize, symmetric: symmetric, damp: damp, actOrder: actOrder)
            let site = CalibrationStats.site(of: t.name)
            if factors[site] == nil {
                do {
                    factors = [site: try GPTQ.factor(hessian: h, cols: cols, damp: damp, actOrder: actOrder)]
                } catch {
                    throw PassError(pass: Self.id, tensor: t.name, why: "GPTQ: the damped Hessian is not positive definite; raise 'damp'")
                }
            }
            let r = GPTQ.quantize(weights: t.values, rows: rows, cols: cols, factor: factors[site]!, options: opts)
            if bits == 4, let bad = r.grids.firstIndex(where: { !$0.scale.isFinite }) {
                throw PassError(pass: Self.id, tensor: t.name, why: "group \(bad): scale does not fit in f16")
            }
            deq = r.dequantized
            enc = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: groupSize, symmetric: symmetric)
                .encode(name: t.name, codes: r.codes, grids: r.grids)
        } else if bits == 8 {
            if method == "gptq" { rtnFallbacks.append(t.name) }
            enc = Self.quantizeQ8(name: t.name, values: t.values, rows: rows, cols: cols, symmetric: symmetric, dequantized: &deq)
        } else {
            if method == "gptq" { rtnFallbacks.append(t.name) }
            enc = try Self.quantizeQ4(name: t.name, values: t.values, rows: rows, cols: cols, groupSize: groupSize!,
                                      symmetric: symmetric, dequantized: &deq)
        }
        for i in t.values.indices {
            let e = Double(t.values[i] - deq[i])
            sumSquaredError += e * e
            sumSquares += Double(t.values[i]) * Double(t.values[i])
        }
        tensors += 1
        weights += t.values.count
        t.values = deq
        t.encoded = enc
        t.encodedBy = context.index
    }

    /// int8 per row, round to nearest (see `QuantGrid` for the grids).
    static func quantizeQ8(name: String, values: [Float], rows: Int, cols: Int, symmetric: Bool,
                           dequantized deq: inout [Float]) -> EncodedTensor {
        let layout = GroupLayout(rows: rows, cols: cols, bits: 8, groupSize: nil, symmetric: symmetric)
        let grids = layout.fitGrids(values)
        var codes = [Float](repeating: 0, count: rows * cols)
        for r in 0 ..< rows {
            let g = grids[r]
            for j in 0 ..< cols {
                codes[r * cols + j] = g.code(values[r * cols + j])
                deq[r * cols + j] = g.value(codes[r * cols + j])
            }
        }
        return layout.encode(name: name, codes: codes, grids: grids)
    }

    /// int4 in groups along the input dimension, round to nearest. Scales are stored as f16, and
    /// codes are computed against the f16-rounded scale, so decode(encode(w)) is what was measured.
    static func quantizeQ4(name: String, values: [Float], rows: Int, cols: Int, groupSize g: Int, symmetric: Bool,
                           dequantized deq: inout [Float]) throws -> EncodedTensor {
        let layout = GroupLayout(rows: rows, cols: cols, bits: 4, groupSize: g, symmetric: symmetric)
        let grids = layout.fitGrids(values)
        if let bad = grids.firstIndex(where: { !$0.scale.isFinite }) {
            throw PassError(pass: id, tensor: name, why: "row \(bad / layout.groups) group \(bad % layout.groups): scale does not fit in f16")
        }
        var codes = [Float](repeating: 0, count: rows * cols)
        for r in 0 ..< rows {
            for j in 0 ..< cols {
                let grid = grids[r * layout.groups + j / g]
                codes[r * cols + j] = grid.code(values[r * cols + j])
                deq[r * cols + j] = grid.value(codes[r * cols + j])
            }
        }
        return layout.encode(name: name, codes: codes, grids: grids)
    }

    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "bits": .number(Double(bits)), "symmetric": .bool(symmetric),
            "method": .string(method), "selector": selector.record, "tensors": .number(Double(tensors)),
            "weights": .number(Double(weights)),
            "relative_rmse": .number(sumSquares > 0 ? (sumSquaredError / sumSquares).squareRoot() : 0),
        ]
        if let groupSize { o["group_size"] = .number(Double(groupSize)) }
        if method == "gptq" {
            o["damp"] = .number(damp)
            o["act_order"] = .bool(actOrder)
            o["round_to_nearest"] = .array(rtnFallbacks.map { .string($0) })
        }
        return .object(o)
    }
}

/// One quantization grid: w ~ scale * (code - zero) with integer codes in qmin...qmax. The grid
/// always contains 0 exactly (integer zero point), so pruned weights stay zero.
struct QuantGrid {
    var scale: Float
    var zero: Float
    var qmin: Float
    var qmax: Float

    /// The grid for values in [lo, hi]. Symmetric grids are centred on 0 (int8: -127...127,
    /// int4: -8...7 with scale max|w|/7); asymmetric ones span [min(lo,0), max(hi,0)] over 0...2^bits-1.
    /// - Parameter f16Scale: round the scale to binary16 first (the q4 layout stores f16 scales).
    static func fit(lo: Float, hi: Float, bits: Int, symmetric: Bool, f16Scale: Bool) -> QuantGrid {
        let lo = min(lo, 0), hi = max(hi, 0)
        var g: QuantGrid
        if symmetric {
            let half: Float = bits == 8 ? 127 : 7
            g = QuantGrid(scale: max(hi, -lo) / half, zero: 0, qmin: bits == 8 ? -127 : -8, qmax: bits == 8 ? 127 : 7)
        } else {
            let top = Float((1 << bits) - 1)
            g = QuantGrid(scale: (hi - lo) / top, zero: 0, qmin: 0, qmax: top)
        }
        if f16Scale { g.scale = edge_f16_to_f32(edge_f32_to_f16(g.scale)) }
        if !symmetric, g.scale > 0 { g.zero = max(g.qmin, min(g.qmax, (-lo / g.scale).rounded(.toNearestOrEven))) }
        return g
    }

    @inline(__always) func code(_ x: Float) -> Float {
        guard scale > 0 else { return zero }
        return max(qmin, min(qmax, (x / scale).rounded(.toNearestOrEven) + zero))
    }

    @inline(__always) func value(_ code: Float) -> Float { scale * (code - zero) }
}

/// The grids of a [rows, cols] tensor: one per row (int8) or per (row, group of inputs) (int4),
/// and the payload built from integer codes.
struct GroupLayout {
    let rows: Int, cols: Int, bits: Int, groupSize: Int?, symmetric: Bool

    var group: Int { groupSize ?? cols }
    var groups: Int { (cols + group - 1) / max(1, group) }

    /// Grid for element (r, j) is `grids[r * groups + j / group]`.
    func fitGrids(_ values: [Float]) -> [QuantGrid] {
        var grids: [QuantGrid] = []
        grids.reserveCapacity(rows * groups)
        for r in 0 ..< rows {
            for gi in 0 ..< groups {
                let start = r * cols + gi * group, end = r * cols + min(cols, (gi + 1) * group)
                var lo: Float = 0, hi: Float = 0
                for i in start ..< end { lo = min(lo, values[i]); hi = max(hi, values[i]) }
                grids.append(.fit(lo: lo, hi: hi, bits: bits, symmetric: symmetric, f16Scale: bits == 4))
            }
        }
        return grids
    }

    /// The q8 or q4 payload for integer `codes` (row-major) on `grids`.
    func encode(name: String, codes: [Float], grids: [QuantGrid]) -> EncodedTensor {
        if bits == 8 {
            let q = codes.map { symmetric ? UInt8(bitPattern: Int8($0)) : UInt8($0) }
            return .q8(name: name, rows: rows, cols: cols, q: q, scales: grids.map(\.scale),
                       zeros: symmetric ? nil : grids.map { UInt8($0.zero) })
        }
        let u = codes.map { UInt8(symmetric ? $0 + 8 : $0) }
        return .q4(name: name, rows: rows, cols: cols, groupSize: group, u: u, scales: grids.map(\.scale),
                   zeros: symmetric ? nil : grids.map { UInt8($0.zero) })
    }
}
