import Checkpoint
import EdgeRuntime
import XCTest

/// A GGUF whose vocabulary says add_bos_token gives a tokenizer.json that makes the runtime put BOS
/// first, as llama.cpp does; one that does not, none.
final class GGUFTokenizerBOSTests: XCTestCase {
    private let tokens = ["<s>", "</s>", "a", "b", "ab"]

    private func tokenizer(_ meta: [String: GGUFValue]) throws -> Tokenizer {
        var m = meta
        m["tokenizer.ggml.model"] = .string("gpt2")
        // GGUF element type ids: 8 = string, 5 = int32.
        m["tokenizer.ggml.tokens"] = .array(elementType: 8, tokens.map { .string($0) })
        m["tokenizer.ggml.merges"] = .array(elementType: 8, [.string("a b")])
        m["tokenizer.ggml.token_type"] = .array(elementType: 5, [3, 3, 1, 1, 1].map { .int32(Int32($0)) })
        let result = try TokenizerJSON.fromGGUF(m, file: "t.gguf")
        let json = try XCTUnwrap(result.json)
        return try Tokenizer(json: [UInt8](json))
    }

    func testAddBOSTokenTrueMakesTheTemplateAddBOS() throws {
        let t = try tokenizer(["tokenizer.ggml.add_bos_token": .bool(true), "tokenizer.ggml.bos_token_id": .uint32(0)])
        XCTAssertEqual(t.bosTokenID, 0)
        XCTAssertEqual(t.encode("ab"), [4], "encode itself never adds BOS")
    }

    func testNoAddBOSMeansNoBOS() throws {
        XCTAssertNil(try tokenizer(["tokenizer.ggml.add_bos_token": .bool(false), "tokenizer.ggml.bos_token_id": .uint32(0)]).bosTokenID)
        XCTAssertNil(try tokenizer([:]).bosTokenID)
    }

    func testAddBOSWithoutAValidIdIsRefused() {
        XCTAssertThrowsError(try tokenizer(["tokenizer.ggml.add_bos_token": .bool(true), "tokenizer.ggml.bos_token_id": .uint32(99)])) {
            XCTAssertTrue("\($0)".contains("bos_token_id"), "\($0)")
        }
    }
}
