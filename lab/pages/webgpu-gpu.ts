/** Small helpers for lab pages that move arrays to and from GPU buffers (setup code, not hot paths). */

export function gpuArray(device: GPUDevice, data: Float32Array | Uint32Array, usage = 0): GPUBuffer {
  const b = device.createBuffer({ size: Math.max(16, Math.ceil(data.byteLength / 16) * 16), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | usage, mappedAtCreation: true })
  new (data.constructor as typeof Float32Array)(b.getMappedRange(), 0, data.length).set(data as Float32Array)
  b.unmap()
  return b
}

export function gpuZeros(device: GPUDevice, floats: number): GPUBuffer {
  return device.createBuffer({ size: Math.max(16, Math.ceil((floats * 4) / 16) * 16), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST })
}

export async function readFloats(device: GPUDevice, src: GPUBuffer, floats: number): Promise<Float32Array> {
  const bytes = Math.ceil((floats * 4) / 4) * 4
  const staging = device.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
  const encoder = device.createCommandEncoder()
  encoder.copyBufferToBuffer(src, 0, staging, 0, bytes)
  device.queue.submit([encoder.finish()])
  await staging.mapAsync(GPUMapMode.READ)
  const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0))
  staging.destroy()
  return out
}

export async function readU32(device: GPUDevice, src: GPUBuffer, count: number): Promise<Uint32Array> {
  return new Uint32Array((await readFloats(device, src, count)).buffer)
}
