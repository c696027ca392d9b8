/**
 * The swarm room: inference pipelined through peers. Activation frames on /tabmesh/1/infer, the
 * host a contributor runs (sessions, a bounded queue, typed refusals), the hop client, route
 * planning and placement, failover, the mesh-wired swarm engine, text generation over any engine,
 * and the tab runtime that the site, the embed and the CLI's page all use.
 */
export * from './tab-runtime.ts'
export * from './text-generation.ts'
export * from './swarm-engine.ts'
export * from './mesh-swarm-engine.ts'
export * from './contributor.ts'
export * from './host.ts'
export * from './hop.ts'
export * from './route.ts'
export * from './placement.ts'
export * from './frames.ts'
export * from './channel.ts'
export * from './stream-channel.ts'
