@testable import EdgeFormat
import Foundation
import XCTest

/// The worked example of docs/edge-format.md, byte for byte: if the writer's output changes,
/// this test fails and the spec's example must be updated with it (and the change must be one
/// the versioning policy allows).
final class EdgeGoldenTests: XCTestCase {
    static let config = ModelConfig(architecture: .llama, vocabSize: 4, hiddenSize: 4, numLayers: 1, numHeads: 1, numKVHeads: 1,
                                    headDim: 4, intermediateSize: 4, maxPositions: 8, normEps: 1e-5, ropeTheta: 10000,
                                    tiedEmbeddings: true, activation: "silu", bosTokenID: nil, eosTokenID: nil)

    static let header = #"{"blobs":[],"config":{"activation":"silu","architecture":"llama","head_dim":4,"hidden_size":4,"intermediate_size":4,"max_positions":8,"norm_eps":1e-05,"num_heads":1,"num_kv_heads":1,"num_layers":1,"rope_theta":10000,"tied_embeddings":true,"vocab_size":4},"format":"edge","provenance":{"metrics":{},"passes":[],"recipe":{},"source_format":"safetensors","source_sha256":"0000000000000000000000000000000000000000000000000000000000000000","toolchain":"edgecompress 0.1.0"},"tensors":[{"compression":"none","crc32":1465678709,"encoding":"f32","length":16,"name":"output_norm.weight","offset":64,"shape":[4]},{"compression":"none","crc32":30009106,"encoding":"q8","length":72,"name":"blk.0.attn_q.weight","offset":128,"params":{"symmetric":true},"shape":[2,3]},{"compression":"none","crc32":214048917,"encoding":"q4","length":132,"name":"blk.0.ffn_up.weight","offset":256,"params":{"group_size":2,"symmetric":false},"shape":[2,3]}],"version":1}"#

    static func hex(_ s: String) -> [UInt8] {
        let digits = s.filter(\.isHexDigit)
        return stride(from: 0, to: digits.count, by: 2).map {
            let i = digits.index(digits.startIndex, offsetBy: $0)
            return UInt8(digits[i ... digits.index(after: i)], radix: 16)!
        }
    }

    func testWorkedExampleFromTheSpec() throws {
        let dir = try EdgeTestSupport.scratchFolder(self)
        let path = dir + "/example.edge"
        let w = try EdgeWriter(path: path, config: Self.config,
                               provenance: Provenance(sourceSHA256: String(repeating: "0", count: 64), sourceFormat: "safetensors"))
        try w.add(.f32(name: "output_norm.weight", shape: [4], values: [1, 0.5, -2, 0]))
        try w.add(.q8(name: "blk.0.attn_q.weight", rows: 2, cols: 3, q: [0x01, 0x02, 0xFF, 0x81, 0x00, 0x7F], scales: [0.5, 0.25], zeros: nil))
        try w.add(.q4(name: "blk.0.ffn_up.weight", rows: 2, cols: 3, groupSize: 2, u: [0, 1, 15, 8, 9, 10],
                      scales: [1, 0.5, 2, 0.25], zeros: [8, 0, 3, 15]))
        try w.finish()
        let b = try EdgeTestSupport.bytes(path)
        XCTAssertEqual(b.count, 1386)

        func at(_ offset: Int, _ hex: String, _ what: String) {
            let want = Self.hex(hex)
            XCTAssertEqual(Array(b[offset ..< offset + want.count]), want, what)
        }
        at(0x00, "45 44 47 45 0d 0a 1a 0a 01 00 00 00 00 00 00 00", "magic, version 1, flags 0")
        at(0x10, "c0 01 00 00 00 00 00 00 aa 03 00 00 00 00 00 00", "header_offset 448, header_length 938")
        at(0x20, "c6 cb 09 1b" + String(repeating: " 00", count: 28), "header_crc32 0x1b09cbc6, reserved")
        at(0x40, "00 00 80 3f 00 00 00 3f 00 00 00 c0 00 00 00 00", "f32 [1, 0.5, -2, 0]")
        at(0x80, "01 02 ff 81 00 7f", "q8 values")
        at(0xC0, "00 00 00 3f 00 00 80 3e", "q8 f32 scales 0.5, 0.25")
        at(0x100, "10 0f 98 0a", "q4 nibbles: rows [0,1,15] and [8,9,10]")
        at(0x140, "00 3c 00 38 00 40 00 34", "q4 f16 scales 1, 0.5, 2, 0.25")
        at(0x180, "08 00 03 0f", "q4 zero points")
        XCTAssertEqual(String(decoding: b[448...], as: UTF8.self), Self.header)
        // Everything not listed above is padding.
        let listed: [Range<Int>] = [0 ..< 36, 0x40 ..< 0x50, 0x80 ..< 0x86, 0xC0 ..< 0xC8, 0x100 ..< 0x104, 0x140 ..< 0x148, 0x180 ..< 0x184, 448 ..< b.count]
        for i in 0 ..< b.count where !listed.contains(where: { $0.contains(i) }) { XCTAssertEqual(b[i], 0, "byte \(i)") }

        let f = try EdgeFile(path: path)
        XCTAssertEqual(try f.floats(of: f.entry(named: "blk.0.attn_q.weight")!), [0.5, 1, -0.5, -31.75, 0, 31.75])
        XCTAssertEqual(try f.floats(of: f.entry(named: "blk.0.ffn_up.weight")!), [-8, -7, 7.5, 10, 12, -1.25])
    }
}
