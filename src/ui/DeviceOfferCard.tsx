import { contribution } from './contribute-state.ts'
import { formatMiB, formatRate } from './format.ts'
import { useStore } from './store.ts'

/** What this device offers: the backend and why it was chosen (the probe), speed, memory budget. */
export function DeviceOfferCard() {
  const { info, probe } = useStore(contribution)
  return (
    <section className="panel" aria-labelledby="device-title">
      <h2 id="device-title">This device</h2>
      {!info && !probe && <p className="muted">Switch contributing on to probe the device: WebGPU, WASM SIMD and threads, and a short benchmark of each backend.</p>}
      <dl className="facts" data-testid="device-offer">
        {info && <>
          <dt>Backend</dt><dd data-testid="backend">{info.backend === 'ref' ? 'reference (plain JavaScript)' : info.backend}</dd>
          <dt>Why</dt><dd>{info.chosenBy === 'setting' ? `chosen in the settings below${probe ? `; the probe would pick ${probe.chosen}` : ''}` : probe?.reason ?? 'measured by the probe'}</dd>
          <dt>Measured speed</dt><dd>{formatRate(info.layerTokensPerSecond, 'layer-tokens')} on its layers</dd>
          <dt>Memory budget</dt><dd>{formatMiB(info.memoryBudgetBytes)}</dd>
        </>}
        {probe && <>
          <dt>WebGPU</dt><dd>{probe.webgpu.available ? `${probe.webgpu.isFallbackAdapter ? 'software adapter' : 'yes'}${probe.webgpu.info.vendor || probe.webgpu.info.architecture ? ` (${[probe.webgpu.info.vendor, probe.webgpu.info.architecture].filter(Boolean).join(' ')})` : ''}` : `no${probe.webgpu.reason ? ` (${probe.webgpu.reason})` : ''}`}</dd>
          <dt>WASM</dt><dd>{[probe.wasm.simd ? 'SIMD' : 'no SIMD', probe.wasm.threads ? 'threads' : 'no threads'].join(', ')}</dd>
          <dt>Cores</dt><dd>{probe.cores}{probe.deviceMemoryGb ? `, ${probe.deviceMemoryGb} GB memory` : ''}</dd>
          <dt>Benchmarks</dt>
          <dd><ul className="plain">{probe.benchmarks.map((b) => <li key={b.backend}>{b.backend}: {b.tokensPerSecond !== undefined ? formatRate(b.tokensPerSecond, 'tok') : `failed (${b.error})`}</li>)}</ul></dd>
        </>}
      </dl>
    </section>
  )
}
