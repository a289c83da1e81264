// The explorer's page (runs in the browser; bundled by setup with esbuild into ../dist/app.js).
// Hash routes, so every view has a link: #/nodes, #/node/<id>, #/committees, #/images,
// #/chain, #/vendors. It reads /api/snapshot and re-reads it when /api/events says a block
// changed something; served by an agent (/ui), it also reads api/local, the agent's own node
// (its event logs, apps and tenants). Status is always written in words, never only as a colour.
import { h, render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import htm from 'htm'
import type { AppRow, BlockSummary, LocalView, NodeRow, RoundLatency, UsagePoint } from '../types.ts'

const html = htm.bind(h)

interface Snapshot {
  chainId: string
  height: number
  time: number
  blockRate: number
  nodes: NodeRow[]
  vendors: Array<{
    name: string
    kind?: string
    revokedAt?: number
    ekCas: Array<{ subject?: string; fingerprint?: string; revokedAt?: number }>
    firmware: Array<{ platform: string; version: string; revokedAt?: number }>
  }>
  osImages: Array<{ name: string; version: string; revokedAt?: number }>
  images: Array<{ name: string; digest: string; cid: string; publisher?: string; height?: number }>
  recentTxs: Array<{ height: number; index: number; type: string; hash: string; subject: string }>
  blocks: BlockSummary[]
  certifications: Array<{ height: number; time: number; nodeId: string; outcome: 'pass' | 'fail' }>
  rounds: RoundLatency[]
  apps: AppRow[]
  usage: UsagePoint[]
  chainError?: string
}

const CLAIM_WORDS: Record<string, string> = {
  identity:
    'identity — the TPM is not one a published vendor CA vouches for, or its attestation key is not bound to it',
  firmware: 'firmware — the measured boot does not match any published firmware reference value',
  os: 'os — the OS image measurements match no published image',
  containers: 'containers — the container log does not replay to the container PCR',
  freshness: "freshness — the quote is stale, reused, or does not cover the verifiers' nonces"
}

const short = (id: string): string => (id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id)
const when = (ms?: number): string =>
  ms === undefined
    ? '—'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')
const statusText = (n: NodeRow): string => (n.certified ? 'certified' : n.status === 'failed' ? 'refused' : n.status)

function useRoute(): string {
  const [route, setRoute] = useState(location.hash.slice(1) || '/nodes')
  useEffect(() => {
    const on = (): void => {
      setRoute(location.hash.slice(1) || '/nodes')
    }
    addEventListener('hashchange', on)
    return () => {
      removeEventListener('hashchange', on)
    }
  }, [])
  return route
}

function useSnapshot(): { snap?: Snapshot; local?: LocalView; error?: string; live: boolean } {
  const [snap, setSnap] = useState<Snapshot | undefined>(undefined)
  const [local, setLocal] = useState<LocalView | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [live, setLive] = useState(false)
  useEffect(() => {
    let closed = false
    // 404: not served by an agent; asked again only while it answers
    let hasLocal = true
    const load = async (): Promise<void> => {
      try {
        const r = await fetch('api/snapshot', { cache: 'no-store' })
        const body = await r.json()
        if (closed) return
        if (r.ok) {
          setSnap(body as Snapshot)
          setError((body as Snapshot).chainError)
        } else setError(String(body.error))
        if (hasLocal) {
          const l = await fetch('api/local', { cache: 'no-store' })
          if (l.status === 404) hasLocal = false
          else if (l.ok && !closed) setLocal((await l.json()) as LocalView)
        }
      } catch (err) {
        setError(String(err))
      }
    }
    void load()
    const es = new EventSource('api/events')
    es.addEventListener('hello', () => {
      setLive(true)
      void load()
    })
    es.addEventListener('snapshot', () => {
      void load()
    })
    es.addEventListener('chain-error', (e: MessageEvent) => {
      setError(JSON.parse(e.data).message)
    })
    es.onerror = () => {
      setLive(false)
    }
    return () => {
      closed = true
      es.close()
    }
  }, [])
  return { snap, local, error, live }
}

const SECTIONS: Array<[string, string]> = [
  ['/nodes', 'Nodes'],
  ['/committees', 'Committees'],
  ['/images', 'Apps and images'],
  ['/chain', 'Chain'],
  ['/vendors', 'Vendors']
]

function Nav({ route, local }: { route: string; local?: LocalView }) {
  const sections = local === undefined ? SECTIONS : [...SECTIONS, [`/node/${local.nodeId}`, 'This node']]
  return html`<nav aria-label="Sections"><ul class="nav">${sections.map(
    ([r, label]) => html`
    <li><a href=${'#' + r} aria-current=${route === r || (route.startsWith(r) && !r.startsWith('/node/')) ? 'page' : undefined}>${label}</a></li>`
  )}</ul></nav>`
}

function Badge({ n }: { n: NodeRow }) {
  const t = statusText(n)
  return html`<span class=${'badge ' + (n.certified ? 'ok' : t === 'refused' || t === 'revoked' ? 'bad' : 'wait')}>${t}</span>`
}

function NodesPage({ s }: { s: Snapshot }) {
  const certified = s.nodes.filter(n => n.certified).length
  return html`<section aria-labelledby="h-nodes"><h2 id="h-nodes">Nodes</h2>
    <p>${certified} of ${s.nodes.length} nodes certified at height ${s.height}.</p>
    <table><caption>Every registered node and genesis verifier</caption>
      <thead><tr><th scope="col">Node</th><th scope="col">Status</th><th scope="col">Certified until</th><th scope="col">Platform</th><th scope="col">OS image</th><th scope="col">Committee (security)</th><th scope="col">Last round</th></tr></thead>
      <tbody>${s.nodes.map(
        n => html`<tr data-node=${n.nodeId} data-status=${statusText(n)}>
        <td><a href=${'#/node/' + n.nodeId} title=${n.nodeId}>${short(n.nodeId)}</a>${n.genesisVerifier ? ' (genesis verifier)' : ''}</td>
        <td><${Badge} n=${n} />${n.lastRound?.outcome === 'fail' && n.lastRound.failedClaims.length > 0 ? html` <span class="claims">failed: ${n.lastRound.failedClaims.join(', ')}</span>` : ''}</td>
        <td>${when(n.certifiedUntil)}</td><td>${n.platform ?? '—'}</td><td>${n.os ?? '—'}</td>
        <td>${n.committeeSize === undefined ? '—' : `k = ${n.committeeSize}${n.securityBits === undefined ? '' : ` (${n.securityBits} bits)`}`}</td>
        <td>${n.lastRound === undefined ? '—' : `round ${n.lastRound.round}: ${n.lastRound.outcome} at height ${n.lastRound.height}`}</td></tr>`
      )}
      </tbody></table>
    <div class="charts"><figure><figcaption>Certifications and failures over time</figcaption><${CertChart} s=${s} /></figure>
    <figure><figcaption>Round latency: blocks from request to record</figcaption><${LatencyChart} rounds=${s.rounds} /></figure></div></section>`
}

function NodePage({ s, id, local }: { s: Snapshot; id: string; local?: LocalView }) {
  const n = s.nodes.find(x => x.nodeId === id)
  if (n === undefined)
    return html`<section><h2>Node</h2><p role="alert">No node ${id} on this chain.</p><p><a href="#/nodes">All nodes</a></p></section>`
  const r = n.lastRound
  return html`<section aria-labelledby="h-node"><h2 id="h-node">Node ${short(n.nodeId)}</h2>
    <dl class="facts"><dt>Node id</dt><dd><code>${n.nodeId}</code></dd><dt>Status</dt><dd><${Badge} n=${n} /> ${n.statusReason ?? ''}</dd>
      <dt>Certified until</dt><dd>${when(n.certifiedUntil)}</dd><dt>Platform</dt><dd>${n.platform ?? '—'}</dd><dt>OS image</dt><dd>${n.os ?? '—'}</dd>
      <dt>Addresses</dt><dd>${n.addrs.length === 0 ? '—' : n.addrs.map(a => html`<code>${a}</code> `)}</dd>
      <dt>Requests seen</dt><dd>${n.requests.length === 0 ? 'none' : `at heights ${n.requests.join(', ')}`}</dd></dl>
    ${
      r === undefined
        ? html`<p>No round recorded yet.</p>`
        : html`
      <h3>Last recorded round</h3>
      <p>Round ${r.round} ended <strong>${r.outcome === 'pass' ? 'certified' : 'refused'}</strong> at height ${r.height}; a committee of ${r.committee.length} was drawn from the chain's seed.</p>
      ${r.outcome === 'fail' ? html`<h4>Failed claims</h4>${r.failedClaims.length === 0 ? html`<p>The verdicts named no claim (no quorum, or the round closed at its deadline).</p>` : html`<ul class="failed">${r.failedClaims.map(c => html`<li data-claim=${c}>${CLAIM_WORDS[c] ?? c}</li>`)}</ul>`}` : ''}
      <table><caption>Committee of round ${r.round}</caption><thead><tr><th scope="col">Member</th><th scope="col">Its status now</th></tr></thead>
        <tbody>${r.committee.map(m => {
          const mn = s.nodes.find(x => x.nodeId === m)
          return html`<tr><td><a href=${'#/node/' + m}>${short(m)}</a></td><td>${mn === undefined ? 'not registered' : statusText(mn)}</td></tr>`
        })}</tbody></table>`
    }
    <${NodeRounds} rounds=${s.rounds.filter(x => x.nodeId === n.nodeId)} />
    ${
      local?.nodeId === n.nodeId
        ? html`<${LocalNode} l=${local} />`
        : html`<h3>Event log, apps and tenants</h3><p class="note" id="logs-elsewhere">This node's firmware and container event logs are held by the node: its committee received them in each round, and its operator sees them decoded on its own agent's <code>/ui</code> (this node page, served by that agent) or as JSON from <code>GET /status/eventlog</code> on its local HTTP API. The apps and tenants it runs are on that agent's <code>/status</code>; the chain records only what may run and the usage nodes report.</p>`
    }
    <p><a href="#/nodes">All nodes</a></p></section>`
}

const secs = (ms: number): string => `${Math.round(ms / 100) / 10} s`

function NodeRounds({ rounds }: { rounds: RoundLatency[] }) {
  if (rounds.length === 0) return ''
  return html`<table><caption>Rounds of this node seen in blocks (request to record)</caption>
    <thead><tr><th scope="col">Round</th><th scope="col">Requested at height</th><th scope="col">Recorded at height</th><th scope="col">Latency</th><th scope="col">Outcome</th></tr></thead>
    <tbody>${rounds
      .slice(-20)
      .reverse()
      .map(
        r =>
          html`<tr data-round=${r.round}><td>${r.round}</td><td>${r.requestHeight}</td><td>${r.recordHeight}</td><td>${r.blocks} blocks, ${secs(r.ms)}</td><td>${r.outcome === undefined ? '—' : r.outcome === 'pass' ? 'certified' : 'refused'}</td></tr>`
      )}</tbody></table>`
}

/** The serving agent's own node: what only it holds (event logs) and what it runs. */
function LocalNode({ l }: { l: LocalView }) {
  const b = l.bootLog
  const c = l.containerLog
  return html`<section aria-labelledby="h-local" class="local"><h3 id="h-local">This node, as its agent sees it</h3>
    <p>The agent serving this page runs this node; it is <strong>${l.state}</strong>${l.stateReason === undefined ? '' : ` (${l.stateReason})`}.</p>
    <h4>Apps</h4>${
      l.apps.length === 0
        ? html`<p>No app loaded.</p>`
        : html`<table id="local-apps"><caption>Apps on this node</caption><thead><tr><th scope="col">App</th><th scope="col">State</th><th scope="col">Version</th><th scope="col">Requests served</th></tr></thead>
      <tbody>${l.apps.map(a => html`<tr data-app=${a.name} data-state=${a.state}><td>${a.name}</td><td>${a.state}</td><td>${a.version ?? '—'}</td><td>${a.requests ?? '—'}</td></tr>`)}</tbody></table>`
    }
    <h4>Tenants running</h4>${
      l.containers.length === 0
        ? html`<p>No tenant container running.</p>`
        : html`<table id="local-tenants"><caption>Tenant containers (measured into PCR 13 before they started)</caption><thead><tr><th scope="col">Image</th><th scope="col">Digest</th><th scope="col">CID</th></tr></thead>
      <tbody>${l.containers.map(x => html`<tr data-image=${x.image}><td>${x.image}</td><td><code title=${x.digest}>${x.digest.slice(0, 19)}…</code></td><td><code title=${x.cid}>${short(x.cid)}</code></td></tr>`)}</tbody></table>`
    }
    <h4>Firmware event log</h4>${
      !b.present
        ? html`<p>This node booted without a firmware event log; its firmware claim can pass only on golden PCR values.</p>`
        : b.error !== undefined
          ? html`<p role="alert">The log (${b.bytes} bytes) does not decode: ${b.error}</p>`
          : html`<table id="boot-log"><caption>${b.events.length} events, ${b.bytes} bytes, banks ${(b.banks ?? []).join(', ')} — what the committee replays against the quoted PCRs</caption>
      <thead><tr><th scope="col">#</th><th scope="col">PCR</th><th scope="col">Event type</th><th scope="col">SHA-256</th><th scope="col">What</th></tr></thead>
      <tbody>${b.events.map(e => html`<tr data-event=${e.type}><td>${e.index}</td><td>${e.pcr}</td><td>${e.type}</td><td><code title=${e.sha256 ?? ''}>${e.sha256 === undefined ? '—' : e.sha256.slice(0, 12)}</code></td><td>${e.description}</td></tr>`)}</tbody></table>`
    }
    <h4>Container event log (PCR 13)</h4>${
      c.error !== undefined
        ? html`<p role="alert">The log does not decode: ${c.error}</p>`
        : c.entries.length === 0
          ? html`<p>No container launched since this boot.</p>`
          : html`<table id="container-log"><caption>${c.entries.length} launches, each extended into PCR 13 before the container started</caption>
      <thead><tr><th scope="col">#</th><th scope="col">Image</th><th scope="col">Digest</th><th scope="col">CID</th><th scope="col">Arguments</th></tr></thead>
      <tbody>${c.entries.map(e => html`<tr data-image=${e.image}><td>${e.index}</td><td>${e.image}</td><td><code title=${e.digest}>${e.digest.slice(0, 19)}…</code></td><td><code title=${e.cid}>${short(e.cid)}</code></td><td><code>${e.args.join(' ')}</code></td></tr>`)}</tbody></table>`
    }</section>`
}

function CommitteesPage({ s }: { s: Snapshot }) {
  const rows = s.nodes.filter(n => n.lastRound !== undefined)
  return html`<section aria-labelledby="h-comm"><h2 id="h-comm">Committees: who verified whom</h2>
    <table><caption>The committee of each node's last recorded round</caption><thead><tr><th scope="col">Node</th><th scope="col">Round</th><th scope="col">Outcome</th><th scope="col">Members</th></tr></thead>
    <tbody>${rows.map(
      n => html`<tr><td><a href=${'#/node/' + n.nodeId}>${short(n.nodeId)}</a></td><td>${n.lastRound?.round}</td><td>${n.lastRound?.outcome === 'pass' ? 'certified' : 'refused'}</td>
      <td>${n.lastRound?.committee.map(m => html`<a href=${'#/node/' + m} class="member">${short(m)}</a> `)}</td></tr>`
    )}</tbody></table></section>`
}

const kb = (n: number): string => (n < 1 << 20 ? `${Math.round(n / 1024)} kB` : `${Math.round(n / (1 << 20))} MB`)

function ImagesPage({ s, local }: { s: Snapshot; local?: LocalView }) {
  return html`<section aria-labelledby="h-img"><h2 id="h-img">Apps and images</h2>
    <h3>Apps</h3>${
      s.apps.length === 0
        ? html`<p>No app published yet.</p>`
        : html`<table id="apps"><caption>Serverless apps published on chain, with the requests nodes reported serving</caption>
    <thead><tr><th scope="col">App</th><th scope="col">Status</th><th scope="col">Publisher</th><th scope="col">Versions (digest, CID, size)</th><th scope="col">Requests, and the nodes that served them</th></tr></thead>
    <tbody>${s.apps.map(
      a => html`<tr data-app=${a.name} data-status=${a.revokedAt === undefined ? 'published' : 'revoked'}><td>${a.name}</td>
      <td>${a.revokedAt === undefined ? (a.current === undefined ? 'no version in force' : `runs ${a.current}`) : `revoked at height ${a.revokedAt}`}</td>
      <td><code title=${a.publisher}>${a.publisher.slice(0, 12)}</code></td>
      <td><ul class="versions">${a.versions.map(v => html`<li data-version=${v.version}>${v.version}${v.version === a.current ? ' (current)' : ''}: <code title=${v.digest}>${v.digest.slice(0, 19)}…</code> <code title=${v.cid}>${short(v.cid)}</code> ${kb(v.size)}${v.revokedAt === undefined ? '' : ` — revoked at height ${v.revokedAt}`}</li>`)}</ul></td>
      <td data-requests=${a.requests}>${a.requests}${a.nodes.length === 0 ? '' : ' on '}${a.nodes.map(n => html`<a href=${`#/node/${n}`} class="member">${short(n)}</a> `)}</td></tr>`
    )}</tbody></table>`
    }
    <figure id="usage-figure"><figcaption>Requests per app over time (usage.record reports)</figcaption><${UsageChart} s=${s} /></figure>
    ${
      local === undefined
        ? ''
        : html`<p>On this node: ${local.apps.length === 0 ? 'no app loaded' : local.apps.map(a => `${a.name} (${a.state})`).join(', ')}.</p>`
    }
    <h3>Images</h3>
    ${
      s.images.length === 0
        ? html`<p>No image published yet.</p>`
        : html`<table><caption>Images published on chain (content on IPFS)</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Digest</th><th scope="col">CID</th><th scope="col">Publisher</th></tr></thead>
    <tbody>${s.images.map(i => html`<tr><td>${i.name}</td><td><code title=${i.digest}>${i.digest.slice(0, 19)}…</code></td><td><code title=${i.cid}>${short(i.cid)}</code></td><td>${i.publisher === undefined ? '—' : short(String(i.publisher))}</td></tr>`)}</tbody></table>`
    }
    <p class="note">Where each image runs is known to the nodes that run it (their <code>/status</code>); the chain records what may run, not where.</p></section>`
}

function ChainPage({ s }: { s: Snapshot }) {
  const byType: Record<string, number> = {}
  for (const b of s.blocks) for (const [t, c] of Object.entries(b.types)) byType[t] = (byType[t] ?? 0) + c
  return html`<section aria-labelledby="h-chain"><h2 id="h-chain">Chain</h2>
    <dl class="facts"><dt>Chain id</dt><dd>${s.chainId}</dd><dt>Height</dt><dd data-height=${s.height}>${s.height}</dd><dt>Block time</dt><dd>${when(s.time)}</dd><dt>Block rate</dt><dd>${s.blockRate} per minute</dd></dl>
    <h3>Transactions per block</h3><${TxChart} blocks=${s.blocks} />
    <table><caption>Transactions by type, last ${s.blocks.length} blocks</caption><thead><tr><th scope="col">Type</th><th scope="col">Count</th></tr></thead>
      <tbody>${Object.entries(byType)
        .sort((a, b) => b[1] - a[1])
        .map(([t, c]) => html`<tr><td>${t}</td><td>${c}</td></tr>`)}</tbody></table>
    <table><caption>Recent transactions</caption><thead><tr><th scope="col">Height</th><th scope="col">Type</th><th scope="col">Subject</th><th scope="col">Hash</th></tr></thead>
      <tbody>${s.recentTxs.map(t => html`<tr><td>${t.height}</td><td>${t.type}</td><td>${t.subject.startsWith('12D3') ? html`<a href=${'#/node/' + t.subject}>${short(t.subject)}</a>` : t.subject}</td><td><code>${t.hash.slice(0, 12)}</code></td></tr>`)}</tbody></table></section>`
}

function VendorsPage({ s }: { s: Snapshot }) {
  return html`<section aria-labelledby="h-vend"><h2 id="h-vend">Vendors and reference values</h2>
    ${s.vendors.map(
      v => html`<article><h3>${v.name}${v.revokedAt === undefined ? '' : ' (revoked)'}</h3>
      <p>${v.ekCas.length} EK CA certificate(s)${v.ekCas.some(c => c.revokedAt !== undefined) ? ', some revoked' : ''}; ${v.firmware.length} firmware reference value(s).</p>
      ${v.firmware.length === 0 ? '' : html`<ul>${v.firmware.map(f => html`<li>${f.platform} version ${f.version}${f.revokedAt === undefined ? '' : ' — revoked'}</li>`)}</ul>`}</article>`
    )}
    <h3>OS images</h3>${s.osImages.length === 0 ? html`<p>None published.</p>` : html`<ul>${s.osImages.map(o => html`<li>${o.name} ${o.version}${o.revokedAt === undefined ? '' : ' — revoked'}</li>`)}</ul>`}</section>`
}

/** Bars of certifications (above the axis) and failures (below) per group of heights. */
function CertChart({ s }: { s: Snapshot }) {
  const c = s.certifications
  if (c.length === 0) return html`<p>No round recorded yet.</p>`
  const lo = c[0].height
  const hi = Math.max(s.height, lo + 1)
  const bins = 30
  const pass = new Array<number>(bins).fill(0)
  const fail = new Array<number>(bins).fill(0)
  for (const e of c) {
    const i = Math.min(bins - 1, Math.floor(((e.height - lo) / (hi - lo + 1)) * bins))
    ;(e.outcome === 'pass' ? pass : fail)[i]++
  }
  const max = Math.max(1, ...pass, ...fail)
  const w = 600
  const hh = 60
  const bw = w / bins
  return html`<svg role="img" aria-label=${`${c.filter(e => e.outcome === 'pass').length} certifications and ${c.filter(e => e.outcome === 'fail').length} failures between heights ${lo} and ${hi}`} viewBox=${`0 0 ${w} ${hh * 2 + 4}`} class="chart">
    ${pass.map((p, i) => html`<rect x=${i * bw + 1} y=${hh - (p / max) * hh} width=${bw - 2} height=${(p / max) * hh} class="pass"><title>${p} certified</title></rect>`)}
    ${fail.map((f, i) => html`<rect x=${i * bw + 1} y=${hh + 4} width=${bw - 2} height=${(f / max) * hh} class="fail"><title>${f} refused</title></rect>`)}
    <line x1="0" x2=${w} y1=${hh + 2} y2=${hh + 2} class="axis" /></svg>`
}

/** One bar per recorded round (newest right): its height is the blocks from request to record. */
function LatencyChart({ rounds }: { rounds: RoundLatency[] }) {
  if (rounds.length === 0) return html`<p>No round recorded yet.</p>`
  const shown = rounds.slice(-60)
  const sorted = shown.map(r => r.blocks).sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]
  const max = Math.max(1, ...sorted)
  const ms = shown.map(r => r.ms).sort((a, b) => a - b)[Math.floor(shown.length / 2)]
  const w = 600
  const hh = 80
  const bw = w / Math.max(shown.length, 10)
  return html`<svg role="img" aria-label=${`${shown.length} rounds: median ${median} blocks (${secs(ms)}) from request to record, longest ${max} blocks`} viewBox=${`0 0 ${w} ${hh}`} class="chart" id="latency-chart">
    ${shown.map((r, i) => html`<rect x=${i * bw + 1} y=${hh - (r.blocks / max) * (hh - 4)} width=${Math.max(1, bw - 2)} height=${(r.blocks / max) * (hh - 4)} class=${r.outcome ?? 'open'}><title>round ${r.round} of ${short(r.nodeId)}: ${r.blocks} blocks, ${secs(r.ms)}${r.outcome === undefined ? '' : `, ${r.outcome}`}</title></rect>`)}</svg>`
}

