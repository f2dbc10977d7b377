import EdgeFormat
import Foundation

/// How a pruning pass spreads its sparsity over the blocks.
///
/// - `uniform`: every block loses the same fraction.
/// - `owl`: outlier-weighted layerwise sparsity (OWL, Yin et al. 2024): blocks whose weights carry
///   more outliers keep more of them. A block's outlier ratio D_l is the fraction of its selected
///   weights whose Wanda score |W_ij| * ||X_j|| exceeds `threshold` times the block's mean score
///   (the statistics of one run of the float model over the calibration text). The ratios are
///   rescaled to span 2 * `lambda`, and block l prunes s_l = s - (D'_l - mean D'), the mean taken
///   over the blocks weighted by their selected weights, so the pass still prunes the fraction s of
///   every selected weight (each s_l clamped to [0, 0.99]).
public enum LayerSparsity: String, CaseIterable, Codable, Sendable {
    case uniform
    case owl

    /// OWL's settings.
    public struct OWL: Equatable, Sendable {
        /// Half the spread of the blocks' sparsities around the target.
        public var lambda = 0.08
        /// A weight is an outlier when its score exceeds `threshold` x the block's mean.
        public var threshold = 5.0
        public init(lambda: Double = 0.08, threshold: Double = 5) {
            self.lambda = lambda
            self.threshold = threshold
        }
    }

    /// The outlier ratio of one block: the fraction of its weights whose score |w| * norm of their
    /// column exceeds `threshold` times the mean score over all of them.
    /// - Parameter matrices: (values [rows, cols] row-major, the cols input column norms) per matrix.
    static func outlierRatio(_ matrices: [(values: [Float], norms: [Float])], threshold: Double) -> Double {
        var sum = 0.0, count = 0
        for (w, norms) in matrices {
            let cols = norms.count
            for (i, v) in w.enumerated() { sum += Double(v.magnitude * norms[i % cols]) }
            count += w.count
        }
        guard count > 0 else { return 0 }
        let cut = threshold * sum / Double(count)
        var outliers = 0
        for (w, norms) in matrices {
            let cols = norms.count
            for (i, v) in w.enumerated() where Double(v.magnitude * norms[i % cols]) > cut { outliers += 1 }
        }
        return Double(outliers) / Double(count)
    }

    /// Per-block sparsities from outlier ratios (see the type's documentation).
    /// - Parameters:
    ///   - ratios: per block, its outlier ratio and its number of selected weights.
    ///   - target: the overall fraction to prune.
    static func owlSparsities(ratios: [Int: (ratio: Double, weights: Int)], target: Double, lambda: Double) -> [Int: Double] {
        guard let lo = ratios.values.map(\.ratio).min(), let hi = ratios.values.map(\.ratio).max() else { return [:] }
        let scaled = ratios.mapValues { hi > lo ? ($0.ratio - lo) / (hi - lo) * 2 * lambda : 0 }
        let total = Double(ratios.values.reduce(0) { $0 + $1.weights })
        let mean = ratios.reduce(0.0) { $0 + scaled[$1.key]! * Double($1.value.weights) } / max(total, 1)
        return scaled.mapValues { min(0.99, max(0, target - ($0 - mean))) }
    }
}
