@testable import EdgeFormat
import Foundation
import XCTest

final class DeflateTests: XCTestCase {
    func testCRC32KnownValues() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)  // the CRC-32/ISO-HDLC check value
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
        // Continuing over pieces equals the checksum of the whole.
        let all = Array("hello, edge".utf8)
        let first = all[..<5].withUnsafeBytes { CRC32.checksum($0) }
        XCTAssertEqual(all[5...].withUnsafeBytes { CRC32.checksum($0, continuing: first) }, CRC32.checksum(all))
    }

    func testRoundTripOverSizes() throws {
        for n in [0, 1, 2, 3, 17, 64, 1000, 65537] {
            let bytes = (0 ..< n).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) }
            let packed = try bytes.withUnsafeBytes { try Deflate.compress($0) }
            XCTAssertEqual(packed.first, 0x78, "zlib header (RFC 1950, 32K window)")
            var out = [UInt8](repeating: 0xAA, count: n)
            try packed.withUnsafeBytes { src in try out.withUnsafeMutableBytes { try Deflate.decompress(src, into: $0) } }
            XCTAssertEqual(out, bytes, "n \(n)")
        }
    }

    func testDecompressRefusesWrongSizesCorruptionAndTrailingBytes() throws {
        let bytes = [UInt8](repeating: 5, count: 300)
        let packed = try bytes.withUnsafeBytes { try Deflate.compress($0) }
        func inflate(_ src: [UInt8], _ size: Int) throws {
            var out = [UInt8](repeating: 0, count: size)
            try src.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try Deflate.decompress(s, into: $0) } }
        }
        XCTAssertNoThrow(try inflate(packed, 300))
        XCTAssertThrowsError(try inflate(packed, 299)) { XCTAssertTrue("\($0)".contains("299"), "\($0)") }
        XCTAssertThrowsError(try inflate(packed, 301)) { XCTAssertTrue("\($0)".contains("301"), "\($0)") }
        XCTAssertThrowsError(try inflate(packed + [0], 300)) { XCTAssertTrue("\($0)".contains("follow the end"), "\($0)") }
        XCTAssertThrowsError(try inflate(Array(packed.dropLast()), 300))
        var flipped = packed
        flipped[flipped.count - 1] ^= 1  // Adler-32 trailer
        XCTAssertThrowsError(try inflate(flipped, 300)) { XCTAssertTrue("\($0)".contains("corrupt"), "\($0)") }
    }
}
