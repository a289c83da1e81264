// A small Prometheus text-format registry (exposition format 0.0.4): counters and gauges
// with labels. Enough for /metrics without a dependency.
//
// Naming follows Prometheus: a counter is a count that only grows and its name ends in `_total`;
// a gauge is a value that may go down and its name must not end in `_total` (that suffix is
// reserved for counters), so registering such a gauge is refused.
import { InvalidInputError } from '../encoding/errors.ts'

type Labels = Record<string, string>

export interface Counter {
  inc(labels?: Labels, by?: number): void
  /**
   * Sets the count from a source that keeps its own running total (e.g. sessions served since
   * start). A counter never goes down, so a smaller total is refused.
   */
  setTotal(value: number, labels?: Labels): void
}

export interface Gauge {
  set(value: number, labels?: Labels): void
}

interface Series {
  help: string
  type: 'counter' | 'gauge'
  values: Map<string, { labels: Labels; value: number }>
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map(k => `${k}=${labels[k]}`)
    .join(',')
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

export class Metrics {
  readonly #series = new Map<string, Series>()

  #get(name: string, type: 'counter' | 'gauge', help: string): Series {
    if (!NAME_RE.test(name))
      throw new InvalidInputError(`metric name ${JSON.stringify(name)} is not a Prometheus metric name`)
    if (type === 'counter' && !name.endsWith('_total'))
      throw new InvalidInputError(`counter ${name} must end in _total`)
    if (type === 'gauge' && name.endsWith('_total'))
      throw new InvalidInputError(`gauge ${name} must not end in _total (Prometheus reserves it for counters)`)
    let s = this.#series.get(name)
    if (s === undefined) {
      s = { help, type, values: new Map() }
      this.#series.set(name, s)
    }
    if (s.type !== type) throw new InvalidInputError(`metric ${name} is already a ${s.type}`)
    return s
  }

  counter(name: string, help: string): Counter {
    const s = this.#get(name, 'counter', help)
    return {
      inc: (labels = {}, by = 1) => {
        if (!(by >= 0)) throw new InvalidInputError(`counter ${name} cannot go down (inc by ${by})`)
        const k = key(labels)
        const cur = s.values.get(k)
        if (cur === undefined) s.values.set(k, { labels, value: by })
        else cur.value += by
      },
      setTotal: (value, labels = {}) => {
        const k = key(labels)
        const cur = s.values.get(k)
        if (!(value >= (cur?.value ?? 0)))
          throw new InvalidInputError(`counter ${name} cannot go down (${cur?.value ?? 0} → ${value})`)
        s.values.set(k, { labels, value })
      }
    }
  }

  gauge(name: string, help: string): Gauge {
    const s = this.#get(name, 'gauge', help)
    return {
      set: (value, labels = {}) => {
        s.values.set(key(labels), { labels, value })
      }
    }
  }

  value(name: string, labels: Labels = {}): number | undefined {
    return this.#series.get(name)?.values.get(key(labels))?.value
  }

  render(): string {
    const lines: string[] = []
    for (const [name, s] of this.#series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`)
      for (const { labels, value } of s.values.values()) {
        const l = Object.entries(labels)
          .map(([k, v]) => `${k}="${esc(v)}"`)
          .join(',')
        lines.push(`${name}${l === '' ? '' : `{${l}}`} ${value}`)
      }
    }
    return lines.join('\n') + '\n'
  }
}
