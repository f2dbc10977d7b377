import EdgeFormat
import Foundation

/// One recipe's line in a device-artifacts report.
public struct ReportRow: Equatable, Sendable {
    public var recipe: String
    public var artifact: String
    public var bytes: Int
    public var bitsPerWeight: Double
    /// Artifact bytes / float checkpoint bytes.
    public var ratio: Double
    public var pplBefore: Double
    public var pplAfter: Double
    public var kl: Double
    public var top1Agreement: Double
    public var compressSeconds: Double
    public var budgetOK: Bool
    public var violations: [String]
    public var sha256: String
    /// An encoder's measurements (`compress verify` of an encoder); the perplexity fields are then 0.
    public var encoder: EncoderMetrics?
    /// The bundled runtime on the artifact (`edge-run bench --json`, `R.bench.json`), when measured.
    public var runtime: RuntimeMetrics? = nil

    /// What `compress verify` measures for an encoder.
    public struct EncoderMetrics: Equatable, Sendable {
        public var meanCosine: Double
        public var minCosine: Double
        public var retrievalAgreement: Double
    }

    /// What `edge-run bench` measures: prompt processing and generation throughput, peak memory.
    public struct RuntimeMetrics: Equatable, Sendable {
        public var promptTokens: Int
        public var promptTokensPerSecond: Double
        public var generatedTokens: Int
        public var generationTokensPerSecond: Double
        public var peakRSSBytes: Double
        /// The kernel level the runtime chose on the machine that measured (e.g. "avx2").
        public var kernels: String

        var json: JSONValue {
            .object(["prompt_tokens": .number(Double(promptTokens)), "prompt_tokens_per_second": .number(promptTokensPerSecond),
                     "generated_tokens": .number(Double(generatedTokens)),
                     "generation_tokens_per_second": .number(generationTokensPerSecond),
                     "peak_rss_bytes": .number(peakRSSBytes), "kernels": .string(kernels)])
        }
    }

    public var json: JSONValue {
        if let e = encoder {
            return .object([
                "recipe": .string(recipe), "artifact": .string(artifact), "kind": "encoder", "bytes": .number(Double(bytes)),
                "bits_per_weight": .number(bitsPerWeight), "ratio": .number(ratio), "mean_cosine": .number(e.meanCosine),
                "min_cosine": .number(e.minCosine), "retrieval_agreement": .number(e.retrievalAgreement),
                "compress_seconds": .number(compressSeconds), "budget_ok": .bool(budgetOK),
                "violations": .array(violations.map { .string($0) }), "sha256": .string(sha256),
            ])
        }
        var members: [String: JSONValue] = [
            "recipe": .string(recipe), "artifact": .string(artifact), "bytes": .number(Double(bytes)),
            "bits_per_weight": .number(bitsPerWeight), "ratio": .number(ratio), "ppl_before": .number(pplBefore),
            "ppl_after": .number(pplAfter), "kl": .number(kl), "top1_agreement": .number(top1Agreement),
            "compress_seconds": .number(compressSeconds), "budget_ok": .bool(budgetOK),
            "violations": .array(violations.map { .string($0) }), "sha256": .string(sha256),
        ]
        if let runtime { members["runtime"] = runtime.json }
        return .object(members)
    }
}

/// Builds the device-artifacts report (JSON, Markdown, a Pareto plot as SVG) from what
/// `scripts/device-artifacts.sh` leaves in its output folder: for each recipe R, `R.edge`,
/// `R.verify.json` (`compress verify --json`), `R.compress.json` (`compress --json`) and, for a
/// decoder whose runtime was built, `R.bench.json` (`edge-run bench --json`).
public enum Report {
    public struct Failure: Error, CustomStringConvertible {
        public let file: String
        public let why: String
        public var description: String { "\(file): \(why)" }
    }

