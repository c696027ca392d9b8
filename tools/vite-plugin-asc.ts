import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { Plugin } from 'vite'

/**
 * Node-only (vite.config.ts loads it; it never reaches a browser bundle). Compiles AssemblyScript
 * sources at import time, so the repository holds no binaries:
 *
 *   import kernelWasm, { shared } from './kernels/quant-matvec.as.ts?wasm-bytes'
 *
 * gives two Uint8Array wasm modules of the file: the default one imports a plain memory, `shared`
 * a shared one (for threads; it needs a SharedArrayBuffer, so cross-origin isolation in a
 * browser). The compiler (npm package assemblyscript) runs in memory: it reads the source and its
 * relative imports from disk and hands back the binaries, which the module exports as base64
 * decoded once at load. `vite build` (pages and workers) and vitest (Node) use the same plugin.
 */
export const WASM_BYTES_QUERY = '?wasm-bytes'

/** asc flags every kernel is built with: SIMD, optimized, no runtime, memory imported from the host, no abort import. */
export const ASC_FLAGS = ['--enable', 'simd', '-O3', '--noAssert', '--runtime', 'stub', '--importMemory', '--noExportMemory', '--use', 'abort=']
/** And for the shared-memory build: up to wasm32's 4 GiB, as a shared memory must declare a maximum. */
export const ASC_SHARED_FLAGS = ['--enable', 'threads', '--sharedMemory', '--maximumMemory', '65536']

/** Compiles one AssemblyScript file to wasm bytes; errors carry the compiler's diagnostics. */
export async function compileAssemblyScript(file: string, flags: string[] = []): Promise<{ binary: Uint8Array; sources: string[] }> {
  const asc = (await import('assemblyscript/asc')).default
  const dir = dirname(file)
  const outputs = new Map<string, Uint8Array | string>()
  const sources: string[] = []
  const diagnostics: string[] = []
  const stream = { write: (chunk: string | Uint8Array) => { diagnostics.push(String(chunk)); return true } }
  const { error } = await asc.main([basename(file), '--outFile', 'kernel.wasm', ...ASC_FLAGS, ...flags], {
    stdout: stream,
    stderr: stream,
    readFile: async (name, baseDir) => {
      const path = join(dir, baseDir, name)
      try {
        const text = await readFile(path, 'utf8')
        sources.push(path)
        return text
      } catch {
        return null // the compiler probes several names per import
      }
    },
    writeFile: (name, contents) => { outputs.set(name, contents) },
    listFiles: () => [],
  })
  const binary = outputs.get('kernel.wasm')
  if (error || !(binary instanceof Uint8Array)) throw new Error(`AssemblyScript could not compile ${file}: ${error?.message ?? 'no output'}\n${diagnostics.join('')}`)
  return { binary, sources }
}

export function assemblyScriptWasmBytes(): Plugin {
  return {
    name: 'tabmesh:asc-wasm-bytes',
    enforce: 'pre',
    async load(id) {
      if (!id.endsWith(WASM_BYTES_QUERY)) return null
      const file = id.slice(0, -WASM_BYTES_QUERY.length)
      const plain = await compileAssemblyScript(file)
      const shared = await compileAssemblyScript(file, ASC_SHARED_FLAGS) // one at a time: the compiler keeps global state
      for (const s of plain.sources) this.addWatchFile(s)
      const bytes = (binary: Uint8Array) => `Uint8Array.from(atob(${JSON.stringify(Buffer.from(binary).toString('base64'))}), (c) => c.charCodeAt(0))`
      return {
        code: `export default ${bytes(plain.binary)}\nexport const shared = ${bytes(shared.binary)}\n`,
        map: { mappings: '' },
      }
    },
  }
}
