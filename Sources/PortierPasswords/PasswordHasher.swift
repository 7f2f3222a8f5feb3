import Crypto
import CryptoExtras
import Foundation
import NIOPosix
import PortierDomain
import Synchronization

/// Stores passwords with scrypt, a memory-hard KDF (R-USR-4).
///
/// Hashing costs tens of milliseconds of CPU by design, so it runs on its own
/// thread pool: never on the Swift concurrency pool, never on a database thread.
/// Stored form: `scrypt$<log2 N>$<r>$<p>$<salt b64>$<key b64>`.
public final class PasswordHasher: Sendable {
    /// scrypt cost parameters.
    public struct Parameters: Sendable, Equatable {
        public var log2N: Int
        public var blockSize: Int
        public var parallelism: Int

        public init(log2N: Int, blockSize: Int, parallelism: Int) {
            self.log2N = log2N
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// N = 2^17, r = 8, p = 1: 128 MiB per hash, OWASP's minimum for scrypt
        /// (R-USR-4; measured cost in the README). Hashes made with other
        /// parameters are upgraded at the next successful login.
        public static let `default` = Parameters(log2N: 17, blockSize: 8, parallelism: 1)
        /// For tests only: fast and weak.
        public static let testing = Parameters(log2N: 10, blockSize: 8, parallelism: 1)
    }

    public static let minimumPasswordLength = 8
    public static let maximumPasswordLength = 1024

    private let parameters: Parameters
    private let threads: NIOThreadPool
    /// A hash of a random password, verified against on unknown users so that
    /// the time taken does not tell whether an email exists.
    private let dummyHash: String

    public init(parameters: Parameters, threads: Int = 2) {
        self.parameters = parameters
        self.threads = NIOThreadPool(numberOfThreads: threads)
        self.threads.start()
        dummyHash = Self.hash(UUID().uuidString, parameters: parameters)
    }

    public func shutdown() async { try? await threads.shutdownGracefully() }

    /// Refuses passwords too short or too long to be sensible.
    public static func validate(_ password: String) throws(InvalidInput) {
        let count = password.count
        guard count >= minimumPasswordLength else { throw .badRequest("password must have at least \(minimumPasswordLength) characters") }
        guard password.utf8.count <= maximumPasswordLength else { throw .badRequest("password is longer than \(maximumPasswordLength) bytes") }
    }

    /// Hashes computed so far (hashes and verifications alike; for tests and metrics).
    public var computed: Int { computedCount.load(ordering: .relaxed) }
    private let computedCount = Atomic<Int>(0)

    public func hash(_ password: String) async throws -> String {
        let parameters = self.parameters
        computedCount.add(1, ordering: .relaxed)
        return try await threads.runIfActive { Self.hash(password, parameters: parameters) }
    }

    /// Whether `password` matches `stored`; with nil `stored`, spends the same time and answers false.
    public func verify(_ password: String, against stored: String?) async throws -> Bool {
        let target = stored ?? dummyHash
        computedCount.add(1, ordering: .relaxed)
        let matches = try await threads.runIfActive { Self.verify(password, stored: target) }
        return stored != nil && matches
    }

    /// Whether a stored hash was made with other parameters than today's.
    public func needsRehash(_ stored: String) -> Bool {
        !stored.hasPrefix("scrypt$\(parameters.log2N)$\(parameters.blockSize)$\(parameters.parallelism)$")
    }

    public static func hash(_ password: String, parameters: Parameters) -> String {
        let salt = SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) }
        let key = derive(password, salt: salt, parameters: parameters)
        return "scrypt$\(parameters.log2N)$\(parameters.blockSize)$\(parameters.parallelism)$\(salt.base64EncodedString())$\(key.base64EncodedString())"
    }

    static func verify(_ password: String, stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 6, parts[0] == "scrypt", let logN = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              (1...20).contains(logN), let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5]))
        else { return false }
        let key = derive(password, salt: salt, parameters: Parameters(log2N: logN, blockSize: r, parallelism: p))
        // Constant-time comparison.
        guard key.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(key, expected) { difference |= a ^ b }
        return difference == 0
    }

    private static func derive(_ password: String, salt: Data, parameters: Parameters) -> Data {
        let key = try! KDF.Scrypt.deriveKey(
            from: Data(password.utf8), salt: salt, outputByteCount: 32,
            rounds: 1 << parameters.log2N, blockSize: parameters.blockSize, parallelism: parameters.parallelism
        )
        return key.withUnsafeBytes { Data($0) }
    }
}
