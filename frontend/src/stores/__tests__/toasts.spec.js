import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { TOAST_FADE_MS, useToastsStore } from '../toasts'

describe('toasts store', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    vi.useFakeTimers()
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('fades info and success toasts but keeps errors until dismissed', () => {
    const toasts = useToastsStore()
    toasts.info('Worker a stopped.')
    const error = toasts.error('Worker b failed.')

    vi.advanceTimersByTime(TOAST_FADE_MS)
    expect(toasts.toasts.map((toast) => toast.message)).toEqual(['Worker b failed.'])

    toasts.dismiss(error)
    expect(toasts.toasts).toEqual([])
  })

  it('shows a repeated message once', () => {
    const toasts = useToastsStore()
    toasts.error('The server could not be reached.')
    toasts.error('The server could not be reached.')
    expect(toasts.toasts).toHaveLength(1)
  })
})
