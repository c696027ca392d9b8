/**
 * The quant room: GGML block formats (type ids, block layouts, byte sizes), dequantization of every
 * type tabmesh reads to fp32, and the quantizers that write Q8_0 / Q4_0 / Q4_K / Q6_K blocks, with
 * `QuantizedTensor` for weight matrices kept in blocks. Half-float conversion lives in core/f16.ts;
 * the matvec twin of the quantized kernels in engine/reference/quant-matvec.ts.
 */
export * from './ggml.ts'
export * from './dequantize.ts'
export * from './quantize.ts'
