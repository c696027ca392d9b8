/**
 * Test support: onnxruntime-web makes its heap with `new WebAssembly.Memory` on first use, so the
 * allocation checks wrap that constructor to keep a handle on the heap and watch its size. Import
 * this before anything loads onnxruntime.
 */
const wasmMemories: WebAssembly.Memory[] = []
const NativeMemory = WebAssembly.Memory
WebAssembly.Memory = function (descriptor: WebAssembly.MemoryDescriptor) {
  const memory = new NativeMemory(descriptor)
  wasmMemories.push(memory)
  return memory
} as unknown as typeof WebAssembly.Memory

/** Every wasm memory made since this module loaded. */
export const watchedWasmMemories = (): readonly WebAssembly.Memory[] => wasmMemories
