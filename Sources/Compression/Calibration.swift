import Checkpoint
import EdgeFormat
import EdgeKernels
import EdgeRuntime
import Foundation
import Training

/// What a pass wants to know about the inputs of its weights.
public struct CalibrationNeeds: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Per input column, the L2 norm of the activations (Wanda).
    public static let columnNorms = CalibrationNeeds(rawValue: 1)
    /// Per weight, H = (2/n) X^T X of its inputs (GPTQ).
    public static let hessians = CalibrationNeeds(rawValue: 2)
    /// Per weight, C = (2/n) X_f^T X of the float model's inputs X_f against the compressed model's
    /// inputs X, row for row (sequential calibration only; implies `hessians`).
    public static let floatCross = CalibrationNeeds(rawValue: 4)
}

/// Statistics of the inputs every linear weight sees while the float model runs over calibration
/// text. Weights that read the same activations (Q/K/V; gate/up) share one accumulator ("site").
public final class CalibrationStats {
    /// Calibration tokens run through the model.
    public private(set) var tokens = 0
    private var sumSquares: [Site: [Double]] = [:]
    private var hessians: [Site: [Double]] = [:]
    private var crosses: [Site: [Double]] = [:]
    private let wanted: [Site: CalibrationNeeds]

    /// - Parameter wanted: per weight name, what to gather.
    init(wanted: [String: CalibrationNeeds]) {
        var bySite: [Site: CalibrationNeeds] = [:]
        for (name, needs) in wanted { bySite[Self.site(of: name), default: []].formUnion(needs) }
        self.wanted = bySite
    }

    /// Where a weight's input activations come from: weights fed by the same activations share one.
    enum Site: Hashable {
        /// The normed input of a block's attention (Q, K, V).
        case attentionInput(layer: Int)
        /// The normed input of a block's MLP (gate, up).
        case mlpInput(layer: Int)
        /// A weight that reads activations of its own (attention output, down, output head).
        case tensor(String)
    }

    /// The site of the weight `name`.
    static func site(of name: String) -> Site {
        guard let id = TensorID(name: name), let layer = id.layer else { return .tensor(name) }
        switch id.role {
        case .attnQ, .attnK, .attnV, .attnQKV: return .attentionInput(layer: layer)
        case .ffnGate, .ffnUp: return .mlpInput(layer: layer)
        case .tokenEmbd, .posEmbd, .tokenTypes, .tokenEmbdNorm, .attnNorm, .attnOutput, .attnOutNorm,
             .ffnNorm, .ffnDown, .layerOutNorm, .outputNorm, .output, .cls, .clsOut:
            return .tensor(name)
        }
    }

    /// L2 norm of input column j of `weight`, over all calibration tokens; nil if not gathered.
    public func columnNorms(for weight: String) -> [Float]? {
        sumSquares[Self.site(of: weight)].map { $0.map { Float($0.squareRoot()) } }
    }

    /// H = (2/n) X^T X for the inputs of `weight` ([cols, cols], row-major); nil if not gathered.
    public func hessian(for weight: String) -> [Double]? {
        guard let h = hessians[Self.site(of: weight)], tokens > 0 else { return nil }
        let s = 2 / Double(tokens)
        return h.map { $0 * s }
    }

    /// C = (2/n) X_f^T X for the inputs of `weight` ([cols, cols], row-major, C[i][j] = sum x_f,i x_j);
    /// nil if not gathered.
    public func floatCross(for weight: String) -> [Double]? {
        guard let c = crosses[Self.site(of: weight)], tokens > 0 else { return nil }
        let s = 2 / Double(tokens)
        return c.map { $0 * s }
    }

    /// Whether `weight`'s site wants `need`.
    func wants(_ need: CalibrationNeeds, for weight: String) -> Bool { wanted[Self.site(of: weight)]?.contains(need) ?? false }

