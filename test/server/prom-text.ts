// A strict reader of Prometheus' text exposition format (0.0.4), for the metrics tests: every line must be a
// # HELP, a # TYPE or a sample `name{label="value",...} number`; a sample's family must have been typed; the
// samples of a histogram must be _bucket{le}, _sum and _count with cumulative buckets ending at +Inf.
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly types: ReadonlyMap<string, MetricType>;
  readonly samples: readonly Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/;

function parseValue(text: string, line: string): number {
  // Prometheus reads values with Go's ParseFloat: Inf and NaN in any case (prom-client writes Nan).
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  const v = Number(text);
  if (!/^-?[0-9.eE+-]+$/.test(text) || Number.isNaN(v)) throw new Error(`bad value in: ${line}`);
  return v;
}

function parseLabels(text: string | undefined, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text ?? '';
  while (rest !== '') {
    const m = LABEL.exec(rest);
    if (m === null) throw new Error(`bad labels in: ${line}`);
    labels[m[1] ?? ''] = (m[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

export function parsePrometheusText(text: string): Exposition {
  const types = new Map<string, MetricType>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      if (types.has(type[1] ?? '')) throw new Error(`typed twice: ${line}`);
      types.set(type[1] ?? '', type[2] as MetricType);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`unknown comment: ${line}`);
    const m = SAMPLE.exec(line);
    if (m === null) throw new Error(`not a sample: ${line}`);
    const name = m[1] ?? '';
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const t = types.get(family);
    if (t === undefined) throw new Error(`sample of an untyped family: ${line}`);
    if (family !== name && t !== 'histogram' && t !== 'summary') throw new Error(`suffix on a ${t}: ${line}`);
    samples.push({ name, labels: parseLabels(m[2], line), value: parseValue(m[3] ?? '', line) });
  }
  for (const [family, t] of types) {
    if (t !== 'histogram') continue;
    const buckets = samples.filter((s) => s.name === `${family}_bucket`);
    const series = new Map<string, Sample[]>();
    for (const b of buckets) {
      const { le: _le, ...rest } = b.labels;
      const key = JSON.stringify(rest);
      series.set(key, [...(series.get(key) ?? []), b]);
    }
    for (const [key, bs] of series) {
      let last = -Infinity;
      for (const b of bs) {
        if (b.labels.le === undefined) throw new Error(`${family} bucket without le`);
        if (b.value < last) throw new Error(`${family}${key}: buckets not cumulative`);
        last = b.value;
      }
      if (bs[bs.length - 1]?.labels.le !== '+Inf') throw new Error(`${family}${key}: no +Inf bucket`);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === key);
      if (count?.value !== last) throw new Error(`${family}${key}: _count ${count?.value} differs from the +Inf bucket ${last}`);
    }
  }
  return { types, samples };
}

/** The value of the one sample named `name` whose labels include `labels`; throws if none or several. */
export function sampleValue(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name}${JSON.stringify(labels)}`);
  return found[0]?.value ?? NaN;
}

/** The sum over every sample named `name` whose labels include `labels` (0 if none). */
export function sampleSum(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  return e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}
