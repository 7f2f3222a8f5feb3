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
        guard arguments.count >= 2, let target = ["transport": TransportTarget.run, "parser": FuzzTargets.parser, "requests": FuzzTargets.requests][arguments[1]] else {
            print("usage: portier-fuzz transport|parser|requests [libFuzzer options] [corpus directories]")
            exit(2)
        }
        selectedTarget = target
        arguments.remove(at: 1)
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