    /// Adds X_f^T X for `rows` rows seen by `weight`: x (the compressed model's input) and xf (the
    /// float model's, the same tokens), each [rows, cols]. Once per site per forward call.
    func observeCross(weight: String, x: UnsafePointer<Float>, float xf: UnsafePointer<Float>, rows: Int, cols: Int) {
        let site = Self.site(of: weight)
        guard wanted[site]?.contains(.floatCross) ?? false, crossSeen.insert(site).inserted else { return }
        var xt = [Float](repeating: 0, count: cols * rows), xft = [Float](repeating: 0, count: cols * rows)
        for t in 0 ..< rows {
            for j in 0 ..< cols {
                xt[j * rows + t] = x[t * cols + j]
                xft[j * rows + t] = xf[t * cols + j]
            }
        }
        var g = [Float](repeating: 0, count: cols * cols)
        // g[i][j] = dot(xft row i, xt row j): the kernel's Y[t][r] = dot(W[r], X[t]) with W = xt, X = xft.
        Self.gram(xt, xft, into: &g, cols: cols, rows: rows)
        var acc = crosses.removeValue(forKey: site) ?? [Double](repeating: 0, count: cols * cols)
        for i in 0 ..< acc.count { acc[i] += Double(g[i]) }
        crosses[site] = acc
    }

    /// Sites whose cross term the current forward call has counted.
    private var crossSeen: Set<Site> = []

    /// out[t][r] = sum_k a[r][k] b[t][k] for a, b [cols, rows] (rows-long dot products).
    static func gram(_ a: [Float], _ b: [Float], into out: inout [Float], cols: Int, rows: Int) {
        out = product(a, b, tokens: cols, rows: cols, cols: rows)
    }

    /// out[t][r] = sum_k a[r][k] a[t][k] for a [cols, rows]: the symmetric `gram(a, a)` at about half
    /// its cost. The row blocks [r0, r1) take the products with t >= r0 only (`edge_matmul_f32` on the
    /// rows of `a` from r0), the blocks sized so that each holds about the same share of the
    /// triangle; the rest are mirrored. Each product is the kernel's dot product of the same two rows,
    /// and a product's two orders are equal, so the result is `gram(a, a)`'s where the kernel sums
    /// every output in one order (its packed path, from 12 rows of `a` on).
    static func symmetricGram(_ a: [Float], into out: inout [Float], cols: Int, rows: Int) {
        let blocks = cols >= 256 ? 4 * max(1, EdgeModel.defaultThreads) : 1
        guard blocks > 1 else {
            gram(a, a, into: &out, cols: cols, rows: rows)
            return
        }
        out = [Float](repeating: 0, count: cols * cols)
        // Block i starts where the triangle to its left holds i / blocks of the whole.
        let starts = (0 ... blocks).map { i in i == blocks ? cols : min(cols, Int(Double(cols) * (1 - (1 - Double(i) / Double(blocks)).squareRoot()))) }
        a.withUnsafeBufferPointer { ap in
            out.withUnsafeMutableBufferPointer { op in
                DispatchQueue.concurrentPerform(iterations: blocks) { b in
                    let r0 = starts[b], r1 = starts[b + 1]
                    guard r1 > r0 else { return }
                    // Rows t >= r0 of the output, columns [r0, r1).
                    edge_matmul_f32(ap.baseAddress, ap.baseAddress! + r0 * rows, op.baseAddress! + r0 * cols, cols - r0, cols, rows, r0, r1)
                }
                // out[t][r] for t < r: its mirror out[r][t] (r >= t's block start).
                for t in 0 ..< cols {
                    for r in t + 1 ..< cols { op[t * cols + r] = op[r * cols + t] }
                }
            }
        }
    }

