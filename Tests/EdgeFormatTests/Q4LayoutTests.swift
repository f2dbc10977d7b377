@testable import EdgeFormat
import Foundation
import XCTest

/// The 4-bit grouped encoding (`q4`): hostile payloads refused in one line naming the tensor, the
/// same read checks as q3's (Q3LayoutTests). Its layout bytes are the worked example's (EdgeGoldenTests).
final class Q4LayoutTests: XCTestCase {
    typealias S = EdgeTestSupport

    private func problem(_ t: EncodedTensor) -> String? {
        t.payload.withUnsafeBytes { groupedPayloadProblem($0, encoding: .q4, shape: t.shape, params: t.params) }
    }

    /// The q4 layout of a tensor entry (for `S.assertPayloadEditsRefused`).
    private func layoutOf(_ e: TensorEntry) throws -> Q4Layout {
        guard case let .q4(l)? = PayloadLayout(encoding: e.encoding, shape: e.shape, params: e.params) else { throw XCTSkip("not q4") }
        return l
    }

    func testHostilePayloadsAreRefusedNamingTheTensor() throws {
        let dir = try S.scratchFolder(self)
        let path = dir + "/h.edge"
        // 9 columns in groups of 4: 3 groups per row, the last one short; 36 bits a row, 5 bytes, bits 36...39 padding.
        let samples = [S.q4("a.q4.asym", rows: 3, cols: 9, groupSize: 4, symmetric: false, seed: 1),
                       S.q4("b.q4.sym", rows: 2, cols: 9, groupSize: 4, symmetric: true, seed: 2)]
        for s in samples { XCTAssertNil(problem(s.tensor), s.tensor.name) }
        try S.write(samples, to: path, deflate: false)
        XCTAssertEqual(try EdgeFile(path: path).preamble.version, 1)
        let original = try S.bytes(path)
        let cases: [(String, String, (inout [UInt8], Q4Layout) -> Void)] = [
            ("a.q4.asym", "q4 row 1 group 1: zero point 16 is outside 0...15", { p, l in p[l.zeroOffset + 4] = 16 }),
            ("a.q4.asym", "zero point 255", { p, l in p[l.zeroOffset] = 255 }),
            ("a.q4.asym", "not finite", { p, l in p[l.scaleOffset + 2] = 0x00; p[l.scaleOffset + 3] = 0x7C }),  // +Inf
            ("b.q4.sym", "not finite", { p, l in p[l.scaleOffset + 6] = 0x00; p[l.scaleOffset + 7] = 0xFC }),   // -Inf
            ("b.q4.sym", "q4 row 1 group 0: scale 0xfe01 is not finite", { p, l in p[l.scaleOffset + 6] = 0x01; p[l.scaleOffset + 7] = 0xFE }),  // NaN
            ("b.q4.sym", "q4 row 1: padding bits 36...39", { p, l in p[2 * l.rowBytes - 1] |= 0x10 }),
            ("a.q4.asym", "q4 row 0: padding bits 36...39", { p, l in p[l.rowBytes - 1] |= 0x80 }),
        ]
        try S.assertPayloadEditsRefused(original, path, layout: layoutOf, cases)
        // The writer checks the payload too; a deflated one is read back.
        let packedPath = dir + "/hz.edge"
        let zeros = EncodedTensor.q4(name: "z", rows: 64, cols: 64, groupSize: 64, u: .init(repeating: 8, count: 4096),
                                     scales: .init(repeating: 1, count: 64), zeros: .init(repeating: 15, count: 64))
        var badZeros = zeros
        badZeros.payload[Q4Layout(rows: 64, cols: 64, groupSize: 64, symmetric: false).zeroOffset + 5] = 17
        let w = try EdgeWriter(path: packedPath, config: S.config, provenance: S.provenance, deflate: true)
        XCTAssertThrowsError(try w.add(badZeros), "the writer checks the structure too") {
            guard case let .badTensor(_, "z", "payload", why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("row 5 group 0: zero point 17"), why)
        }
        let infinite = EncodedTensor.q4(name: "inf", rows: 1, cols: 4, groupSize: 4, u: [8, 8, 8, 8], scales: [.infinity], zeros: nil)
        XCTAssertThrowsError(try w.add(infinite)) {
            guard case let .badTensor(_, "inf", "payload", why)? = $0 as? EdgeFormatError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("scale 0x7c00 is not finite"), why)
        }
        try w.add(zeros)
        try w.finish()
        let f = try EdgeFile(path: packedPath)
        XCTAssertEqual(f.entry(named: "z")?.compression, .deflate)
        XCTAssertEqual(try f.floats(of: f.entry(named: "z")!), .init(repeating: -7, count: 4096))
    }

    /// Random byte flips anywhere in a payload are refused or decoded, never a crash.
    func testRandomCorruptionNeverTraps() {
        let s = S.q4("w", rows: 6, cols: 37, groupSize: 16, symmetric: false, seed: 5)
        var r = S.Rand(17)
        var refused = 0
        for _ in 0 ..< 300 {
            var t = s.tensor
            t.payload[Int(r.next() % UInt64(t.payload.count))] ^= UInt8(1 + r.next() % 255)
            if problem(t) != nil { refused += 1; continue }
            XCTAssertEqual(S.decoded(t).count, 6 * 37)
        }
        XCTAssertGreaterThan(refused, 0)
    }
}
