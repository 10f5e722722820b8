import { describe, expect, it } from 'vitest'

import {
  cpuReading,
  errorFor,
  lastRefreshedAt,
  memoryReading,
  unplacedError,
  usageMeter,
} from '../readings'

describe('cpuReading', () => {
  it('prefers CloudWatch and falls back to CML', () => {
    expect(cpuReading({ cloudwatch_cpu_utilization: 12, cml_cpu_utilization: 50 })).toEqual({
      value: 12,
      source: 'CloudWatch',
    })
    expect(cpuReading({ cml_cpu_utilization: 50 })).toEqual({ value: 50, source: 'CML' })
    expect(cpuReading({})).toEqual({ value: null, source: null })
  })
})

describe('memoryReading', () => {
  it('uses CloudWatch, else the share of memory CML reports used', () => {
    expect(memoryReading({ cloudwatch_memory_utilization: 33 }).source).toBe('CloudWatch')
    expect(memoryReading({ cml_memory_used: 4, cml_memory_total: 16 })).toEqual({
      value: 25,
      source: 'CML',
    })
    expect(memoryReading({ cml_memory_used: 4, cml_memory_total: 0 }).value).toBeNull()
  })
})

describe('usageMeter', () => {
  it('fills to the figure, says where it comes from, and marks high levels', () => {
    expect(usageMeter({ value: 72.4, source: 'CloudWatch' })).toEqual({
      width: 72.4,
      percent: '72%',
      source: 'CloudWatch',
      now: 72,
      text: '72% (CloudWatch)',
      level: 'high',
    })
    expect(usageMeter({ value: 104, source: 'CML' })).toMatchObject({
      width: 100,
      level: 'critical',
    })
    expect(usageMeter({ value: 5, source: 'CML' }).level).toBe('normal')
    expect(usageMeter({ value: null, source: null })).toBeNull()
  })
})

describe('lastRefreshedAt', () => {
  it('is the newest of the per-source read times', () => {
    const worker = {
      ec2_checked_at: '2024-05-01T10:00:00Z',
      cloudwatch_collected_at: '2024-05-01T10:02:00Z',
      cml_synced_at: '2024-05-01T10:01:00Z',
    }
    expect(lastRefreshedAt(worker)).toBe('2024-05-01T10:02:00Z')
    expect(lastRefreshedAt({})).toBeNull()
  })
})

describe('errorFor', () => {
  it('places last_error in the section of its source', () => {
    const worker = { last_error: { source: 'cml', message: 'timed out', at: null } }
    expect(errorFor(worker, 'cml')).toBe(worker.last_error)
    expect(errorFor(worker, 'ec2')).toBeNull()
    expect(unplacedError(worker)).toBeNull()
    expect(unplacedError({ last_error: { source: 'db', message: 'x' } })).not.toBeNull()
  })
})
