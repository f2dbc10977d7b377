import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// Encoded weights (q8/q4/q3, symmetric and asymmetric, q4k, f16) computed straight from their bytes give
/// the logits of the same weights dequantized to float32 and run as f32.
final class QuantizedWeightsTests: XCTestCase {
    static let tolerance = 1e-4

    enum Scheme: CustomStringConvertible {
        case f16, q8(symmetric: Bool), q4(symmetric: Bool, group: Int), q3(symmetric: Bool, group: Int)
        case q4k(group: Int, subBits: Int)
        var description: String {
            switch self {
            case let .q4k(g, b): return "q4k g\(g) b\(b)"
            case .f16: return "f16"
            case let .q8(s): return "q8 \(s ? "sym" : "asym")"
            case let .q4(s, g): return "q4 \(s ? "sym" : "asym") g\(g)"
            case let .q3(s, g): return "q3 \(s ? "sym" : "asym") g\(g)"
            }
        }

        /// Largest relative logit difference allowed against the dequantized weights run as f32. q4k with
        /// groups the int16 kernels take runs int16 activations (the default `.i16`, `edge_matmul_q4k_i16` /
        /// `edge_gemm_q4k_i16`), whose rounding through the model measures ~1.3e-4 here (q4 and q8 weights
        /// under `.i16` measure 7e-5 to 9e-5): 3e-4 for those.
        var tolerance: Double {
            if case let .q4k(g, b) = self, Linear.i16Q4RowsAccelerated, edge_q4k_i16_supported(g, b) { return 3e-4 }
            return QuantizedWeightsTests.tolerance
        }
    }

    /// The parts of a q4k tensor, and the weights they stand for: w = (D*sc)*u - M*mn (binary32).
    struct Q4KParts {
        var u: [UInt8], sc: [UInt8], mn: [UInt8], superScale: [Float], superMin: [Float], decoded: [Float]
    }

    /// A plain q4k quantizer: per group the grid lo + s*u (lo = min(group, 0), s = range / 15) with
    /// s and -lo rounded to b-bit multiples of the row's binary16 D and M, then codes to nearest.
    static func q4kParts(_ w: [Float], rows: Int, cols: Int, group g: Int, subBits b: Int) -> Q4KParts {
        let groups = (cols + g - 1) / g, top = Float((1 << b) - 1)
        var p = Q4KParts(u: [UInt8](repeating: 0, count: rows * cols), sc: [], mn: [], superScale: [], superMin: [],
                         decoded: [Float](repeating: 0, count: rows * cols))
        for r in 0 ..< rows {
            var steps = [Float](), offsets = [Float]()
            for k in 0 ..< groups {
                let part = w[r * cols + k * g ..< r * cols + min(cols, k * g + g)]
                let lo = min(part.min()!, 0), hi = max(part.max()!, lo)
                steps.append((hi - lo) / 15)
                offsets.append(-lo)
            }
            let D = Float(Float16(steps.max()! / top)), M = Float(Float16(offsets.max()! / top))
            p.superScale.append(D)
            p.superMin.append(M)
            for k in 0 ..< groups {
                let sc = D > 0 ? min(top, (steps[k] / D).rounded(.up)) : 0, mn = M > 0 ? min(top, (offsets[k] / M).rounded()) : 0
                p.sc.append(UInt8(sc))
                p.mn.append(UInt8(mn))
                let d = D * sc, m = M * mn
                for i in r * cols + k * g ..< r * cols + min(cols, k * g + g) {
                    let u = d > 0 ? min(15, max(0, ((w[i] + m) / d).rounded())) : 0
                    p.u[i] = UInt8(u)
                    p.decoded[i] = d * u - m
                }
            }
        }
        return p
    }

