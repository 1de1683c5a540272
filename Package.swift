// swift-tools-version:6.0
// deltahook: one binary that turns SaaS APIs without webhooks into signed webhook sources.
//
// Module boundaries are targets so the compiler enforces the architecture (see ARCHITECTURE.md):
//   C wrappers are imported only by their one owner: CSQLite by Store, CPostgres (libpq) by PostgresStore,
//   CCurl by HTTPClient, COpenSSL by Crypto.
//   Engine never imports HTTPServer or Delivery; Providers never import Delivery or Store;
//   Store never imports Providers.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "deltahook",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "deltahook", targets: ["DeltahookCLI"]),
    ],
    targets: [
        // MARK: C system libraries (thin wrappers, shims only for variadic/macro APIs)
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CPostgres", path: "Sources/CPostgres", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),

        // MARK: Foundation-level building blocks
        .target(name: "Crypto", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(name: "Core", dependencies: ["Crypto"], swiftSettings: strict),
        .target(name: "Logging", dependencies: ["Core"], swiftSettings: strict),
        .target(name: "Store", dependencies: ["CSQLite", "Core"], swiftSettings: strict),
        // The PostgreSQL store backend (libpq through CPostgres), built on Store's abstractions.
        .target(name: "PostgresStore", dependencies: ["CPostgres", "Store", "Core"], path: "Sources/PostgresStore",
                swiftSettings: strict),
        .target(name: "Config", dependencies: ["Core", "Crypto"], swiftSettings: strict),
        .target(name: "HTTPClient", dependencies: ["CCurl", "Core"], swiftSettings: strict),
        .target(name: "HTTPServer", dependencies: ["Core"], swiftSettings: strict),

        // MARK: The pipeline
        .target(name: "Providers", dependencies: ["Core", "Crypto", "Config", "HTTPClient", "Logging"], swiftSettings: strict),
        .target(name: "Engine", dependencies: ["Core", "Crypto", "Store", "Logging"], swiftSettings: strict),
        .target(name: "Delivery", dependencies: ["Core", "Crypto", "Config", "Store", "HTTPClient", "Logging"],
                swiftSettings: strict),
        .target(name: "Daemon",
                dependencies: ["Core", "Crypto", "Config", "Store", "PostgresStore", "Logging", "Engine", "Providers", "Delivery",
                               "HTTPServer", "HTTPClient"],
                swiftSettings: strict),

        // MARK: Emulated providers and receivers (tests and `deltahook demo`)
        .target(name: "Emulators", dependencies: ["Core", "Crypto", "HTTPServer", "HTTPClient"], swiftSettings: strict),

        // MARK: The binary
        .executableTarget(name: "DeltahookCLI",
                          dependencies: ["Core", "Config", "Store", "Logging", "Daemon", "Engine", "Providers",
                                         "Delivery", "Emulators", "Crypto", "HTTPClient", "HTTPServer"],
                          swiftSettings: strict),

        // MARK: Benchmark harness (Scripts/bench, soak, bench-cluster, bench-e2e), not shipped. Emulators and PostgresStore for
        // bench-cluster: it serves the providers and the receiver, and reads the nodes' shared store.
        .executableTarget(name: "DeltahookBench", dependencies: ["Core", "Crypto", "Engine", "Store", "Logging",
                                                                 "Emulators", "PostgresStore", "HTTPClient"],
                          swiftSettings: strict),

        // MARK: Tests
        // `deltahook run` with the engine's liveness stalled (DaemonTestHooks), for the watchdog proofs only.
        .executableTarget(name: "DeltahookWatchdogProof", dependencies: ["Daemon"], path: "Tests/WatchdogProof",
                          swiftSettings: strict),
        .target(name: "TestSupport", dependencies: ["Core", "HTTPServer", "Emulators"], path: "Tests/TestSupport",
                swiftSettings: strict),
        .testTarget(name: "CoreTests", dependencies: ["Core", "Crypto", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Core", "PostgresStore", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "PostgresStoreTests", dependencies: ["PostgresStore", "Store", "Core", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Core", "Logging"], swiftSettings: strict),
        .testTarget(name: "LoggingTests", dependencies: ["Logging", "Core"], swiftSettings: strict),
        .testTarget(name: "HTTPTests", dependencies: ["HTTPClient", "HTTPServer", "Core", "Emulators", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Store", "Core", "Providers", "Emulators",
                                                        "HTTPClient", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ProviderTests", dependencies: ["Providers", "Core", "Crypto", "Config", "Emulators", "HTTPClient",
                                                          "HTTPServer", "Engine", "Store", "Logging", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "DeliveryTests", dependencies: ["Delivery", "Store", "Core", "Crypto", "Emulators", "Logging",
                                                          "HTTPClient", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "EndToEndTests", dependencies: ["Core", "Crypto", "Config", "Emulators", "HTTPServer", "HTTPClient",
                                                          "Daemon", "Logging", "Store", "PostgresStore", "Providers",
                                                          "TestSupport"],
                    swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
