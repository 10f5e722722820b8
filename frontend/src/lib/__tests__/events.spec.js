import { describe, expect, it } from 'vitest'

import { compareEventIds, isNewer } from '../events'

describe('compareEventIds', () => {
  it('orders Redis Stream ids by time, then sequence', () => {
    expect(compareEventIds('1700000000000-1', '1700000000000-0')).toBe(1)
    expect(compareEventIds('1700000000000-9', '1700000000001-0')).toBe(-1)
    expect(compareEventIds('1700000000000-2', '1700000000000-2')).toBe(0)
    expect(compareEventIds('42', '41-5')).toBe(1)
  })

  it('refuses to order ids of another shape', () => {
    expect(compareEventIds('abc', '1-0')).toBeNull()
  })
})

describe('isNewer', () => {
  it('drops only what is known to be old', () => {
    expect(isNewer('5-0', '4-0')).toBe(true)
    expect(isNewer('4-0', '4-0')).toBe(false)
    expect(isNewer('3-0', '4-0')).toBe(false)
    expect(isNewer('x', '4-0')).toBe(true)
    expect(isNewer('1-0', null)).toBe(true)
    expect(isNewer(undefined, '4-0')).toBe(true)
  })
})
