import { useEffect, useState } from 'react'
import { verifyAuditChain, type AuditVerdict } from '../trust/audit.ts'
import { useApp } from './context.ts'
import { shortPeerId } from './format.ts'
import { useStore } from './store.ts'
import { trust, watchTrust } from './trust-state.ts'

const percent = (rate: number) => `${rate >= 0.1 ? Math.round(rate * 100) : (rate * 100).toFixed(1)}%`

/** The peers this tab has spot-checked (score, checks, check rate, status) and its audit log: verify, export. */
export function TrustPanel() {
  const { runtime } = useApp()
  const t = useStore(trust)
  const [verdict, setVerdict] = useState<AuditVerdict>()
  const [verifying, setVerifying] = useState(false)

  useEffect(() => watchTrust(runtime), [runtime])

  async function verify() {
    setVerifying(true)
    try {
      const { audit } = await runtime.trust()
      setVerdict(await verifyAuditChain(audit.export()))
    } catch (err) {
      setVerdict({ ok: false, problem: { index: -1, seq: undefined, kind: 'malformed', message: `the log cannot be read: ${(err as Error).message}` } })
    } finally {
      setVerifying(false)
    }
  }

  async function exportLog() {
    const { audit } = await runtime.trust()
    const url = URL.createObjectURL(new Blob([JSON.stringify(audit.export(), null, 2)], { type: 'application/json' }))
    const a = document.createElement('a')
    a.href = url
    a.download = 'tabmesh-audit.json'
    document.body.append(a)
    a.click()
    a.remove()
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
  }

  return (
    <section className="panel" aria-labelledby="trust-title">
      <h2 id="trust-title">Trust</h2>
      {t.status === 'opening' && <p className="muted">Opening the trust records…</p>}
      {t.status === 'unavailable' && <p role="alert" className="error">The trust records cannot be opened: {t.error}</p>}
      {t.status === 'open' && (
        <>
          {t.peers.length === 0 ? <p className="muted">No peer has been checked yet.</p> : (
            <div className="table-scroll" tabIndex={0} role="region" aria-label="Trust table">
              <table data-testid="trust-table" className="stack-on-phone trust-table" aria-labelledby="trust-title">
                <thead>
                  <tr>
                    <th scope="col">Peer</th><th scope="col">Score</th><th scope="col">Passed</th><th scope="col">Failed</th>
                    <th scope="col">Inconclusive</th><th scope="col">Check rate</th><th scope="col">Status</th>
                  </tr>
                </thead>
                <tbody>
                  {t.peers.map((p) => (
                    <tr key={p.peerId} data-peer={p.peerId} data-status={p.status}>
                      <td data-label="Peer"><code title={p.peerId}>{shortPeerId(p.peerId)}</code></td>
                      <td data-label="Score" data-testid="trust-score">{p.score}</td>
                      <td data-label="Passed" data-testid="trust-passed">{p.passed}</td>
                      <td data-label="Failed" data-testid="trust-failed">{p.failed}</td>
                      <td data-label="Inconclusive" data-testid="trust-inconclusive">{p.inconclusive}</td>
                      <td data-label="Check rate">{percent(p.checkRate)}</td>
                      <td data-label="Status"><span className={`trust-status trust-${p.status}`}>{p.status}</span></td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h3 className="trust-subhead">Audit log</h3>
          {t.loadProblem && (
            <p role="alert" className="trust-warning" data-testid="audit-load-problem">
              The stored log was already broken when this tab opened it: {t.loadProblem.message}
            </p>
          )}
          <dl className="facts">
            <dt>Entries</dt><dd data-testid="audit-size">{t.auditEntries}</dd>
            <dt>Head</dt><dd><code data-testid="audit-head" title={t.auditHead}>{t.auditHead.slice(0, 16)}</code></dd>
          </dl>
          <div className="row-tight trust-actions">
            <button type="button" onClick={verify} disabled={verifying}>Verify log</button>
            <button type="button" className="secondary" onClick={exportLog}>Export log</button>
          </div>
          <p role="status" data-testid="audit-verdict" data-ok={verdict === undefined ? undefined : String(verdict.ok)}
            className={verdict === undefined ? 'muted trust-verdict' : verdict.ok ? 'trust-verdict trust-ok' : 'trust-verdict error'}>
            {verifying ? 'Verifying…' : verdict === undefined ? '' : verdict.ok ? `Chain intact: ${verdict.entries} entries` : verdict.problem.message}
          </p>
        </>
      )}
    </section>
  )
}
