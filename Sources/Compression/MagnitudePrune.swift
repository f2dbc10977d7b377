import EdgeFormat
import Foundation

/// Magnitude pruning: zeroes the `sparsity` fraction of smallest-|w| weights, per tensor, per row
/// (output channel; for an embedding, per token) or against one global threshold across all selected tensors; or, with a `pattern` N:M, keeps the N largest
/// |w| of every group of M consecutive inputs of each row (see `NMPattern`; sparsity 1 - N/M).
///
/// Recipe: `{"pass": "magnitude_prune", "sparsity": 0.5, "scope": "per_tensor" | "per_row" | "global", <selector>}`
/// or `{"pass": "magnitude_prune", "pattern": "2:4", <selector>}` (`pattern` and `sparsity` are
/// mutually exclusive); the selector defaults to the linear weights (`kinds: ["linear"]`).
public struct MagnitudePrune: Pass {
    public static let id = "magnitude_prune"
    public static let stage = PassStage.prune

    public enum Scope: String, CaseIterable, Codable, Sendable { case perTensor = "per_tensor", perRow = "per_row", global }

    /// The fraction pruned; with a pattern, the implied 1 - N/M.
    public let sparsity: Double
    public let scope: Scope
    /// N:M semi-structured pruning instead of a threshold.
    public let pattern: NMPattern?
    public let selector: TensorSelector

    /// Global scope: prune |w| < threshold, and |w| == threshold while `tieBudget` lasts (tensor order).
    private var threshold: Float = 0
    private var tieBudget = 0
    private var pruned = 0
    private var total = 0
    private var tensors = 0

    public init(sparsity: Double, scope: Scope = .perTensor, selector: TensorSelector = TensorSelector(kinds: [.linear])) {
        self.sparsity = sparsity
        self.scope = scope
        self.pattern = nil
        self.selector = selector
    }

    /// N:M pruning of the selected tensors.
    public init(pattern: NMPattern, selector: TensorSelector = TensorSelector(kinds: [.linear])) {
        self.sparsity = pattern.sparsity
        self.scope = .perTensor
        self.pattern = pattern
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        (sparsity, pattern) = try f.pruneAmount()
        scope = pattern != nil ? .perTensor : try f.choice("scope", default: Scope.perTensor)
        selector = try f.selector(defaultKinds: [.linear])
    }

    /// A global threshold is chosen over every selected tensor's values.
    public var readsWeightsInPrepare: Bool { scope == .global }

    public mutating func prepare(graph: ModelGraph, context: PassContext) throws {
        guard scope == .global else { return }
        let selected = graph.tensors.filter { selector.selects($0.name, numLayers: graph.config.numLayers) }
        var histogram = MagnitudeThreshold.Histogram()
        for t in selected { histogram.add(try t.floats()) }
        let k = Int((Double(histogram.count) * sparsity).rounded(.down))
        (threshold, tieBudget) = try histogram.threshold(keepingSmallest: k) { collect in
            for t in selected { collect(try t.floats()) }
        }
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        tensors += 1
        total += t.values.count
        if let pattern {
            pruned += pattern.apply(to: &t.values, rows: t.rows, cols: t.cols)
            return
        }
        if scope == .perRow {
            // Each row loses its floor(s * cols) smallest |w| (ties: lower column first), as Wanda
            // with every input norm 1.
            try WandaPrune.prune(&t.values, rows: t.rows, cols: t.cols, norms: [Float](repeating: 1, count: t.cols), sparsity: sparsity)
            pruned += Int((Double(t.cols) * sparsity).rounded(.down)) * t.rows
            return
        }
        if scope == .perTensor {
            let k = Int((Double(t.values.count) * sparsity).rounded(.down))
            var histogram = MagnitudeThreshold.Histogram()
            histogram.add(t.values)
            let values = t.values
            (threshold, tieBudget) = histogram.threshold(keepingSmallest: k) { collect in collect(values) }
        }
        guard tieBudget > 0 || threshold > 0 else { return }
        for i in t.values.indices {
            let m = t.values[i].magnitude
            if m < threshold || (m == threshold && tieBudget > 0) {
                if m == threshold { tieBudget -= 1 }
                t.values[i] = 0
                pruned += 1
            }
        }
    }

    /// `pruned` counts the positions set to zero (including values that were zero already); with a
    /// pattern, `achieved_sparsity` is 1 - N/M up to the partial last groups.
    public func record() -> JSONValue {
        var o: [String: JSONValue] = [
            "pass": .string(Self.id), "sparsity": .number(sparsity), "scope": .string(scope.rawValue),
            "selector": selector.record, "tensors": .number(Double(tensors)), "weights": .number(Double(total)),
            "pruned": .number(Double(pruned)),
            "achieved_sparsity": .number(total > 0 ? Double(pruned) / Double(total) : 0),
        ]
        if let pattern { o["pattern"] = .string(pattern.description) }
        return .object(o)
    }
}

/// Finds the k-th smallest |w| over one or many tensors in two streaming passes: a histogram of
/// the top 16 bits of |w| (monotonic in |w| for non-negative floats) locates the bin holding it,
/// then only that bin's values are sorted. O(n) time, O(bin) extra memory.
enum MagnitudeThreshold {
    struct Histogram {
        var bins = [Int](repeating: 0, count: 1 << 16)
        var count = 0

        mutating func add(_ values: [Float]) {
            bins.withUnsafeMutableBufferPointer { b in
                for x in values { b[Int(x.magnitude.bitPattern >> 16)] += 1 }
            }
            count += values.count
        }

        /// (t, ties): pruning every |w| < t and the first `ties` values with |w| == t (in stream
        /// order) removes exactly k values. (0, 0) when k is 0.
        /// - Parameter stream: replays the same values, in the same order, to `collect`.
        func threshold(keepingSmallest k: Int, stream: (([Float]) -> Void) throws -> Void) rethrows -> (Float, Int) {
            guard k > 0 else { return (0, 0) }
            var below = 0, bin = 0
            while below + bins[bin] < k { below += bins[bin]; bin += 1 }
            var inBin: [Float] = []
            inBin.reserveCapacity(bins[bin])
            try stream { values in
                for x in values where Int(x.magnitude.bitPattern >> 16) == bin { inBin.append(x.magnitude) }
            }
            inBin.sort()
            let need = k - below  // 1...bins[bin]
            let t = inBin[need - 1]
            let less = inBin.prefix(need).reduce(0) { $0 + ($1 < t ? 1 : 0) }
            return (t, need - less)
        }
    }
}
