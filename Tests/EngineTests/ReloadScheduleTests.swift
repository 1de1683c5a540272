// A reload must not disturb what it did not change (issue 16): an unchanged job keeps its pending wait — no
// extra poll, no reset of its next poll time — while a restarted (changed) job polls again at once.
import Core
import Engine
import TestSupport
import Testing

@Suite("Scheduler reload")
struct ReloadScheduleTests {
    private func settled(_ clock: ManualClock, loops: Int) async -> Bool {
        await Wait.until(timeout: .seconds(10), interval: .milliseconds(1)) { clock.sleepers == loops }
    }

    @Test("update keeps an unchanged job's next poll time; a restarted job polls at once")
    func unchangedJobsKeepTheirSchedule() async {
        let clock = ManualClock()
        let log = PollLog()
        let kept = JobKey(connection: "kept", object: "o")
        let changed = JobKey(connection: "changed", object: "o")
        let interval = Duration.seconds(10)
        let scheduler = Scheduler(timing: quickTiming(), clock: clock)
        func jobs() -> [ScheduledJob] {
            [ScheduledJob(key: kept, interval: interval) { log.note(kept, at: clock.elapsed) },
             ScheduledJob(key: changed, interval: interval) { log.note(changed, at: clock.elapsed) }]
        }
        scheduler.update(jobs: jobs())
        #expect(await settled(clock, loops: 2))
        clock.advance(by: .seconds(4))
        #expect(await settled(clock, loops: 2))

        // The reload at t = 4 s: `kept` unchanged, `changed` restarted.
        scheduler.update(jobs: jobs(), restarting: [changed])
        #expect(await Wait.until(timeout: .seconds(10), interval: .milliseconds(1)) { log.count(changed) == 2 })
        #expect(await settled(clock, loops: 2))
        #expect(log.times(changed) == [.zero, .seconds(4)], "the changed job restarted at once")
        #expect(log.times(kept) == [.zero], "no extra poll of the unchanged job")

        // t = 10 s: the unchanged job polls on its old schedule (not at 14 s, which a reset would give).
        clock.advance(by: .seconds(6))
        #expect(await settled(clock, loops: 2))
        #expect(log.times(kept) == [.zero, .seconds(10)], "\(log.times(kept))")
        clock.advance(by: .seconds(4))
        #expect(await settled(clock, loops: 2))
        #expect(log.times(changed) == [.zero, .seconds(4), .seconds(14)], "\(log.times(changed))")
        await scheduler.shutdown()
    }
}
