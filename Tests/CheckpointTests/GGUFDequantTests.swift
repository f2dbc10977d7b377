@testable import Checkpoint
import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// Dequantizers against values produced by gguf-py (`gguf.quants.dequantize`, numpy float32),
/// compared bit for bit: the arithmetic follows ggml's reference order, so results must be identical.
final class GGUFDequantTests: XCTestCase {
    private static func hex(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        func nib(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        return stride(from: 0, to: u.count - 1, by: 2).map { nib(u[$0]) << 4 | nib(u[$0 + 1]) }
    }

    private static func run(_ type: GGMLType, _ raw: [UInt8]) -> [Float] {
        let n = raw.count / type.typeSize * type.blockSize
        var out = [Float](repeating: .nan, count: n)
        raw.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { GGUFDequant.dequantize(type, src, into: $0) } }
        return out
    }

    private func assertBitEqual(_ got: [Float], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (i, (g, w)) in zip(got, want).enumerated() where g.bitPattern != w.bitPattern && !(g.isNaN && w.isNaN) {
            XCTFail("\(what)[\(i)]: got \(g), want \(w)", file: file, line: line)
            return
        }
    }

    /// Fixtures/gguf-vectors/<TYPE>.json: raw block bytes and gguf-py's values.
    func testFixtureVectors() throws {
        let dir = fixturesFolder.appendingPathComponent("gguf-vectors")
        let names = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"]
        for name in names {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(name + ".json"))) as? [String: Any])
            let type = try XCTUnwrap(GGMLType(rawValue: UInt32(XCTUnwrap(obj["ggml_type"] as? Int))))
            XCTAssertEqual(type.name, name)
            XCTAssertEqual(type.blockSize, obj["block_size"] as? Int)
            XCTAssertEqual(type.typeSize, obj["type_size"] as? Int)
            let raw = Self.hex(try XCTUnwrap(obj["raw_hex"] as? String))
            let want = try XCTUnwrap(obj["values"] as? [Double]).map(Float.init)  // float32 values printed exactly
            assertBitEqual(Self.run(type, raw), want, name)
        }
    }

    /// Types without a fixture file. Generated once with gguf 0.19 / numpy (seed 7): Q5_0 and Q5_1
    /// quantized from N(0, 1) data by `gguf.quants.quantize`; Q2_K, Q3_K, Q5_K random bytes with f16
    /// d/dmin in [5e-4, 4e-3]; values = `gguf.quants.dequantize(raw)` as little-endian float32 hex.
    private static let extraVectors: [String: (String, String)] = [
        "Q5_0": ("0931c3dc803170d24e8a4dfa80291dfc03d2011a60d400b0db2449a95806a8a6f0b925b11fbf4a5fe54cf99f",
          "000000000020a13e0020a1be00b071bf00b0f1be00b071bf000000000044b53f00b0f1be002021bf00b0f13e0020a13e0020213e00b071bf000000000020213f0044b5bf00b0f1be00b0f1bf0020a1bf00b0f1bf002021be0020a1bf0020a13e0020213e002021be002021c000b0f1be000000000020213e0068c9bf00b0f1be000080bf000040bf0000803f000040bf000000800000603f000020bf000000be0000003e0000003e0000a0bf0000003e0000b03f0000c0bf0000603f0000003e000020bf000000400000403f0000a0bf0000003e0000203f000080be0000203f000000be0000203f0000c03f000020bf0000803e000000bf0000003e000090bf"),
        "Q5_1": ("422ff8bf4e8e5cefecf0591c068b17e0cd711d78ffbe2f7f843042c0c2ccd0a186f2f3811d99600f09bbe1137e2e0453",
          "00a021bf000036be00c8573f0070973f00e8a7bf00a83ebf00b81d3f0000ffbf009804bf00c083bd00f4a53f00c03a3f001095be0020cfbe001095be00fcc23f0020cfbe001095be0050c73e00c083bd000036be00e08abf00c083bd0020cfbe0070973f00b81d3f00c083bd00b81d3f001095be00ec883f0000493d00b81d3f0020a4bf0080d23e0050dabf0070febf00c096be00e05bbf0000043e00b80f4000e05bbf00a013bf00408a3e00600d3f00001dbe00001dbe0080313f00600d3f000080bf000048bc000048bc000080bf00408a3e00e05bbf00c0793f0000043e0000043e00a013bf00001dbe0070febf001092bf0080d23e004008c000a0553f"),
        "Q2_K": ("d7fb1065837b97585cae654f2c42b8f27265d7ddd7eec5923eb486fc6bb30e571a96372332a38245e6a7dc162ddcb8f3d54a0f38ee52c9719952c3338026fbfa0adf76282c4bf9838c2557f3b7246b85591a3019",
          "00702b3c000838bc00ba033d000838bc00ba033d00702b3c000838bc00702b3c00702b3c00e006bd00702b3c00e006bd00ba033d00ba033d00702b3c00ba033d0058f73c0058f73c00a9833d00a9833d0058f73c00a9833d0058f73c00a07fbb0058f73c00a9833d00a01bbd0058f73c00a07fbb00a01bbd00a01bbd00a9833d000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb000026bb0068813c00009d3900009d39000079bc000079bc000079bc000079bc00009d3900009d3900009d39002e003d00009d39002e003d002e003d0068813c000079bc0010fa3b0080daba00a833bc00a833bc00a833bc0080daba0000a6bc00a833bc0010fa3b0010fa3b0000a6bc0010fa3b0080daba0010fa3b0000a6bc00a833bc000c863c000c863c0029ad3d00ac4e3d0029ad3d00ac4e3d004091bc004091bc00ac4e3d00ac4e3d000c863c000c863c00ac4e3d000c863c0029ad3d0029ad3d004090ba004090ba003a2d3d003a2d3d003a2d3d003a2d3d003a2d3d00b8a83c00c0babc00b8a83c00b8a83c003a2d3d004090ba00b8a83c00c0babc004090ba00804fbc0040173d00804fbc00804fbc00804fbc0040173d0040173d00c0463c00d07c3d0040173d00d07c3d00804fbc00804fbc00d07c3d0040173d00d07c3d00f0c83c00d07c3d0094ca3d00804fbc00d07c3d00d07c3d00f0c83c00f0c83c00f0c83c00d07c3d0094ca3d0094ca3d00804fbc00d07c3d0094ca3d00d07c3d00b87b3d00bad63d00b87b3d0080cfbc0080cfbc00bad63d00f8933c00bad63d0080cfbc00f8933c00bad63d00bad63d00bad63d0080cfbc00bad63d00f8933c00009d390068813c002e003d0068813c002e003d000079bc0068813c000079bc0068813c000079bc000079bc000079bc000079bc00009d390068813c0068813c00aea93d8072043e00ee143d00aea93d8072043e00aea93d00aea93d000026bc8072043e00ee143d00ee143d000026bc00ee143d00ee143d00aea93d00ee143d0098033d0000a6bb0000a6bb0024da3d00f88d3d0098033d0000a6bb0024da3d0098033d0098033d0000a6bb0024da3d0000a6bb00f88d3d0024da3d0024da3d000026bc00e080bb00b00a3c0080143b0080143b000026bc00b00a3c000026bc000026bc0080143b00e080bb00b00a3c00b00a3c0080143b0080143b000026bc00903e3d000049bb0040e4bc0040e4bc00903e3d000049bb00903e3d000049bb0000b23c000049bb00903e3d0040e4bc0000b23c0040e4bc00903e3d00903e3d00a01bbd00e89ebc003c02bd00a01bbd00a01bbd003c02bd00e89ebc00b0d1bc00b0d1bc00a01bbd003c02bd00e89ebc00b0d1bc00a01bbd003c02bd00b0d1bc"),
        "Q3_K": ("04ae83e55fc3d3d4e1e6386dbe5b1df267ebd0e0f0a3d85f5fa461698f35e2b6b9f839ecdb83b5184e549711f50a853f3b46146e3201a92959ecfe84886a928a82af70f39304ebbe937c4140821f57c9e09458ce1d9b09ae70372dad1acf5c4f1bf192b701b682225ceb2ea1d116",
          "80b7d63d00250f3e00250fbd0000008080b7d6bd80b7d6bd00250fbd00250f3e00258fbd00250f3e00250f3d00250fbd80b7d63d00258fbd00250fbd00250f3d80d1ad3d00c2673d00c2e7bd00c267bd00c267bd00c2e73c80d1adbd00c2e73c00c2e73c00c2e7bd00c2673d000000000000000000c2673d00c267bd00c267bd0020dabb0020da3b0020da3b00205abb0020da3b0000000000205a3b0020dabb00205abb00205a3b009823bc00205abc00205a3b0020da3b009823bc0098233c0064f5bc006475bc000b383d0064753c0064753d000000800064f53c0064f5bc0064f5bc0064753c0064753c000b383d0064f5bc0064f53c000000800064f5bc80d1ad3d80d1ad3d00c2e7bc00c2673d00c2e73c00c2e7bd00c2e7bc00c2e73c00c2e7bd00c2e73c80d1adbd00c2e73c80d1ad3d00c2e7bd0000000000c2e7bc0064f53c009823bd0064f5bc0098a3bc009823bc009823bd0098a3bc0098a33c0098233c0098a33c009823bc009823bd000000000098a33c0064f5bc00000000006475bd000bb83d0064f5bd0064f5bc000bb83d006475bd006475bd0064f5bd000bb8bd000bb8bd0064753d00000000000bb83d000000000064753d0064f5bd007e4c3e007e4cbd007e4c3e805e193e007e4c3e007e4c3e007eccbd00000080007e4cbd007e4c3d007e4c3d007eccbd007eccbd805e193e007ecc3d007ecc3d007e4c3d007ecc3c007ecc3d007ecc3c805e99bd007ecc3d805e99bd007e4cbd007ecc3c007ecc3d007eccbc007ecc3d007e4cbd805e99bd805e99bd007eccbc007eccbd007eccbd00000000007e4cbd007ecc3c007eccbc007ecc3c007e4c3d00000000007eccbc805e99bd805e99bd007e4cbd805e993d007eccbd805e993d006475bd000b383d006475bd00000000006475bd000b38bd0064f5bc006475bc00000000000b383d000000000000000000000000006475bc000b38bd0064f53c0000000000f6953c00f615bd00f1603d00f1603d00f6153d00f615bd00f695bc00f695bd00f6953c00f1603d00f1603d00f615bd00f1603d00f1603d00f1603d0020da3d00205a3d0020da3c0098a3bd0020dabc0000008000205abd0098a3bd0020dabc0098a3bd0020da3d000000800020da3d0020dabc0098a33d00000080000bb83d000b383d000b383d00000000000b383d40080abe00000000000bb83d40080a3e000b38bd000bb83d000bb83d40080abe000b38be000b383d000b38be0098a33d0098a3bd009823bd0064f5bd0098a33d000000800064f5bd0098a3bd0098a3bd009823bd0064f53d0064f53d0098a3bd0098233e0064f53d0064f5bd00205abb0020da3b00205a3b0098233c000000000020da3b000000000020dabb009823bc0000000000205abc0020dabb0000000000205abb00205a3b00205a3b"),
        "Q5_K": ("5813921b8b53769e1763f565d2e329bb4b06f233bc2f422be3f0fa0cdd682f78c6268136c5d5ae4ceedf5bea752175d0b84d15d704b6df97679fc61c2a4527bf1f43919a9622a5e8199fac7ab4b3532c86443d981aafc374303fc6a86bd92e60843c814ee9b10320c6161bf6355049c1e34a41772dc9023cb637cba025aa8269e52e9ea289eb1d172060132f2a6828bc7b69d60faba177ada22a5969596dd200d37997c3cacb25b30760b2d073813de5",
          "00491b3e00d8303d004812bd0030113e00ac3abd0017073e00d0803d0030113e0030113e00d0803d00c8d3bc0074083d007b2f3e004812bd0030113e00d0803d00d0803d001063bd0034a93d00b05e3c0017073e0066bd3d004812bd00e0c8bb0080743b00f8613e00ad433e00b05e3c00cae53d0098d13d0098d13d0074083d0038a93e0059583e0006243e00a9ba3e007b04be0038a93e00a9ba3e00c7973e003b7b3e00f0c33c80f0b13e0014e6bd0032c3bd00dc7abd0077353e00806d3d0006243e0059583e00f0c33c00c7973e00f0c33c0032c3bd807fa03e0066df3d0006243e00c7973e807fa03e0056863e00806d3d00806d3d001835bd0032c3bd009ec13dc0b2453f80e6dd3e00f3433ee006883f2002a73f009c4fbd004015bb009d48be40bc073f009ec13dc044773f20398e3f0085753ee0cfa03f009d48bec0b2453f606b943f000b17bee0cfa03fa0d4813f4085203f404e393fc020143fc07b5e3fc07b5e3f8054ac3e009ec13d4017523f009d48bea0d4813f000b17bec038023f0028efbc00bc65bd009ad73d800ea43ec0fd0f3f006b3e3e80acf63e00bc65bd00bc65bdc0c21d3fc0fd0f3f80e7e83e40a5243f80d3b13e80e7e83e0086a03d00bc65bd0086a03d0028efbc007f753e00e1223e8049963e80d3b13ec0c21d3f800ea43e800ea43e406a323f00bc65bd00c016bb0028efbc006b3e3e00b4313d8073833e80b0f03e4029273f40fa553f00b1673e0070533c80a9a23e000f0a3e4029273f405f463f00d444bd408e173f8073833e0070533c40c4363f00b2d53d80dfc13e80dfc13ec025003f00b1673e405f463f8044b23e0045293e00d444bd8015e13e40f3073f807ad13ec0913e3f007b483ec0f62e3fc02c4e3f00a0023e00282fbd00466b3e80cc8f3e0064483e0067bb3e001ce3bd00d5593e80aeb23e00d5593e0067bb3e0070733d00589dbd00f6a93e0085983e0014873e00a0023e0064483e00ac2d3d00f6a93e00d0cf3c00a0023e00f3363e003ac0bd0064483e00800ebc003ac0bd0064483e0064483e0014873e0064483e009a9c3d802fd73e00488a3c00d09d3e00fb1a3e00bc7c3d004f26be8049a93e002ada3d00d45f3e00b6cb3e803cc03e00488a3c803cc03e8022ee3e005c0fbe00ee313e00c7763e00488a3c00e8e4bc00d2f0bd00b6cb3e802fd73e000695bd00c7763e8049a93e00ee313e00d45f3e00ee313e00c7763e004f26be8022ee3e8056923e001c2e3e00a3063e4050823f0066ccbdc005673f8043923e001c2e3e8043923ec005673fc013183f80ae353f00a3063e80ae353f00a3063e0079cd3e0066ccbd4050823f001c2e3e80275d3f80bcb93e40c27a3f40c27a3fc013183f0000a63e4057043fc08c3f3f0000a63e4050823f001c2e3e0095553e00c0813c603f873f")
    ]

    func testExtraTypeVectors() throws {
        for (name, (rawHex, valuesHex)) in Self.extraVectors.sorted(by: { $0.key < $1.key }) {
            let type = try XCTUnwrap(GGMLType.allCases.first { $0.name == name })
            let vb = Self.hex(valuesHex)
            let want = stride(from: 0, to: vb.count, by: 4).map {
                Float(bitPattern: UInt32(vb[$0]) | UInt32(vb[$0 + 1]) << 8 | UInt32(vb[$0 + 2]) << 16 | UInt32(vb[$0 + 3]) << 24)
            }
            assertBitEqual(Self.run(type, Self.hex(rawHex)), want, name)
        }
    }

    /// Q8_K (gguf-py has no dequantizer for it): f32 d, i8 qs[256], i16 bsums[16]; x = d * q.
    func testQ8K() {
        var raw = GGUFBuilder.le(Float(0.5).bitPattern)
        raw += (0 ..< 256).map { UInt8(bitPattern: Int8(truncatingIfNeeded: $0 - 128)) }
        raw += [UInt8](repeating: 0xAB, count: 32)
        XCTAssertEqual(raw.count, GGMLType.q8_K.typeSize)
        XCTAssertEqual(Self.run(.q8_K, raw), (0 ..< 256).map { Float($0 - 128) * 0.5 })
    }

    func testF32AndF64() {
        let v: [Float] = [0, -0.0, 1.5, -3e38, .infinity, .leastNonzeroMagnitude]
        XCTAssertEqual(Self.run(.f32, GGUFBuilder.f32s(v)).map(\.bitPattern), v.map(\.bitPattern))
        let d: [Double] = [0.25, -1e300, 3]
        XCTAssertEqual(Self.run(.f64, d.flatMap { GGUFBuilder.le($0.bitPattern) }), [0.25, -.infinity, 3])
    }

    /// A row range of a quantized tensor dequantizes to the same values as that slice of the whole
    /// tensor, for every supported block type and several row counts.
    func testRowRangesMatchWholeTensor() throws {
        for type in GGMLType.allCases where GGUFDequant.supports(type) {
            for rows in [1, 2, 3, 5] {
                let cols = 2 * max(type.blockSize, 2)
                var bytes = [UInt8](repeating: 0, count: rows * cols / type.blockSize * type.typeSize)
                var s: UInt32 = 12345
                for i in bytes.indices { s = s &* 1_103_515_245 &+ 12345; bytes[i] = UInt8(truncatingIfNeeded: s >> 16) }
                // Keep the half-precision scales finite: clear the exponent's top bit of every u16 / f32 field.
                for i in stride(from: 1, to: bytes.count, by: 2) { bytes[i] &= 0x3F }
                var b = GGUFBuilder()
                b.tensors = [GGUFBuilder.Tensor(name: "t", ne: [Int64(cols), Int64(rows)], type: type.rawValue, data: bytes)]
                let g = try GGUFFile(path: GGUFBuilder.writeTemp(b.bytes()))
                let t = g.tensors[0]
                let all = try g.floats(t)
                XCTAssertEqual(all.count, rows * cols)
                for lo in 0 ..< rows {
                    for hi in lo ... rows {
                        XCTAssertEqual(try g.floats(t, rows: lo ..< hi).map(\.bitPattern),
                                       all[lo * cols ..< hi * cols].map(\.bitPattern), "\(type.name) rows \(lo)..<\(hi)")
                    }
                }
            }
        }
    }
}