    /// A plain round-to-nearest quantizer producing the `.edge` payloads.
    static func encode(_ name: String, _ shape: [Int], _ w: [Float], _ scheme: Scheme) -> EncodedTensor {
        let rows = shape[0], cols = shape[1]
        switch scheme {
        case let .q4k(g, b):
            let p = q4kParts(w, rows: rows, cols: cols, group: g, subBits: b)
            return .q4k(name: name, rows: rows, cols: cols, groupSize: g, subBits: b, u: p.u, sc: p.sc, mn: p.mn,
                        superScale: p.superScale, superMin: p.superMin)
        case .f16:
            return .f16(name: name, shape: shape, values: w)
        case let .q8(symmetric):
            var q = [UInt8](repeating: 0, count: rows * cols), scales = [Float](), zeros = [UInt8]()
            for r in 0 ..< rows {
                let row = w[r * cols ..< (r + 1) * cols]
                if symmetric {
                    let s = max(row.map(abs).max()! / 127, 1e-12)
                    scales.append(s)
                    for j in 0 ..< cols { q[r * cols + j] = UInt8(bitPattern: Int8((row[r * cols + j] / s).rounded())) }
                } else {
                    let lo = min(row.min()!, 0), hi = max(row.max()!, 0)
                    let s = max((hi - lo) / 255, 1e-12), z = min(255, max(0, (-lo / s).rounded()))
                    scales.append(s)
                    zeros.append(UInt8(z))
                    for j in 0 ..< cols { q[r * cols + j] = UInt8(min(255, max(0, (row[r * cols + j] / s).rounded() + z))) }
                }
            }
            return .q8(name: name, rows: rows, cols: cols, q: q, scales: scales, zeros: symmetric ? nil : zeros)
        case let .q4(symmetric, g), let .q3(symmetric, g):
            var bits = 4
            if case .q3 = scheme { bits = 3 }
            let half = Float(1 << (bits - 1)), top = Float((1 << bits) - 1)  // q4: 8, 15; q3: 4, 7
            let groups = (cols + g - 1) / g
            var u = [UInt8](repeating: 0, count: rows * cols), scales = [Float](), zeros = [UInt8]()
            for r in 0 ..< rows {
                for gi in 0 ..< groups {
                    let range = r * cols + gi * g ..< r * cols + min(cols, gi * g + g)
                    let part = w[range]
                    if symmetric {
                        let s = max(part.map(abs).max()! / (half - 1), 1e-6)
                        scales.append(s)
                        for i in range { u[i] = UInt8(min(half - 1, max(-half, (w[i] / s).rounded())) + half) }
                    } else {
                        let lo = min(part.min()!, 0), hi = max(part.max()!, 0)
                        let s = max((hi - lo) / top, 1e-6), z = min(top, max(0, (-lo / s).rounded()))
                        scales.append(s)
                        zeros.append(UInt8(z))
                        for i in range { u[i] = UInt8(min(top, max(0, (w[i] / s).rounded() + z))) }
                    }
                }
            }
            if bits == 3 {
                return .q3(name: name, rows: rows, cols: cols, groupSize: g, u: u, scales: scales, zeros: symmetric ? nil : zeros)
            }
            return .q4(name: name, rows: rows, cols: cols, groupSize: g, u: u, scales: scales, zeros: symmetric ? nil : zeros)
        }
    }

    func check(_ fixtureName: String, _ scheme: Scheme) throws {
        let fixture = try FixtureModel(fixtureName)
        var encoded: [String: WeightSource] = [:], dequantized: [String: WeightSource] = [:]
        for (name, t) in fixture.tensors {
            guard t.shape.count == 2 else {
                encoded[name] = .floats(t.values, shape: t.shape)
                dequantized[name] = encoded[name]
                continue
            }
            let e = Self.encode(name, t.shape, t.values, scheme)
            encoded[name] = .encoded(e)
            let floats = e.payload.withUnsafeBytes { decodePayload($0, encoding: e.encoding, shape: e.shape, params: e.params) }
            XCTAssertNotEqual(floats, t.values, "\(scheme) must actually change \(name)")
            dequantized[name] = .floats(floats, shape: t.shape)
        }
        let tokens: [Int32] = [0, 17, 301, 45, 256, 3, 99, 511, 128, 64, 7, 200, 13, 450, 31, 8, 77, 333, 2, 160]
        let a = try EdgeModel(config: fixture.config, tensors: encoded).logits(tokens)
        let b = try EdgeModel(config: fixture.config, tensors: dequantized).logits(tokens)
        let err = relativeError(a, b)
        XCTAssertLessThan(err, scheme.tolerance, "\(fixtureName) \(scheme): encoded vs dequantized f32")
        let float = try EdgeModel(config: fixture.config, tensors: fixture.floatSources).logits(tokens)
        let quantError = relativeError(a, float)
        XCTAssertGreaterThan(quantError, err, "\(scheme): quantization error must show against the float model")
        print("\(fixtureName) \(scheme): encoded vs dequantized \(err), vs float weights \(quantError)")
    }

