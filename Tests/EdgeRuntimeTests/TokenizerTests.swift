import EdgeRuntime
import Foundation
import TestSupport
import XCTest

private func loadJSON(_ relative: String) throws -> [String: Any] {
    let data = try Data(contentsOf: fixturesFolder.appendingPathComponent(relative))
    return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], relative)
}

private let smolLM2Path = "tokenizer-reference/smollm2-tokenizer.json"

/// SmolLM2's tokenizer, read once for all tests (49152 tokens).
private let smolLM2 = Result { try Tokenizer(json: [UInt8](Data(contentsOf: fixturesFolder.appendingPathComponent(smolLM2Path)))) }

private func loadTokenizer(_ relative: String) throws -> Tokenizer {
    if relative == smolLM2Path { return try smolLM2.get() }
    return try Tokenizer(json: [UInt8](Data(contentsOf: fixturesFolder.appendingPathComponent(relative))))
}

/// Asserts that reading `json` fails with a `TokenizerError` whose one line is exactly `message`.
func assertTokenizerRefuses(_ json: @autoclosure () throws -> [UInt8], _ message: String, line: UInt = #line) {
    XCTAssertThrowsError(try Tokenizer(json: try json()), line: line) { error in
        XCTAssertTrue(error is TokenizerError, line: line)
        XCTAssertEqual("\(error)", message, line: line)
    }
}

private func int32s(_ any: Any?) -> [Int32] {
    ((any as? [Any]) ?? []).compactMap { ($0 as? Int).map(Int32.init) }
}

/// Equal id lists, or a failure naming the first differing position.
private func assertIDs(_ got: [Int32], _ want: [Int32], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    guard got != want else { return }
    let i = zip(got, want).prefix { $0 == $1 }.count
    XCTFail("\(what): \(got.count) ids vs \(want.count) expected; first difference at \(i): "
            + "\(got[i..<min(got.count, i + 8)]) vs \(want[i..<min(want.count, i + 8)])", file: file, line: line)
}

final class TokenizerTests: XCTestCase {
    // MARK: ids against Hugging Face `tokenizers`

    /// Fixtures/tokenizer-ids.json from the fixture generator: both tiny tokenizers.
    func testFixtureSentencesMatchHuggingFace() throws {
        let doc = try loadJSON("tokenizer-ids.json")
        let all = try XCTUnwrap(doc["tokenizers"] as? [String: Any])
        XCTAssertEqual(Set(all.keys), ["gpt2", "smollm"])
        for (name, value) in all {
            let entry = try XCTUnwrap(value as? [String: Any])
            let tok = try loadTokenizer(try XCTUnwrap(entry["tokenizer_json"] as? String))
            let cases = try XCTUnwrap(entry["cases"] as? [[String: Any]])
            XCTAssertGreaterThan(cases.count, 5)
            for c in cases {
                let text = try XCTUnwrap(c["text"] as? String)
                let ids = int32s(c["ids"])
                assertIDs(tok.encode(text), ids, "\(name) \(text.debugDescription)")
                XCTAssertEqual(Array(tok.decode(ids).utf8), Array(try XCTUnwrap(c["decoded"] as? String).utf8), name)
                let tokens = try XCTUnwrap(c["tokens"] as? [String])
                XCTAssertEqual(ids.map { tok.token($0) }, tokens, name)
            }
        }
    }

    func testTinyGPT2Reference() throws { try checkReference("tiny-gpt2") }
    func testTinyLlamaReference() throws { try checkReference("tiny-llama") }
    /// Llama-3's Split regex (NSRegularExpression), ignore_merges, "a b" merges.
    func testTinyLlama3Reference() throws { try checkReference("tiny-llama3") }
    /// NFC, Digits(individual_digits: false), MergedWithPrevious, add_prefix_space, lstrip/rstrip/single_word/normalized added tokens.
    func testTinyMixedReference() throws { try checkReference("tiny-mixed") }
    /// MergedWithNext, Contiguous with invert, Removed, literal patterns.
    func testTinySplitReference() throws { try checkReference("tiny-split") }
    /// unk_token with fuse_unk for bytes missing from the vocabulary.
    func testMicroUnkReference() throws { try checkReference("micro-unk") }
    /// The real SmolLM2-135M tokenizer (49152 tokens, 48900 merges), rebuilt from its GGUF.
    func testSmolLM2Reference() throws { try checkReference("smollm2") }

