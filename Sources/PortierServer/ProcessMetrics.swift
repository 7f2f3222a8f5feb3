#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The `process_*` metrics every Prometheus client library exports, read from
/// /proc at scrape time: CPU seconds, resident and virtual memory, open and
/// maximum file descriptors, start time.
struct ProcessMetrics: Sendable {
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    private let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))

    func render(into text: inout PrometheusText) {
        // /proc/self/stat: "pid (comm) state ppid …"; fields after the command, from field 3.
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double { Double(fields[number - 3]) ?? 0 }  // man 5 proc numbering
        guard fields.count > 22 else { return }
        text.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.",
                     [("", (field(14) + field(15)) / ticksPerSecond)])
        text.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [("", field(24) * pageSize)])
        text.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", [("", field(23))])
        if let boot = Self.bootTime {
            text.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
                       [("", boot + field(22) / ticksPerSecond)])
        }
        // Less the one that reads the folder.
        let open = max(0, ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 1) - 1)
        text.gauge("process_open_fds", "Open file descriptors.", [("", Double(open))])
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            text.gauge("process_max_fds", "Maximum number of open file descriptors.", [("", Double(limit.rlim_cur))])
        }
    }

    /// Boot time: the wall clock minus the time since boot (not /proc/stat's
    /// `btime`, which systemd's `ProcSubset=pid` hides).
    static let bootTime: Double? = {
        var now = timespec(), sinceBoot = timespec()
        guard clock_gettime(CLOCK_REALTIME, &now) == 0, clock_gettime(CLOCK_BOOTTIME, &sinceBoot) == 0 else { return nil }
        return Double(now.tv_sec - sinceBoot.tv_sec) + Double(now.tv_nsec - sinceBoot.tv_nsec) / 1e9
    }()
}