/** Small multiples: per app, its requests per time slice (same slices for every app). */
function UsageChart({ s }: { s: Snapshot }) {
  const u = s.usage
  if (u.length === 0) return html`<p>No usage reported yet.</p>`
  const lo = u[0].time
  const hi = Math.max(u[u.length - 1].time, lo + 1)
  const bins = 30
  const byApp = new Map<string, number[]>()
  for (const p of u) {
    const row = byApp.get(p.app) ?? new Array<number>(bins).fill(0)
    row[Math.min(bins - 1, Math.floor(((p.time - lo) / (hi - lo + 1)) * bins))] += p.requests
    byApp.set(p.app, row)
  }
  const w = 300
  const hh = 24
  const bw = w / bins
  return html`<table id="usage"><caption>Between ${when(lo)} and ${when(hi)}</caption><thead><tr><th scope="col">App</th><th scope="col">Requests</th><th scope="col">Over time</th></tr></thead>
    <tbody>${[...byApp].map(([app, row]) => {
      const max = Math.max(1, ...row)
      const total = row.reduce((a, b) => a + b, 0)
      return html`<tr data-app=${app}><td>${app}</td><td>${total}</td><td><svg role="img" aria-label=${`${app}: ${total} requests, at most ${max} in one slice`} viewBox=${`0 0 ${w} ${hh}`} class="spark">
        ${row.map((n, i) => html`<rect x=${i * bw} y=${hh - (n / max) * hh} width=${Math.max(1, bw - 1)} height=${(n / max) * hh} class="pass"><title>${n} requests</title></rect>`)}</svg></td></tr>`
    })}</tbody></table>`
}