    /// Compares with Fixtures/tokenizer-reference/<name>.json (scripts/tokenizer_reference.py):
    /// ids of tricky strings and of the whole US Constitution, decoded text, lossy decoding of
    /// id sequences that cut characters, and decode(encode(s)) == s wherever HF round-trips.
    private func checkReference(_ name: String) throws {
        let doc = try loadJSON("tokenizer-reference/\(name).json")
        let tok = try loadTokenizer(try XCTUnwrap(doc["tokenizer_json"] as? String))
        let cases = try XCTUnwrap(doc["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 30)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = int32s(c["ids"])
            let got = tok.encode(text)
            assertIDs(got, ids, "\(name) \(text.prefix(60).debugDescription)")
            let decoded = try XCTUnwrap(c["decoded"] as? String)
            XCTAssertEqual(Array(tok.decode(got).utf8), Array(decoded.utf8), "\(name) decode \(text.debugDescription)")
            if decoded == text {  // byte-exact compare below; Swift's == is canonical equivalence
                XCTAssertEqual(Array(tok.decode(got).utf8), Array(text.utf8), "\(name) round trip")
            }
        }
        for c in try XCTUnwrap(doc["decode_cases"] as? [[String: Any]]) {
            let ids = int32s(c["ids"])
            XCTAssertEqual(Array(tok.decode(ids).utf8), Array(try XCTUnwrap(c["decoded"] as? String).utf8),
                           "\(name) decode \(ids)")
        }
        let files = try XCTUnwrap(doc["files"] as? [[String: Any]])
        XCTAssertEqual(files.count, 1)
        for f in files {
            let path = try XCTUnwrap(f["path"] as? String)
            let text = try String(contentsOf: fixturesFolder.appendingPathComponent(path), encoding: .utf8)
            let want = int32s(f["ids"])
            XCTAssertGreaterThan(want.count, 5000)
            let got = tok.encode(text)
            assertIDs(got, want, "\(name) \(path)")
            if try XCTUnwrap(f["decoded_equals_text"] as? Bool) {
                XCTAssertEqual(Array(tok.decode(got).utf8), Array(text.utf8), "\(name) \(path) round trip")
            }
        }
    }

    // MARK: BPE against a naive implementation

    /// Single words (one pre-token each) against the textbook loop: merge the lowest-ranked
    /// adjacent pair (leftmost on ties) until none is left. Long words included.
    func testMergesMatchNaiveBPE() throws {
        let doc = try loadJSON("tiny-gpt2/tokenizer.json")
        let tok = try loadTokenizer("tiny-gpt2/tokenizer.json")
        let model = try XCTUnwrap(doc["model"] as? [String: Any])
        let vocab = try XCTUnwrap(model["vocab"] as? [String: Int])
        var ranks: [String: Int] = [:]
        for (rank, line) in try XCTUnwrap(model["merges"] as? [String]).enumerated() where ranks[line] == nil {
            ranks[line] = rank
        }
        func naive(_ word: String) -> [Int32] {
            var symbols = word.map(String.init)  // ASCII letters are their own byte-level characters
            while symbols.count > 1 {
                var best: (rank: Int, at: Int)?
                for i in 0..<(symbols.count - 1) {
                    if let r = ranks[symbols[i] + " " + symbols[i + 1]], best == nil || r < best!.rank { best = (r, i) }
                }
                guard let b = best else { break }
                symbols[b.at...(b.at + 1)] = [symbols[b.at] + symbols[b.at + 1]]
            }
            return symbols.map { Int32(vocab[$0]!) }
        }
        var rng = SystemRandomNumberGenerator()
        let letters = Array("etaoinshrdlucmfwypvbgkqjxzETAOINS")
        var checked = 0
        for length in [1, 2, 3, 5, 8, 13, 40, 200, 1000] {
            for _ in 0..<20 {
                let word = String((0..<length).map { _ in letters.randomElement(using: &rng)! })
                XCTAssertEqual(tok.encode(word), naive(word), word)
                checked += 1
            }
        }
        for word in ["the", "States", "Congress", "constitution", "aaaaaaaaaaaaaaaaa", "thethethethe"] {
            XCTAssertEqual(tok.encode(word), naive(word), word)
        }
        XCTAssertEqual(checked, 180)
    }

    // MARK: API

    func testTokenLookupsAndSpecialTokens() throws {
        let tok = try loadTokenizer(smolLM2Path)
        XCTAssertEqual(tok.vocabularySize, 49152)
        XCTAssertEqual(tok.tokenID("<|im_start|>"), 1)
        XCTAssertEqual(tok.tokenID("Ġthe"), tok.encode(" the").first)
        XCTAssertNil(tok.tokenID("not a token at all"))
        XCTAssertEqual(tok.token(2), "<|im_end|>")
        XCTAssertNil(tok.token(49152))
        XCTAssertTrue(tok.isSpecial(0))
        XCTAssertFalse(tok.isSpecial(100))
        let ids = tok.encode("<|im_start|>user\nHi<|im_end|>")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.last, 2)
        XCTAssertEqual(tok.decode(ids), "<|im_start|>user\nHi<|im_end|>")
        XCTAssertEqual(tok.decode(ids, skipSpecialTokens: true), "user\nHi")
        // Unknown and negative ids decode to nothing instead of trapping.
        XCTAssertEqual(tok.decode([-1, 49152, Int32.max] + tok.encode("ok")), "ok")
        XCTAssertEqual(tok.decodeBytes(-5), [])
        XCTAssertEqual(tok.decodeBytes(tok.tokenID("Ġ")!), [0x20])
        XCTAssertEqual(tok.encode(""), [])
    }

