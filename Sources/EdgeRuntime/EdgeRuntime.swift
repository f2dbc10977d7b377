import EdgeFormat
import EdgeKernels

/// The minimal on-device runtime. This module links only EdgeFormat and EdgeKernels.
public enum EdgeRuntimeInfo {
    public static let version = "0.1.0"
}
