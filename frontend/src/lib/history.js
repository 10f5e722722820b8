// The History section: time ranges, which metric keys each chart draws, and turning the
// metrics endpoint's points into columns a chart can draw with gaps left as gaps.

import { isNumber } from './format'

export const HISTORY_RANGES = [
  { id: '1h', label: '1 h', seconds: 3600, step: 60 },
  { id: '24h', label: '24 h', seconds: 86400, step: 900 },
  { id: '7d', label: '7 d', seconds: 7 * 86400, step: 3600 },
]

// The point keys each chart looks for, in order of preference; a series is drawn only when
// some point carries its key. When the metrics endpoint renames a key, change it here.
export const HISTORY_CHARTS = [
  {
    id: 'cpu',
    title: 'CPU',
    unit: '%',
    percent: true,
    series: [
      { key: 'cloudwatch_cpu_utilization', label: 'CloudWatch' },
      { key: 'cml_cpu_utilization', label: 'CML' },
      { key: 'cpu_utilization', label: 'CPU' },
    ],
  },
  {
    id: 'memory',
    title: 'Memory',
    unit: '%',
    percent: true,
    series: [
      { key: 'cloudwatch_memory_utilization', label: 'CloudWatch' },
      { key: 'memory_utilization', label: 'Memory' },
    ],
  },
  {
    id: 'labs',
    title: 'Labs',
    unit: '',
    series: [
      { key: 'cml_labs_count', label: 'Labs' },
      { key: 'labs_count', label: 'Labs' },
    ],
  },
  {
    id: 'nodes',
    title: 'Running nodes',
    unit: '',
    series: [
      { key: 'cml_nodes_running', label: 'Running nodes' },
      { key: 'nodes_running', label: 'Running nodes' },
    ],
  },
]

export function historyWindow(rangeId, now = Date.now()) {
  const range = HISTORY_RANGES.find((candidate) => candidate.id === rangeId) ?? HISTORY_RANGES[0]
  return {
    since: new Date(now - range.seconds * 1000).toISOString(),
    until: new Date(now).toISOString(),
    step: range.step,
  }
}

const hasSamples = (point) => point.count === undefined || point.count === null || point.count > 0

/**
 * Columns for one chart: `x` in epoch seconds and one array of values per series present.
 * A point with `count` 0 has no samples behind it and becomes null; where points are
 * missing altogether (more than one and a half steps apart) a null is put in between, so
 * the line breaks instead of bridging time that has no data.
 */
export function chartColumns(points, chart, step) {
  const timed = (points ?? [])
    .map((point) => ({ point, t: Date.parse(point.t) / 1000 }))
    .filter(({ t }) => Number.isFinite(t))
    .sort((a, b) => a.t - b.t)

  const series = chart.series.filter(({ key }) =>
    timed.some(({ point }) => hasSamples(point) && isNumber(point[key])),
  )
  if (series.length === 0) return null

  const x = []
  const values = series.map(() => [])
  let previous = null

  for (const { point, t } of timed) {
    if (previous !== null && t - previous > step * 1.5) {
      x.push(previous + step)
      values.forEach((column) => column.push(null))
    }
    x.push(t)
    series.forEach(({ key }, index) => {
      values[index].push(hasSamples(point) && isNumber(point[key]) ? point[key] : null)
    })
    previous = t
  }

  return { x, series: series.map((entry, index) => ({ ...entry, values: values[index] })) }
}

/** One line for screen readers: the latest and highest value of each series. */
export function describeColumns(chart, columns) {
  if (!columns) return `${chart.title}: no data for this range.`

  const parts = columns.series.map(({ label, values }) => {
    const present = values.filter(isNumber)
    const latest = present.at(-1)
    const highest = Math.max(...present)
    const fmt = (value) => `${Math.round(value * 10) / 10}${chart.unit}`
    return `${label} latest ${fmt(latest)}, highest ${fmt(highest)}`
  })
  return `${chart.title}: ${parts.join('; ')}.`
}