    /// Y [tokens, rows] with Y[t][r] = dot(W[r], X[t]) for W [rows, cols] and X [tokens, cols]
    /// (`edge_matmul_f32`), the rows split over the cores.
    static func product(_ w: [Float], _ x: [Float], tokens: Int, rows: Int, cols: Int) -> [Float] {
        var y = [Float](repeating: 0, count: tokens * rows)
        w.withUnsafeBufferPointer { wp in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    let chunks = max(1, min(EdgeModel.defaultThreads, rows / 64))
                    DispatchQueue.concurrentPerform(iterations: chunks) { c in
                        let r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks
                        edge_matmul_f32(wp.baseAddress, xp.baseAddress, yp.baseAddress, tokens, rows, cols, r0, r1)
                    }
                }
            }
        }
        return y
    }

    /// Adds `rows` activation rows X [rows, cols] seen by `weight`.
    func observe(weight: String, x: UnsafePointer<Float>, rows: Int, cols: Int) {
        let site = Self.site(of: weight)
        guard let needs = wanted[site] else { return }
        // Q, K and V (gate and up) multiply the same rows: count them once per forward call.
        if seen[site] == UnsafeRawPointer(x) { return }
        seen[site] = UnsafeRawPointer(x)
        if needs.contains(.columnNorms) {
            var acc = sumSquares.removeValue(forKey: site) ?? [Double](repeating: 0, count: cols)
            for t in 0 ..< rows {
                let row = x + t * cols
                for j in 0 ..< cols { acc[j] += Double(row[j]) * Double(row[j]) }
            }
            sumSquares[site] = acc
        }
        if !needs.isDisjoint(with: [.hessians, .floatCross]) {
            // X^T X for this chunk with the f32 GEMM (rows <= ctx, so f32 sums are short), accumulated in double.
            var xt = [Float](repeating: 0, count: cols * rows)
            xt.withUnsafeMutableBufferPointer { edge_transpose_f32(x, $0.baseAddress, rows, cols, 0, rows) }
            var g: [Float] = []
            Self.symmetricGram(xt, into: &g, cols: cols, rows: rows)
            // Moved out of the dictionary, so that adding to it does not copy it first.
            var acc = hessians.removeValue(forKey: site) ?? [Double](repeating: 0, count: cols * cols)
            acc.withUnsafeMutableBufferPointer { a in g.withUnsafeBufferPointer { g in for i in 0 ..< a.count { a[i] += Double(g[i]) } } }
            hessians[site] = acc
        }
    }

    /// Input buffers already counted in the current forward call, per site.
    private var seen: [Site: UnsafeRawPointer] = [:]

    /// Ends a forward call: `n` more tokens, and buffers may be reused by the next call.
    func endForward(tokens n: Int) {
        tokens += n
        seen.removeAll(keepingCapacity: true)
        crossSeen.removeAll(keepingCapacity: true)
    }

}

/// Runs the float model over calibration text and gathers what the passes asked for.
public enum Calibration {
    /// Failure to calibrate (text too short, no tokenizer).
    public struct Failure: Error, CustomStringConvertible {
        public let file: String
        public let why: String
        public var description: String { "\(file): \(why)" }
    }

    /// - Parameters:
    ///   - graph: the model as it entered the pipeline (float weights).
    ///   - text: the calibration text (`--data` or the bundled set).
    ///   - wanted: per weight name, what to gather.
    ///   - maxTokens: stop after this many tokens; ctx: window length; spread: see `windows`.
    ///   - progress: (windows done, windows in all).
    public static func collect(graph: ModelGraph, text: CalibrationText, wanted: [String: CalibrationNeeds], maxTokens: Int, ctx: Int,
                               spread: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws -> CalibrationStats {
        let model = try EdgeModel.floatModel(graph: graph)
        if graph.config.isEncoder {
            return try collectEncoder(model: model, text: text, wanted: wanted, maxTokens: maxTokens, progress: progress)
        }
        let ids = try model.tokenize(text.text)
        let window = min(ctx, graph.config.maxPositions)
        guard ids.count >= min(window, 16) else {
            throw Failure(file: text.source, why: "calibration text has \(ids.count) tokens; at least \(min(window, 16)) are needed")
        }
        let stats = CalibrationStats(wanted: wanted)
        model.activationObserver = { weight, x, rows, cols in stats.observe(weight: weight, x: x, rows: rows, cols: cols) }
        defer { model.activationObserver = nil }
        model.microBatch = .max  // each window in one call: the statistics' sums as they were always made
        let chunks = windows(ids, window: window, maxTokens: maxTokens, spread: spread)
        let head = graph.config.tiedEmbeddings ? TensorID.tokenEmbd.name : TensorID.output.name
        for (w, chunk) in chunks.enumerated() {
            // The output head (the embedding when tied) sees the final hidden state of every position.
            let outputs = wanted[head] != nil ? 0 ..< chunk.count : chunk.count - 1 ..< chunk.count
            _ = try model.forward(chunk, cache: try model.makeCache(capacity: chunk.count), outputs: outputs)
            stats.endForward(tokens: chunk.count)
            progress?(w + 1, chunks.count)
        }
        return stats
    }
}

extension Calibration {
    /// A decoder's calibration windows: at most `maxTokens` of the text's tokens `ids`, in windows of
    /// `window`. The text's first tokens (the last window may be short), or with `spread` whole windows
    /// spread evenly over the whole text, so that every kind of writing in it is seen. A text with no
    /// more than `maxTokens` tokens, or a budget under one window, is read from the start either way.
    static func windows(_ ids: [Int32], window: Int, maxTokens: Int, spread: Bool) -> [[Int32]] {
        let available = ids.count / window
        let count = maxTokens / window
        guard spread, ids.count > maxTokens, count >= 1, available > count else {
            let total = min(ids.count, maxTokens)
            return stride(from: 0, to: total, by: window).map { Array(ids[$0 ..< min(total, $0 + window)]) }
        }
        return spreadWindows(ids, length: window, count: count)
    }

