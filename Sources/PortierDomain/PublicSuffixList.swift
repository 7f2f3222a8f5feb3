import CLibPSL

/// The Public Suffix List (R-ENV-4): a public suffix itself (`co.uk`,
/// `github.io`) is never claimed by an environment. Through libpsl, with the
/// newest of its built-in list and the system's (Debian `publicsuffix`,
/// `/usr/share/publicsuffix`), read once.
public enum PublicSuffixList {
    /// libpsl's context: immutable once loaded, safe to query from any thread.
    private nonisolated(unsafe) static let context: OpaquePointer? = psl_latest(nil)

    /// Whether a list was loaded (portierd refuses to start without one).
    public static var isLoaded: Bool { context != nil }

    /// Whether `domain` (ASCII, lower-case) is exactly a public suffix, ICANN or private section.
    public static func isPublicSuffix(_ domain: String) -> Bool {
        guard let context else { return false }
        return psl_is_public_suffix2(context, domain, PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE) != 0
    }

    /// Which list was loaded (for the start-up log), e.g. its file and date.
    public static var source: String {
        guard let context else { return "none (libpsl could not load a list)" }
        let file = psl_dist_filename().map { String(cString: $0) } ?? "built-in"
        let count = psl_suffix_count(context)  // -1 for the DAFSA format: not known
        return "libpsl \(String(cString: psl_get_version())), " + (count >= 0 ? "\(count) suffixes, " : "") + file
    }
}

/// Which claims can cover a domain (R-ENV-10).
public enum ClaimedDomains {
    /// `domain` and each parent of it that is not a public suffix, most specific
    /// first: a claim of any of them covers the domain (the owner of
    /// `acme.test` controls `sales.acme.test`). `sales.acme.test` →
    /// [`sales.acme.test`, `acme.test`]; a parent at or above a public suffix
    /// (`test`, `co.uk`) is never a candidate.
    public static func candidates(for domain: String) -> [String] {
        var found = [domain]
        var labels = domain.split(separator: ".")
        while labels.count > 2 {
            labels.removeFirst()
            let parent = labels.joined(separator: ".")
            if PublicSuffixList.isPublicSuffix(parent) { break }
            found.append(parent)
        }
        return found
    }
}
