export const FUZZ_RUNS = Number(process.env.TABMESH_FUZZ_RUNS ?? 1000)
export const FUZZ_SEED = Number(process.env.TABMESH_FUZZ_SEED ?? 20261203)
export const fuzzParams = (offset = 0) => ({ numRuns: FUZZ_RUNS, seed: FUZZ_SEED + offset })
