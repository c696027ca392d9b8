import { TabmeshError } from '../src/core/errors.ts'
import type { Engine } from '../src/engine/engine.ts'

/**
 * Several engines that together cover a model, run as one: embed on the first, each engine's layer
 * range in order, head on the last. In-process, this is the shape of a swarm route.
 */
export function createPipelineEngine(stages: Engine[]): Engine {
  if (stages.length === 0) throw new TabmeshError('bad-argument', 'a pipeline needs at least one engine')
  const first = stages[0]
  const last = stages[stages.length - 1]
  const config = first.config
  let next = first.spec.layers.start
  for (const s of stages) {
    if (s.spec.layers.start !== next) throw new TabmeshError('model-mismatch', `pipeline stages leave a gap or overlap at layer ${next} (next stage starts at ${s.spec.layers.start})`)
    next = s.spec.layers.end
  }
  if (first.spec.layers.start !== 0 || next !== config.nLayers) throw new TabmeshError('model-mismatch', `pipeline covers layers [${first.spec.layers.start}, ${next}), not [0, ${config.nLayers})`)
  return {
    backend: first.backend,
    config,
    spec: { layers: { start: 0, end: config.nLayers }, embedding: first.spec.embedding, head: last.spec.head },
    embed: (tokens) => first.embed(tokens),
    async forward(hidden, positions) {
      for (const s of stages) hidden = await s.forward(hidden, positions)
      return hidden
    },
    head: (hidden) => last.head(hidden),
    async reset() {
      for (const s of stages) await s.reset()
    },
  }
}
