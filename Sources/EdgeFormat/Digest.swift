import EdgeKernels

/// Incremental SHA-256 (the C implementation in EdgeKernels), hex output.
public struct SHA256 {
    private var ctx = edge_sha256_ctx()

    public init() { edge_sha256_init(&ctx) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        edge_sha256_update(&ctx, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { edge_sha256_final(&ctx, $0.baseAddress!) }
        return out
    }

    public mutating func hexDigest() -> String { hexString(finalize()) }

    /// SHA-256 of `bytes` as lowercase hex.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var h = SHA256()
        h.update(bytes)
        return h.hexDigest()
    }
}
