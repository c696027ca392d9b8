/**
 * How the owner of the WASM kernels (quant-kernels.ts) shares a product with its helper threads
 * (kernel-thread.worker.ts): one Int32Array over a SharedArrayBuffer. The owner writes the job
 * (which kernel, pointers, sizes), posts its id to each helper's `post` slot and wakes it; every
 * thread then takes chunks of weight rows from the `next` counter until none are left. A helper
 * claims a job by swapping its id for -id; the owner, done with the chunks, withdraws a job no
 * helper claimed by swapping it for 0, and waits only for helpers that claimed it (each is running
 * its last chunk), so a helper the OS has not scheduled never holds a product up. Pointers are byte
 * offsets into the shared memory (as i32 bits: the kernels read them as unsigned).
 */
export const JOB = { kernel: 0, w: 1, x: 2, out: 3, rows: 4, outDim: 5, inDim: 6, scratch: 7, scratchStride: 8, next: 9, chunks: 10 } as const
const JOB_LENGTH = 11

/** Helper h's slots: the job id posted to it (-id once claimed, 0 when withdrawn), and the id of the last job it finished. */
export const postSlot = (helper: number): number => JOB_LENGTH + 2 * helper
export const doneSlot = (helper: number): number => JOB_LENGTH + 2 * helper + 1
export const controlLength = (helpers: number): number => JOB_LENGTH + 2 * helpers

/** How long a thread polls for its next job, or for a helper's last chunk, before sleeping in Atomics.wait. */
export const SPIN_MS = 0.2

export const KERNEL = { q8_0: 0, q4_0: 1, f32: 2 } as const

/** The exports of kernels/quant-matvec.as.ts. */
export interface KernelExports {
  init(f16Table: number, fill: boolean): void
  matvecQ8_0(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, scratch: number, first: number, last: number): void
  matvecQ4_0(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, scratch: number, first: number, last: number): void
  matvecF32(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, first: number, last: number): void
}

/** Takes chunks of the job's weight rows until none are left; `thread` picks this thread's scratch (0: the owner). */
export function runChunks(k: KernelExports, c: Int32Array, thread: number): void {
  const [kernel, w, x, out, rows, outDim, inDim, chunks] = [c[JOB.kernel], c[JOB.w], c[JOB.x], c[JOB.out], c[JOB.rows], c[JOB.outDim], c[JOB.inDim], c[JOB.chunks]]
  const scratch = c[JOB.scratch] + thread * c[JOB.scratchStride]
  for (let chunk = Atomics.add(c, JOB.next, 1); chunk < chunks; chunk = Atomics.add(c, JOB.next, 1)) {
    const first = Math.round((outDim * chunk) / chunks)
    const last = Math.round((outDim * (chunk + 1)) / chunks)
    if (kernel === KERNEL.q8_0) k.matvecQ8_0(w, x, out, rows, outDim, inDim, scratch, first, last)
    else if (kernel === KERNEL.q4_0) k.matvecQ4_0(w, x, out, rows, outDim, inDim, scratch, first, last)
    else k.matvecF32(w, x, out, rows, outDim, inDim, first, last)
  }
}
