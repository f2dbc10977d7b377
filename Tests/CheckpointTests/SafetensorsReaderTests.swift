@testable import Checkpoint
import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// Helpers shared by the safetensors / Hugging Face tests.
enum HFTest {
    /// The package's `Fixtures/` folder.
    static var fixtures: URL { fixturesFolder }

    /// A fresh empty folder under the temporary directory.
    static func tempDir() throws -> URL { try makeTemporaryFolder(prefix: "hf-test") }

    /// A safetensors file: `headerLength` (default: the header's length) as u64 LE, the header, the data.
    static func file(header: String, data: [UInt8], headerLength: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out += $0 }
        return out + h + data
    }

    /// Little-endian bytes of float32 values.
    static func f32(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    /// Writes `bytes` to `name` in `dir` and returns the path.
    @discardableResult
    static func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try writeBytes(bytes, to: path)
        return path
    }

    /// Writes the safetensors bytes to a temporary file and opens it.
    static func open(_ bytes: [UInt8]) throws -> SafetensorsFile {
        try SafetensorsFile(path: try write(bytes, "t.safetensors", in: try tempDir()))
    }

    /// Asserts `body` throws a `CheckpointError` whose one-line description contains every string of `parts`.
    static func assertError<T>(_ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("expected an error containing \(parts)", file: file, line: line)
        } catch {
            let text = "\(error)"
            XCTAssertTrue(error is CheckpointError || error is FormatError, "unexpected error type: \(type(of: error)) \(text)", file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "error is not one line: \(text)", file: file, line: line)
            for p in parts {
                XCTAssertTrue(text.contains(p), "'\(text)' does not contain '\(p)'", file: file, line: line)
            }
        }
    }
}

final class SafetensorsReaderTests: XCTestCase {
    /// Three tensors of the three readable types, in an order different from the header's.
    func testReadsF32F16BF16AndMetadata() throws {
        let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00]  // 1, -2, smallest subnormal
        let bf16: [UInt8] = [0x80, 0x3F, 0x49, 0x40]  // 1, 3.140625
        let header = #"{"b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},"# +
            #""a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},"# +
            #""c":{"dtype":"BF16","shape":[2],"data_offsets":[14,18]},"__metadata__":{"format":"pt"}}"#
        let st = try HFTest.open(HFTest.file(header: header, data: HFTest.f32([1.5, -0.25]) + f16 + bf16))
        XCTAssertEqual(st.metadata, ["format": "pt"])
        XCTAssertEqual(st.entries.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(st.entry("a")?.shape, [2, 1])
        XCTAssertEqual(st.entry("b")?.offset, 8 + header.utf8.count + 8)
        XCTAssertEqual(try st.floats(st.entry("a")!), [1.5, -0.25])
        XCTAssertEqual(try st.floats(st.entry("b")!), [1, -2, Float(bitPattern: 0x3380_0000)])  // 2^-24
        XCTAssertEqual(try st.floats(st.entry("c")!), [1, 3.140625])
        XCTAssertNil(st.entry("d"))
    }

