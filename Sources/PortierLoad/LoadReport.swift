import Foundation
import Histogram

/// Renders `LoadResults`: a table per operation, JSON for machines, and an SVG
/// latency-percentile plot a person can open in any browser.
public struct LoadReport {
    public let results: LoadResults
    public init(_ results: LoadResults) { self.results = results }

    static let percentiles: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)]

    var rows: [(op: String, histogram: Histogram<UInt64>, errors: Int)] {
        var rows = results.latency.keys.sorted().map { op in
            (op, results.latency[op]!, results.errors[op]?.values.reduce(0, +) ?? 0)
        }
        rows.append(("all", results.all, results.errorCount))
        return rows
    }

    public var table: String {
        var lines = ["| operation | count | rate /s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors |",
                     "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in rows {
            let h = row.histogram
            let cells = [row.op, "\(h.totalCount)", String(format: "%.0f", Double(h.totalCount) / max(results.elapsedSeconds, 0.001))]
                + Self.percentiles.map { "\(h.valueAtPercentile($0.1))" } + ["\(h.max)", "\(row.errors)"]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        if !results.errors.isEmpty {
            lines.append("")
            lines.append("Errors by code: " + results.errors.keys.sorted().map { op in
                "\(op): " + results.errors[op]!.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }.joined(separator: "; "))
        }
        if !results.expected.isEmpty {
            lines.append("")
            lines.append("Expected refusals (not errors): " + results.expected.keys.sorted().map { op in
                "\(op): " + results.expected[op]!.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    + (LoadResults.expectedRefusals[op].map { " (\($0.why))" } ?? "")
            }.joined(separator: "; "))
        }
        lines.append("")
        lines.append("Verification: \(results.mismatches) wrong answers" + (results.mismatchSamples.isEmpty ? "" : ", e.g.:"))
        lines.append(contentsOf: results.mismatchSamples.map { "  - \($0)" })
        if let w = results.watch {
            lines.append("")
            lines.append("Watches (R-WAT-1): \(w.watchers) watchers of every environment, \(w.frames) frames; "
                + "\(w.expected) changes expected in every feed: \(w.missed) missed, \(w.outOfOrder) feeds out of order or repeated, \(w.ended) watches ended early")
            lines.append("Event delay (reply to frame): p50 \(w.delay.valueAtPercentile(50)) µs, p99 \(w.delay.valueAtPercentile(99)) µs, max \(w.delay.max) µs")
            lines.append(contentsOf: w.samples.map { "  - \($0)" })
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var ops: [String: Any] = [:]
        for row in rows {
            let h = row.histogram
            var entry: [String: Any] = ["count": h.totalCount, "rate_per_s": Double(h.totalCount) / max(results.elapsedSeconds, 0.001), "max_us": h.max, "errors": row.errors]
            for (name, p) in Self.percentiles { entry["\(name)_us"] = h.valueAtPercentile(p) }
            ops[row.op] = entry
        }
        var object: [String: Any] = [
            "elapsed_s": results.elapsedSeconds, "operations": ops, "errors_by_code": results.errors, "expected_refusals_by_code": results.expected,
            "mismatches": results.mismatches, "mismatch_samples": results.mismatchSamples,
        ]
        if let w = results.watch {
            object["watch"] = [
                "watchers": w.watchers, "frames": w.frames, "expected": w.expected, "missed": w.missed,
                "out_of_order": w.outOfOrder, "ended": w.ended, "samples": w.samples,
                "delay_p50_us": w.delay.valueAtPercentile(50), "delay_p99_us": w.delay.valueAtPercentile(99), "delay_max_us": w.delay.max,
            ] as [String: Any]
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Latency (log scale) against percentile (log scale of 1/(1-p), the usual
    /// HdrHistogram view), one line per operation.
    public var svg: String {
        let width = 900.0, height = 520.0, left = 70.0, right = 190.0, top = 30.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        let nines = 5.0  // up to 99.999 %
        let maxValue = Double(max(rows.map { $0.histogram.max }.max() ?? 1, 10))
        let decades = ceil(log10(maxValue))
        func x(_ percentile: Double) -> Double { left + plotW * min(nines, log10(1 / max(1e-5, 1 - percentile / 100))) / nines }
        func y(_ micros: Double) -> Double { top + plotH * (1 - log10(max(1, micros)) / decades) }
        // A qualitative palette whose ten colours a person tells apart
        // (Tableau 10); past ten operations the colours repeat, dashed.
        func colour(_ i: Int) -> String { Self.palette[i % Self.palette.count] }
        func dash(_ i: Int) -> String { (i / Self.palette.count) % 2 == 0 ? "" : #" stroke-dasharray="6 3""# }
        var out = [#"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" font-family="sans-serif" font-size="12">"#,
                   #"<rect width="100%" height="100%" fill="white"/>"#,
                   #"<text x="\#(left)" y="18" font-size="14">portier-load: latency by percentile (\#(results.requests) requests, \#(String(format: "%.0f", results.elapsedSeconds)) s)</text>"#]
        for d in 0...Int(decades) {
            let v = pow(10, Double(d))
            out.append(#"<line x1="\#(left)" x2="\#(left + plotW)" y1="\#(y(v))" y2="\#(y(v))" stroke="gainsboro"/><text x="\#(left - 8)" y="\#(y(v) + 4)" text-anchor="end">\#(Self.micros(v))</text>"#)
        }
        for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"].enumerated() {
            let px = left + plotW * Double(i) / nines
            out.append(#"<line x1="\#(px)" x2="\#(px)" y1="\#(top)" y2="\#(top + plotH)" stroke="gainsboro"/><text x="\#(px)" y="\#(top + plotH + 18)" text-anchor="middle">\#(label)</text>"#)
        }
        out.append(#"<text x="\#(left + plotW / 2)" y="\#(height - 10)" text-anchor="middle">percentile of requests (log scale towards the tail)</text>"#)
        out.append(#"<text transform="translate(16 \#(top + plotH / 2)) rotate(-90)" text-anchor="middle">latency (log scale)</text>"#)
        for (i, row) in rows.enumerated() where row.histogram.totalCount > 0 {
            var points: [String] = []
            var p = 0.0
            while p <= 99.999 {
                points.append(String(format: "%.1f,%.1f", x(p), y(Double(row.histogram.valueAtPercentile(p)))))
                p = p < 90 ? p + 5 : 100 - (100 - p) / 1.25
            }
            let stroke = row.op == "all" ? "black" : colour(i)
            let pattern = row.op == "all" ? "" : dash(i)
            out.append(#"<polyline fill="none" stroke="\#(stroke)"\#(pattern) stroke-width="\#(row.op == "all" ? 2.5 : 1.5)" points="\#(points.joined(separator: " "))"/>"#)
            let ly = top + 14 + Double(i) * 18
            out.append(#"<line x1="\#(width - right + 15)" x2="\#(width - right + 35)" y1="\#(ly - 4)" y2="\#(ly - 4)" stroke="\#(stroke)"\#(pattern) stroke-width="2.5"/><text x="\#(width - right + 40)" y="\#(ly)">\#(row.op)</text>"#)
        }
        out.append("</svg>")
        return out.joined(separator: "\n")
    }

    /// Tableau 10: blue, orange, red, teal, green, yellow, purple, pink, brown, grey.
    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    static func micros(_ v: Double) -> String {
        v >= 1_000_000 ? "\(Int(v / 1_000_000)) s" : v >= 1000 ? "\(Int(v / 1000)) ms" : "\(Int(v)) µs"
    }
}
