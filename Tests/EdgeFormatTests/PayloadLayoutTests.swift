import EdgeFormat
import Foundation
import XCTest

/// `PayloadLayout`: every encoding parameter resolved in one place, and the one decoder the format
/// and the runtime share.
final class PayloadLayoutTests: XCTestCase {
    /// Every encoding and variant (and the csr/bitmask packings of the dense matrices): the layout's
    /// size is the payload's, `decode` gives the values an independent dequantizer computes, and
    /// `decodeRow` gives each row of it.
    func testDecodeMatchesTheSpecForEveryEncoding() throws {
        var samples = EdgeTestSupport.everyEncoding()
        for s in samples where s.tensor.canPackSparse {
            for target in [Encoding.csr, .bitmask] {
                if let p = s.tensor.packedSparse(as: target) { samples.append(.init(tensor: p, values: s.values)) }
            }
        }
        XCTAssertTrue(samples.contains { $0.tensor.encoding == .csr } && samples.contains { $0.tensor.encoding == .bitmask })
        for s in samples {
            let t = s.tensor
            let layout = try XCTUnwrap(t.layout, t.name)
            XCTAssertEqual(layout.encoding, t.encoding, t.name)
            XCTAssertEqual(layout.totalBytes, t.payload.count, t.name)
            XCTAssertEqual(layout.rows * layout.cols, s.values.count, t.name)
            t.payload.withUnsafeBytes { p in
                XCTAssertEqual(layout.decode(p), s.values, t.name)
                XCTAssertEqual(decodePayload(p, encoding: t.encoding, shape: t.shape, params: t.params), s.values, "\(t.name): nnz read from row_ptr")
                var row = [Float](repeating: .nan, count: layout.cols)
                for r in 0 ..< layout.rows {
                    row.withUnsafeMutableBufferPointer { layout.decodeRow(r, p, into: $0.baseAddress!) }
                    XCTAssertEqual(row, Array(s.values[r * layout.cols ..< (r + 1) * layout.cols]), "\(t.name) row \(r)")
                }
            }
        }
    }

    /// No default is guessed: a parameter the encoding needs and the table lacks refuses the layout.
    func testMissingParametersAreRefusedNotGuessed() {
        XCTAssertNil(PayloadLayout(encoding: .q8, shape: [2, 3], params: .init()))
        XCTAssertNil(PayloadLayout(encoding: .q4, shape: [2, 8], params: .init(symmetric: true)))
        XCTAssertNil(PayloadLayout(encoding: .q4, shape: [2, 8], params: .init(groupSize: 4)))
        XCTAssertNil(PayloadLayout(encoding: .q4, shape: [2, 8], params: .init(symmetric: true, groupSize: 3)), "odd group")
        XCTAssertNil(PayloadLayout(encoding: .q8, shape: [6], params: .init(symmetric: true)), "q8 needs a matrix")
        XCTAssertNil(PayloadLayout(encoding: .q3, shape: [2, 8], params: .init(symmetric: true)))
        XCTAssertNil(PayloadLayout(encoding: .q3, shape: [2, 8], params: .init(groupSize: 8)))
        XCTAssertNil(PayloadLayout(encoding: .q3, shape: [2, 8], params: .init(symmetric: true, groupSize: 4)), "not a multiple of 8")
        XCTAssertNil(PayloadLayout(encoding: .q3, shape: [2, 8], params: .init(symmetric: true, groupSize: 12)), "not a multiple of 8")
        XCTAssertNil(PayloadLayout(encoding: .q3, shape: [16], params: .init(symmetric: true, groupSize: 8)), "q3 needs a matrix")
        XCTAssertEqual(PayloadLayout(encoding: .q3, shape: [3, 21], params: .init(symmetric: false, groupSize: 8)),
                       .q3(Q3Layout(rows: 3, cols: 21, groupSize: 8, symmetric: false)))
        let csr = EncodingParams(valueEncoding: .f32, indexWidth: 8)
        XCTAssertNil(PayloadLayout(encoding: .csr, shape: [2, 3], params: csr), "sparse needs nnz")
        XCTAssertNil(PayloadLayout(encoding: .csr, shape: [2, 3], params: csr, nnz: 7), "nnz above the element count")
        XCTAssertNil(PayloadLayout(encoding: .bitmask, shape: [2, 3], params: .init(symmetric: true, valueEncoding: .f32), nnz: 2),
                     "symmetric only with q8 values")
        XCTAssertNil(PayloadLayout(encoding: .nm, shape: [2, 8], params: .init(valueEncoding: .q8, n: 2, m: 4)), "q8 values need symmetric")
        XCTAssertEqual(PayloadLayout(encoding: .q8, shape: [2, 3], params: .init(symmetric: false)),
                       .q8(Q8Layout(rows: 2, cols: 3, symmetric: false)))
        XCTAssertEqual(PayloadLayout(encoding: .f16, shape: [4, 2, 3], params: .init()), .f16(rows: 4, cols: 6))
        XCTAssertEqual(PayloadLayout(encoding: .f32, shape: [], params: .init())?.totalBytes, 4, "a scalar")
        XCTAssertEqual(expectedPayloadBytes(encoding: .q4, shape: [3, 9], params: .init(symmetric: true, groupSize: 4)),
                       Q4Layout(rows: 3, cols: 9, groupSize: 4, symmetric: true).totalBytes)
    }

    /// An opened file resolves each tensor's layout once; `floats(of:)` decodes through it.
    func testEdgeFileResolvesLayoutsAtValidation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("payloadlayout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let samples = EdgeTestSupport.everyEncoding()
        for deflate in [false, true] {
            let path = dir.appendingPathComponent("all-\(deflate).edge").path
            try EdgeTestSupport.write(samples, to: path, deflate: deflate)
            let f = try EdgeFile(path: path)
            for s in samples {
                let e = try XCTUnwrap(f.entry(named: s.tensor.name))
                XCTAssertEqual(try f.layout(of: e), s.tensor.layout, s.tensor.name)
                XCTAssertEqual(try f.floats(of: e), s.values, s.tensor.name)
            }
        }
    }
}
