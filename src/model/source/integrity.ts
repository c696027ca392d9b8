import { TabmeshError } from '../../core/errors.ts'
import { LAYER_BIAS_TENSORS, LAYER_TENSORS, layerTensorName, type ModelSlice } from '../model.ts'
import { dequantizeTensor } from '../quant/index.ts'

/**
 * Integrity of model slices. A contributor downloads only some layers, so a whole-file sha256 can
 * not check them; the registry also lists a sha256 per part ('embedding', 'layer.<l>', 'head'),
 * taken over the part's tensors as loaded (f32 little-endian, in a fixed order; matrices kept in
 * Q8_0 / Q4_0 blocks count as their dequantized values, so the hash does not depend on whether a
 * loader kept them quantized). The same function computes them on the server and checks them in
 * the tab, whatever the file format.
 */
export type PartName = 'embedding' | 'head' | `layer.${number}`

function partTensors(slice: ModelSlice, part: PartName): string[] {
  if (part === 'embedding') return ['token_embedding']
  if (part === 'head') return slice.config.sharedClassifier ? ['final_norm'] : ['final_norm', 'classifier']
  const layer = Number(part.slice('layer.'.length))
  const names: string[] = LAYER_TENSORS.map((t) => layerTensorName(layer, t))
  if (slice.config.attentionBias) for (const b of LAYER_BIAS_TENSORS) names.push(`layers.${layer}.${b}`)
  return names
}

/** The parts a slice holds. */
export function slicePartNames(slice: ModelSlice): PartName[] {
  const parts: PartName[] = []
  if (slice.spec.embedding) parts.push('embedding')
  for (let l = slice.spec.layers.start; l < slice.spec.layers.end; l++) parts.push(`layer.${l}`)
  if (slice.spec.head) parts.push('head')
  return parts
}

const hex = (buf: ArrayBuffer) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('')

export async function partSha256(slice: ModelSlice, part: PartName): Promise<string> {
  const tensors = partTensors(slice, part).map((name) => {
    const t = slice.tensors.get(name)
    const q = t ? undefined : slice.quantized?.get(name)
    if (q) return dequantizeTensor(q)
    if (!t) throw new TabmeshError('model-mismatch', `part ${part} needs tensor ${name}, which this slice lacks`)
    return t.data
  })
  const bytes = new Uint8Array(tensors.reduce((n, t) => n + t.byteLength, 0))
  let o = 0
  for (const t of tensors) {
    bytes.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), o)
    o += t.byteLength
  }
  return hex(await crypto.subtle.digest('SHA-256', bytes))
}

export async function integrityParts(slice: ModelSlice): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const part of slicePartNames(slice)) out[part] = await partSha256(slice, part)
  return out
}

/** Refuses a slice any of whose parts differs from the registry's hash (or that the registry does not list). */
export async function verifySlice(slice: ModelSlice, expected: Record<string, string> | undefined, modelId: string): Promise<void> {
  if (!expected) throw new TabmeshError('model-mismatch', `the registry lists no part hashes for ${modelId}; refusing unverifiable weights`)
  for (const part of slicePartNames(slice)) {
    const want = expected[part]
    if (!want) throw new TabmeshError('model-mismatch', `the registry lists no sha256 for ${part} of ${modelId}`)
    const got = await partSha256(slice, part)
    if (got !== want) throw new TabmeshError('model-format', `${part} of ${modelId} does not match the registry (sha256 ${got.slice(0, 12)}…, expected ${want.slice(0, 12)}…); the download is corrupt or the file changed, refusing it`)
  }
}
