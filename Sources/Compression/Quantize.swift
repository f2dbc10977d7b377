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

    private var tensors = 0
    private var weights = 0
    private var sumSquaredError = 0.0
    private var sumSquares = 0.0

    public init(bits: Int, symmetric: Bool, groupSize: Int? = nil,
                selector: TensorSelector = TensorSelector(kinds: [.linear, .embedding, .output])) {
        self.bits = bits
        self.symmetric = symmetric
        self.groupSize = groupSize
        self.method = "rtn"
        self.selector = selector
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
        method = try f.string("method", default: "rtn", allowed: ["rtn"])
        selector = try f.selector(defaultKinds: [.linear, .embedding, .output])
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard t.shape.count == 2 else {
            throw PassError(pass: Self.id, tensor: t.name, why: "is \(t.shape.count)-D; per-channel quantization needs a matrix (exclude it from the selector)")
        }
        let rows = t.shape[0], cols = t.shape[1]
        let enc: EncodedTensor
        var deq = [Float](repeating: 0, count: t.values.count)
        if bits == 8 {
            enc = Self.quantizeQ8(name: t.name, values: t.values, rows: rows, cols: cols, symmetric: symmetric, dequantized: &deq)
        } else {
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

    /// int8 per row. Symmetric: s = max|w|/127, q = round(w/s) in -127...127.
    /// Asymmetric: the range [min(w,0), max(w,0)] maps to 0...255 with integer zero point z.
    static func quantizeQ8(name: String, values: [Float], rows: Int, cols: Int, symmetric: Bool,
                           dequantized deq: inout [Float]) -> EncodedTensor {
        var q = [UInt8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows)
        var zeros: [UInt8]? = symmetric ? nil : [UInt8](repeating: 0, count: rows)
        for r in 0 ..< rows {
            let base = r * cols
            var lo: Float = 0, hi: Float = 0
            for j in 0 ..< cols { lo = min(lo, values[base + j]); hi = max(hi, values[base + j]) }
            if symmetric {
                let s = max(hi, -lo) / 127
                scales[r] = s
                let inv: Float = s > 0 ? 1 / s : 0
                for j in 0 ..< cols {
                    let v = max(-127, min(127, (values[base + j] * inv).rounded(.toNearestOrEven)))
                    q[base + j] = UInt8(bitPattern: Int8(v))
                    deq[base + j] = s * v
                }
            } else {
                let s = (hi - lo) / 255
                scales[r] = s
                let inv: Float = s > 0 ? 1 / s : 0
                let z = max(0, min(255, (-lo * inv).rounded(.toNearestOrEven)))
                zeros![r] = UInt8(z)
                for j in 0 ..< cols {
                    let v = max(0, min(255, (values[base + j] * inv).rounded(.toNearestOrEven) + z))
                    q[base + j] = UInt8(v)
                    deq[base + j] = s * (v - z)
                }
            }
        }
        return .q8(name: name, rows: rows, cols: cols, q: q, scales: scales, zeros: zeros)
    }

    /// int4 in groups along the input dimension; scales are stored as f16, and the codes are
    /// computed against the f16-rounded scale so that decode(encode(w)) is what was measured.
    static func quantizeQ4(name: String, values: [Float], rows: Int, cols: Int, groupSize g: Int, symmetric: Bool,
                           dequantized deq: inout [Float]) throws -> EncodedTensor {
        let groups = (cols + g - 1) / g
        var u = [UInt8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows * groups)
        var zeros: [UInt8]? = symmetric ? nil : [UInt8](repeating: 0, count: rows * groups)
        for r in 0 ..< rows {
            for gi in 0 ..< groups {
                let start = r * cols + gi * g, end = r * cols + min(cols, (gi + 1) * g)
                var lo: Float = 0, hi: Float = 0
                for i in start ..< end { lo = min(lo, values[i]); hi = max(hi, values[i]) }
                let raw = symmetric ? max(hi, -lo) / 7 : (hi - lo) / 15
                let s = edge_f16_to_f32(edge_f32_to_f16(raw))
                guard s.isFinite, raw == 0 || s > 0 else {
                    throw PassError(pass: id, tensor: name, why: "row \(r) group \(gi): scale \(raw) does not fit in f16")
                }
                scales[r * groups + gi] = s
                let inv: Float = s > 0 ? 1 / s : 0
                if symmetric {
                    for i in start ..< end {
                        let v = max(-8, min(7, (values[i] * inv).rounded(.toNearestOrEven)))
                        u[i] = UInt8(v + 8)
                        deq[i] = s * v
                    }
                } else {
                    let z = max(0, min(15, (-lo * inv).rounded(.toNearestOrEven)))
                    zeros![r * groups + gi] = UInt8(z)
                    for i in start ..< end {
                        let v = max(0, min(15, (values[i] * inv).rounded(.toNearestOrEven) + z))
                        u[i] = UInt8(v)
                        deq[i] = s * (v - z)
                    }
                }
            }
        }
        return .q4(name: name, rows: rows, cols: cols, groupSize: g, u: u, scales: scales, zeros: zeros)
    }

    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "bits": .number(Double(bits)), "symmetric": .bool(symmetric),
            "method": .string(method), "selector": selector.record, "tensors": .number(Double(tensors)),
            "weights": .number(Double(weights)),
            "relative_rmse": .number(sumSquares > 0 ? (sumSquaredError / sumSquares).squareRoot() : 0),
        ]
        if let groupSize { o["group_size"] = .number(Double(groupSize)) }
        return .object(o)
    }
}