    func testQ8SymmetricMatchesDequantized() throws {
        try check("tiny-llama", .q8(symmetric: true))
        try check("tiny-gpt2", .q8(symmetric: true))
    }

    func testQ8AsymmetricMatchesDequantized() throws {
        try check("tiny-llama", .q8(symmetric: false))
        try check("tiny-gpt2", .q8(symmetric: false))
    }

    func testQ4SymmetricMatchesDequantized() throws {
        try check("tiny-llama", .q4(symmetric: true, group: 32))
        try check("tiny-gpt2", .q4(symmetric: true, group: 24))  // 64 = 24 + 24 + 16: a short last group
    }

    func testQ4AsymmetricMatchesDequantized() throws {
        try check("tiny-llama", .q4(symmetric: false, group: 16))
        try check("tiny-gpt2", .q4(symmetric: false, group: 50))
    }

    func testQ3SymmetricMatchesDequantized() throws {
        try check("tiny-llama", .q3(symmetric: true, group: 32))
        try check("tiny-gpt2", .q3(symmetric: true, group: 24))  // 64 = 24 + 24 + 16: a short last group
    }

    func testQ3AsymmetricMatchesDequantized() throws {
        try check("tiny-llama", .q3(symmetric: false, group: 16))
        try check("tiny-gpt2", .q3(symmetric: false, group: 40))
    }

    func testQ4KMatchesDequantized() throws {
        try check("tiny-llama", .q4k(group: 32, subBits: 6))
        try check("tiny-gpt2", .q4k(group: 24, subBits: 8))  // 64 = 24 + 24 + 16: a short last group
        try check("tiny-llama", .q4k(group: 16, subBits: 8))
        try check("tiny-gpt2", .q4k(group: 10, subBits: 6))
    }