function TxChart({ blocks }: { blocks: BlockSummary[] }) {
  if (blocks.length === 0) return html`<p>No blocks yet.</p>`
  const max = Math.max(1, ...blocks.map(b => b.txs))
  const w = 600
  const hh = 80
  const bw = w / blocks.length
  return html`<svg role="img" aria-label=${`transactions in the last ${blocks.length} blocks, at most ${max} in one block`} viewBox=${`0 0 ${w} ${hh}`} class="chart">
    ${blocks.map((b, i) => html`<rect x=${i * bw} y=${hh - (b.txs / max) * hh} width=${Math.max(1, bw - 1)} height=${(b.txs / max) * hh} class="pass"><title>height ${b.height}: ${b.txs} tx</title></rect>`)}</svg>`
}

function App() {
  const route = useRoute()
  const { snap, local, error, live } = useSnapshot()
  // after a route change, focus goes to the new content (so keyboard and screen reader users
  // land on what they opened), but not on the first load
  const [first, setFirst] = useState(true)
  useEffect(() => {
    if (first) {
      setFirst(false)
      return
    }
    document.getElementById('main')?.focus()
  }, [route])
  let page: ReturnType<typeof html>
  if (snap === undefined) page = html`<p role="status">${error ?? 'Reading the chain…'}</p>`
  else if (route.startsWith('/node/'))
    page = html`<${NodePage} s=${snap} id=${decodeURIComponent(route.slice(6))} local=${local} />`
  else if (route === '/committees') page = html`<${CommitteesPage} s=${snap} />`
  else if (route === '/images') page = html`<${ImagesPage} s=${snap} local=${local} />`
  else if (route === '/chain') page = html`<${ChainPage} s=${snap} />`
  else if (route === '/vendors') page = html`<${VendorsPage} s=${snap} />`
  else page = html`<${NodesPage} s=${snap} />`
  return html`<header><h1>quorate explorer</h1><p class="sub" role="status" aria-live="polite">${snap === undefined ? '' : `chain ${snap.chainId}, height ${snap.height}`} · ${live ? 'live' : 'reconnecting'}${error === undefined ? '' : ` · ${error}`}</p></header>
    <${Nav} route=${route} local=${local} /><main id="main" tabindex="-1">${page}</main>`
}

