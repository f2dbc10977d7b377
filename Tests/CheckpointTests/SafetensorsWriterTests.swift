@testable import Checkpoint
import EdgeFormat
import Foundation
import XCTest

final class SafetensorsWriterTests: XCTestCase {
    /// The exact bytes of a small file: sorted keys, compact JSON, space padding to 8, data in name order.
    func testGoldenBytes() throws {
        let dir = try HFTest.tempDir()
        let path = dir.appendingPathComponent("g.safetensors").path
        let tensors = [SafetensorsWriter.Tensor(name: "b", dtype: .f16, shape: [2]),
                       SafetensorsWriter.Tensor(name: "a", dtype: .f32, shape: [1, 1])]
        try SafetensorsWriter.write(to: path, tensors: tensors, metadata: ["format": "pt"]) { t in
            t.name == "a" ? [0.5] : [1, -2]
        }
        let json = #"{"__metadata__":{"format":"pt"},"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1,1]},"b":{"data_offsets":[4,8],"dtype":"F16","shape":[2]}}"#
        let padded = json + String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
        let expected = HFTest.file(header: padded, data: [0x00, 0x00, 0x00, 0x3F] + [0x00, 0x3C, 0x00, 0xC0])
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), expected)
    }

    /// Header length is a multiple of 8 for every name length, and the data starts right after it.
    func testHeaderPaddingOverNameLengths() throws {
        let dir = try HFTest.tempDir()
        for n in [1, 2, 3, 5, 7, 8, 9, 15, 17, 31, 33] {
            let path = dir.appendingPathComponent("p\(n).safetensors").path
            let name = String(repeating: "x", count: n)
            try SafetensorsWriter.write(to: path, tensors: [.init(name: name, dtype: .f32, shape: [3])]) { _ in [1, 2, 3] }
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let headerLength = bytes[0 ..< 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            XCTAssertEqual(headerLength % 8, 0, "name length \(n)")
            XCTAssertEqual(bytes.count, 8 + headerLength + 12)
            let st = try SafetensorsFile(path: path)
            XCTAssertEqual(try st.floats(st.entry(name)!), [1, 2, 3])
        }
    }

    /// Write then read: F32 exact, F16 and BF16 equal to round-to-nearest-even, over odd sizes and special values.
    func testRoundTripEachDType() throws {
        let dir = try HFTest.tempDir()
        for count in [1, 2, 3, 5, 7, 15, 17, 33] {
            var values = (0 ..< count).map { Float(sin(Double($0) * 1.7)) * Float(1 << ($0 % 12)) }
            values[0] = count % 2 == 0 ? -0.0 : 6.0e-8  // a signed zero / an f16 subnormal
            let tensors = SafetensorsDType.allCases.filter(\.isReadable).map {
                SafetensorsWriter.Tensor(name: "t_\($0.rawValue)", dtype: $0, shape: [count])
            }
            let path = dir.appendingPathComponent("r\(count).safetensors").path
            try SafetensorsWriter.write(to: path, tensors: tensors) { _ in values }
            let st = try SafetensorsFile(path: path)
            XCTAssertEqual(try st.floats(st.entry("t_F32")!).map(\.bitPattern), values.map(\.bitPattern))
            XCTAssertEqual(try st.floats(st.entry("t_F16")!), values.map { Float(Float16($0)) })
            XCTAssertEqual(try st.floats(st.entry("t_BF16")!), values.map(Self.bf16))
        }
    }

    /// float -> bfloat16 -> float, round to nearest even (finite inputs).
    static func bf16(_ x: Float) -> Float {
        let b = x.bitPattern
        return Float(bitPattern: (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000)
    }

    /// Same tensors given in any order give identical bytes; values are asked for once each, in name order.
    func testDeterministicAndStreamedInNameOrder() throws {
        let dir = try HFTest.tempDir()
        let names = ["model.norm.weight", "lm_head.weight", "model.layers.10.x", "model.layers.2.x", "A"]
        var asked: [String] = []
        var files: [Data] = []
        for (i, order) in [names, names.reversed(), names.shuffled()].enumerated() {
            asked = []
            let path = dir.appendingPathComponent("d\(i).safetensors").path
            try SafetensorsWriter.write(to: path, tensors: order.map { .init(name: $0, dtype: .f32, shape: [2]) }) { t in
                asked.append(t.name)
                return [Float(t.name.count), 1]
            }
            files.append(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        XCTAssertEqual(files[0], files[1])
        XCTAssertEqual(files[0], files[2])
        XCTAssertEqual(asked, names.sorted())
    }

    /// A wrong value count, a duplicate name and an f16 overflow each fail and leave no file behind.
    func testFailuresLeaveNothing() throws {
        let dir = try HFTest.tempDir()
        let path = dir.appendingPathComponent("x.safetensors").path
        XCTAssertThrowsError(try SafetensorsWriter.write(to: path, tensors: [.init(name: "a", dtype: .f32, shape: [2, 2])]) { _ in [1, 2, 3] }) {
            XCTAssertTrue("\($0)".contains("got 3 values for shape [2, 2]"), "\($0)")
        }
        XCTAssertThrowsError(try SafetensorsWriter.write(to: path, tensors: [.init(name: "a", dtype: .f32, shape: [1]),
                                                                              .init(name: "a", dtype: .f32, shape: [1])]) { _ in [1] })
        XCTAssertThrowsError(try SafetensorsWriter.write(to: path, tensors: [.init(name: "h", dtype: .f16, shape: [3])]) { _ in [1, 70000, 2] }) {
            XCTAssertTrue("\($0)".contains("tensor 'h': value 70000.0 at index 1 overflows F16"), "\($0)")
        }
        XCTAssertThrowsError(try SafetensorsWriter.write(to: path, tensors: [.init(name: "i", dtype: .i64, shape: [1])]) { _ in [1] })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
