@testable import EdgeFormat
import Foundation
import XCTest

final class JSONValueTests: XCTestCase {
    func testParsesEveryKindAndEscapes() throws {
        let v = try JSONValue.parse(Array(#" {"a":[1,-2.5e3,true,false,null],"s":"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","o":{}} "#.utf8))
        XCTAssertEqual(v, ["a": [1, -2500, true, false, nil], "s": "x\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}", "o": [:]])
        XCTAssertEqual(v["a"]?[1]?.doubleValue, -2500)
        XCTAssertEqual(v["a"]?[0]?.intValue, 1)
        XCTAssertNil(v["a"]?[1]?.stringValue)
        XCTAssertNil(v["a"]?[9])
        XCTAssertEqual(v["o"]?.objectValue, [:])
    }

    func testRefusesWhatRFC8259Refuses() {
        let bad: [(String, String)] = [
            ("", "end of input"), ("{\"a\":1,}", "string key"), ("[1,]", "unexpected character"), ("01", "leading zero"),
            ("1.", "after '.'"), ("1e", "exponent"), ("-", "digit"), ("NaN", "unexpected character"), ("\"a", "unterminated"),
            ("\"\u{01}\"", "control character"), ("\"\\x\"", "unknown escape"), ("\"\\ud800\"", "surrogate"),
            ("{\"a\":1,\"a\":2}", "duplicate key \"a\""), ("{} {}", "after the JSON value"), ("1e400", "out of range"),
            (String(repeating: "[", count: 200), "nesting deeper"), ("tru", "expected 'true'"),
        ]
        for (text, reason) in bad {
            XCTAssertThrowsError(try JSONValue.parse(Array(text.utf8)), text) {
                XCTAssertTrue("\($0)".contains(reason), "\(text): \($0)")
            }
        }
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xC3, 0x28, 0x22])) { XCTAssertTrue("\($0)".contains("UTF-8")) }
        XCTAssertEqual((try? JSONValue.parse(Array("{\"a\":1,\"a\":2}".utf8))) ?? nil, nil)
        XCTAssertThrowsError(try JSONValue.parse(Array("[1 2]".utf8))) { XCTAssertEqual(($0 as? JSONParseError)?.offset, 3) }
    }

    func testSerializationIsSortedCompactAndRoundTrips() throws {
        let v: JSONValue = ["b": [1.5, "x/y"], "a": ["z": nil, "y": false], "c": 3]
        let text = String(decoding: try v.jsonBytes(), as: UTF8.self)
        XCTAssertEqual(text, #"{"a":{"y":false,"z":null},"b":[1.5,"x/y"],"c":3}"#)
        XCTAssertEqual(try JSONValue.parse(v.jsonBytes()), v)
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: Data(v.jsonBytes())), v)
        XCTAssertThrowsError(try JSONValue.number(.nan).jsonBytes())
        XCTAssertEqual(JSONValue.number(.nan).compactString, "null")
    }

    /// `JSONValue(encoding:)` then `jsonBytes()` / `prettyText()` give the bytes Foundation's
    /// `JSONEncoder` gives for the same value (sorted keys, slashes unescaped), which they replace
    /// in the runtime; a non-finite number is refused naming its path.
    func testEncoderAndWriterMatchFoundationsJSONEncoder() throws {
        struct Sample: Encodable {
            var int = 42, negative = -7, big: Int64 = 9_007_199_254_740_992, byte: UInt8 = 255
            var float: Float = 0.1, eps: Float = 1e-5, large: Float = 3.4e38, double = 2.5, tiny = 1e-7, huge = 1e300, zero = -0.0
            var text = "a/b \"q\" \\ \n\t\r\u{8}\u{c}\u{1}\u{1f} é 😀 \u{7f} \u{2028}"
            var missing: Int? = nil, present: Bool? = true
            var empty: [Double] = [], nested: [[String: [Int]]] = [["k": []], [:], ["k": [1, 2]]]
            var keys: [String: Int] = ["a10": 1, "a9": 2, "B": 3, "a": 4, "_x": 5, "Ä": 6, "": 7, "a-b": 8, "ab": 9]
            var tree: JSONValue = ["x": [1, "y", nil, false], "w": [:]]
        }
        let compact = JSONEncoder(), pretty = JSONEncoder()
        compact.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        pretty.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let mine = try JSONValue(encoding: Sample())
        XCTAssertEqual(String(decoding: try mine.jsonBytes(), as: UTF8.self), String(decoding: try compact.encode(Sample()), as: UTF8.self))
        XCTAssertEqual(mine.prettyText(), String(decoding: try pretty.encode(Sample()), as: UTF8.self))
        XCTAssertEqual(try JSONValue.parse(compact.encode(Sample()).map { $0 }), mine, "the tree is what parsing JSONEncoder's bytes gives")
        for bad in [Double.nan, .infinity] {
            XCTAssertThrowsError(try JSONValue(encoding: ["m": ["ok": [1, bad]]])) { error in
                guard case let EncodingError.invalidValue(_, c)? = error as? EncodingError else { return XCTFail("\(error)") }
                XCTAssertEqual(c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }, ["m", "ok", "1"])
            }
            XCTAssertThrowsError(try JSONValue.object(["m": [1, .number(bad)]]).jsonBytes()) { error in
                guard case let EncodingError.invalidValue(_, c)? = error as? EncodingError else { return XCTFail("\(error)") }
                XCTAssertEqual(c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }, ["m", "1"])
            }
        }
    }

    func testDecodeNamesTheFieldAndRangeChecksNumbers() throws {
        struct Inner: Codable, Equatable { var n: UInt8; var f: Float? }
        struct Outer: Codable, Equatable { var items: [Inner]; var name: String }
        let ok: JSONValue = ["items": [["n": 255, "f": 0.5], ["n": 0]], "name": "x"]
        XCTAssertEqual(try ok.decode(Outer.self), Outer(items: [Inner(n: 255, f: 0.5), Inner(n: 0, f: nil)], name: "x"))
        XCTAssertEqual(try JSONValue(encoding: Outer(items: [Inner(n: 1, f: nil)], name: "y")), ["items": [["n": 1]], "name": "y"])
        let cases: [(JSONValue, String, String)] = [
            (["items": [["n": 256]], "name": "x"], "items[0].n", "not an integer"),
            (["items": [["n": 1.5]], "name": "x"], "items[0].n", "not an integer"),
            (["items": [["n": 1], ["f": 1]], "name": "x"], "items[1].n", "missing"),
            (["items": [["n": "1"]], "name": "x"], "items[0].n", "expected a number, found a string"),
            (["items": [], "name": nil], "name", "null"),
            (["items": 3, "name": "x"], "items", "expected an array"),
        ]
        for (value, field, why) in cases {
            XCTAssertThrowsError(try value.decode(Outer.self)) {
                guard let e = $0 as? DecodingError else { return XCTFail("\($0)") }
                let d = JSONValue.describe(e)
                XCTAssertEqual(d.field, field)
                XCTAssertTrue(d.why.contains(why), "\(field): \(d.why)")
            }
        }
    }
}
