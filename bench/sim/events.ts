/**
 * A small discrete-event loop: a binary min-heap of (time, sequence) keyed callbacks. Events at
 * the same time run in the order they were scheduled (the sequence number breaks ties), so a run
 * is deterministic. Time is in simulated milliseconds; nothing here reads a clock.
 */

export interface EventLoop {
  /** Simulated time now, ms. */
  readonly now: number
  /** Runs `fn` at simulated time `at` (not before now). */
  at(at: number, fn: () => void): void
  /** Runs `fn` `delay` ms from now. */
  after(delay: number, fn: () => void): void
  /** Runs events until the queue is empty or the next one is after `until`; time ends at `until`. */
  run(until: number): number
  /** Events waiting. */
  readonly pending: number
}

interface Item {
  t: number
  seq: number
  fn: () => void
}

const before = (a: Item, b: Item) => a.t < b.t || (a.t === b.t && a.seq < b.seq)

export function createEventLoop(start = 0): EventLoop {
  const heap: Item[] = []
  let now = start
  let seq = 0

  const push = (item: Item) => {
    heap.push(item)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i], heap[parent])) break
      ;[heap[i], heap[parent]] = [heap[parent], heap[i]]
      i = parent
    }
  }

  const pop = (): Item => {
    const top = heap[0]
    const last = heap.pop()!
    if (heap.length > 0) {
      heap[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < heap.length && before(heap[l], heap[m])) m = l
        if (r < heap.length && before(heap[r], heap[m])) m = r
        if (m === i) break
        ;[heap[i], heap[m]] = [heap[m], heap[i]]
        i = m
      }
    }
    return top
  }

  return {
    get now() {
      return now
    },
    at(at, fn) {
      push({ t: Math.max(at, now), seq: seq++, fn })
    },
    after(delay, fn) {
      push({ t: now + Math.max(0, delay), seq: seq++, fn })
    },
    run(until) {
      let ran = 0
      while (heap.length > 0 && heap[0].t <= until) {
        const item = pop()
        now = item.t
        item.fn()
        ran++
      }
      now = Math.max(now, until)
      return ran
    },
    get pending() {
      return heap.length
    },
  }
}
