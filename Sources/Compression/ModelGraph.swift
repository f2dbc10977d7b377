import Checkpoint
import EdgeFormat
import Foundation

/// The model as the pipeline sees it: config, tokenizer and named tensors, read lazily from the
/// mapped input (nothing is loaded until a pass or the writer asks for a tensor's values).
public struct ModelGraph {
    public var config: ModelConfig
    public var tokenizerJSON: Data?
    public var tensors: [SourceTensor]
    /// The checkpoint it came from (provenance).
    public let source: Checkpoint

    public init(_ checkpoint: Checkpoint) {
        config = checkpoint.config
        tokenizerJSON = checkpoint.tokenizerJSON
        tensors = checkpoint.tensors
        source = checkpoint
    }

    /// Number of weights in the model.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }
}
