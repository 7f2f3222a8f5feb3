// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "portier",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "portierd", targets: ["portierd"]),
        .executable(name: "portier", targets: ["portier"]),
        .executable(name: "portier-bench", targets: ["portier-bench"]),
        .executable(name: "portier-load", targets: ["portier-load"]),
        .library(name: "PortierClient", targets: ["PortierClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // IDNA 2008 / UTS #46 (Debian: libidn2-dev) and the Public Suffix List
        // (Debian: libpsl-dev, with the list from the publicsuffix package).
        .systemLibrary(name: "CLibIDN2", pkgConfig: "libidn2", providers: [.apt(["libidn2-dev"])]),
        .systemLibrary(name: "CLibPSL", pkgConfig: "libpsl", providers: [.apt(["libpsl-dev", "publicsuffix"])]),

        // Pure rules and value types: no I/O (the two C libraries compute; the
        // suffix list is read once, from the system's publicsuffix data).
        .target(name: "PortierDomain", dependencies: ["CLibIDN2", "CLibPSL"], exclude: ["SharedMailDomainList.LICENSES.md"]),

        // Frames, JSON values and the request/reply envelope, shared by server and clients.
        .target(
            name: "PortierProtocol",
            dependencies: [
                "PortierDomain",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // In-memory permission facts per environment: pure data, no I/O.
        .target(name: "PortierIndex", dependencies: ["PortierDomain"]),

        // libpq, linked from the system (Debian: libpq-dev).
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),

        // PostgreSQL access: connections, pool, transactions, migrations, queries.
        .target(
            name: "PortierStorage",
            dependencies: [
                "CLibPQ",
                "PortierDomain",
                "PortierIndex",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // A private PostgreSQL cluster under the state folder.
        .target(
            name: "PortierEmbeddedPostgres",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),

        // Password hashing (scrypt) on threads of its own: no knowledge of users or the wire.
        .target(
            name: "PortierPasswords",
            dependencies: [
                "PortierDomain",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        // The operations: validate params, run one transaction, shape the result.
        .target(
            name: "PortierService",
            dependencies: [
                "PortierDomain",
                "PortierProtocol",
                "PortierStorage",
                "PortierIndex",
                "PortierPasswords",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),

        // One connection: its state machine and NIO handler, limits, timeouts, peer
        // credentials. Knows requests and replies, not what answers them.
        .target(
            name: "PortierTransport",
            dependencies: [
                "PortierDomain",
                "PortierProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The server: the two Unix sockets in front of the service, graceful stop, metrics.
        .target(
            name: "PortierServer",
            dependencies: [
                "PortierDomain",
                "PortierProtocol",
                "PortierTransport",
                "PortierService",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // Async, pipelined client used by the CLI, the tests and the load generator.
        .target(
            name: "PortierClient",
            dependencies: [
                "PortierDomain",
                "PortierProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        .executableTarget(
            name: "portierd",
            dependencies: [
                "PortierDomain",
                "PortierServer",
                "PortierTransport",
                "PortierService",
                "PortierStorage",
                "PortierEmbeddedPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "portier",
            dependencies: [
                "PortierClient",
                "PortierProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The floor and the load client of Scripts/bench-checks.sh.
        .executableTarget(
            name: "portier-bench",
            dependencies: [
                "PortierPasswords",
                "PortierProtocol",
                "PortierService",
                "PortierTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The load generator's parts: data shapes, COPY seeding, the mixed load, reports.
        .target(
            name: "PortierLoad",
            dependencies: [
                "PortierPasswords",
                "PortierDomain",
                "PortierProtocol",
                "PortierStorage",
                "PortierService",
                "PortierClient",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "portier-load",
            dependencies: [
                "PortierLoad",
                "PortierStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // libFuzzer drivers (built by Scripts/fuzz.sh with -DFUZZING and sanitizers).
        .executableTarget(
            name: "portier-fuzz",
            dependencies: [
                "PortierDomain",
                "PortierProtocol",
                "PortierTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Shared by the test targets: a fresh migrated database per test, a running server.
        .target(
            name: "PortierTestSupport",
            dependencies: [
                "PortierDomain",
                "PortierProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                "PortierStorage",
                "PortierServer",
                "PortierService",
                "PortierClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PortierTestSupport"
        ),
        .testTarget(name: "PortierDomainTests", dependencies: ["PortierDomain", "PortierIndex"]),
        .testTarget(name: "PortierTransportTests", dependencies: [
            "PortierDomain",
            "PortierTransport",
            "PortierProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "PortierProtocolTests", dependencies: [
            "PortierDomain",
            "PortierProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "PortierStorageTests", dependencies: ["PortierDomain", "PortierStorage", "PortierEmbeddedPostgres", "PortierTestSupport"]),
        .testTarget(name: "PortierLoadTests", dependencies: [
            "PortierDomain",
            "PortierLoad", "PortierClient", "PortierProtocol", "PortierStorage", "PortierTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "PortierServerTests", dependencies: [
            "PortierDomain", "PortierIndex",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            "PortierServer", "PortierTransport", "PortierService", "PortierClient", "PortierProtocol", "PortierStorage", "PortierTestSupport", "PortierEmbeddedPostgres",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
