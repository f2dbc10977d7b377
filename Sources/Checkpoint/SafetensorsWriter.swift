import EdgeFormat
import EdgeKernels
import Foundation

/// Writes safetensors files, streaming: the header is computed from the names, dtypes and
/// shapes alone, then each tensor's values are asked for, converted and written one at a time,
/// so a whole model is never in memory. Output is atomic (`AtomicOutput`) and deterministic:
/// header keys sorted, compact JSON, padded with spaces to a multiple of 8 bytes, data in
/// name order.
public enum SafetensorsWriter {
    /// One tensor to write.
    public struct Tensor: Sendable {
        public let name: String
        /// F32, F16 or BF16.
        public let dtype: SafetensorsDType
        public let shape: [Int]

        public init(name: String, dtype: SafetensorsDType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    /// The header bytes (length prefix included) for `tensors`, which must be sorted by name;
    /// returns them with each tensor's byte count.
    static func header(_ tensors: [Tensor], metadata: [String: String], file: String) throws -> (bytes: [UInt8], sizes: [Int]) {
        func bad(_ why: String) -> FormatError { .invalid(file: file, what: why) }
        var root: [String: JSONValue] = [:]
        if !metadata.isEmpty { root["__metadata__"] = .object(metadata.mapValues { .string($0) }) }
        var offset = 0
        var sizes: [Int] = []
        for t in tensors {
            guard t.name != "__metadata__", root[t.name] == nil else { throw bad("tensor name '\(t.name)' is reserved or repeated") }
            guard t.dtype.isReadable else { throw bad("tensor '\(t.name)': cannot write dtype \(t.dtype.rawValue)") }
            guard let count = Checked.product(t.shape), let bytes = Checked.mul(count, t.dtype.size),
                  let end = Checked.add(offset, bytes) else {
                throw bad("tensor '\(t.name)': shape \(t.shape) is negative or overflows")
            }
            root[t.name] = .object([
                "dtype": .string(t.dtype.rawValue),
                "shape": .array(t.shape.map { .number(Double($0)) }),
                "data_offsets": .array([.number(Double(offset)), .number(Double(end))]),
            ])
            sizes.append(bytes)
            offset = end
        }
        var json = try JSONValue.object(root).jsonBytes()
        json += [UInt8](repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
        return (out + json, sizes)
    }

    /// Writes `tensors` to `path` atomically.
    /// - Parameters:
    ///   - tensors: what to write; stored in name order whatever the order given.
    ///   - metadata: the header's `__metadata__` (omitted when empty). Transformers wants `["format": "pt"]`.
    ///   - protecting: paths the output must never replace (the inputs).
    ///   - values: called once per tensor, in file (name) order; returns its values as float32,
    ///     row-major, `shape`'s element count of them.
    /// - Throws: `FormatError` for a bad tensor list, a wrong value count, a value that overflows F16/BF16, or
    ///   I/O; whatever `values` throws. The destination is untouched on any error.
    public static func write(to path: String, tensors: [Tensor], metadata: [String: String] = [:], protecting: [String] = [],
                             values: (Tensor) throws -> [Float]) throws {
        let sorted = tensors.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        let (header, sizes) = try header(sorted, metadata: metadata, file: path)
        let out = try AtomicOutput(destination: path, protecting: protecting)
        try out.write(header)
        for (t, size) in zip(sorted, sizes) {
            let v = try values(t)
            guard v.count * t.dtype.size == size else {
                throw FormatError.invalid(file: path, what: "tensor '\(t.name)': got \(v.count) values for shape \(t.shape)")
            }
            try out.write(try encode(v, as: t.dtype, tensor: t.name, file: path))
        }
        try out.commit()
    }

    /// `values` in `dtype`'s little-endian bytes.
    /// - Throws: `FormatError.invalid` when a finite value rounds to infinity in F16 or BF16.
    static func encode(_ values: [Float], as dtype: SafetensorsDType, tensor: String, file: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * dtype.size)
        guard !values.isEmpty else { return bytes }
        values.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBytes { dst in
                switch dtype {
                case .f16: edge_f32_to_f16_row(src.baseAddress, dst.baseAddress, src.count)
                case .bf16: edge_f32_to_bf16_row(src.baseAddress, dst.baseAddress, src.count)
                default:
                    for (i, x) in src.enumerated() {
                        dst.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                    }
                }
            }
        }
        if dtype == .f16 || dtype == .bf16 {
            // A finite value that rounds to infinity does not fit the narrower type.
            let infinity: UInt16 = dtype == .f16 ? 0x7C00 : 0x7F80
            for (i, x) in values.enumerated() where x.isFinite {
                let bits = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
                if bits & 0x7FFF == infinity {
                    throw FormatError.invalid(file: file, what: "tensor '\(tensor)': value \(x) at index \(i) overflows \(dtype.rawValue)")
                }
            }
        }
        return bytes
    }
}