    func testBOSAndEOS() throws {
        let data = [UInt8](try Data(contentsOf: fixturesFolder.appendingPathComponent("tiny-llama/tokenizer.json")))
        XCTAssertNil(try Tokenizer(json: data).bosTokenID)
        let given = try Tokenizer(json: data, bosTokenID: 0, eosTokenID: 2)
        XCTAssertEqual(given.bosTokenID, 0)
        XCTAssertEqual(given.eosTokenID, 2)
        XCTAssertFalse(given.encode("Hello").contains(0), "encode adds no BOS")
        // tiny-llama3's TemplateProcessing post-processor starts with <|im_start|> = 1.
        XCTAssertEqual(try loadTokenizer("tokenizer-reference/tiny-llama3-tokenizer.json").bosTokenID, 1)
        XCTAssertThrowsError(try Tokenizer(json: data, bosTokenID: 512)) { error in
            XCTAssertEqual("\(error)", "tokenizer.json: bosTokenID: id 512 is not a token of this tokenizer")
        }
        // Llama-3.1 wraps its TemplateProcessing in a Sequence; RoBERTa-style processors name a `cls`.
        func template(_ bos: Int) -> [String: Any] {
            ["type": "TemplateProcessing",
             "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
             "special_tokens": ["<s>": ["id": "<s>", "ids": [bos], "tokens": ["<s>"]]]]
        }
        let sequence = try Tokenizer(json: document {
            $0["post_processor"] = ["type": "Sequence", "processors": [["type": "ByteLevel"], template(4)]]
        })
        XCTAssertEqual(sequence.bosTokenID, 4)
        let roberta = try Tokenizer(json: document {
            $0["post_processor"] = ["type": "RobertaProcessing", "cls": ["<s>", 4], "sep": ["<s>", 4]]
        })
        XCTAssertEqual(roberta.bosTokenID, 4)
        XCTAssertNil(try Tokenizer(json: document { $0["post_processor"] = ["type": "ByteLevel"] }).bosTokenID)
        try assertRefused("tokenizer.json: post_processor: id 99 is not a token of this tokenizer") {
            $0["post_processor"] = template(99)
        }
    }