    /// Reads every `*.verify.json` in `folder` (sorted by recipe name).
    public static func rows(folder: String) throws -> [ReportRow] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".verify.json") }.sorted()
        guard !names.isEmpty else { throw Failure(file: folder, why: "no *.verify.json files (run compress verify --json for each recipe first)") }
        return try names.map { name -> ReportRow in
            let recipe = String(name.dropLast(".verify.json".count))
            let verifyPath = folder + "/" + name
            let v = try readJSON(verifyPath)
            func num(_ path: String...) throws -> Double { try number(v, path, file: verifyPath) }
            let artifact = folder + "/" + recipe + ".edge"
            guard let file = MappedFile.openIfPresent(artifact) else { throw Failure(file: artifact, why: "missing artifact") }
            var seconds = 0.0
            let compressPath = folder + "/" + recipe + ".compress.json"
            if FileManager.default.fileExists(atPath: compressPath) { seconds = try readJSON(compressPath)["seconds"]?.doubleValue ?? 0 }
            let beforeBytes = try num("before", "bytes"), afterBytes = try num("after", "bytes")
            if v["kind"]?.stringValue == "encoder" {
                return ReportRow(
                    recipe: recipe, artifact: recipe + ".edge", bytes: Int(afterBytes), bitsPerWeight: try num("after", "bits_per_weight"),
                    ratio: beforeBytes > 0 ? afterBytes / beforeBytes : 0, pplBefore: 0, pplAfter: 0, kl: 0, top1Agreement: 0,
                    compressSeconds: seconds, budgetOK: v["budget"]?["ok"]?.boolValue ?? true,
                    violations: v["budget"]?["violations"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                    sha256: SHA256.hex(file.bytes),
                    encoder: .init(meanCosine: try num("mean_cosine"), minCosine: try num("min_cosine"),
                                   retrievalAgreement: try num("retrieval_agreement")))
            }
            let benchPath = folder + "/" + recipe + ".bench.json"
            let runtime = FileManager.default.fileExists(atPath: benchPath) ? try runtimeMetrics(benchPath) : nil
            return ReportRow(
                recipe: recipe, artifact: recipe + ".edge", bytes: Int(afterBytes), bitsPerWeight: try num("after", "bits_per_weight"),
                ratio: beforeBytes > 0 ? afterBytes / beforeBytes : 0, pplBefore: try num("before", "ppl"), pplAfter: try num("after", "ppl"),
                kl: try num("kl"), top1Agreement: try num("top1_agreement"), compressSeconds: seconds,
                budgetOK: v["budget"]?["ok"]?.boolValue ?? true,
                violations: v["budget"]?["violations"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                sha256: SHA256.hex(file.bytes), runtime: runtime)
        }.sorted { $0.bytes > $1.bytes }
    }

    /// The number at `keys` in `root` (a document read from `file`).
    static func number(_ root: JSONValue, _ keys: [String], file: String) throws -> Double {
        var cur: JSONValue? = root
        for k in keys { cur = cur?[k] }
        guard let d = cur?.doubleValue else { throw Failure(file: file, why: "missing number '\(keys.joined(separator: "."))'") }
        return d
    }

    /// `edge-run bench --json`'s medians, token counts, peak RSS and kernel level.
    static func runtimeMetrics(_ path: String) throws -> ReportRow.RuntimeMetrics {
        let b = try readJSON(path)
        func num(_ keys: String...) throws -> Double {
            let d = try number(b, keys, file: path)
            guard d >= 0 else { throw Failure(file: path, why: "'\(keys.joined(separator: "."))' is negative") }
            return d
        }
        func count(_ keys: String...) throws -> Int {
            let d = try number(b, keys, file: path)
            guard d >= 0, d <= Double(Int32.max), d == d.rounded() else {
                throw Failure(file: path, why: "'\(keys.joined(separator: "."))' is not a token count")
            }
            return Int(d)
        }
        return .init(promptTokens: try count("pp", "tokens"), promptTokensPerSecond: try num("pp", "median"),
                     generatedTokens: try count("tg", "tokens"), generationTokensPerSecond: try num("tg", "median"),
                     peakRSSBytes: try num("peak_rss_bytes"), kernels: b["kernels"]?["level"]?.stringValue ?? "?")
    }

    static func readJSON(_ path: String) throws -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(file: path, why: "cannot be read") }
        do { return try data.withUnsafeBytes { try JSONValue.parse($0) } } catch { throw Failure(file: path, why: "\(error)") }
    }

    /// report.json: `{"model", "text", "rows": [...], "budget_ok"}`.
    public static func json(rows: [ReportRow], model: String, text: String) -> JSONValue {
        .object(["model": .string(model), "text": .string(text), "rows": .array(rows.map(\.json)),
                 "budget_ok": .bool(rows.allSatisfy(\.budgetOK))])
    }

    /// report.md: a GitHub-flavoured Markdown table, one row per recipe.
    public static func markdown(rows: [ReportRow], model: String, text: String) -> String {
        if rows.contains(where: { $0.encoder != nil }) { return encoderMarkdown(rows: rows, model: model, text: text) }
        var s = "# Device artifacts: \(model)\n\nPerplexity on `\(text)`; before = the input model run in float32, after = the `.edge` artifact, same runtime; x input = artifact bytes / input file bytes.\n\n"
        let measured = rows.compactMap(\.runtime)
        if let m = measured.first {
            let levels = Set(measured.map(\.kernels)).sorted().joined(separator: ", ")
            s += "pp / tg: prompt processing (\(m.promptTokens) tokens) and generation (\(m.generatedTokens) tokens) throughput of the bundled `edge-run` (`edge-run bench ARTIFACT -p \(m.promptTokens) -n \(m.generatedTokens) -r 3 --json`, medians) on the machine that made this report (kernels: \(levels)); peak MB: that run's peak resident memory (MB = 10^6 bytes).\n\n"
        }
        let runtimeHeader = measured.isEmpty ? "" : " pp tok/s | tg tok/s | peak MB |"
        let runtimeRule = measured.isEmpty ? "" : " ---: | ---: | ---: |"
        s += "| recipe | bytes | bits/weight | x input | ppl before | ppl after | Δppl | KL | top-1 |\(runtimeHeader) compress s | budget | sha256 |\n"
        s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\(runtimeRule) ---: | --- | --- |\n"
        for r in rows {
            let budget = r.budgetOK ? "ok" : "**FAIL**: " + r.violations.joined(separator: "; ")
            s += "| \(r.recipe) | \(r.bytes) | \(f(r.bitsPerWeight, 2)) | \(f(r.ratio, 3)) | \(f(r.pplBefore, 3)) | \(f(r.pplAfter, 3)) | "
            s += "\(f((r.pplAfter / r.pplBefore - 1) * 100, 2))% | \(f(r.kl, 4)) | \(f(r.top1Agreement * 100, 1))% | "
            if !measured.isEmpty {
                if let m = r.runtime {
                    s += "\(f(m.promptTokensPerSecond, 1)) | \(f(m.generationTokensPerSecond, 1)) | \(f(m.peakRSSBytes / 1e6, 1)) | "
                } else {
                    s += "- | - | - | "
                }
            }
            s += "\(f(r.compressSeconds, 1)) | \(budget) | `\(r.sha256.prefix(12))` |\n"
        }
        return s
    }

    /// report.md for encoders: cosine similarity to the float embeddings and retrieval agreement.
    static func encoderMarkdown(rows: [ReportRow], model: String, text: String) -> String {
        var s = "# Device artifacts: \(model)\n\nSentence embeddings of the lines of `\(text)`: cosine = between the input model run in float32 and the `.edge` artifact, same runtime; retrieval = sentences whose nearest other sentence is unchanged; x input = artifact bytes / input file bytes.\n\n"
        s += "| recipe | bytes | bits/weight | x input | mean cosine | min cosine | retrieval | compress s | budget | sha256 |\n"
        s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n"
        for r in rows {
            let budget = r.budgetOK ? "ok" : "**FAIL**: " + r.violations.joined(separator: "; ")
            let e = r.encoder ?? .init(meanCosine: 0, minCosine: 0, retrievalAgreement: 0)
            s += "| \(r.recipe) | \(r.bytes) | \(f(r.bitsPerWeight, 2)) | \(f(r.ratio, 3)) | \(f(e.meanCosine, 4)) | \(f(e.minCosine, 4)) | "
            s += "\(f(e.retrievalAgreement * 100, 1))% | \(f(r.compressSeconds, 1)) | \(budget) | `\(r.sha256.prefix(12))` |\n"
        }
        return s
    }

    /// pareto.svg: perplexity (y) against artifact size in MB (x), each recipe a labelled point,
    /// the float model as a reference line. For encoders y is 1 - mean cosine to the float embeddings.
    public static func svg(rows: [ReportRow], model: String) -> String {
        let w = 720.0, h = 440.0, left = 80.0, right = 30.0, top = 50.0, bottom = 60.0
        let encoder = rows.contains { $0.encoder != nil }
        let sizes = rows.map { Double($0.bytes) / 1e6 }
        let ppls = rows.map { r in r.encoder.map { max(1 - $0.meanCosine, 1e-9) } ?? r.pplAfter }
        let before = encoder ? 0 : rows.first?.pplBefore ?? 0
        let what = encoder ? "1 - mean cosine to float" : "perplexity"
        let (x0, x1) = niceRange(min: 0, max: (sizes.max() ?? 1) * 1.1)
        let lo = min(ppls.min() ?? 1, before > 0 ? before : .infinity), hi = max(ppls.max() ?? 1, before)
        // Perplexities spanning more than a decade read better on a log axis.
        let logScale = lo > 0 && hi / lo > 8
        let (y0, y1) = logScale ? (log10(lo) - 0.05, log10(hi) + 0.05) : niceRange(min: lo * 0.97, max: hi * 1.03)
        let yTicks = logScale ? logTicks(lo: pow(10, y0), hi: pow(10, y1)).map(log10) : ticks(y0, y1)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (w - left - right) }
        func py(_ y: Double) -> Double {
            let v = logScale ? log10(max(y, 1e-300)) : y
            return h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom)
        }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" viewBox="0 0 \(Int(w)) \(Int(h))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(w / 2)" y="24" text-anchor="middle" font-size="15" font-weight="bold">\(escape(model)): \(what) vs size</text>

        """
        for t in ticks(x0, x1) {
            s += "<line x1=\"\(px(t))\" y1=\"\(top)\" x2=\"\(px(t))\" y2=\"\(h - bottom)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(px(t))\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\">\(f(t, tickDigits(x0, x1)))</text>\n"
        }
        for t in yTicks {
            let value = logScale ? pow(10, t) : t
            let label = logScale ? (value < 10 ? f(value, value < 1 ? 2 : 1) : f(value, 0)) : f(t, tickDigits(y0, y1))
            s += "<line x1=\"\(left)\" y1=\"\(py(value))\" x2=\"\(w - right)\" y2=\"\(py(value))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(py(value) + 4)\" text-anchor=\"end\">\(label)</text>\n"
        }
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 18)\" text-anchor=\"middle\">artifact size (MB, 10^6 bytes)</text>\n"
        s += "<text x=\"18\" y=\"\((top + h - bottom) / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 18 \((top + h - bottom) / 2))\">\(what)\(logScale ? ", log scale" : "") (lower is better)</text>\n"
        if before > 0 {
            s += "<line x1=\"\(left)\" y1=\"\(py(before))\" x2=\"\(w - right)\" y2=\"\(py(before))\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>"
            s += "<text x=\"\(left + 6)\" y=\"\(py(before) - 5)\" fill=\"#555\">float model: ppl \(f(before, 3))</text>\n"
        }
        // Labels alternate above and below their points (in size order) so neighbours do not collide.
        for (n, i) in rows.indices.sorted(by: { sizes[$0] < sizes[$1] }).enumerated() {
            let r = rows[i]
            let color = r.budgetOK ? "#1f77b4" : "#d62728"
            let dy = n % 2 == 0 ? -10.0 : 20.0
            s += "<circle cx=\"\(px(sizes[i]))\" cy=\"\(py(ppls[i]))\" r=\"5\" fill=\"\(color)\"/>"
            s += "<text x=\"\(px(sizes[i]))\" y=\"\(py(ppls[i]) + dy)\" text-anchor=\"middle\" fill=\"\(color)\">\(escape(r.recipe)) (\(f(r.bitsPerWeight, 2)) b/w\(r.budgetOK ? "" : ", over budget"))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    static func f(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A range widened to whole multiples of a 1-2-5 step.
    static func niceRange(min lo: Double, max hi: Double) -> (Double, Double) {
        let hi = hi > lo ? hi : lo + 1
        let step = niceStep((hi - lo) / 5)
        return ((lo / step).rounded(.down) * step, (hi / step).rounded(.up) * step)
    }

    static func niceStep(_ raw: Double) -> Double {
        let p = pow(10, (log10(raw)).rounded(.down))
        let m = raw / p
        return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p
    }

    /// Decimals that tell the ticks of [lo, hi] apart.
    static func tickDigits(_ lo: Double, _ hi: Double) -> Int {
        max(0, Int(-log10(niceStep((hi - lo) / 5)).rounded(.down)))
    }

    /// 1-2-5 ticks per decade inside [lo, hi] (lo > 0).
    static func logTicks(lo: Double, hi: Double) -> [Double] {
        var t: [Double] = []
        var decade = pow(10, log10(lo).rounded(.down))
        while decade <= hi {
            for m in [1.0, 2, 5] where decade * m >= lo && decade * m <= hi { t.append(decade * m) }
            decade *= 10
        }
        return t
    }

    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let step = niceStep((hi - lo) / 5)
        var t: [Double] = []
        var v = (lo / step).rounded(.up) * step
        while v <= hi + step * 1e-9 { t.append(v); v += step }
        return t
    }
}

extension MappedFile {
    /// Maps `path`, or nil if it cannot be opened.
    static func openIfPresent(_ path: String) -> MappedFile? { try? MappedFile(path: path) }
}
