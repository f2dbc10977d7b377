import EdgeKernels
import XCTest

/// The kernels of a float16 KV cache: rows narrowed to binary16 and widened back, and the decoding
/// step's probabilities times binary16 values, the same bits at every level as the scalar reference.
final class F16CacheKernelTests: XCTestCase {
    /// Every binary16 bit pattern widens as `edge_f16_to_f32` does, at every level; a NaN stays a NaN
    /// of the same sign (vcvtph2ps quiets a signaling one, so its bits may differ there).
    func testWidenEveryPattern() {
        let all = (0 ... 0xFFFF).map { UInt16($0) }
        let expected = all.map { edge_f16_to_f32($0) }
        var ref = [Float](repeating: 0, count: all.count)
        edge_f16_widen_ref(all, &ref, all.count)
        XCTAssertEqual(ref.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertEqual(expected.filter(\.isNaN).count, 2 * 1023)
        let ran = forEachKernelLevel { level in
            for n in [all.count, 13, 7] {  // tails under 8 take the scalar conversion
                var y = [Float](repeating: 0, count: n)
                edge_f16_widen(all, &y, n)
                let bad = (0 ..< n).filter { i in
                    expected[i].isNaN ? !(y[i].isNaN && y[i].sign == expected[i].sign) : y[i].bitPattern != expected[i].bitPattern
                }
                XCTAssertTrue(bad.isEmpty, "\(level) n \(n): \(bad.count) differ, first pattern \(bad.first.map { String(all[$0], radix: 16) } ?? "")")
            }
        }
        XCTAssertTrue(ran.contains("ref"))
    }

    /// Floats narrow as `edge_f32_to_f16` does (round to nearest even, subnormals, overflow to Inf,
    /// NaN quieted), at every level, in vectors and in tails.
    func testNarrowMatchesScalar() {
        var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e9, .infinity, -.infinity, .nan,
                               Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345),
                               6.1035156e-05, 6.1035156e-05 * 0.999, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08,
                               8.940697e-08, 1.0009765625, 1.00048828125, 1.00146484375, 2049, 2051, -2051, 3.4e38]
        var rng = TestRNG(seed: 12)
        for _ in 0 ..< 4000 { values.append(rng.floats(1, -70000, 70000)[0]) }
        for _ in 0 ..< 4000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }  // every kind
        for e in -30 ... 16 { values.append(Float(sign: .plus, exponent: e, significand: 1.3)) }
        let expected = values.map { edge_f32_to_f16($0) }
        var ref = [UInt16](repeating: 0, count: values.count)
        edge_f16_narrow_ref(values, &ref, values.count)
        XCTAssertEqual(ref, expected)
        forEachKernelLevel { level in
            for n in [values.count, 21, 5] {
                var y = [UInt16](repeating: 0xABCD, count: n)
                edge_f16_narrow(values, &y, n)
                let bad = zip(y, expected.prefix(n)).enumerated().filter { $0.element.0 != $0.element.1 }
                XCTAssertTrue(bad.isEmpty, "\(level) n \(n): \(bad.count) differ, first: \(bad.first.map { "\(values[$0.offset]) -> \($0.element.0) not \($0.element.1)" } ?? "")")
            }
        }
    }

    /// `edge_vecmat_f16` is `edge_vecmat_f32` on the widened values, bit for bit, at every level.
    func testVecmatF16IsVecmatF32OnWidenedValues() {
        var rng = TestRNG(seed: 47)
        for d in [1, 7, 8, 31, 32, 33, 64, 100] {
            for n in [1, 2, 37, 300] {
                let ldv = d + 3
                let x = rng.floats(n, 0, 1)
                var v = [UInt16](repeating: 0, count: n * ldv)
                edge_f16_narrow_ref(rng.floats(n * ldv, -2, 2), &v, n * ldv)
                var wide = [Float](repeating: 0, count: n * ldv)
                edge_f16_widen_ref(v, &wide, n * ldv)
                var expected = [Float](repeating: .nan, count: d)
                edge_vecmat_f32_ref(x, wide, ldv, &expected, n, d)
                var ref = [Float](repeating: .nan, count: d)
                edge_vecmat_f16_ref(x, v, ldv, &ref, n, d)
                XCTAssertEqual(ref.map(\.bitPattern), expected.map(\.bitPattern), "d \(d) n \(n)")
                forEachKernelLevel { level in
                    var y = [Float](repeating: .nan, count: d)
                    edge_vecmat_f16(x, v, ldv, &y, n, d)
                    XCTAssertEqual(y.map(\.bitPattern), expected.map(\.bitPattern), "\(level) d \(d) n \(n)")
                }
            }
        }
    }
}