    /// Pushing ids one at a time never prints half a character and adds up to `decode`.
    func testStreamDecoderAddsUpToDecode() throws {
        for path in [smolLM2Path, "tiny-gpt2/tokenizer.json"] {
            let tok = try loadTokenizer(path)
            for text in ["a🚀b 日本語 naïve", "🇺🇸👍🏽", "plain ascii", "é", ""] {
                let ids = tok.encode(text)
                for order in [ids, ids.reversed()] {  // reversed: invalid UTF-8 on the way
                    var stream = TokenStreamDecoder(tokenizer: tok)
                    var pieces = order.map { stream.push($0) }
                    pieces.append(stream.finish())
                    XCTAssertEqual(Array(pieces.joined().utf8), Array(tok.decode(order).utf8), "\(path) \(text)")
                    if order == ids {
                        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") }, "\(path) \(text)")
                    }
                }
            }
        }
        let tok = try loadTokenizer("tiny-gpt2/tokenizer.json")
        var stream = TokenStreamDecoder(tokenizer: tok)
        // 🚀 = F0 9F 9A 80, one byte-level token per byte in the tiny vocabulary.
        let rocket = tok.encode("🚀")
        XCTAssertEqual(rocket.count, 4)
        XCTAssertEqual(rocket.dropLast().map { stream.push($0) }, ["", "", ""])
        XCTAssertEqual(stream.push(rocket[3]), "🚀")
        XCTAssertEqual(stream.push(rocket[0]), "")
        XCTAssertEqual(stream.finish(), "\u{FFFD}")
    }

    // MARK: errors

    /// A tiny valid document with one part replaced.
    private func document(_ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
        var vocab: [String: Int] = [:]
        for (i, c) in "abĠ".enumerated() { vocab[String(c)] = i }
        vocab["ab"] = 3
        var doc: [String: Any] = [
            "added_tokens": [["id": 4, "content": "<s>", "special": true]],
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "decoder": ["type": "ByteLevel"],
            "model": ["type": "BPE", "vocab": vocab, "merges": ["a b"]] as [String: Any],
        ]
        edit(&doc)
        return [UInt8](try JSONSerialization.data(withJSONObject: doc))
    }

    private func assertRefused(_ message: String, line: UInt = #line, _ edit: (inout [String: Any]) -> Void) throws {
        assertTokenizerRefuses(try document(edit), message, line: line)
    }

    func testMinimalDocumentWorks() throws {
        let tok = try Tokenizer(json: try document { _ in })
        XCTAssertEqual(tok.encode("ab<s>ba b"), [3, 4, 1, 0, 2, 1])
        XCTAssertEqual(tok.decode([3, 4, 1, 0, 2, 1]), "ab<s>ba b")
        XCTAssertEqual(tok.vocabularySize, 5)
    }

