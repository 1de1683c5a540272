// The latency of push hints (issue 16 item 3), measured, not asserted: change → signed delivery at the subscriber
// over N changes on the GitHub emulator, once with a GitHub-style hint sent after each change and once without
// hints (interval polling only), both at the same configured interval. Runs only when Scripts/bench-hints sets
// DELTAHOOK_BENCH_HINTS=1; the figures go to stdout and, when DELTAHOOK_BENCH_HINTS_OUT is set, to that file.
import Emulators
import Foundation
import TestSupport
import Testing

@Suite("Hint latency benchmark", .serialized)
struct HintLatencyBenchmark {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    @Test("change → delivery with and without hints", .enabled(if: environment["DELTAHOOK_BENCH_HINTS"] == "1"))
    func measure() async throws {
        let changes = Int(Self.environment["DELTAHOOK_BENCH_HINTS_CHANGES"] ?? "") ?? 200
        let interval = Self.environment["DELTAHOOK_BENCH_HINTS_INTERVAL"] ?? "2s"
        let debounce = Self.environment["DELTAHOOK_BENCH_HINTS_DEBOUNCE"] ?? "1s"
        let intervalMilliseconds = Int64((Double(interval.dropLast()) ?? 2) * 1000)
        let spacing = Duration.milliseconds(Int64((Double(debounce.dropLast()) ?? 1) * 1000) + 50)
        var lines: [String] = []
        for hinted in [true, false] {
            let rig = try HintRig()
            let issue = rig.gh.createIssue(title: "seed")
            try rig.start(interval: interval, debounce: debounce, hints: hinted, logLevel: "warning")
            #expect(await Wait.until(timeout: .seconds(60)) { !rig.arrivals("gh", issue: issue, title: "seed").isEmpty })
            var samples: [Duration] = []
            var missed = 0
            for index in 0..<changes {
                let started = ContinuousClock.now
                // Titles are unique, so each sample waits for its own change's delivery.
                if let latency = await rig.measure(rig.gh, connection: "gh", issue: issue, title: "change \(index)",
                                                   hint: hinted, timeout: .seconds(30)) {
                    samples.append(latency)
                } else {
                    missed += 1
                }
                // Hinted: one change per debounce window, so each hint is a fresh one (a hint inside the window
                // waits for its end by design). Unhinted: a random phase against the interval (uniform over one interval).
                let pause = hinted ? spacing - (ContinuousClock.now - started)
                                   : .milliseconds(Int64.random(in: 0...intervalMilliseconds))
                if pause > .zero { try await Task.sleep(for: pause) }
            }
            samples.sort()
            func percentile(_ p: Double) -> String {
                guard !samples.isEmpty else { return "n/a" }
                let rank = min(samples.count - 1, max(0, Int((p * Double(samples.count)).rounded(.up)) - 1))
                return "\(samples[rank].milliseconds) ms"
            }
            let line = (hinted ? "with hints (debounce \(debounce))" : "without hints") + ", interval \(interval): "
                + "\(samples.count) changes, p50 \(percentile(0.5)), p99 \(percentile(0.99)), "
                + "max \(samples.last.map { "\($0.milliseconds) ms" } ?? "n/a"), missed \(missed)"
            print("bench-hints: " + line)
            lines.append(line)
            #expect(missed == 0)
        }
        if let out = Self.environment["DELTAHOOK_BENCH_HINTS_OUT"] {
            try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        }
    }
}
