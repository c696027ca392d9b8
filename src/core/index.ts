/**
 * The core room: what every other layer may use and nothing else defines — typed errors, the
 * seeded RNG, f16/bf16 conversion, and the shared vocabulary (LayerRange, BackendName, protocol ids).
 * It imports nothing from the project.
 */
export * from './errors.ts'
export * from './rng.ts'
export * from './vocabulary.ts'
export * from './f16.ts'
