// Usage on the ledger (issue 13): every period the node sends one `usage.record`, signed with its
// node key, with the requests and bytes it served per app in [from, to). Nothing is lost:
//   - a period without traffic sends nothing and the next period starts where it ended;
//   - when the chain cannot be reached, the record's counts stay and the next attempt covers the
//     longer window [from, next to) — periods of one node never overlap. A record the chain
//     refuses (a rule it breaks, e.g. an app never published) would be refused again: it is
//     logged and dropped, so one bad entry cannot stop the node's usage for good;
//   - a record holds at most MAX_USAGE_APPS apps, those with the most requests (then bytes);
//     the others are carried over whole into the next period's record. Summing them under a
//     made-up name would lose which app they belong to; carrying them over only reports them late
//     (in a later window), and a node serving more apps than that in every period would report
//     them in turn.
import { MAX_USAGE_APPS, type AppUsage, type UsageRecordBody } from '../chain/types.ts'
import type { Logger } from '../encoding/log.ts'

export interface UsageReporterInit {
  readonly nodeId: string
  /** Sends one usage.record (the agent: chain.send('usage.record', body, nodeKey)). */
  readonly send: (body: UsageRecordBody) => Promise<void>
  /** Period length (default 10 min). */
  readonly periodMs?: number
  /** Apps per record (default MAX_USAGE_APPS). */
  readonly maxApps?: number
  readonly logger: Logger
  readonly now?: () => number
}

type Counts = { requests: number; bytesIn: number; bytesOut: number }

export class UsageReporter {
  readonly #init: UsageReporterInit
  readonly #now: () => number
  #from: number
  #counts = new Map<string, Counts>()
  #timer?: NodeJS.Timeout
  #flushing?: Promise<UsageRecordBody | undefined>

  constructor(init: UsageReporterInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    this.#from = this.#now()
  }

  /** Counts one request served for an app. */
  add(app: string, bytesIn: number, bytesOut: number): void {
    const c = this.#counts.get(app)
    if (c === undefined) this.#counts.set(app, { requests: 1, bytesIn, bytesOut })
    else {
      c.requests++
      c.bytesIn += bytesIn
      c.bytesOut += bytesOut
    }
  }

  /** Counts not yet on chain, per app. */
  pending(): AppUsage[] {
    return [...this.#counts].map(([app, c]) => ({ app, ...c }))
  }

  start(): void {
    this.#timer = setInterval(
      () => {
        void this.flush()
      },
      this.#init.periodMs ?? 10 * 60_000
    )
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Sends the record for [from, now) if there was traffic; resolves with what the chain took. */
  async flush(): Promise<UsageRecordBody | undefined> {
    // one at a time: a slow chain must not make two records of overlapping periods
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined
    })
    return await this.#flushing
  }

  async #flush(): Promise<UsageRecordBody | undefined> {
    const to = this.#now()
    if (to <= this.#from) return undefined
    if (this.#counts.size === 0) {
      this.#from = to
      return undefined
    }
    const taken = this.#counts
    this.#counts = new Map()
    const ranked = [...taken]
      .map(([app, c]) => ({ app, ...c }))
      .sort(
        (a, b) =>
          b.requests - a.requests ||
          b.bytesIn + b.bytesOut - (a.bytesIn + a.bytesOut) ||
          (a.app < b.app ? -1 : a.app > b.app ? 1 : 0)
      )
    const max = this.#init.maxApps ?? MAX_USAGE_APPS
    const apps = ranked.slice(0, max)
    const carried = ranked.slice(max)
    const body: UsageRecordBody = { nodeId: this.#init.nodeId, from: this.#from, to, apps }
    try {
      await this.#init.send(body)
    } catch (err) {
      if ((err as { disposition?: string }).disposition === 'reject') {
        this.#from = to
        this.#merge(carried)
        this.#init.logger.error('usage record refused by the chain; dropped', { from: body.from, to, err })
        return undefined
      }
      this.#merge(ranked)
      this.#init.logger.warn('usage record not taken; its counts carry over to the next period', {
        from: body.from,
        to,
        apps: apps.length,
        err
      })
      return undefined
    }
    this.#from = to
    this.#merge(carried)
    if (carried.length > 0)
      this.#init.logger.info('usage record full; apps carried over to the next period', { carried: carried.length })
    return body
  }

  #merge(list: readonly AppUsage[]): void {
    for (const u of list) {
      const c = this.#counts.get(u.app)
      if (c === undefined) this.#counts.set(u.app, { requests: u.requests, bytesIn: u.bytesIn, bytesOut: u.bytesOut })
      else {
        c.requests += u.requests
        c.bytesIn += u.bytesIn
        c.bytesOut += u.bytesOut
      }
    }
  }
}
