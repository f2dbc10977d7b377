import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// The BERT / WordPiece side of `Tokenizer`, against Hugging Face `tokenizers` on the trimmed
/// all-MiniLM-L6-v2 tokenizer (Fixtures/tokenizer-reference/wordpiece*.json, written by
/// scripts/tokenizer_reference.py).
final class WordPieceTokenizerTests: XCTestCase {
    private static let path = "tokenizer-reference/wordpiece-tokenizer.json"

    private func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: fixturesFolder.appendingPathComponent(relative)))
    }

    private func loadJSON(_ relative: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes(relative))) as? [String: Any], relative)
    }

    private func int32s(_ any: Any?) -> [Int32] {
        ((any as? [Any]) ?? []).compactMap { ($0 as? Int).map(Int32.init) }
    }

    /// Equal id lists, or a failure naming the first differing position.
    private func assertIDs(_ got: [Int32], _ want: [Int32], _ what: String, line: UInt = #line) {
        guard got != want else { return }
        let i = zip(got, want).prefix { $0 == $1 }.count
        XCTFail("\(what): \(got.count) ids vs \(want.count) expected; first difference at \(i): "
                + "\(got[i..<min(got.count, i + 8)]) vs \(want[i..<min(want.count, i + 8)])", line: line)
    }

    func testReferenceCases() throws {
        try checkReference(try loadJSON("tokenizer-reference/wordpiece.json"), fixtures: true)
    }

    /// The same checks for a reference written by `scripts/tokenizer_reference.py --minilm PATH
    /// --full-wordpiece-reference OUT` (the full 30522-token vocabulary), when the environment
    /// variable EDGE_WORDPIECE_REFERENCE names OUT; skipped otherwise.
    func testFullVocabularyReferenceIfGiven() throws {
        guard let path = ProcessInfo.processInfo.environment["EDGE_WORDPIECE_REFERENCE"] else {
            throw XCTSkip("EDGE_WORDPIECE_REFERENCE is not set")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try checkReference(try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any]), fixtures: false)
    }

    /// - Parameter fixtures: `tokenizer_json` is relative to Fixtures/ (else an absolute path).
    private func checkReference(_ doc: [String: Any], fixtures: Bool) throws {
        let json = try XCTUnwrap(doc["tokenizer_json"] as? String)
        let tok = try Tokenizer(json: fixtures ? try bytes(json) : [UInt8](Data(contentsOf: URL(fileURLWithPath: json))))
        XCTAssertEqual(tok.kind, .wordPiece)
        let cases = try XCTUnwrap(doc["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, fixtures ? 30 : 0)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let what = text.prefix(60).debugDescription
            let ids = int32s(c["ids"])
            let got = tok.encode(text)
            assertIDs(got, ids, what)
            assertIDs(tok.encodeWithSpecialTokens(text), int32s(c["ids_with_special"]), "\(what) with special tokens")
            XCTAssertEqual(ids.map { tok.token($0) }, try XCTUnwrap(c["tokens"] as? [String]), what)
            let decoded = try XCTUnwrap(c["decoded"] as? String)
            XCTAssertEqual(Array(tok.decode(ids).utf8), Array(decoded.utf8), "decode \(what)")
        }
        for c in try XCTUnwrap(doc["decode_cases"] as? [[String: Any]]) {
            let ids = int32s(c["ids"])
            XCTAssertEqual(tok.decode(ids), try XCTUnwrap(c["decoded"] as? String), "decode \(ids)")
            XCTAssertEqual(tok.decode(ids, skipSpecialTokens: true), try XCTUnwrap(c["decoded_skip"] as? String),
                           "decode \(ids) skipping special tokens")
        }
        let files = try XCTUnwrap(doc["files"] as? [[String: Any]])
        XCTAssertEqual(files.count, fixtures ? 1 : files.count)
        for f in files {
            let path = try XCTUnwrap(f["path"] as? String)
            let text = try String(contentsOf: fixturesFolder.appendingPathComponent(path), encoding: .utf8)
            let want = int32s(f["ids"])
            XCTAssertGreaterThan(want.count, 5000)
            assertIDs(tok.encode(text), want, path)
        }
    }

    func testSpecialTokensAndLookups() throws {
        let tok = try Tokenizer(json: try bytes(Self.path))
        XCTAssertEqual(tok.vocabularySize, 3618)
        XCTAssertNil(tok.bosTokenID, "[CLS] is not a BOS")
        XCTAssertEqual(tok.specialTokenPrefix, [2])
        XCTAssertEqual(tok.specialTokenSuffix, [3])
        XCTAssertEqual(tok.tokenID("[CLS]"), 2)
        XCTAssertEqual(tok.tokenID("[UNK]"), 1)
        XCTAssertEqual(tok.token(4), "[MASK]")
        XCTAssertNotNil(tok.tokenID("##s"))
        XCTAssertNil(tok.tokenID("not a token"))
        XCTAssertTrue(tok.isSpecial(0))
        XCTAssertTrue(tok.isSpecial(2))
        XCTAssertFalse(tok.isSpecial(tok.tokenID("the")!))
        XCTAssertEqual(tok.encodeWithSpecialTokens(""), [2, 3])
        let ids = tok.encodeWithSpecialTokens("Hello, World!")
        XCTAssertEqual(ids, [2] + tok.encode("hello, world!") + [3])
        XCTAssertEqual(tok.decode(ids), "[CLS] hello, world! [SEP]")
        XCTAssertEqual(tok.decode(ids, skipSpecialTokens: true), "hello, world!")
        XCTAssertEqual(tok.decode([-1, 99_999] + ids.dropFirst()), "hello, world! [SEP]")
        XCTAssertEqual(tok.decodeBytes(tok.tokenID("##s")!), Array("##s".utf8))
        // Truncation and padding blocks are not applied.
        XCTAssertEqual(tok.encode(String(repeating: "the ", count: 300)).count, 300)

        // BertProcessing names cls and sep directly.
        var doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes(Self.path))) as? [String: Any])
        doc["post_processor"] = ["type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]]
        let bert = try Tokenizer(json: [UInt8](JSONSerialization.data(withJSONObject: doc)))
        XCTAssertEqual(bert.encodeWithSpecialTokens("the"), [2, tok.tokenID("the")!, 3])
        doc["post_processor"] = NSNull()
        let none = try Tokenizer(json: [UInt8](JSONSerialization.data(withJSONObject: doc)))
        XCTAssertEqual(none.encodeWithSpecialTokens("the"), none.encode("the"))
    }

    /// encodeWithSpecialTokens on byte-level BPE documents: a BOS-only template gives [bos] + ids.
    func testBytePairsSpecialTokens() throws {
        let llama3 = try Tokenizer(json: try bytes("tokenizer-reference/tiny-llama3-tokenizer.json"))
        XCTAssertEqual(llama3.kind, .bytePairs)
        XCTAssertEqual(llama3.specialTokenPrefix, [1])
        XCTAssertEqual(llama3.specialTokenSuffix, [])
        XCTAssertEqual(llama3.encodeWithSpecialTokens("Hello"), [1] + llama3.encode("Hello"))
        let plain = try Tokenizer(json: try bytes("tiny-llama/tokenizer.json"))
        XCTAssertEqual(plain.encodeWithSpecialTokens("Hello"), plain.encode("Hello"))
    }

    /// A small WordPiece document with one part replaced.
    private func document(_ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
        var doc: [String: Any] = [
            "added_tokens": [["id": 0, "content": "[UNK]", "special": true, "normalized": false]],
            "normalizer": ["type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": NSNull(), "lowercase": true] as [String: Any],
            "pre_tokenizer": ["type": "BertPreTokenizer"],
            "decoder": ["type": "WordPiece", "prefix": "##", "cleanup": true] as [String: Any],
            "model": ["type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 6,
                      "vocab": ["[UNK]": 0, "un": 1, "##able": 2, "##a": 3, "able": 4, "a": 5, ".": 6]] as [String: Any],
        ]
        edit(&doc)
        return [UInt8](try JSONSerialization.data(withJSONObject: doc))
    }

    private func assertRefused(_ message: String, line: UInt = #line, _ edit: (inout [String: Any]) -> Void) throws {
        assertTokenizerRefuses(try document(edit), message, line: line)
    }

    func testMinimalDocument() throws {
        let tok = try Tokenizer(json: try document { _ in })
        // Longest match first; "unablea" has 7 > 6 characters; "ab" cannot be cut.
        XCTAssertEqual(tok.encode("Unable. UNA able ab unablea"), [1, 2, 6, 1, 3, 4, 0, 0])
        XCTAssertEqual(tok.decode([1, 2, 6, 4, 3]), "unable. ablea")
        XCTAssertEqual(tok.vocabularySize, 7)
        XCTAssertNil(tok.bosTokenID)
        XCTAssertEqual(tok.specialTokenPrefix, [])
        // A document without a decoder joins tokens with spaces.
        let bare = try Tokenizer(json: try document { $0["decoder"] = NSNull() })
        XCTAssertEqual(bare.decode([1, 2, 6]), "un ##able .")
    }

    func testRefusedByField() throws {
        try assertRefused("tokenizer.json: normalizer.type 'Lowercase' is not supported") {
            $0["normalizer"] = ["type": "Lowercase"]
        }
        try assertRefused("tokenizer.json: normalizer.type 'Unknown' is not supported") {
            $0["normalizer"] = ["type": "Unknown"]
        }
        try assertRefused("tokenizer.json: missing field 'model.vocab'") {
            $0["model"] = ["type": "WordPiece", "unk_token": "[UNK]"]
        }
        try assertRefused("tokenizer.json: model.unk_token: \"<unk>\" is not in the vocabulary") {
            $0["model"] = ["type": "WordPiece", "unk_token": "<unk>", "vocab": ["a": 0]] as [String: Any]
        }
        try assertRefused("tokenizer.json: pre_tokenizer.type 'Whitespace' is not supported") {
            $0["pre_tokenizer"] = ["type": "Whitespace"]
        }
        try assertRefused("tokenizer.json: missing field 'pre_tokenizer'") { $0["pre_tokenizer"] = nil }
        try assertRefused("tokenizer.json: decoder.type 'ByteLevel' is not supported") {
            $0["decoder"] = ["type": "ByteLevel"]
        }
        try assertRefused("tokenizer.json: field 'model.max_input_chars_per_word' should be a non-negative integer") {
            $0["model"] = ["type": "WordPiece", "vocab": ["[UNK]": 0], "max_input_chars_per_word": "many"] as [String: Any]
        }
        try assertRefused("tokenizer.json: post_processor.type 'Magic' is not supported") {
            $0["post_processor"] = ["type": "Magic"]
        }
        try assertRefused("tokenizer.json: post_processor: id 9 is not a token of this tokenizer") {
            $0["post_processor"] = ["type": "BertProcessing", "sep": ["[SEP]", 9], "cls": ["[UNK]", 0]]
        }
        try assertRefused("tokenizer.json: post_processor.single[0].SpecialToken.id: \"[CLS]\" is not in special_tokens") {
            $0["post_processor"] = ["type": "TemplateProcessing",
                                    "single": [["SpecialToken": ["id": "[CLS]", "type_id": 0]],
                                               ["Sequence": ["id": "A", "type_id": 0]]],
                                    "special_tokens": [String: Any]()] as [String: Any]
        }
    }

    /// Long texts stay fast: one 100 KB line of words and one 100 KB word.
    func testLongInputs() throws {
        let tok = try Tokenizer(json: try bytes(Self.path))
        let words = String(repeating: "Tokenization of sentences, quickly! ", count: 3000)
        XCTAssertGreaterThan(tok.encode(words).count, 3000 * 6)
        XCTAssertEqual(tok.encode(String(repeating: "x", count: 100_000)), [1])
    }
}
