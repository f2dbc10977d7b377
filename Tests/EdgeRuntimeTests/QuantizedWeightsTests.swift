import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// Encoded weights (q8/q4/q3, symmetric and asymmetric, f16) computed straight from their bytes give
/// the logits of the same weights dequantized to float32 and run as f32.
final class QuantizedWeightsTests: XCTestCase {
    static let tolerance = 1e-4

    enum Scheme: CustomStringConvertible {
        case f16, q8(symmetric: Bool), q4(symmetric: Bool, group: Int), q3(symmetric: Bool, group: Int)
        var description: String {
            switch self {
            case .f16: return "f16"
            case let .q8(s): return "q8 \(s ? "sym" : "asym")"
            case let .q4(s, g): return "q4 \(s ? "sym" : "asym") g\(g)"
            case let .q3(s, g): return "q3 \(s ? "sym" : "asym") g\(g)"
            }
        }

        /// Largest relative logit difference allowed against the dequantized weights run as f32.
        var tolerance: Double { QuantizedWeightsTests.tolerance }
    }

    /// A plain round-to-nearest quantizer producing the `.edge` payloads.
    static func encode(_ name: String, _ shape: [Int], _ w: [Float], _ scheme: Scheme) -> EncodedTensor {
        let rows = shape[0], cols = shape[1]
        switch scheme {
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

    func testF16MatchesDequantized() throws {
        try check("tiny-llama", .f16)
    }

    /// Rows decoded one at a time (embedding lookups) equal the whole-tensor decoder.
    func testRowDecodingMatchesDecodePayload() throws {
        let rows = 5, cols = 37
        let w = (0 ..< rows * cols).map { Float(sin(Double($0) * 0.7)) }
        for scheme in [Scheme.f16, .q8(symmetric: true), .q8(symmetric: false), .q4(symmetric: true, group: 8), .q4(symmetric: false, group: 10),
                       .q3(symmetric: true, group: 8), .q3(symmetric: false, group: 16)] {
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
