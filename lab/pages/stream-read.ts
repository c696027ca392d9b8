/**
 * Memory bandwidth as a streaming read: a WebAssembly SIMD loop (four 16-byte loads per iteration
 * into four accumulators) sums a buffer far larger than the L3 cache, on one thread or split over
 * several workers sharing one memory. This is the roofline a bandwidth-bound decode is held against.
 */

/** The module: (import "env" "memory" shared) (func (export "sum") (param ptr end i32) (result f32)). */
export function streamReadModule(pages: number): Uint8Array {
  const leb = (n: number): number[] => {
    const out: number[] = []
    do {
      let b = n & 0x7f
      n >>>= 7
      if (n !== 0) b |= 0x80
      out.push(b)
    } while (n !== 0)
    return out
  }
  // i32.const takes signed LEB128: 64 needs two bytes (0xc0 0x00), or bit 6 reads as the sign
  const sleb = (n: number): number[] => {
    const out: number[] = []
    for (;;) {
      const b = n & 0x7f
      n >>= 7
      if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b]
      out.push(b | 0x80)
    }
  }
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body]
  const name = (s: string) => [s.length, ...Array.from(s, (ch) => ch.charCodeAt(0))]
  const SIMD = 0xfd
  const v128Load = (offset: number) => [SIMD, 0x00, 4, ...leb(offset)] // align 2^4
  const f32x4Add = [SIMD, ...leb(228)]
  const extractLane = (lane: number) => [SIMD, 0x1f, lane]
  const [ptr, end, acc0] = [0, 1, 2]
  const body: number[] = [
    1, 4, 0x7b, // four v128 locals (acc0..acc3)
    0x03, 0x40, // loop
    ...[0, 1, 2, 3].flatMap((i) => [0x20, acc0 + i, 0x20, ptr, ...v128Load(16 * i), ...f32x4Add, 0x21, acc0 + i]),
    0x20, ptr, 0x41, ...sleb(64), 0x6a, 0x22, ptr, // ptr += 64
    0x20, end, 0x49, 0x0d, 0, // br_if ptr < end
    0x0b, // end loop
    0x20, acc0, 0x20, acc0 + 1, ...f32x4Add, 0x20, acc0 + 2, ...f32x4Add, 0x20, acc0 + 3, ...f32x4Add,
    0x22, acc0, ...extractLane(0), 0x20, acc0, ...extractLane(1), 0x92, 0x20, acc0, ...extractLane(2), 0x92, 0x20, acc0, ...extractLane(3), 0x92,
    0x0b,
  ]
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 1, 0x7d]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, ...leb(pages), ...leb(pages)]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('sum'), 0x00, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ])
}

export interface BandwidthResult {
  threads: number
  bytes: number // buffer size read per pass
  gbPerSecond: number // best pass
}

const PAGE = 65536

/** Streams `megabytes` of memory `passes` times on `threads` threads; returns the best pass's GB/s. */
export async function measureStreamRead(threads: number, megabytes = 512, passes = 5): Promise<BandwidthResult> {
  const pages = Math.ceil((megabytes << 20) / PAGE)
  const bytes = pages * PAGE
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true })
  // touch every page with non-zero data: untouched pages all map the one zero page and read from cache
  new Float32Array(memory.buffer).fill(1)
  const module = await WebAssembly.compile(streamReadModule(pages) as BufferSource)
  const chunk = Math.floor(bytes / threads / 64) * 64
  let best = Infinity
  if (threads === 1) {
    const { exports } = await WebAssembly.instantiate(module, { env: { memory } })
    const sum = exports.sum as (ptr: number, end: number) => number
    sum(0, chunk) // warm
    for (let p = 0; p < passes; p++) {
      const t0 = performance.now()
      sum(0, chunk)
      best = Math.min(best, performance.now() - t0)
    }
  } else {
    const workers = Array.from({ length: threads }, () => new Worker(new URL('./stream-read.worker.ts', import.meta.url), { type: 'module' }))
    try {
      const ask = (w: Worker, message: unknown) => new Promise<number>((ok, fail) => {
        w.onmessage = (e: MessageEvent<number>) => ok(e.data)
        w.onerror = (e) => fail(new Error(e.message))
        w.postMessage(message)
      })
      await Promise.all(workers.map((w) => ask(w, { module, memory })))
      // a shared flag starts every worker's pass at once; each reports its own time
      const flag = new Int32Array(new SharedArrayBuffer(4))
      for (let p = 0; p <= passes; p++) {
        Atomics.store(flag, 0, 0)
        const times = workers.map((w, i) => ask(w, { flag, start: i * chunk, end: (i + 1) * chunk }))
        await new Promise((r) => setTimeout(r, 20))
        Atomics.store(flag, 0, 1)
        Atomics.notify(flag, 0)
        const slowest = Math.max(...await Promise.all(times))
        if (p > 0) best = Math.min(best, slowest) // pass 0 warms
      }
    } finally {
      for (const w of workers) w.terminate()
    }
  }
  return { threads, bytes: chunk * threads, gbPerSecond: (chunk * threads) / (best / 1000) / 1e9 }
}
