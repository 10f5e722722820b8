import { describe, expect, it } from 'vitest'

import {
  formatAgo,
  formatBytes,
  formatDateTime,
  formatNumber,
  formatPercent,
  formatSeconds,
  humanize,
} from '../format'

describe('format', () => {
  it('says how long ago in steps of ten seconds, then minutes, hours and days', () => {
    const now = Date.parse('2024-05-01T10:00:00Z')
    expect(formatAgo('2024-05-01T09:59:48Z', now)).toBe('10 s ago')
    expect(formatAgo('2024-05-01T09:59:01Z', now)).toBe('50 s ago')
    expect(formatAgo('2024-05-01T09:59:55Z', now)).toBe('just now')
    expect(formatAgo('2024-05-01T09:55:00Z', now)).toBe('5 min ago')
    expect(formatAgo('2024-05-01T07:00:00Z', now)).toBe('3 h ago')
    expect(formatAgo('2024-04-29T10:00:00Z', now)).toBe('2 d ago')
    expect(formatAgo('2024-05-01T10:00:09Z', now)).toBe('just now')
    expect(formatAgo(now - 3000, now)).toBe('just now')
    expect(formatAgo(null, now)).toBe('never')
  })

  it('formats figures with units and a dash when absent', () => {
    expect(formatPercent(42.4)).toBe('42%')
    expect(formatPercent(4.24)).toBe('4.2%')
    expect(formatPercent(null)).toBe('—')
    expect(formatNumber(7)).toBe('7')
    expect(formatNumber(12345)).toBe('12,345')
    expect(formatNumber(-1234567)).toBe('-1,234,567')
    expect(formatNumber(2.5)).toBe('2.5')
    expect(formatNumber(undefined)).toBe('—')
    expect(formatBytes(16748994560)).toBe('15.6 GiB')
    expect(formatSeconds(300)).toBe('5 min')
    expect(humanize('IN_COMPLIANCE')).toBe('In compliance')
    expect(humanize('shutting-down')).toBe('Shutting down')
  })

  it('names an exact time to the second, in the locale of the browser', () => {
    const locale = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
    const at = '2024-05-01T10:00:05.900Z'

    expect(formatDateTime(at)).toBe(locale.format(Date.parse(at)))
    expect(formatDateTime('2024-05-01T10:00:05.100Z')).toBe(formatDateTime(at))
    expect(formatDateTime(null)).toBe('—')
  })
})
