import EdgeFormat
import Foundation

/// Stores the selected tensors that no earlier pass encoded as f16 (or f32).
///
/// Recipe: `{"pass": "cast", "dtype": "f16" | "f32", <selector>}`; the selector defaults to every tensor.
public struct Cast: Pass {
    public static let id = "cast"
    public static let stage = PassStage.quantize

    public let dtype: Encoding
    public let selector: TensorSelector
    private var tensors = 0
    private var maxRelativeError: Float = 0

    public init(dtype: Encoding, selector: TensorSelector = TensorSelector(kinds: Set(TensorName.Kind.allCases))) {
        self.dtype = dtype
        self.selector = selector
    }

    public init(fields f: inout RecipeFields) throws {
        dtype = Encoding(rawValue: try f.string("dtype", default: nil, allowed: ["f16", "f32"]))!
        selector = try f.selector(defaultKinds: Set(TensorName.Kind.allCases))
    }

    public mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        guard t.encoded == nil else { return }  // already quantized: cast only stores what is left as float
        switch dtype {
        case .f16:
            let enc = EncodedTensor.f16(name: t.name, shape: t.shape, values: t.values)
            for (i, v) in t.values.enumerated() where v.magnitude > 65504 {
                throw PassError(pass: Self.id, tensor: t.name, why: "value \(v) at index \(i) overflows f16 (max 65504)")
            }
            let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .f16, shape: t.shape, params: .init()) }
            for i in t.values.indices where t.values[i] != 0 {
                maxRelativeError = max(maxRelativeError, ((back[i] - t.values[i]) / t.values[i]).magnitude)
            }
            t.values = back
            t.encoded = enc
        default:
            t.encoded = .f32(name: t.name, shape: t.shape, values: t.values)
        }
        t.encodedBy = context.index
        tensors += 1
    }

    public func record() -> JSONValue {
        .object(["pass": .string(Self.id), "dtype": .string(dtype.rawValue), "selector": selector.record,
                 "tensors": .number(Double(tensors)), "max_relative_error": .number(Double(maxRelativeError))])
    }
}
