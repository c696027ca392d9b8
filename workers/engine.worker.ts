/// <reference lib="webworker" />
// The engine worker's entry point: everything it does lives in src/engine/worker/host.ts.
import { exposeEngineWorkerHost } from '../src/engine/worker/host.ts'

exposeEngineWorkerHost()
