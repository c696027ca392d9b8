import { doneSlot, postSlot, runChunks, SPIN_MS, type KernelExports } from './thread-control.ts'

/**
 * A helper thread of the WASM kernels (quant-kernels.ts starts it): its own instance of the kernel
 * module on the owner's shared memory. It answers 'ready', then claims the jobs posted to it and
 * runs chunks of their rows (thread-control.ts), polling briefly and then sleeping in Atomics.wait
 * between jobs; it never returns to its event loop, and ends when its owner terminates it.
 */
interface Start {
  module: WebAssembly.Module
  memory: WebAssembly.Memory
  control: SharedArrayBuffer
  helper: number // this helper's index: its slots in `control`, its scratch
  f16Table: number
}

self.onmessage = (e: MessageEvent<Start>) => {
  const { module, memory, control, helper, f16Table } = e.data
  const k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports
  k.init(f16Table, false) // the owner filled it
  const c = new Int32Array(control)
  const post = postSlot(helper)
  self.postMessage('ready')
  let last = Atomics.load(c, post) // the post value already seen
  for (;;) {
    // jobs come back to back while a token is decoded: poll briefly before sleeping, as a wake-up takes longer
    const until = performance.now() + SPIN_MS
    while (Atomics.load(c, post) === last && performance.now() < until) { /* poll */ }
    Atomics.wait(c, post, last)
    const job = Atomics.load(c, post)
    last = job
    if (job > 0 && Atomics.compareExchange(c, post, job, -job) === job) {
      runChunks(k, c, helper + 1)
      Atomics.store(c, doneSlot(helper), job)
      Atomics.notify(c, doneSlot(helper))
      last = -job
    }
  }
}
