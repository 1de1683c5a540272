// The commit pipelining of a delta scan, without a store: which page's commit is handed over when, and when
// the scan waits for it. Pages are plain integers.
@testable import Engine
import Testing

@Suite("CommitPipeline")
struct CommitPipelineTests {
    /// Renders actions as text, so expectations read like the pipeline's log.
    private func text(_ actions: [CommitAction<Int>]) -> [String] { actions.map(\.description) }

    @Test("a page whose next page is not fetched yet commits at once")
    func commitsAtOnceWhenTheNextPageIsNotThere() {
        var pipeline = CommitPipeline<Int>()
        #expect(text(pipeline.built(1, nextPageReady: false)) == ["submit(1)"])
        #expect(pipeline.pending == nil)
        #expect(pipeline.inFlight == 1)
        // The next page's lookup finds nothing waiting; its diff waits for page 1 before building page 2.
        #expect(text(pipeline.lookupQueued()).isEmpty)
        #expect(text(pipeline.pageDiffed()) == ["settle(1)"])
        #expect(pipeline.inFlight == nil)
    }

    @Test("a page whose next page is fetched waits until that page's lookup is queued, then commits during its diff")
    func waitsBehindTheNextLookup() {
        var pipeline = CommitPipeline<Int>()
        #expect(text(pipeline.built(1, nextPageReady: true)).isEmpty)
        #expect(pipeline.pending == 1)
        #expect(pipeline.inFlight == nil)
        #expect(text(pipeline.lookupQueued()) == ["submit(1)"])
        #expect(pipeline.pending == nil)
        #expect(pipeline.inFlight == 1)
        #expect(text(pipeline.pageDiffed()) == ["settle(1)"])
    }

    @Test("a scan of three pages commits each page once, in page order, never two at a time")
    func threePagesInOrder() {
        var pipeline = CommitPipeline<Int>()
        var log: [String] = []
        let ready = [true, false, true]
        for page in 1...3 {
            log += text(pipeline.lookupQueued())
            log += text(pipeline.pageDiffed())
            log += text(pipeline.built(page, nextPageReady: ready[page - 1]))
        }
        log += text(pipeline.finish())
        #expect(log == ["submit(1)", "settle(1)", "submit(2)", "settle(2)", "submit(3)", "settle(3)"])
        #expect(pipeline.pending == nil && pipeline.inFlight == nil)
    }

    @Test("finish hands over a waiting commit and waits for it; after a running one it settles that first")
    func finishDrainsEverything() {
        var waiting = CommitPipeline<Int>()
        _ = waiting.built(7, nextPageReady: true)
        #expect(text(waiting.finish()) == ["submit(7)", "settle(7)"])

        var running = CommitPipeline<Int>()
        _ = running.built(8, nextPageReady: false)
        #expect(text(running.finish()) == ["settle(8)"])

        var idle = CommitPipeline<Int>()
        #expect(idle.finish().isEmpty)
        #expect(idle.lookupQueued().isEmpty)
        #expect(idle.pageDiffed().isEmpty)
    }

    @Test("an idle page builds no commit: a waiting one keeps waiting for the next lookup")
    func idlePageLeavesTheWaitingCommit() {
        var pipeline = CommitPipeline<Int>()
        _ = pipeline.built(1, nextPageReady: true)
        // Page 2 is idle (no commit built): its lookup submits page 1, its diff settles it.
        #expect(text(pipeline.lookupQueued()) == ["submit(1)"])
        #expect(text(pipeline.pageDiffed()) == ["settle(1)"])
        // Page 3 has nothing to hand over.
        #expect(pipeline.lookupQueued().isEmpty)
        #expect(pipeline.pageDiffed().isEmpty)
    }
}
