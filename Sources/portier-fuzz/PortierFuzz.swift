import Foundation

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif

/// The selected target (libFuzzer's callback is a C function: it cannot capture).
nonisolated(unsafe) var selectedTarget: (UnsafeRawBufferPointer) -> Void = TransportTarget.run

/// `portier-fuzz transport|parser|requests [libFuzzer options] [corpus…]`: libFuzzer
/// drivers for the transport, the parser and request decoding. Build and run them with
/// `Scripts/fuzz.sh` (sanitizers, coverage, `-DFUZZING`, the libFuzzer runtime);
/// a plain `swift build` only builds this stub.
@main
struct PortierFuzz {
    static func main() {
        var arguments = CommandLine.arguments
        let targets: [String: (UnsafeRawBufferPointer) -> Void] = [
            "transport": TransportTarget.run, "parser": FuzzTargets.parser, "requests": FuzzTargets.requests,
        ]
        // The target comes first on the command line; libFuzzer's fork mode
        // starts its workers without it, so PORTIER_FUZZ_TARGET names it too.
        let target: (UnsafeRawBufferPointer) -> Void
        if arguments.count >= 2, let named = targets[arguments[1]] {
            target = named
            arguments.remove(at: 1)
        } else if let name = ProcessInfo.processInfo.environment["PORTIER_FUZZ_TARGET"], let named = targets[name] {
            target = named
        } else {
            print("usage: portier-fuzz transport|parser|requests [libFuzzer options] [corpus directories]")
            exit(2)
        }
        selectedTarget = target
        #if FUZZING
        var argc = Int32(arguments.count)
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        cArguments.withUnsafeMutableBufferPointer { argv in
            var pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv.baseAddress
            let status = LLVMFuzzerRunDriver(&argc, &pointer) { data, size in
                selectedTarget(UnsafeRawBufferPointer(start: data, count: size))
                return 0
            }
            exit(status)
        }
        #else
        print("portier-fuzz was built without libFuzzer: run Scripts/fuzz.sh")
        exit(2)
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
