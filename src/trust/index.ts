/**
 * The trust room: peers are strangers, so what they return is checked. Fingerprints of hidden
 * states and the honest tolerance between two executions, spot checks of each hop's work by an
 * independent executor with a third execution to settle a disagreement, per-peer reputation (slow
 * to earn, fast to lose; it sets how often a peer is checked), and a hash-chained audit log.
 * The swarm's engine runs the checks; this room decides what they mean.
 */
export * from './fingerprint.ts'
export * from './tolerances.ts'
export * from './reputation.ts'
export * from './checks.ts'
export * from './audit.ts'
