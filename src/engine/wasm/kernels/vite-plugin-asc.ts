import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { Plugin } from 'vite'

/**
 * Node-only (vite.config.ts loads it; it never reaches a browser bundle). Compiles AssemblyScript
 * sources at import time, so the repository holds no binaries:
 *
 *   import kernelWasm from './kernels/quant-matvec.as.ts?wasm-bytes' // Uint8Array, a wasm module
 *
 * The compiler (npm package assemblyscript) runs in memory: it reads the source and its relative
 * imports from disk and hands back the binary, which the module exports as base64 decoded once
 * at load. `vite build` (pages and workers) and vitest (Node) use the same plugin.
 */
export const WASM_BYTES_QUERY = '?wasm-bytes'

/** asc flags every kernel is built with: SIMD, optimized, no runtime, memory imported from the host, no abort import. */
export const ASC_FLAGS = ['--enable', 'simd', '-O3', '--noAssert', '--runtime', 'stub', '--importMemory', '--noExportMemory', '--use', 'abort=']

/** Compiles one AssemblyScript file to wasm bytes; errors carry the compiler's diagnostics. */
export async function compileAssemblyScript(file: string): Promise<{ binary: Uint8Array; sources: string[] }> {
  const asc = (await import('assemblyscript/asc')).default
  const dir = dirname(file)
  const outputs = new Map<string, Uint8Array | string>()
  const sources: string[] = []
  const diagnostics: string[] = []
  const stream = { write: (chunk: string | Uint8Array) => { diagnostics.push(String(chunk)); return true } }
  const { error } = await asc.main([basename(file), '--outFile', 'kernel.wasm', ...ASC_FLAGS], {
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
      const { binary, sources } = await compileAssemblyScript(file)
      for (const s of sources) this.addWatchFile(s)
      const base64 = Buffer.from(binary).toString('base64')
      return {
        code: `export default Uint8Array.from(atob(${JSON.stringify(base64)}), (c) => c.charCodeAt(0))\n`,
        map: { mappings: '' },
      }
    },
  }
}
