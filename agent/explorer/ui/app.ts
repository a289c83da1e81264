// The explorer's page (runs in the browser; bundled by setup with esbuild into ../dist/app.js).
// Hash routes, so every view has a link: #/nodes, #/node/<id>, #/committees, #/images,
// #/chain, #/vendors. It reads /api/snapshot and re-reads it when /api/events says a block
// changed something. Status is always written in words, never only as a colour.
import { h, render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import htm from 'htm'
import type { BlockSummary, NodeRow } from '../types.ts'

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

function useSnapshot(): { snap?: Snapshot; error?: string; live: boolean } {
  const [snap, setSnap] = useState<Snapshot | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [live, setLive] = useState(false)
  useEffect(() => {
    let closed = false
    const load = async (): Promise<void> => {
      try {
        const r = await fetch('api/snapshot', { cache: 'no-store' })
        const body = await r.json()
        if (closed) return
        if (r.ok) {
          setSnap(body as Snapshot)
          setError((body as Snapshot).chainError)
        } else setError(String(body.error))
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
  return { snap, error, live }
}

const SECTIONS: Array<[string, string]> = [
  ['/nodes', 'Nodes'],
  ['/committees', 'Committees'],
  ['/images', 'Apps and images'],
  ['/chain', 'Chain'],
  ['/vendors', 'Vendors']
]

function Nav({ route }: { route: string }) {
  return html`<nav aria-label="Sections"><ul class="nav">${SECTIONS.map(
    ([r, label]) => html`
    <li><a href=${'#' + r} aria-current=${route.startsWith(r) ? 'page' : undefined}>${label}</a></li>`
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
    <h3>Certifications and failures over time</h3><${CertChart} s=${s} /></section>`
}

function NodePage({ s, id }: { s: Snapshot; id: string }) {
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
    <p><a href="#/nodes">All nodes</a></p></section>`
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

function ImagesPage({ s }: { s: Snapshot }) {
  return html`<section aria-labelledby="h-img"><h2 id="h-img">Apps and images</h2>
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
  const { snap, error, live } = useSnapshot()
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
  else if (route.startsWith('/node/')) page = html`<${NodePage} s=${snap} id=${decodeURIComponent(route.slice(6))} />`
  else if (route === '/committees') page = html`<${CommitteesPage} s=${snap} />`
  else if (route === '/images') page = html`<${ImagesPage} s=${snap} />`
  else if (route === '/chain') page = html`<${ChainPage} s=${snap} />`
  else if (route === '/vendors') page = html`<${VendorsPage} s=${snap} />`
  else page = html`<${NodesPage} s=${snap} />`
  return html`<header><h1>quorate explorer</h1><p class="sub" role="status" aria-live="polite">${snap === undefined ? '' : `chain ${snap.chainId}, height ${snap.height}`} · ${live ? 'live' : 'reconnecting'}${error === undefined ? '' : ` · ${error}`}</p></header>
    <${Nav} route=${route} /><main id="main" tabindex="-1">${page}</main>`
}

const style = document.createElement('style')
style.textContent = `
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px;color:#1b1b1b}
h1{font-size:1.4em;margin:.6em 0 0}.sub{color:#555;margin:.2em 0 .8em}
.nav{display:flex;gap:4px;list-style:none;padding:0;margin:0 0 12px;border-bottom:1px solid #ccc}
.nav a{display:block;padding:6px 12px;text-decoration:none;color:#0a4b8c;border-radius:4px 4px 0 0}
.nav a[aria-current=page]{background:#0a4b8c;color:#fff}
a:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin:8px 0 16px}caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
.badge{padding:1px 8px;border-radius:10px;font-size:.85em;border:1px solid}
.badge.ok{background:#e3f4e6;border-color:#2e7d32;color:#1b5e20}.badge.bad{background:#fde7e7;border-color:#c62828;color:#8e0000}
.badge.wait{background:#f1f1f1;border-color:#888;color:#333}.claims{color:#8e0000}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}.facts dt{font-weight:600}
.chart{width:100%;max-width:600px;height:auto;background:#fafafa;border:1px solid #eee}
.chart .pass{fill:#2e7d32}.chart .fail{fill:#c62828}.chart .axis{stroke:#999}.note{color:#555}
`
document.head.append(style)
const root = document.getElementById('app')
if (root !== null) {
  root.textContent = ''
  render(html`<${App} />`, root)
}
