import EdgeFormat
import Foundation

/// Activation-aware pruning (Wanda, Sun et al. 2023): scores each weight by |W_ij| * ||X_j||,
/// the norm of input column j over calibration text, and removes the lowest-scoring `sparsity`
/// fraction of every output row (the comparison group the method defines).
///
/// Recipe: `{"pass": "wanda_prune", "sparsity": 0.5, <selector>}`; needs `--data FILE`.
/// The selector defaults to the linear weights.
public struct WandaPrune: Pass {
    public static let id = "wanda_prune"
    public static let stage = PassStage.prune

    public let sparsity: Double
    public let selector: TensorSelector
    private var tensors = 0
    private var pruned = 0
    private var total = 0

    public init(sparsity: Double, selector: TensorSelector = TensorSelector(kinds: [.linear])) {
        self.sparsity = sparsity
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        sparsity = try f.double("sparsity", default: nil, range: 0 ... 1, openUpper: true)
        selector = try f.selector(defaultKinds: [.linear])
    }

    public var calibrationNeeds: CalibrationNeeds { .columnNorms }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard t.shape.count == 2 else {
            throw PassError(pass: Self.id, tensor: t.name, why: "is \(t.shape.count)-D; Wanda prunes rows of a matrix")
        }
        guard let norms = context.calibration?.columnNorms(for: t.name), norms.count == t.cols else {
            throw PassError(pass: Self.id, tensor: t.name, why: "no calibration statistics for its inputs (is it a linear weight the model multiplies?)")
        }
        try Self.prune(&t.values, rows: t.rows, cols: t.cols, norms: norms, sparsity: sparsity)
        tensors += 1
        total += t.values.count
        pruned += Int((Double(t.cols) * sparsity).rounded(.down)) * t.rows
    }

    /// Zeroes, in each row, the floor(sparsity * cols) weights with the smallest |w| * norm
    /// (ties broken by column index).
    static func prune(_ w: inout [Float], rows: Int, cols: Int, norms: [Float], sparsity: Double) throws {
        let k = Int((Double(cols) * sparsity).rounded(.down))
        guard k > 0 else { return }
        var order = [Int](repeating: 0, count: cols)
        var score = [Float](repeating: 0, count: cols)
        for r in 0 ..< rows {
            let base = r * cols
            for j in 0 ..< cols { score[j] = w[base + j].magnitude * norms[j]; order[j] = j }
            order.sort { score[$0] < score[$1] || (score[$0] == score[$1] && $0 < $1) }
            for j in order.prefix(k) { w[base + j] = 0 }
        }
    }

    public func record() -> JSONValue {
        .object(["pass": .string(Self.id), "sparsity": .number(sparsity), "selector": selector.record,
                 "tensors": .number(Double(tensors)), "weights": .number(Double(total)), "pruned": .number(Double(pruned)),
                 "achieved_sparsity": .number(total > 0 ? Double(pruned) / Double(total) : 0)])
    }
}
