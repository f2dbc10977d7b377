import ArgumentParser
import CLISupport
import Checkpoint
import Compression
import EdgeFormat
import Foundation
import RunSupport

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint or .edge file holds: per tensor shape, encoding, bytes, sparsity; totals and bits per weight."
    )

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Argument(help: "An .edge file, a .gguf, a .safetensors or a Hugging Face folder.")
    var file: String

    func run() throws {
        let ckpt = try Checkpoint.open(file)
        // For .edge files: each tensor's encoding params (nm's n:m, the sparse value encoding).
        let edge = ckpt.format == .edge ? try EdgeFile(path: file, verifyChecksums: false) : nil
        var rows: [JSONValue] = []
        var totalBytes = 0, totalParams = 0, totalZeros = 0
        let bar = ProgressBar(label: "inspect")
        for (i, t) in ckpt.tensors.enumerated() {
            bar.update(done: i, total: ckpt.tensors.count, item: t.name)
            let v = try t.floats()
            let zeros = v.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
            let pattern = t.shape.count == 2 && zeros > 0 ? NMPattern.detect(values: v, rows: t.shape[0], cols: t.shape[1]) : nil
            totalBytes += t.storedBytes
            totalParams += v.count
            totalZeros += zeros
            var row: [String: JSONValue] = [
                "name": .string(t.name), "shape": .array(t.shape.map { .number(Double($0)) }),
                "encoding": .string(t.storage), "bytes": .number(Double(t.storedBytes)),
                "sparsity": .number(v.isEmpty ? 0 : Double(zeros) / Double(v.count)),
                "bits_per_weight": .number(v.isEmpty ? 0 : Double(t.storedBytes) * 8 / Double(v.count)),
            ]
            if let pattern { row["pattern"] = .string("\(pattern.n):\(pattern.m)") }
            if let entry = edge?.entry(named: t.name) {
                if let ve = entry.params.valueEncoding { row["value_encoding"] = .string(ve.rawValue) }
                if entry.encoding == .nm, let n = entry.params.n, let m = entry.params.m {
                    row["nm"] = .string("\(n):\(m)")  // the packed layout's n:m (pattern: what the values satisfy)
                }
            }
            rows.append(.object(row))
        }
        bar.finish()
        let fileBytes = ckpt.files.reduce(0) { $0 + $1.size }
        var summary: [String: JSONValue] = [
            "file": .string(file), "format": .string(ckpt.format.rawValue),
            "architecture": .string(ckpt.config.architecture.rawValue),
            "parameters": .number(Double(totalParams)), "file_bytes": .number(Double(fileBytes)),
            "tensor_bytes": .number(Double(totalBytes)),
            "bits_per_weight": .number(totalParams > 0 ? Double(fileBytes) * 8 / Double(totalParams) : 0),
            "sparsity": .number(totalParams > 0 ? Double(totalZeros) / Double(totalParams) : 0),
            "tensors": .array(rows),
            "config": try JSONValue(encoding: ckpt.config),
            "tokenizer": .bool(ckpt.tokenizerJSON != nil),
        ]
        var provenance: Provenance?
        if let edge {
            provenance = edge.provenance
            summary["provenance"] = try JSONValue(encoding: provenance!)
        } else if !ckpt.sourceMetadata.isEmpty {
            summary["metadata"] = .object(ckpt.sourceMetadata.mapValues { .string($0) })
        }
        if json {
            print(JSONValue.object(summary).prettyText())
            return
        }
        let c = ckpt.config
        print("\(file): \(ckpt.format.rawValue), \(c.architecture.rawValue), \(c.numLayers) layers, hidden \(c.hiddenSize), "
            + "heads \(c.numHeads)/\(c.numKVHeads) kv, vocab \(c.vocabSize)\(c.tiedEmbeddings ? ", tied embeddings" : "")")
        if let p = provenance {
            print("  source: \(p.sourcePath ?? "?") (\(p.sourceFormat), sha256 \(p.sourceSHA256.prefix(16))…), \(p.toolchain), recipe \(p.recipe["name"]?.stringValue ?? "?")")
            for record in p.passes { print("  pass " + passSummary(record)) }
        } else {
            for (k, v) in ckpt.sourceMetadata.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
        }
        let nameWidth = max(4, ckpt.tensors.map(\.name.count).max() ?? 4)
        print(pad("name", nameWidth) + "  " + pad("shape", 14) + "  " + pad("encoding", 10) + "  " + lpad("bytes", 12) + "  " + lpad("bits/w", 7) + "  " + lpad("sparsity", 8) + "  pattern")
        for r in rows {
            guard case let .object(o) = r else { continue }
            let shape = (o["shape"]?.arrayValue ?? []).map { "\(Int($0.doubleValue ?? 0))" }.joined(separator: "x")
            var encoding = o["encoding"]?.stringValue ?? ""
            if let nm = o["nm"]?.stringValue { encoding += " " + nm }  // "nm 2:4"
            print(pad(o["name"]?.stringValue ?? "", nameWidth) + "  " + pad(shape, 14) + "  " + pad(encoding, 10)
                + "  " + lpad("\(Int(o["bytes"]?.doubleValue ?? 0))", 12)
                + "  " + lpad(String(format: "%.2f", o["bits_per_weight"]?.doubleValue ?? 0), 7)
                + "  " + lpad(String(format: "%.1f%%", (o["sparsity"]?.doubleValue ?? 0) * 100), 8)
                + "  " + (o["pattern"]?.stringValue ?? ""))
        }
        print(String(format: "total: %d weights, %d tensor bytes, %d file bytes, %.3f bits/weight, sparsity %.1f%%",
                     totalParams, totalBytes, fileBytes, totalParams > 0 ? Double(fileBytes) * 8 / Double(totalParams) : 0,
                     totalParams > 0 ? Double(totalZeros) * 100 / Double(totalParams) : 0))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a Hugging Face folder (model.safetensors + config.json + tokenizer.json) from any supported input, dequantized."
    )

    enum DType: String, ExpressibleByArgument { case f32, f16 }

    @Option(name: .long, help: "Weight dtype of the exported safetensors (f32 or f16).")
    var dtype: DType = .f32

    @Argument(help: "Input: .edge, .gguf, .safetensors or a Hugging Face folder.")
    var input: String

    @Argument(help: "Output folder (created if missing).")
    var outputDir: String

    func run() throws {
        let ckpt = try Checkpoint.open(input)
        let bar = ProgressBar(label: "export")
        try HFExporter.export(ckpt, to: outputDir, dtype: dtype == .f32 ? .f32 : .f16) { done, total in
            bar.update(done: done, total: total)
        }
        bar.finish()
        print("\(outputDir): exported \(ckpt.tensors.count) tensors (\(dtype.rawValue)) from \(input)")
    }
}

/// One line per pass record: its name and the numbers that say what it did.
private func passSummary(_ r: JSONValue) -> String {
    let name = r["pass"]?.stringValue ?? "?"
    var parts: [String] = []
    for key in ["bits", "symmetric", "group_size", "method", "rounding", "weighting", "sparsity", "pattern", "scope", "mlp", "heads", "ranking", "dtype", "format",
                "tensors", "achieved_sparsity", "relative_rmse", "removed_neurons", "removed_heads", "weights_before", "weights_after"] {
        guard let v = r[key] else { continue }
        switch v {
        case let .number(d): parts.append("\(key) \(d == d.rounded() && abs(d) < 1e12 ? String(Int(d)) : String(format: "%.4g", d))")
        case let .bool(b): parts.append("\(key) \(b)")
        case let .string(s): parts.append("\(key) \(s)")
        default: break
        }
    }
    return name + ": " + parts.joined(separator: ", ")
}

private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
private func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
