import * as Comlink from 'comlink'
import { createLab, type Lab } from './wasm-lab.ts'

// window.wasmLab: the lab in this page (the checks) plus the same lab in dedicated workers, where
// the product runs engines (benchmarks). Each worker is its own realm with its own onnxruntime, so
// workers can run different thread counts side by side.
const workers = new Map<string, { worker: Worker; lab: Comlink.Remote<Lab> }>()

function inWorker(key: string): Comlink.Remote<Lab> {
  let w = workers.get(key)
  if (!w) {
    const worker = new Worker(new URL('./wasm-lab.worker.ts', import.meta.url), { type: 'module', name: `wasm-lab-${key}` })
    w = { worker, lab: Comlink.wrap<Lab>(worker) }
    workers.set(key, w)
  }
  return w.lab
}

function closeWorker(key: string): void {
  workers.get(key)?.worker.terminate()
  workers.delete(key)
}

const wasmLab = { ...createLab(), inWorker, closeWorker }

declare global {
  interface Window {
    wasmLab: typeof wasmLab
  }
}
window.wasmLab = wasmLab
