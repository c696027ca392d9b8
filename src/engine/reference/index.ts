/**
 * The reference engine: the forward pass in plain TypeScript, llama2.c style (config, weights,
 * state; nothing allocated per token). It is the oracle every other backend is checked against.
 */
export * from './reference.ts'
export * from './quant-matvec.ts'
