import EdgeFormat
import EdgeKernels
import EdgeRuntime

/// `edge-run info MODEL`: validate an `.edge` file fully and summarize it.
struct InfoCommand: Subcommand {
    static let spec = CommandSpec(
        name: "info",
        abstract: "Validate an .edge file (header, checksums, tensor set and shapes) and summarize it."
    )

    let model: String

    init(_ a: ParsedArguments) throws { model = a.positionals[0] }

    func run() throws {
        let file = try EdgeFile(path: model)  // checks every checksum
        let m = try EdgeModel(file: file)     // checks the tensor set, shapes and encodings against the config
        let c = file.config
        print("\(model): valid .edge v\(file.preamble.version), \(file.fileSize) bytes, \(file.tensors.count) tensors, \(file.blobs.count) blobs")
        var arch = "\(c.architecture.rawValue): \(c.numLayers) layers, hidden \(c.hiddenSize), heads \(c.numHeads)"
        if c.numKVHeads != c.numHeads { arch += " (kv \(c.numKVHeads))" }
        arch += " x \(c.headDim), ffn \(c.intermediateSize), vocab \(c.vocabSize), max positions \(c.maxPositions)"
        if let p = c.pooling {
            arch += ", encoder: \(p.mode.rawValue) pooling\(p.normalize ? ", L2-normalized" : ""), max \(m.maxSentenceTokens) tokens per sentence"
        } else {
            arch += c.tiedEmbeddings ? ", tied embeddings" : ", untied output"
        }
        if c.layers != nil { arch += ", per-layer sizes" }
        print("model: \(arch)")

        var byEncoding: [String: (tensors: Int, values: Int, bytes: Int)] = [:]
        var values = 0, bytes = 0
        for t in file.tensors {
            let key = t.encoding.rawValue + Self.paramsLabel(t.params)
            let e = byEncoding[key] ?? (0, 0, 0)
            byEncoding[key] = (e.tensors + 1, e.values + t.count, e.bytes + t.payloadLength)
            values += t.count
            bytes += t.payloadLength
        }
        print(cFormat("weights: %ld values in %ld payload bytes, %.3f bits/weight", values, bytes, values > 0 ? Double(bytes * 8) / Double(values) : 0))
        for (key, e) in byEncoding.sorted(by: { $0.key < $1.key }) {
            print("  " + key + String(repeating: " ", count: max(0, 16 - key.count)) + cFormat(" %4ld tensors %12ld values %.3f bits/weight", e.tensors, e.values, Double(e.bytes * 8) / Double(max(1, e.values))))
        }
        if let tok = m.tokenizer {
            if c.isEncoder {
                print("tokenizer: \(tok.vocabularySize) tokens, sentences framed as \(tok.specialTokenPrefix) ... \(tok.specialTokenSuffix)")
            } else {
                print("tokenizer: \(tok.vocabularySize) tokens, BOS \(m.addsBOS ? "\(m.bosTokenID.map(String.init) ?? "?") added" : "not added")")
            }
        } else {
            print("tokenizer: none (perplexity and generate need blob 'tokenizer.json')")
        }
        let p = file.provenance
        print("provenance: \(p.toolchain) from \(p.sourceFormat) \(p.sourcePath ?? "") sha256 \(p.sourceSHA256.prefix(16))…, \(p.passes.count) passes")
        print("kernels: \(String(cString: edge_kernels_level_name(edge_kernels_level())))\(edge_kernels_uses_vnni() ? " + vnni" : ""), \(EdgeModel.defaultThreads) threads")
    }

    static func paramsLabel(_ p: EncodingParams) -> String {
        var parts: [String] = []
        if let s = p.symmetric { parts.append(s ? "sym" : "asym") }
        if let g = p.groupSize { parts.append("g\(g)") }
        if let b = p.subBits { parts.append("b\(b)") }
        return parts.isEmpty ? "" : " " + parts.joined(separator: " ")
    }
}
