import { ContributionStatsCard } from './ContributionStatsCard.tsx'
import { useApp } from './context.ts'
import { LayerCoverageMap } from './LayerCoverageMap.tsx'
import { LineChart } from './LineChart.tsx'
import { NetworkPanel } from './NetworkPanel.tsx'
import { PeerList } from './PeerList.tsx'
import { useStore } from './store.ts'
import { swarm } from './swarm-state.ts'
import { TrustPanel } from './TrustPanel.tsx'

/** The swarm as this tab sees it: peers, layer coverage per model, trust in the peers, throughput and latency, own share. */
export function SwarmView() {
  const { models } = useApp()
  const s = useStore(swarm)
  const t = s.samples.map((x) => x.t)
  return (
    <section aria-labelledby="swarm-title" className="view">
      <h1 id="swarm-title">Swarm</h1>
      <p className="lede" role="status">
        {s.mesh === 'joined' && <>This tab is <code title={s.peerId}>{s.peerId?.slice(-8)}</code>; it sees {s.peers.length} peer{s.peers.length === 1 ? '' : 's'}.</>}
        {s.mesh === 'joining' && 'Joining the mesh…'}
        {s.mesh === 'unavailable' && `The mesh is unreachable (${s.meshError}); retrying.`}
      </p>
      <section className="panel" aria-labelledby="coverage-title">
        <h2 id="coverage-title">Layer coverage</h2>
        {models.map((m) => <LayerCoverageMap key={m.id} model={m} />)}
      </section>
      <PeerList />
      <NetworkPanel />
      <TrustPanel />
      <div className="grid-2">
        <LineChart title="Throughput" unit="tokens/s" t={t} series={[
          { name: 'generated here', color: 'var(--c-accent)', values: s.samples.map((x) => x.generatedPerSecond) },
          { name: 'served here', color: 'var(--c-ok)', values: s.samples.map((x) => x.servedPerSecond) },
        ]} />
        <LineChart title="Latency" unit="ms" t={t} series={[
          { name: 'peer round trip', color: 'var(--c-warn)', values: s.samples.map((x) => x.meanRttMs) },
          { name: 'route per token', color: 'var(--c-accent)', values: s.samples.map((x) => x.routeMs) },
        ]} />
      </div>
      <ContributionStatsCard />
    </section>
  )
}
