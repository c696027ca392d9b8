/// <reference lib="webworker" />
// One thread of measureStreamRead (stream-read.ts): instantiate the summing module on the shared
// memory, then per pass wait for the start flag and time one read of [start, end).
let sum: ((ptr: number, end: number) => number) | undefined

self.onmessage = async (e: MessageEvent) => {
  const m = e.data as { module: WebAssembly.Module; memory: WebAssembly.Memory } | { flag: Int32Array; start: number; end: number }
  if ('module' in m) {
    const instance = await WebAssembly.instantiate(m.module, { env: { memory: m.memory } })
    sum = instance.exports.sum as (ptr: number, end: number) => number
    self.postMessage(0)
    return
  }
  Atomics.wait(m.flag, 0, 0)
  const t0 = performance.now()
  sum!(m.start, m.end)
  self.postMessage(performance.now() - t0)
}