    /// Ids need not be 0 ..< count: a gap in the vocabulary and an added token far beyond it are
    /// found (the id tables then search instead of indexing), and ids in the gap are not tokens.
    func testIDsWithGapsAreFound() throws {
        let tok = try Tokenizer(json: try document {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0, "b": 7, "Ġ": 2, "ab": 9], "merges": ["a b"]] as [String: Any]
            $0["added_tokens"] = [["id": 1_000_000, "content": "<s>", "special": true]]
        })
        XCTAssertEqual(tok.encode("ab<s>ba b"), [9, 1_000_000, 7, 0, 2, 7])
        XCTAssertEqual(tok.decode([9, 1_000_000, 7, 0, 2, 7]), "ab<s>ba b")
        XCTAssertEqual(tok.vocabularySize, 1_000_001)
        XCTAssertEqual(tok.token(7), "b")
        XCTAssertEqual(tok.token(1_000_000), "<s>")
        for id: Int32 in [1, 3, 8, 10, 999_999, 1_000_001, -1] {
            XCTAssertNil(tok.token(id), "\(id)")
            XCTAssertEqual(tok.decodeBytes(id), [], "\(id)")
        }
        XCTAssertEqual(tok.tokenID("ab"), 9)
        XCTAssertEqual(tok.tokenID("<s>"), 1_000_000)
        XCTAssertNil(tok.tokenID("ba"))
        XCTAssertNil(tok.tokenID(""))
    }

    func testUnsupportedComponentsAreRefusedByName() throws {
        try assertRefused("tokenizer.json: pre_tokenizer.type 'Metaspace' is not supported") {
            $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁"]
        }
        try assertRefused("tokenizer.json: pre_tokenizer.pretokenizers[1].type 'Whitespace' is not supported") {
            $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
                ["type": "Digits"], ["type": "Whitespace"], ["type": "ByteLevel"]]]
        }
        try assertRefused("tokenizer.json: pre_tokenizer 'ByteLevel, Digits (byte-level BPE needs ByteLevel as the last step)' is not supported") {
            $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "ByteLevel"], ["type": "Digits"]]]
        }
        try assertRefused("tokenizer.json: model.type 'Unigram' is not supported") {
            $0["model"] = ["type": "Unigram", "vocab": []]
        }
        try assertRefused("tokenizer.json: normalizer.type 'Lowercase' is not supported") {
            $0["normalizer"] = ["type": "Lowercase"]
        }
        try assertRefused("tokenizer.json: decoder.type 'Metaspace' is not supported") {
            $0["decoder"] = ["type": "Metaspace"]
        }
        try assertRefused("tokenizer.json: pre_tokenizer.pretokenizers[0].behavior 'Sideways' is not supported") {
            $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["String": "x"], "behavior": "Sideways"], ["type": "ByteLevel"]]]
        }
        try assertRefused("tokenizer.json: model.byte_fallback 'true' is not supported") {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0], "merges": [], "byte_fallback": true] as [String: Any]
        }
    }

    func testMalformedDocumentsAreRefusedByField() throws {
        XCTAssertThrowsError(try Tokenizer(json: Array("{\"model\": ".utf8))) {
            XCTAssertTrue("\($0)".hasPrefix("tokenizer.json: not a valid JSON object: "), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(json: Array("[1, 2]".utf8))) {
            XCTAssertEqual("\($0)", "tokenizer.json: not a valid JSON object: the top level is not an object")
        }
        try assertRefused("tokenizer.json: missing field 'model'") { $0["model"] = nil }
        try assertRefused("tokenizer.json: missing field 'pre_tokenizer'") { $0["pre_tokenizer"] = NSNull() }
        try assertRefused("tokenizer.json: field 'model.vocab' should be an object") {
            $0["model"] = ["type": "BPE", "vocab": [1, 2], "merges": []] as [String: Any]
        }
        try assertRefused("tokenizer.json: model.merges[0]: \"ba\" is not in the vocabulary") {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0, "b": 1], "merges": ["b a"]] as [String: Any]
        }
        try assertRefused("tokenizer.json: model.merges[0]: \"c\" is not in the vocabulary") {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0], "merges": [["a", "c"]]] as [String: Any]
        }
        try assertRefused("tokenizer.json: model.merges[0]: merge \"ab\" has no space") {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0], "merges": ["ab"]] as [String: Any]
        }
        try assertRefused("tokenizer.json: field 'model.merges[0]' should be \"a b\" or [\"a\", \"b\"]") {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0], "merges": [7]] as [String: Any]
        }
        try assertRefused("tokenizer.json: model.vocab[\"a\"]: token id -3 is out of range 0...2147483647") {
            $0["model"] = ["type": "BPE", "vocab": ["a": -3], "merges": []] as [String: Any]
        }
        try assertRefused("tokenizer.json: field 'added_tokens[0].id' should be an integer token id") {
            $0["added_tokens"] = [["id": "x", "content": "<s>"]]
        }
        try assertRefused("tokenizer.json: field 'pre_tokenizer.add_prefix_space' should be true or false") {
            $0["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": "yes"]
        }
        try assertRefused("tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex: the regex does not compile") {
            $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated"], ["type": "ByteLevel"]]]
        }
        try assertRefused("tokenizer.json: model.unk_token: \"<unk>\" is not in the vocabulary") {
            $0["model"] = ["type": "BPE", "vocab": ["a": 0], "merges": [], "unk_token": "<unk>"] as [String: Any]
        }
    }
}
