import EdgeFormat
import Foundation

/// Unstructured magnitude pruning: zeroes the `sparsity` fraction of smallest-|w| weights, per
/// tensor or against one global threshold across all selected tensors.
///
/// Recipe: `{"pass": "magnitude_prune", "sparsity": 0.5, "scope": "per_tensor" | "global", <selector>}`;
/// the selector defaults to the linear weights of the transformer blocks (`kinds: ["linear"]`).
public struct MagnitudePrune: Pass {
    public static let id = "magnitude_prune"
    public static let stage = PassStage.prune

    public enum Scope: String { case perTensor = "per_tensor", global }

    public let sparsity: Double
    public let scope: Scope
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
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        sparsity = try f.double("sparsity", default: nil, range: 0 ... 1, openUpper: true)
        scope = Scope(rawValue: try f.string("scope", default: "per_tensor", allowed: ["per_tensor", "global"]))!
        selector = try f.selector(defaultKinds: [.linear])
    }

    public mutating func prepare(graph: ModelGraph, context: PassContext) throws {
        guard scope == .global else { return }
        // Pass 1: histogram of the top 16 bits of |w| (monotonic in |w| for non-negative floats).
        var histogram = [Int](repeating: 0, count: 1 << 16)
        var n = 0
        let selected = graph.tensors.filter { selector.selects($0.name, numLayers: graph.config.numLayers) }
        for t in selected {
            let v = try t.floats()
            for x in v { histogram[Int(x.magnitude.bitPattern >> 16)] += 1 }
            n += v.count
        }
        let k = Int((Double(n) * sparsity).rounded(.down))
        guard k > 0 else { threshold = 0; tieBudget = 0; return }
        var below = 0, bin = 0
        while below + histogram[bin] < k { below += histogram[bin]; bin += 1 }
        // Pass 2: exact order statistic inside the bin that holds the k-th smallest.
        var inBin: [Float] = []
        for t in selected {
            for x in try t.floats() where Int(x.magnitude.bitPattern >> 16) == bin { inBin.append(x.magnitude) }
        }
        inBin.sort()
        let need = k - below  // how many of this bin to prune (>= 1)
        threshold = inBin[need - 1]
        let lessInBin = inBin.prefix(need).filter { $0 < threshold }.count
        tieBudget = need - lessInBin
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        tensors += 1
        total += t.values.count
        switch scope {
        case .perTensor:
            let k = Int((Double(t.values.count) * sparsity).rounded(.down))
            guard k > 0 else { return }
            let mags = t.values.map(\.magnitude).sorted()
            let th = mags[k - 1]
            var ties = k - mags.prefix(k).filter { $0 < th }.count
            for i in t.values.indices {
                let m = t.values[i].magnitude
                if m < th || (m == th && ties > 0) {
                    if m == th { ties -= 1 }
                    t.values[i] = 0
                    pruned += 1
                }
            }
        case .global:
            for i in t.values.indices {
                let m = t.values[i].magnitude
                if m < threshold || (m == threshold && tieBudget > 0 && sparsity > 0) {
                    if m == threshold { tieBudget -= 1 }
                    t.values[i] = 0
                    pruned += 1
                }
            }
        }
    }

    public func record() -> JSONValue {
        .object([
            "pass": .string(Self.id), "sparsity": .number(sparsity), "scope": .string(scope.rawValue),
            "selector": selector.record, "tensors": .number(Double(tensors)), "weights": .number(Double(total)),
            "pruned": .number(Double(pruned)),
            "achieved_sparsity": .number(total > 0 ? Double(pruned) / Double(total) : 0),
        ])
    }
}
