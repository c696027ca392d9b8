/**
 * `import bytes, { shared } from './x.as.ts?wasm-bytes'`: the AssemblyScript file compiled to a
 * wasm module importing a plain memory, and to one importing a shared memory (vite-plugin-asc.ts).
 */
declare module '*?wasm-bytes' {
  const bytes: Uint8Array<ArrayBuffer>
  export default bytes
  export const shared: Uint8Array<ArrayBuffer>
}
