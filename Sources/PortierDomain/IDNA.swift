import CLibIDN2

/// Domain names written in Unicode, mapped to their ASCII form (R-ENV-9):
/// IDNA 2008 with UTS #46 non-transitional processing, through libidn2 (a
/// maintained implementation of the tables; a hand-written punycode would
/// miss the mapping and the validity rules). `café.nl` → `xn--caf-dma.nl`;
/// `faß.de` → `xn--fa-hia.de`, distinct from `fass.de`.
enum IDNA {
    /// Whether `name` needs the mapping: non-ASCII, or an A-label to validate.
    static func needsMapping(_ name: String) -> Bool {
        name.utf8.contains { $0 >= 0x80 } || name.utf8.count >= 4 && name.contains("xn--")
    }

    /// The lookup (ASCII) form of `name`, or nil when it is not a valid IDN.
    static func asciiForm(_ name: String) -> String? {
        var output: UnsafeMutablePointer<UInt8>?
        let flags = Int32(IDN2_NFC_INPUT.rawValue | IDN2_NONTRANSITIONAL.rawValue)
        let status = name.withCString { input in
            input.withMemoryRebound(to: UInt8.self, capacity: name.utf8.count + 1) { idn2_lookup_u8($0, &output, flags) }
        }
        guard status == IDN2_OK.rawValue, let output else { return nil }
        defer { idn2_free(output) }
        return String(cString: output)
    }
}
