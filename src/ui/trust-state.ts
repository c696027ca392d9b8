import type { TabRuntime } from '../swarm/tab-runtime.ts'
import { GENESIS_HASH, type AuditLog, type AuditProblem } from '../trust/audit.ts'
import type { PeerRecord, Reputation } from '../trust/reputation.ts'
import { createStore } from './store.ts'

/**
 * What this tab knows of its peers' honesty: the reputation it keeps of each peer it has
 * spot-checked, and the hash-chained audit log of what it saw. Both live in the runtime (IndexedDB);
 * this store mirrors them for the Trust panel, updated on every change while the panel watches.
 */
export type PeerTrustStatus = 'revoked' | 'new' | 'trusted'

export interface TrustPeerView {
  peerId: string
  score: number
  passed: number
  failed: number
  inconclusive: number
  /** Chance, 0 to 1, that this peer's part of a session is checked now. */
  checkRate: number
  status: PeerTrustStatus
}

export interface TrustState {
  status: 'opening' | 'open' | 'unavailable'
  error?: string
  peers: TrustPeerView[]
  auditEntries: number
  auditHead: string
  /** What was wrong with the stored chain when the log was opened. */
  loadProblem?: AuditProblem
}

export const trust = createStore<TrustState>({ status: 'opening', peers: [], auditEntries: 0, auditHead: GENESIS_HASH })

/** Passed checks under which a clean peer is still 'new'. */
export const NEW_PEER_CHECKS = 8

export function peerTrustStatus(record: Pick<PeerRecord, 'passed' | 'failed'>, revoked: boolean): PeerTrustStatus {
  if (revoked) return 'revoked'
  if (record.passed < NEW_PEER_CHECKS && record.failed === 0) return 'new'
  return 'trusted'
}

/** Every peer the reputation has a record of, best score first. */
export function trustPeers(reputation: Pick<Reputation, 'list' | 'checkRate' | 'revoked'>): TrustPeerView[] {
  return reputation.list()
    .map((r) => ({
      peerId: r.peerId, score: r.score, passed: r.passed, failed: r.failed, inconclusive: r.inconclusive,
      checkRate: reputation.checkRate(r.peerId),
      status: peerTrustStatus(r, reputation.revoked(r.peerId)),
    }))
    .sort((a, b) => b.score - a.score || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
}

function auditState(audit: AuditLog): Pick<TrustState, 'auditEntries' | 'auditHead' | 'loadProblem'> {
  return { auditEntries: audit.size(), auditHead: audit.head(), loadProblem: audit.loadProblem() }
}

/** Opens the runtime's trust state and mirrors it into `trust` until the returned function is called. */
export function watchTrust(runtime: Pick<TabRuntime, 'trust'>): () => void {
  let stopped = false
  const unsubscribe: (() => void)[] = []
  if (trust.get().status === 'unavailable') trust.set({ status: 'opening', error: undefined })
  runtime.trust().then(
    ({ reputation, audit }) => {
      if (stopped) return
      const refreshPeers = () => trust.set({ peers: trustPeers(reputation) })
      const refreshAudit = () => trust.set(auditState(audit))
      unsubscribe.push(reputation.onChange(refreshPeers), audit.onChange(refreshAudit))
      trust.set({ status: 'open', error: undefined, peers: trustPeers(reputation), ...auditState(audit) })
    },
    (err: Error) => { if (!stopped) trust.set({ status: 'unavailable', error: err.message }) },
  )
  return () => {
    stopped = true
    for (const u of unsubscribe.splice(0)) u()
  }
}
