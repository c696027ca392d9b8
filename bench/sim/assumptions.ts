/**
 * The modelling assumptions, as written into sim.json: each states a number and where it comes
 * from (a measurement, the project's code, or a cited source).
 */
import { CONNECTIONS } from './peers.ts'
import { DEPARTURE, DEVICE_ASSUMPTIONS, DIAL, HOST_KV_BUDGET, HOST_MAX_SESSIONS, MODELS, placementBytesPerLayer, REGION_RTT_MS, REGION_SHARE, REGIONS, weightBytesPerLayer } from './world.ts'

export const ASSUMPTIONS = {
  realCode: [
    'placement: src/swarm/placement.ts layersThatFit + chooseLayers on join (served = ready peers\' adverts, throughput = layerTokensPerSecond as tab-runtime passes it), rebalance(margin 0.25) every ~600 s per host (src/ does not call rebalance yet), layerThroughput for coverage',
    'routes: src/swarm/route.ts planRoute over src/swarm/mesh-swarm-engine.ts routeCandidates (src/mesh/selection.ts routeCost, including its dial cost for direct = false) on PeerEntry values shaped as src/mesh/peer-table.ts; health by advertHealth; revoked peers filtered as swarm-engine usable() does',
    'trust: src/trust/reputation.ts openReputation(memoryReputationStore()) per client, checkRate per hop (drawn once per hop per session, src/trust/checks.ts), passed per 8-position window, failed on a caught lie (revokes at REVOKE_BELOW)',
    'gossip: advert size and decode cost from src/mesh/protocol.ts encodeMessage/decodeMessage; gossipsub constants read from @libp2p/gossipsub 17.1 constants.js',
  ],
  models: MODELS.map((m) => ({ id: m.id, layers: m.nLayers, dim: m.dim, kvDim: m.kvDim, weightMBPerLayer: +(weightBytesPerLayer(m) / 1e6).toFixed(1), placementMBPerLayer: +(placementBytesPerLayer(m) / 1e6).toFixed(1), chatShare: m.popularity })),
  modelNote: 'Llama-3.2-1B / Llama-3-8B / Llama-3-70B shapes at q4 (0.5625 bytes/param); placement bytes per layer = weights + one f32 seqLen=4096 session of KV, as tab-runtime sizes it. A joiner picks the model whose weakest layer is weakest relative to its chat share.',
  devices: { ...DEVICE_ASSUMPTIONS, note: 'decode is memory-bound: layer-tokens/s = effective bandwidth / layer weight bytes; extra rows in one call cost 1/16 (WebGPU) or 1/4 (WASM) of a row' },
  hosts: { maxSessions: HOST_MAX_SESSIONS, kvBudgetBytes: HOST_KV_BUDGET, note: 'src/swarm/host.ts defaults; a host refuses a session when full or out of KV (kvBytes = 2 x layers x maxLength x kvDim x 4); clients ask for maxLength = prompt + 256 new tokens except in the maxlen-seqlen scenario (tab-runtime passes seqLen today)' },
  queueing: 'per host, M/D/1 (Pollaczek-Khinchine) wait = sum(rate x service^2) / 2(1 - rho), rho capped at 0.95, updated every 2 s; the advert carries queueDepth = round(Lq) and activeSessions',
  rtt: {
    regions: REGIONS, share: REGION_SHARE, medianMs: REGION_RTT_MS,
    note: 'regional medians rounded from WonderNetwork global ping statistics, x a per-pair log-normal factor (sigma 0.2), + a last-mile RTT per end (median 10 ms, sigma 0.6, FCC Measuring Broadband America). Uniform random pairs of tabs give RTT p10/p50/p90 = 61/159/285 ms: above the King/Meridian medians (~70-80 ms, measured mostly between well-connected servers) because a random partner is usually on another continent and access links add ~20 ms',
  },
  churn: 'Weibull session lengths, shape 0.5, median 20 min / churn multiplier; initial tabs get the stationary residual (length-biased), arrivals are Poisson at N / mean session so N is stationary; tabs keep their layers until they leave or rebalance',
  departures: DEPARTURE,
  departureNote: '60% graceful: pagehide publishes a leave advert (src/mesh/node.ts), noticed within 0.1-0.4 s; 40% silent (crash, sleep, discarded tab): the peer table drops a peer 2.2 s after its last 1 s heartbeat (staleAfterMs), swept every 100 ms -> 1.2-2.3 s',
  loading: 'a joiner or a rebalancing host serves only once its weights are loaded: bytes / (cache 400 MB/s for 30%, else download median 30 MB/s); loading tabs advertise nothing hosted (as contributor.ts does), so joiners in the same seconds see the same gaps',
  failover: 'as src/swarm/swarm-engine.ts: ban the peer for the session, planRoute over the failed hop\'s span, open (dial if not connected), replay kept history entry by entry (ceil(prompt/32) chunk calls, then one call per generated token), maxFailovers 8 per chat; a refused open re-plans the span without that host',
  trust: 'liars are 2% of hosts (5% in liars-5pct): half naive (lie in every session), half patient (honest for their first 3 sessions with a client, then lie). A drawn lying hop is caught at its first checked window (its tokens were held back); an undrawn lying hop\'s tokens are delivered wrong. Verifiers\' own compute and check lag are not charged to throughput',
  connections: { ...CONNECTIONS, dial: DIAL, note: 'count = max(24, 8 mesh + on-demand connections in use or used within 30 s); a connection is reused if in the tab\'s recent set or (chance 24/N) a discovery connection; the relay WebSocket is not counted; RTTs are known (pinged) only for connected peers, others cost routeCost\'s default 20 ms RTT plus the client\'s median dial' },
  dialModel: 'dial = 400 ms (ICE gathering + DTLS/SCTP set-up on loopback, LAB.md) + relayed SDP offer/answer (client-relay + relay-host RTT, relay in Europe) + 3 RTTs client-host (ICE check, DTLS, data channel); 10% of dials hang, are aborted at 5 s and dialled once more at once (openStream); the dialMs of routeCost is the median of the last 10 dial attempts of the client (mesh.expectedDialMs); NAT traversal failures (TURN) are not modelled',
  clients: '10% of tabs chat: think time exponential (mean 60 s), prompt uniform 64-512 tokens, 256 new tokens; model by chat share; head on the client costs one read of a 128k x dim q4 matrix per token',
  simplifications: [
    'prefill and replay work does not load hosts\' queues; only decode steps do',
    'route shortlist per plan (per layer the 6 cheapest hosts as strangers + connected hosts); every 25th plan is also made over the full table to measure its cost and the shortlist\'s fidelity',
    'gossip load is analytic in N, with duplicates and IDONTWANTs measured by flooding over a 2,000-tab graph; the relay\'s own gossip load is not modelled',
  ],
  sources: [
    'Stutzbach & Rejaie, "Understanding churn in peer-to-peer networks", IMC 2006 (session lengths heavy-tailed, Weibull shape ~0.34-0.59)',
    'Javadi, Kondo, Vincent & Anderson, "Discovering statistical models of availability in large distributed systems: an empirical study of SETI@home", MASCOTS 2009 (availability intervals Weibull/log-normal)',
    'Borzunov et al., "Distributed Inference and Fine-tuning of Large Language Models Over The Internet", NeurIPS 2023 (Petals: volunteer servers join and leave; block rebalancing)',
    'WonderNetwork global ping statistics, wondernetwork.com/pings (inter-city RTT medians)',
    'Gummadi, Saroiu & Gribble, "King: estimating latency between arbitrary Internet end hosts", IMW 2002; Wong, Slivkins & Sirer, "Meridian", SIGCOMM 2005 (Internet RTT medians ~70-80 ms)',
    'FCC Measuring Broadband America (fixed-line idle latency ~10-30 ms by technology)',
    'Ruan et al., "WebLLM: A High-Performance In-Browser LLM Inference Engine", 2024 (in-browser decode speed vs native)',
    '@libp2p/gossipsub 17.1 constants.js (D, Dlo, Dhi, Dlazy, HistoryGossip, MaxIHaveLength, IDONTWANT threshold); src/mesh/node.ts heartbeatMs, maxDirectPeers, idleCloseMs; LAB.md (WebRTC dial ~400 ms on loopback, ~10% of first dials hang)',
  ],
}