const style = document.createElement('style')
style.textContent = `
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px;color:#1b1b1b}
h1{font-size:1.4em;margin:.6em 0 0}.sub{color:#555;margin:.2em 0 .8em}
.nav{display:flex;gap:4px;list-style:none;padding:0;margin:0 0 12px;border-bottom:1px solid #ccc}
.nav a{display:block;padding:6px 12px;text-decoration:none;color:#0a4b8c;border-radius:4px 4px 0 0}
.nav a[aria-current=page]{background:#0a4b8c;color:#fff}
a:focus-visible{outline:3px solid #f5a623;outline-offset:2px}main:focus{outline:none}
table{border-collapse:collapse;width:100%;margin:8px 0 16px}caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
.badge{padding:1px 8px;border-radius:10px;font-size:.85em;border:1px solid}
.badge.ok{background:#e3f4e6;border-color:#2e7d32;color:#1b5e20}.badge.bad{background:#fde7e7;border-color:#c62828;color:#8e0000}
.badge.wait{background:#f1f1f1;border-color:#888;color:#333}.claims{color:#8e0000}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}.facts dt{font-weight:600}
.chart{width:100%;max-width:600px;height:auto;background:#fafafa;border:1px solid #eee}
.chart .pass,.spark .pass{fill:#2e7d32}.chart .fail{fill:#c62828}.chart .open{fill:#888}.chart .axis{stroke:#999}.note{color:#555}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:8px 0;flex:1 1 400px}figcaption{font-weight:600;padding:4px 0}
.spark{width:300px;height:24px;background:#fafafa}.versions{margin:0;padding-left:1.2em}
`
document.head.append(style)
const root = document.getElementById('app')
if (root !== null) {
  root.textContent = ''
  render(html`<${App} />`, root)
}
