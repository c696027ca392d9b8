/** `import bytes from './x.as.ts?wasm-bytes'`: the AssemblyScript file compiled to a wasm module (vite-plugin-asc.ts). */
declare module '*?wasm-bytes' {
  const bytes: Uint8Array<ArrayBuffer>
  export default bytes
}
