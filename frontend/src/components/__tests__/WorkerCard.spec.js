import { enableAutoUnmount, flushPromises } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { h } from 'vue'

import { makeWorker } from '@/testing/fixtures'
import { mountAs } from '@/testing/mountApp'
import WorkerCard from '../WorkerCard.vue'

// The card with a counter of its own re-renders.
async function mountCard(worker) {
  const renders = vi.fn()
  const mounted = await mountAs({
    render: () => h(WorkerCard, { worker, onVnodeUpdated: renders }),
  })
  return { ...mounted, renders }
}

describe('WorkerCard', () => {
  enableAutoUnmount(afterEach)

  afterEach(() => {
    vi.useRealTimers()
  })

  it('leaves the clock to its "Refreshed" time: the card does not re-render', async () => {
    vi.useFakeTimers()
    vi.setSystemTime(Date.parse('2024-05-01T10:00:00Z'))
    const { wrapper, renders } = await mountCard(
      makeWorker({ cml_synced_at: '2024-05-01T10:00:00Z' }),
    )
    expect(wrapper.find('time').text()).toBe('just now')

    await vi.advanceTimersByTimeAsync(90_000)

    expect(wrapper.find('time').text()).toBe('1 min ago')
    expect(renders).not.toHaveBeenCalled()
  })

  it('opens the details from the name, and leaves modified clicks to the browser', async () => {
    const worker = makeWorker({ id: 'w-7', name: 'edge-7' })
    const { wrapper, router } = await mountCard(worker)
    const link = wrapper.find('h3 a')
    expect(link.text()).toBe('edge-7')
    expect(link.attributes('href')).toBe('/workers/w-7')
    expect(link.attributes('href')).toBe(router.resolve({ name: 'worker', params: worker }).href)
    // Runs after the card's own handler; jsdom cannot open a new tab.
    link.element.addEventListener('click', (event) => event.preventDefault())

    await link.trigger('click', { ctrlKey: true })
    await flushPromises()
    expect(router.currentRoute.value.name).toBe('dashboard')

    await link.trigger('click')
    await flushPromises()
    expect(router.currentRoute.value.fullPath).toBe('/workers/w-7')
  })
})
