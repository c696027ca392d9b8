import onnxProto from 'onnx-proto'

/**
 * A small ONNX graph writer over onnx-proto's generated ModelProto. Weights are not copied into
 * the protobuf: each one is an external-data "file" (a view of the loaded Float32Array) that
 * onnxruntime-web reads straight into its heap, so a 440 MB model never passes through protobuf.
 */
const { onnx } = onnxProto

export const FLOAT = onnx.TensorProto.DataType.FLOAT
export const INT64 = onnx.TensorProto.DataType.INT64
export const UINT8 = onnx.TensorProto.DataType.UINT8

export type Dim = number | string // a fixed size or a named dynamic one
export type AttributeValue = number | number[] | { float: number }

/** The model bytes plus the weights onnxruntime-web mounts as external data. */
export interface BuiltModel {
  bytes: Uint8Array
  externalData: { path: string; data: Uint8Array }[]
}

export interface GraphBuilder {
  input(name: string, elemType: number, dims: Dim[]): string
  output(name: string, elemType: number, dims: Dim[]): void
  /** An initializer held as external data (no copy): fp32, or uint8 (packed quantized weights); returns its name. */
  weight(name: string, dims: number[], data: Float32Array | Uint8Array): string
  /** A small int64 constant stored inline; returns its name. */
  int64(name: string, dims: number[], values: number[]): string
  /** Adds a node; returns its output names (`outputs` names them, or a count makes unique ones). */
  node(opType: string, inputs: string[], outputs: string[] | number, attributes?: Record<string, AttributeValue>, domain?: string): string[]
  build(graphName: string): BuiltModel
}

const valueInfo = (name: string, elemType: number, dims: Dim[]) => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
})

function attribute(name: string, value: AttributeValue) {
  const T = onnx.AttributeProto.AttributeType
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value }
  if (typeof value === 'object') return { name, type: T.FLOAT, f: value.float }
  return { name, type: T.INT, i: value }
}

export function createGraphBuilder(): GraphBuilder {
  const nodes: unknown[] = []
  const initializers: unknown[] = []
  const inputs: unknown[] = []
  const outputs: unknown[] = []
  const externalData: BuiltModel['externalData'] = []
  let nextId = 0
  return {
    input(name, elemType, dims) {
      inputs.push(valueInfo(name, elemType, dims))
      return name
    },
    output(name, elemType, dims) {
      outputs.push(valueInfo(name, elemType, dims))
    },
    weight(name, dims, data) {
      const path = `w${externalData.length}.bin`
      externalData.push({ path, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) })
      initializers.push({
        name, dims, dataType: data instanceof Uint8Array ? UINT8 : FLOAT,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: 'location', value: path }, { key: 'offset', value: '0' }, { key: 'length', value: String(data.byteLength) }],
      })
      return name
    },
    int64(name, dims, values) {
      initializers.push({ name, dims, dataType: INT64, int64Data: values })
      return name
    },
    node(opType, nodeInputs, nodeOutputs, attributes = {}, domain = '') {
      const id = nextId++
      const outs = typeof nodeOutputs === 'number' ? Array.from({ length: nodeOutputs }, (_, i) => `${opType}_${id}_${i}`) : nodeOutputs
      nodes.push({
        opType, domain, name: `${opType}_${id}`, input: nodeInputs, output: outs,
        attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
      })
      return outs
    },
    build(graphName) {
      const model = onnx.ModelProto.create({
        irVersion: 10,
        producerName: 'tabmesh',
        // opset 23 has RMSNormalization, RotaryEmbedding and Attention with grouped-query heads
        opsetImport: [{ domain: '', version: 23 }, { domain: 'com.microsoft', version: 1 }],
        graph: { name: graphName, node: nodes, initializer: initializers, input: inputs, output: outputs } as never,
      })
      return { bytes: onnx.ModelProto.encode(model).finish(), externalData }
    },
  }
}
