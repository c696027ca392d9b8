import type { ModelEntry } from '../model/source/registry.ts'
import { contribution } from './contribute-state.ts'
import { useStore } from './store.ts'
import { layerCoverage, swarm } from './swarm-state.ts'

/** One cell per layer: how many peers (this tab included) serve it. Gaps are red. */
export function LayerCoverageMap({ model }: { model: ModelEntry }) {
  const { peers } = useStore(swarm)
  const own = useStore(contribution).info
  const n = model.config.nLayers
  const counts = layerCoverage(peers, model.id, n)
  if (own?.modelId === model.id) for (let l = own.layers.start; l < own.layers.end; l++) counts[l]++
  const gaps = counts.filter((c) => c === 0).length
  const max = Math.max(1, ...counts)
  return (
    <figure className="coverage" data-testid={`coverage-${model.id}`} data-counts={counts.join(' ')}>
      <figcaption>
        <strong>{model.id}</strong> · {n} layers · {gaps === 0 ? 'every layer served' : <span className="error">{gaps} layer{gaps === 1 ? '' : 's'} with nobody serving</span>}
      </figcaption>
      <ol className="coverage-cells" style={{ gridTemplateColumns: `repeat(${Math.min(n, 32)}, minmax(0, 1fr))` }}>
        {counts.map((c, l) => (
          <li key={l} className={c === 0 ? 'gap' : undefined} style={c ? { opacity: 0.35 + 0.65 * (c / max) } : undefined} title={`layer ${l}: ${c} peer${c === 1 ? '' : 's'}`} aria-label={`layer ${l}: ${c} peer${c === 1 ? '' : 's'}`}>
            {n <= 64 && <span aria-hidden="true">{c}</span>}
          </li>
        ))}
      </ol>
    </figure>
  )
}
