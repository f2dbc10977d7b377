import CZlib

/// zlib's CRC-32 (ISO-HDLC: reflected polynomial 0xEDB88320, initial value 0, final xor built in;
/// the checksum of "123456789" is 0xCBF43926). The `.edge` checksum of the header and of every item.
public enum CRC32 {
    /// The checksum of `bytes`, continuing from `previous` (0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return previous }
        return UInt32(truncatingIfNeeded: crc32_z(uLong(previous), base.assumingMemoryBound(to: Bytef.self), bytes.count))
    }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}

/// zlib-wrapped deflate (RFC 1950 around RFC 1951), as produced by zlib's `compress2` and read
/// by `uncompress2`. The stream carries its own Adler-32 of the uncompressed bytes.
public enum Deflate {
    /// The fixed compression level the `.edge` writer uses, so output bytes are reproducible.
    public static let level: Int32 = 6

    /// Why compression or decompression failed.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, in words.
        public let why: String
        public var description: String { why }
    }

    /// Compresses `bytes` at `level` into a zlib stream.
    /// - Throws: `Failure` if zlib reports an error (out of memory).
    public static func compress(_ bytes: UnsafeRawBufferPointer, level: Int32 = Deflate.level) throws -> [UInt8] {
        var bound = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(bound))
        let src = bytes.baseAddress?.assumingMemoryBound(to: Bytef.self)
        let rc = out.withUnsafeMutableBufferPointer { dst in
            compress2(dst.baseAddress, &bound, src, uLong(bytes.count), level)
        }
        guard rc == Z_OK else { throw Failure(why: "zlib compress2 failed with code \(rc)") }
        out.removeSubrange(Int(bound)...)
        return out
    }

    /// Decompresses the zlib stream `bytes` into `destination`, which must be exactly the
    /// uncompressed size: the stream must fill it completely and be consumed to its last byte.
    /// - Throws: `Failure` naming the problem (corrupt stream, wrong size, trailing bytes).
    public static func decompress(_ bytes: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        var produced = uLong(destination.count)
        var consumed = uLong(bytes.count)
        // zlib wants a non-null output pointer even for zero bytes.
        var scratch: UInt8 = 0
        let rc = withUnsafeMutablePointer(to: &scratch) { scratchPtr in
            uncompress2(destination.baseAddress?.assumingMemoryBound(to: Bytef.self) ?? scratchPtr, &produced,
                        bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), &consumed)
        }
        switch rc {
        case Z_OK: break
        case Z_BUF_ERROR:
            throw Failure(why: "the deflate stream is truncated or does not decompress to exactly the declared \(destination.count) bytes")
        case Z_DATA_ERROR:
            throw Failure(why: "the deflate stream is corrupt (zlib: \(String(cString: zError(rc))))")
        default:
            throw Failure(why: "zlib uncompress2 failed with code \(rc)")
        }
        guard produced == uLong(destination.count) else {
            throw Failure(why: "the deflate stream holds \(produced) bytes; \(destination.count) were declared")
        }
        guard consumed == uLong(bytes.count) else {
            throw Failure(why: "\(uLong(bytes.count) - consumed) bytes follow the end of the deflate stream")
        }
    }
}
