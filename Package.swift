// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "EdgeCompress",
    products: [
        // The two command-line tools.
        .executable(name: "compress", targets: ["CompressCLI"]),
        .executable(name: "edge-run", targets: ["EdgeRunCLI"]),
        // What a device app links: the runtime, which brings the format and the kernels, nothing of the compressor.
        .library(name: "EdgeRuntime", targets: ["EdgeRuntime"]),
        // The compressor as a library (import + passes), for tools that embed it.
        .library(name: "EdgeCompression", targets: ["Compression"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "EdgeKernels", path: "Sources/EdgeKernels"),
        .target(name: "EdgeFormat", dependencies: ["CZlib", "EdgeKernels"]),
        .target(name: "EdgeRuntime", dependencies: ["EdgeFormat", "EdgeKernels"]),
        .target(name: "Checkpoint", dependencies: ["EdgeFormat", "EdgeKernels"]),
        // Reverse-mode training of GPT-2 / Llama models (the distill pass and fixture training).
        .target(name: "Training", dependencies: ["EdgeFormat", "EdgeKernels", "EdgeRuntime"]),
        .target(name: "Compression", dependencies: ["Checkpoint", "EdgeFormat", "EdgeRuntime", "EdgeKernels", "Training"]),
        // Terminal helpers the two tools share (progress bar); depends on nothing of ours.
        .target(name: "CLISupport"),
        .executableTarget(name: "CompressCLI", dependencies: [
            "Compression", "CLISupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "EdgeRunCLI", dependencies: [
            "EdgeRuntime", "CLISupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "EdgeKernelsTests", dependencies: ["EdgeKernels"]),
        .testTarget(name: "EdgeFormatTests", dependencies: ["EdgeFormat"]),
        .testTarget(name: "EdgeRuntimeTests", dependencies: ["EdgeRuntime"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "EdgeFormat"]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "Checkpoint", "EdgeFormat", "EdgeRuntime"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "EdgeFormat", "EdgeRuntime", "Checkpoint"]),
        .testTarget(name: "CLITests", dependencies: ["Compression", "Checkpoint", "EdgeFormat", "CompressCLI"]),
    ],
    swiftLanguageModes: [.v5]
)