    /// A q4k Linear's product under f32 activations (edge_matmul_q4k_f32: `.f32`, `.q8`, and `.i16` for groups
    /// the int16 kernels do not take or where they are not accelerated) is the product of its dequantized
    /// weights: bit for bit the f32 Linear of those weights (the kernels unpack exactly the decoded values and
    /// sum them as the f32 product does), and within float noise of the double product; under `.i16` with
    /// groups of 32...256 (edge_matmul_q4k_i16 / edge_gemm_q4k_i16, int16 activations) within the activations'
    /// int16 rounding of it; for one token (decoding) and several (prompt), one thread and several.
    func testQ4KLinearMatchesDequantizedProduct() throws {
        var seed: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> Float {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            return Float(seed >> 40) / Float(1 << 24) * 2 - 1
        }
        for (rows, cols, g, b) in [(37, 77, 32, 6), (133, 301, 10, 8), (20, 64, 24, 8)] {
            let w = (0 ..< rows * cols).map { _ in next() * 0.2 + 0.03 }
            let p = Self.q4kParts(w, rows: rows, cols: cols, group: g, subBits: b)
            let e = Self.encode("w", [rows, cols], w, .q4k(group: g, subBits: b))
            let decoded = e.payload.withUnsafeBytes { decodePayload($0, encoding: e.encoding, shape: e.shape, params: e.params) }
            XCTAssertEqual(decoded, p.decoded, "q4k decodePayload vs the formula, g\(g) b\(b)")
            XCTAssertNotEqual(decoded, w)
            let q4k = try Linear(name: "w", source: .encoded(e))
            let dense = try Linear(name: "w", source: .floats(p.decoded, shape: [rows, cols]))
            for tokens in [1, 2, 5, 12, 33] {
                let x = (0 ..< tokens * cols).map { _ in next() }
                let want = dense.matmul(x, tokens: tokens, threads: 1, activations: .f32)
                let int16 = (tokens <= Linear.q4I16MaxTokens ? Linear.i16Q4RowsAccelerated : Linear.i16Q4Accelerated) && edge_q4k_i16_supported(g, b)
                // .q8 decoding runs edge_matmul_q4k_q8b32 (int8 activations): checked against the exact product below.
                let int8 = tokens <= Linear.q4I16MaxTokens && edge_q4k_q8_supported(g, b)
                for threads in [1, 4] {
                    for mode in ActivationPrecision.allCases where !(mode == .i16 && int16) && !(mode == .q8 && int8) {
                        let y = q4k.matmul(x, tokens: tokens, threads: threads, activations: mode)
                        XCTAssertEqual(y, want, "q4k g\(g) b\(b) \(rows)x\(cols) T=\(tokens) threads \(threads) \(mode)")
                    }
                }
                let y = q4k.matmul(x, tokens: tokens, threads: 2, activations: .f32)
                let y16 = q4k.matmul(x, tokens: tokens, threads: 2, activations: .i16)
                let y8 = q4k.matmul(x, tokens: tokens, threads: 2, activations: .q8)
                for t in 0 ..< tokens {
                    for r in 0 ..< rows {
                        var exact = 0.0, scale = 0.0
                        for c in 0 ..< cols {
                            let v = Double(p.decoded[r * cols + c]) * Double(x[t * cols + c])
                            exact += v
                            scale += abs(v)
                        }
                        XCTAssertLessThanOrEqual(abs(Double(y[t * rows + r]) - exact), 1e-5 * scale + 1e-30,
                                                 "q4k g\(g) b\(b) T=\(tokens) t=\(t) r=\(r)")
                        // int16 activations: each off by at most half a step of its block's max / 32767.
                        XCTAssertLessThanOrEqual(abs(Double(y16[t * rows + r]) - exact), (int16 ? 1e-4 : 1e-5) * scale + 1e-30,
                                                 "q4k .i16 g\(g) b\(b) T=\(tokens) t=\(t) r=\(r)")
                        // int8 activations per block of 32: each off by at most half a step of its block's max / 127.
                        XCTAssertLessThanOrEqual(abs(Double(y8[t * rows + r]) - exact), (int8 ? 1e-2 : 1e-5) * scale + 1e-30,
                                                 "q4k .q8 g\(g) b\(b) T=\(tokens) t=\(t) r=\(r)")
                    }
                }
            }
        }
    }

    func testF16MatchesDequantized() throws {
        try check("tiny-llama", .f16)
    }

    /// Rows decoded one at a time (embedding lookups) equal the whole-tensor decoder.
    func testRowDecodingMatchesDecodePayload() throws {
        let rows = 5, cols = 37
        let w = (0 ..< rows * cols).map { Float(sin(Double($0) * 0.7)) }
        for scheme in [Scheme.f16, .q8(symmetric: true), .q8(symmetric: false), .q4(symmetric: true, group: 8), .q4(symmetric: false, group: 10),
                       .q3(symmetric: true, group: 8), .q3(symmetric: false, group: 16), .q4k(group: 8, subBits: 6),
                       .q4k(group: 10, subBits: 8)] {
            let e = Self.encode("w", [rows, cols], w, scheme)
            let all = e.payload.withUnsafeBytes { decodePayload($0, encoding: e.encoding, shape: e.shape, params: e.params) }
            let linear = try Linear(name: "w", source: .encoded(e))
            var row = [Float](repeating: 0, count: cols)
            for r in 0 ..< rows {
                row.withUnsafeMutableBufferPointer { linear.row(r, into: $0.baseAddress!) }
                XCTAssertEqual(row, Array(all[r * cols ..< (r + 1) * cols]), "\(scheme) row \(r)")
            }
        }
    }

    func testRefusesPayloadOfWrongSize() {
        var e = Self.encode("w", [4, 8], [Float](repeating: 0.5, count: 32), .q8(symmetric: true))
        e.payload.removeLast()
        XCTAssertThrowsError(try Linear(name: "w", source: .encoded(e), origin: "m")) { err in
            guard case .badTensor("m", "w", _)? = err as? RuntimeError else { return XCTFail("\(err)") }
        }
    }
}
