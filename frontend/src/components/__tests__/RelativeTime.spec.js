import { enableAutoUnmount, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { h, nextTick } from 'vue'

import RelativeTime from '../RelativeTime.vue'

const START = Date.parse('2024-05-01T10:00:00Z')

// Mounts the clock with counters of its re-renders and of the writes to its text.
function mountClock(at) {
  const renders = vi.fn()
  const wrapper = mount(
    { props: ['at'], render: (ctx) => h(RelativeTime, { at: ctx.at, onVnodeUpdated: renders }) },
    { props: { at } },
  )
  const writes = vi.fn()
  new MutationObserver(writes).observe(wrapper.element, { childList: true, subtree: true })
  return { wrapper, renders, writes }
}

async function advance(ms) {
  await vi.advanceTimersByTimeAsync(ms)
  await nextTick()
}

describe('RelativeTime', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(START)
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  enableAutoUnmount(afterEach)

  it('follows the clock in steps of ten seconds, without re-rendering', async () => {
    const { wrapper, renders, writes } = mountClock('2024-05-01T09:59:57Z')
    expect(wrapper.text()).toBe('just now')

    const seen = [wrapper.text()]
    for (let second = 1; second <= 70; second += 1) {
      await advance(1000)
      if (wrapper.text() !== seen.at(-1)) seen.push(wrapper.text())
    }

    expect(seen).toEqual([
      'just now',
      '10 s ago',
      '20 s ago',
      '30 s ago',
      '40 s ago',
      '50 s ago',
      '1 min ago',
    ])
    expect(renders).not.toHaveBeenCalled()
    // Its text is written only when it changes.
    expect(writes).toHaveBeenCalledTimes(seen.length - 1)
  })

  it('shows minutes for an hour, changing once a minute', async () => {
    const { wrapper, writes } = mountClock('2024-05-01T09:55:00Z')
    expect(wrapper.text()).toBe('5 min ago')

    await advance(59_000)
    expect(wrapper.text()).toBe('5 min ago')
    await advance(1000)
    expect(wrapper.text()).toBe('6 min ago')
    expect(writes).toHaveBeenCalledTimes(1)
  })

  it('measures a new time against the clock at once', async () => {
    const { wrapper } = mountClock('2024-05-01T09:00:00Z')
    await advance(30 * 60_000)
    expect(wrapper.text()).toBe('1 h ago')

    await wrapper.setProps({ at: '2024-05-01T10:25:00Z' })
    expect(wrapper.text()).toBe('5 min ago')
  })

  it('names the exact time, and says never without one', () => {
    const { wrapper } = mountClock('2024-05-01T09:59:57Z')
    expect(wrapper.find('time').attributes('datetime')).toBe('2024-05-01T09:59:57Z')
    expect(wrapper.find('time').attributes('title')).toContain('2024')

    expect(mountClock(null).wrapper.text()).toBe('never')
  })

  it('stops ticking once no time is shown', async () => {
    const first = mountClock('2024-05-01T09:59:57Z')
    const second = mountClock('2024-05-01T09:50:00Z')
    expect(vi.getTimerCount()).toBe(1)

    first.wrapper.unmount()
    expect(vi.getTimerCount()).toBe(1)
    second.wrapper.unmount()
    expect(vi.getTimerCount()).toBe(0)
  })
})
