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
        .target(name: "Checkpoint", dependencies: ["EdgeFormat", "EdgeKernels", "EdgeRuntime"]),
        // Reverse-mode training of GPT-2 / Llama models (the distill pass and fixture training).
        .target(name: "Training", dependencies: ["EdgeFormat", "EdgeKernels", "EdgeRuntime"]),
        // The bundled calibration text (calibration.txt, embedded by the assembler), used when a recipe
        // needs calibration and no --data is given.
        .target(name: "CalibrationSet", exclude: ["calibration.txt"], cSettings: [.headerSearchPath(".")]),
        .target(name: "Compression", dependencies: ["Checkpoint", "EdgeFormat", "EdgeRuntime", "EdgeKernels", "Training", "CalibrationSet"]),
        // What the two tools share, without ArgumentParser or Foundation (edge-run links it): the progress
        // bar, the one-line error, the kernel choice (--kernels, --gemm).
        .target(name: "RunSupport", dependencies: ["EdgeFormat", "EdgeRuntime"]),
        // The ArgumentParser side of RunSupport, for compress: the kernel options as an option group, main().
        .target(name: "CLISupport", dependencies: ["RunSupport", "EdgeRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "CompressCLI", dependencies: [
            "Compression", "CLISupport", "RunSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Links nothing that imports Foundation or FoundationEssentials, so its static build stays small
        // (docs/performance.md, "The runtime binary"); it parses its arguments by hand.
        .executableTarget(name: "EdgeRunCLI", dependencies: ["EdgeRuntime", "RunSupport"]),
        // What the test targets share: package and fixture paths, temporary folders, running the built
        // tools and python, fixture models read through the real importer, seeded randomness.
        // Tests may depend on the compressor's modules; the runtime modules still must not.
        .target(name: "TestSupport", dependencies: ["Checkpoint", "EdgeFormat", "EdgeRuntime", "Training"], path: "Tests/TestSupport"),
        .testTarget(name: "EdgeKernelsTests", dependencies: ["EdgeKernels"]),
        .testTarget(name: "EdgeFormatTests", dependencies: ["EdgeFormat", "TestSupport"]),
        .testTarget(name: "EdgeRuntimeTests", dependencies: ["EdgeRuntime", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "EdgeFormat", "TestSupport"]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "Checkpoint", "EdgeFormat", "EdgeRuntime", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "EdgeFormat", "EdgeRuntime", "Checkpoint", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Compression", "Checkpoint", "EdgeFormat", "CompressCLI", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
