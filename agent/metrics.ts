// A small Prometheus text-format registry (exposition format 0.0.4): counters and gauges
// with labels. Enough for /metrics without a dependency.
type Labels = Record<string, string>

interface Series { help: string, type: 'counter' | 'gauge', values: Map<string, { labels: Labels, value: number }> }

function key (labels: Labels): string {
  return Object.keys(labels).sort().map(k => `${k}=${labels[k]}`).join(',')
}

function esc (v: string): string { return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') }

export class Metrics {
  readonly #series = new Map<string, Series>()

  #get (name: string, type: 'counter' | 'gauge', help: string): Series {
    let s = this.#series.get(name)
    if (s === undefined) { s = { help, type, values: new Map() }; this.#series.set(name, s) }
    return s
  }

  counter (name: string, help: string): { inc: (labels?: Labels, by?: number) => void } {
    const s = this.#get(name, 'counter', help)
    return {
      inc: (labels = {}, by = 1) => {
        const k = key(labels)
        const cur = s.values.get(k)
        if (cur === undefined) s.values.set(k, { labels, value: by }); else cur.value += by
      }
    }
  }

  gauge (name: string, help: string): { set: (value: number, labels?: Labels) => void } {
    const s = this.#get(name, 'gauge', help)
    return { set: (value, labels = {}) => { s.values.set(key(labels), { labels, value }) } }
  }

  value (name: string, labels: Labels = {}): number | undefined {
    return this.#series.get(name)?.values.get(key(labels))?.value
  }

  render (): string {
    const lines: string[] = []
    for (const [name, s] of this.#series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`)
      for (const { labels, value } of s.values.values()) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',')
        lines.push(`${name}${l === '' ? '' : `{${l}}`} ${value}`)
      }
    }
    return lines.join('\n') + '\n'
  }
}