    /// An encoder's calibration sentences: the text's sentences (`CalibrationText.sentences`),
    /// tokenized by `tokens`, until `maxTokens`, in batches of up to 512 tokens (a longer sentence is
    /// a batch of its own).
    /// - Throws: `Failure` when the text has fewer than 16 tokens; what `tokens` throws.
    static func sentenceBatches(text: CalibrationText, maxTokens: Int, tokens: (String) throws -> [Int32]) throws -> [[[Int32]]] {
        var sentences: [[Int32]] = [], total = 0
        for sentence in text.sentences {
            guard total < maxTokens else { break }
            let t = try tokens(sentence)
            sentences.append(t)
            total += t.count
        }
        guard total >= 16 else {
            throw Failure(file: text.source, why: "calibration text has \(total) tokens in \(sentences.count) sentences; at least 16 are needed")
        }
        var batches: [[[Int32]]] = [[]], n = 0
        for s in sentences {
            if n + s.count > 512, !batches[batches.count - 1].isEmpty { batches.append([]); n = 0 }
            batches[batches.count - 1].append(s)
            n += s.count
        }
        return batches
    }

    /// An encoder's calibration: the text's sentences (each truncated as
    /// `EdgeModel.sentenceTokens` does), run in batches of up to 512 tokens until `maxTokens`.
    static func collectEncoder(model: EdgeModel, text: CalibrationText, wanted: [String: CalibrationNeeds], maxTokens: Int,
                               progress: ((Int, Int) -> Void)?) throws -> CalibrationStats {
        let batches = try sentenceBatches(text: text, maxTokens: maxTokens) { try model.sentenceTokens($0) }
        let stats = CalibrationStats(wanted: wanted)
        model.activationObserver = { weight, x, rows, cols in stats.observe(weight: weight, x: x, rows: rows, cols: cols) }
        defer { model.activationObserver = nil }
        for (i, b) in batches.enumerated() {
            _ = try model.hiddenStates(b)
            stats.endForward(tokens: b.reduce(0) { $0 + $1.count })
            progress?(i + 1, batches.count)
        }
        return stats
    }
}

extension EdgeModel {
    /// The runtime over a graph's float weights (the "before" model of verify and calibration).
    /// - Parameters:
    ///   - fallbackTokenizer: used when the graph carries no tokenizer.
    ///   - halfPrecisionMatrices: matrices held as f16 (half the memory; the runtime's f16 kernels
    ///     multiply by them), except one with a value beyond f16's range, held as f32.
    public static func floatModel(graph: ModelGraph, fallbackTokenizer: Tokenizer? = nil, halfPrecisionMatrices: Bool = false,
                                  threads: Int = EdgeModel.defaultThreads) throws -> EdgeModel {
        var tensors: [String: WeightSource] = [:]
        for t in graph.tensors {
            let v = try t.floats()
            if halfPrecisionMatrices, t.shape.count == 2, v.allSatisfy({ abs($0) <= 65504 }) {
                tensors[t.name] = .encoded(.f16(name: t.name, shape: t.shape, values: v))
            } else {
                tensors[t.name] = .floats(v, shape: t.shape)
            }
        }
        let tokenizer = try graph.tokenizerJSON.map { try Tokenizer(json: [UInt8]($0)) } ?? fallbackTokenizer
        return try EdgeModel(config: graph.config, tensors: tensors, tokenizer: tokenizer, source: graph.source.path, threads: threads)
    }
}
