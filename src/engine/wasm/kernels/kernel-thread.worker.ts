import { CONTROL, runKernel, SPIN_MS, type KernelExports } from './thread-control.ts'

/**
 * A helper thread of the WASM kernels (quant-kernels.ts starts it): its own instance of the kernel
 * module on the owner's shared memory. It answers 'ready', then runs the rows it is handed through
 * the control array (thread-control.ts) and sleeps in Atomics.wait between products; it never
 * returns to its event loop, and ends when its owner terminates it.
 */
interface Start {
  module: WebAssembly.Module
  memory: WebAssembly.Memory
  control: SharedArrayBuffer
  f16Table: number
}

self.onmessage = (e: MessageEvent<Start>) => {
  const { module, memory, control, f16Table } = e.data
  const k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports
  k.init(f16Table, false) // the owner filled it
  const c = new Int32Array(control)
  self.postMessage('ready')
  let seen = Atomics.load(c, CONTROL.seq)
  for (;;) {
    // products come back to back while a token is decoded: poll briefly before sleeping, as a wake-up takes longer
    const until = performance.now() + SPIN_MS
    while (Atomics.load(c, CONTROL.seq) === seen && performance.now() < until) { /* poll */ }
    Atomics.wait(c, CONTROL.seq, seen)
    seen = Atomics.load(c, CONTROL.seq)
    runKernel(k, c)
    Atomics.store(c, CONTROL.done, seen)
    Atomics.notify(c, CONTROL.done)
  }
}
