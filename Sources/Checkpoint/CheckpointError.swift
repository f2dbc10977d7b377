import EdgeFormat
import Foundation

/// Everything that can be wrong with an input checkpoint. Each case names the file and, where
/// there is one, the tensor or field; `description` is the one line the CLI prints.
public enum CheckpointError: Error, CustomStringConvertible {
    /// The path does not exist.
    case notFound(path: String)
    /// The path exists but is not a supported input (and why).
    case unsupportedInput(path: String, why: String)
    /// A header, index or metadata block is malformed.
    case badHeader(file: String, why: String)
    /// A tensor has a data type this tool does not read.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// A tensor's data range is outside the file, overlaps another, or leaves gaps the format forbids.
    case badOffsets(file: String, tensor: String, why: String)
    /// A tensor's shape disagrees with the model config.
    case shapeMismatch(file: String, tensor: String, expected: [Int], got: [Int])
    /// A tensor the config requires is absent.
    case missingTensor(file: String, tensor: String)
    /// A tensor the tool does not know how to place.
    case unexpectedTensor(file: String, tensor: String)
    /// The same tensor appears twice.
    case duplicateTensor(file: String, tensor: String)
    /// A weight is NaN or infinite.
    case nonFinite(file: String, tensor: String, index: Int, value: Float)
    /// The architecture named by the config is not GPT-2 or Llama.
    case unknownArchitecture(file: String, name: String)
    /// A config field is missing or out of range.
    case badConfig(file: String, field: String, why: String)

    public var description: String {
        // Names and values from the file are shown escaped and cut (a 4 KB name stays one short line).
        func q(_ s: String) -> String { Excerpt.escaped(s, limit: 80) }
        switch self {
        case let .notFound(path): return "\(path): no such file or folder"
        case let .unsupportedInput(path, why): return "\(path): unsupported input: \(why)"
        case let .badHeader(file, why): return "\(file): malformed header: \(why)"
        case let .unknownDType(file, tensor, dtype): return "\(file): tensor '\(q(tensor))': unsupported dtype \(q(dtype))"
        case let .badOffsets(file, tensor, why): return "\(file): tensor '\(q(tensor))': \(why)"
        case let .shapeMismatch(file, tensor, e, g):
            return "\(file): tensor '\(q(tensor))': shape \(Excerpt.shape(g)) does not match the config, which implies \(Excerpt.shape(e))"
        case let .missingTensor(file, tensor): return "\(file): tensor '\(q(tensor))' is missing"
        case let .unexpectedTensor(file, tensor): return "\(file): unexpected tensor '\(q(tensor))'"
        case let .duplicateTensor(file, tensor): return "\(file): tensor '\(q(tensor))' appears more than once"
        case let .nonFinite(file, tensor, index, value):
            return "\(file): tensor '\(q(tensor))': value \(value) at index \(index) is not finite"
        case let .unknownArchitecture(file, name):
            return "\(file): unsupported architecture '\(q(name))' (supported: GPT2LMHeadModel, LlamaForCausalLM and Llama-family models, BertModel)"
        case let .badConfig(file, field, why): return "\(file): config field '\(q(field))' \(why)"
        }
    }
}
