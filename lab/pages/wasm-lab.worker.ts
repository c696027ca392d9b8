/// <reference lib="webworker" />
// The wasm lab in a dedicated worker, where the product runs its engines: benchmarks decode here.
import * as Comlink from 'comlink'
import { createLab } from './wasm-lab.ts'

Comlink.expose(createLab())