    func testEmptyHeaderAndZeroSizedTensor() throws {
        XCTAssertEqual(try HFTest.open(HFTest.file(header: "{}", data: [])).entries.count, 0)
        let st = try HFTest.open(HFTest.file(header: #"{"z":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}}"#, data: []))
        XCTAssertEqual(try st.floats(st.entry("z")!), [])
    }

    func testPaddedHeaderIsAccepted() throws {
        let st = try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}     "#, data: HFTest.f32([7])))
        XCTAssertEqual(try st.floats(st.entry("a")!), [7])
    }

    func testFileShorterThanLengthField() {
        HFTest.assertError(["t.safetensors", "5 bytes"]) { try HFTest.open([1, 2, 3, 4, 5]) }
    }

    func testHeaderLengthLargerThanFile() {
        HFTest.assertError(["header length 1000", "exceeds the 10 bytes"]) {
            try HFTest.open(HFTest.file(header: "{}", data: [0, 0, 0, 0, 0, 0, 0, 0], headerLength: 1000))
        }
    }

    func testHeaderLengthOver100MBClaim() {
        HFTest.assertError(["header length 100000001", "limit of 100000000"]) {
            try HFTest.open(HFTest.file(header: "{}", data: [], headerLength: 100_000_001))
        }
        HFTest.assertError(["header length 18446744073709551615"]) {
            try HFTest.open(HFTest.file(header: "{}", data: [], headerLength: UInt64.max))
        }
    }

    func testInvalidJSON() {
        HFTest.assertError(["malformed header", "not valid JSON"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32",}"#, data: []))
        }
        HFTest.assertError(["does not start with '{'"]) { try HFTest.open(HFTest.file(header: "[1]", data: [])) }
        HFTest.assertError(["not valid JSON"]) { try HFTest.open(HFTest.file(header: "{\u{FF}}", data: [])) }
        HFTest.assertError(["duplicate key"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                                        data: HFTest.f32([1])))
        }
    }

    func testBadTensorDescriptions() {
        HFTest.assertError(["tensor 'a'", "'dtype' is missing"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, data: HFTest.f32([1])))
        }
        HFTest.assertError(["tensor 'a'", "'shape'"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, data: HFTest.f32([1])))
        }
        HFTest.assertError(["tensor 'a'", "'data_offsets' must hold integers", "1.5"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1.5]}}"#, data: HFTest.f32([1])))
        }
        HFTest.assertError(["tensor 'a'", "'data_offsets' has 3 values"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, data: HFTest.f32([1])))
        }
        HFTest.assertError(["__metadata__ entry 'n' is a number"]) {
            try HFTest.open(HFTest.file(header: #"{"__metadata__":{"n":1}}"#, data: []))
        }
    }

    func testNegativeDimension() {
        HFTest.assertError(["tensor 'w'", "shape [2, -1]", "negative dimension (-1)"]) {
            try HFTest.open(HFTest.file(header: #"{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]}}"#, data: []))
        }
    }

    func testElementCountOverflow() {
        HFTest.assertError(["tensor 'w'", "overflows"]) {
            try HFTest.open(HFTest.file(header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                                        data: HFTest.f32([1])))
        }
    }

    func testByteLengthDisagreesWithDTypeTimesCount() {
        HFTest.assertError(["tensor 'w'", "data_offsets [0, 8] span 8 bytes", "F32 x shape [3] needs 12"]) {
            try HFTest.open(HFTest.file(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: HFTest.f32([1, 2])))
        }
        HFTest.assertError(["tensor 'w'", "[8, 4]"]) {
            try HFTest.open(HFTest.file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: HFTest.f32([1, 2])))
        }
    }

    func testOffsetsOutsideBuffer() {
        HFTest.assertError(["tensor 'w'", "data_offsets [0, 16]", "outside the data buffer (8 bytes, at file offset 63)"]) {
            try HFTest.open(HFTest.file(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: HFTest.f32([1, 2])))
        }
    }

    func testOverlappingTensors() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        HFTest.assertError(["tensor 'b'", "[4, 12] overlap", "'a' ends at 8"]) {
            try HFTest.open(HFTest.file(header: header, data: HFTest.f32([1, 2, 3])))
        }
    }

    func testGapBetweenTensors() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        HFTest.assertError(["tensor 'b'", "gap of 4 bytes", "'a' ends at 4"]) {
            try HFTest.open(HFTest.file(header: header, data: HFTest.f32([1, 2, 3])))
        }
        HFTest.assertError(["tensor 'a'", "gap of 4 bytes", "buffer starts at 0"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: HFTest.f32([1, 2])))
        }
    }

    func testTrailingBytes() {
        HFTest.assertError(["tensor 'a'", "3 trailing bytes"]) {
            try HFTest.open(HFTest.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: HFTest.f32([1]) + [9, 9, 9]))
        }
        HFTest.assertError(["2 trailing bytes"]) { try HFTest.open(HFTest.file(header: "{}", data: [0, 0])) }
    }

    func testUnknownDTypeIsNamed() throws {
        HFTest.assertError(["tensor 'w'", "unsupported dtype Q4"]) {
            try HFTest.open(HFTest.file(header: #"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, data: [0]))
        }
        // A known but non-float type opens (offsets validated with its size) and is refused when read.
        let st = try HFTest.open(HFTest.file(header: #"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 16)))
        XCTAssertEqual(st.entry("ids")?.byteCount, 16)
        HFTest.assertError(["tensor 'ids'", "unsupported dtype I64"]) { try st.floats(st.entry("ids")!) }
    }

    /// Every truncation and many single-byte corruptions of a valid file: never a crash, always a clear error or a valid parse.
    func testTruncatedAndCorruptedFilesNeverTrap() throws {
        let header = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}}"#
        let good = HFTest.file(header: header, data: [UInt8](repeating: 0x3C, count: 8) + HFTest.f32([1, 2, 3]))
        let dir = try HFTest.tempDir()
        for n in 0 ..< good.count {
            let path = try HFTest.write(Array(good[..<n]), "cut.safetensors", in: dir)
            XCTAssertThrowsError(try SafetensorsFile(path: path), "truncated to \(n) bytes")
        }
        for i in 0 ..< good.count {
            for v: UInt8 in [0x7B, 0xFF] where good[i] != v {
                var bad = good
                bad[i] = v
                let path = try HFTest.write(bad, "flip.safetensors", in: dir)
                if let st = try? SafetensorsFile(path: path) {
                    for e in st.entries { _ = try? st.floats(e) }
                }
            }
        }
    }
}
