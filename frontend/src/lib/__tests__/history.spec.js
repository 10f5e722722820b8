import { describe, expect, it } from 'vitest'

import { chartColumns, describeColumns, HISTORY_CHARTS, historyWindow } from '../history'

const cpu = HISTORY_CHARTS.find((chart) => chart.id === 'cpu')
const labs = HISTORY_CHARTS.find((chart) => chart.id === 'labs')
const at = (minute) => `2024-05-01T10:${String(minute).padStart(2, '0')}:00Z`
const seconds = (minute) => Date.parse(at(minute)) / 1000

describe('chartColumns', () => {
  it('draws only the series whose keys appear in the points', () => {
    const columns = chartColumns(
      [
        { t: at(0), cml_cpu_utilization: 10, count: 1 },
        { t: at(1), cml_cpu_utilization: 20, count: 1 },
      ],
      cpu,
      60,
    )
    expect(columns.series.map((series) => series.key)).toEqual(['cml_cpu_utilization'])
    expect(columns.x).toEqual([seconds(0), seconds(1)])
    expect(columns.series[0].values).toEqual([10, 20])
  })

  it('shows a point without samples as a gap', () => {
    const columns = chartColumns(
      [
        { t: at(0), cloudwatch_cpu_utilization: 10, count: 3 },
        { t: at(1), cloudwatch_cpu_utilization: 0, count: 0 },
        { t: at(2), cloudwatch_cpu_utilization: 30, count: 3 },
      ],
      cpu,
      60,
    )
    expect(columns.series[0].values).toEqual([10, null, 30])
  })

  it('breaks the line where points are missing instead of bridging the time', () => {
    const columns = chartColumns(
      [
        { t: at(0), cml_labs_count: 1, count: 1 },
        { t: at(5), cml_labs_count: 2, count: 1 },
      ],
      labs,
      60,
    )
    expect(columns.x).toEqual([seconds(0), seconds(1), seconds(5)])
    expect(columns.series[0].values).toEqual([1, null, 2])
  })

  it('answers null when no point carries any of the chart keys', () => {
    expect(chartColumns([{ t: at(0), count: 0 }], cpu, 60)).toBeNull()
    expect(describeColumns(cpu, null)).toBe('CPU: no data for this range.')
  })

  it('sorts points by time', () => {
    const columns = chartColumns(
      [
        { t: at(1), labs_count: 2 },
        { t: at(0), labs_count: 1 },
      ],
      labs,
      60,
    )
    expect(columns.series[0].values).toEqual([1, 2])
  })
})

describe('historyWindow', () => {
  it('spans the range up to now with the range step', () => {
    const now = Date.parse('2024-05-02T00:00:00Z')
    expect(historyWindow('24h', now)).toEqual({
      since: '2024-05-01T00:00:00.000Z',
      until: '2024-05-02T00:00:00.000Z',
      step: 900,
    })
  })
})
