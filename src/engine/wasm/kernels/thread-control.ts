/**
 * How the owner of the WASM kernels (quant-kernels.ts) hands a helper thread (kernel-thread.worker.ts)
 * its rows of a product: one Int32Array over a SharedArrayBuffer per helper. The owner writes the
 * arguments, bumps `seq` and wakes the helper; the helper runs its rows, sets `done` to `seq` and
 * wakes the owner. Pointers are byte offsets into the shared memory (as i32 bits: the kernels read
 * them as unsigned).
 */
export const CONTROL = { seq: 0, done: 1, kernel: 2, w: 3, x: 4, out: 5, rows: 6, outDim: 7, inDim: 8, scratch: 9, first: 10, last: 11 } as const
export const CONTROL_LENGTH = 12

/** How long a thread polls for its next product, or for a helper's share, before sleeping in Atomics.wait. */
export const SPIN_MS = 0.2

export const KERNEL = { q8_0: 0, q4_0: 1, f32: 2 } as const

/** The exports of kernels/quant-matvec.as.ts. */
export interface KernelExports {
  init(f16Table: number, fill: boolean): void
  matvecQ8_0(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, scratch: number, first: number, last: number): void
  matvecQ4_0(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, scratch: number, first: number, last: number): void
  matvecF32(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, first: number, last: number): void
}

/** Runs the product described in `c` on weight rows [c.first, c.last). */
export function runKernel(k: KernelExports, c: Int32Array): void {
  const [w, x, out, rows, outDim, inDim, scratch, first, last] = [c[CONTROL.w], c[CONTROL.x], c[CONTROL.out], c[CONTROL.rows], c[CONTROL.outDim], c[CONTROL.inDim], c[CONTROL.scratch], c[CONTROL.first], c[CONTROL.last]]
  switch (c[CONTROL.kernel]) {
    case KERNEL.q8_0: return k.matvecQ8_0(w, x, out, rows, outDim, inDim, scratch, first, last)
    case KERNEL.q4_0: return k.matvecQ4_0(w, x, out, rows, outDim, inDim, scratch, first, last)
    default: return k.matvecF32(w, x, out, rows, outDim, inDim, first, last)
  }
}
