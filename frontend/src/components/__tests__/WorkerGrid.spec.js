import { enableAutoUnmount, flushPromises } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { h, shallowRef } from 'vue'

import { useJobsStore } from '@/stores/jobs'
import { makeWorker } from '@/testing/fixtures'
import { mountAs } from '@/testing/mountApp'
import WorkerGrid from '../WorkerGrid.vue'

// The grid with a counter of its own re-renders; `workers.value` can be swapped as the
// fleet store swaps its workers.
async function mountGrid(list) {
  const workers = shallowRef(list)
  const renders = vi.fn()
  const mounted = await mountAs({
    render: () => h(WorkerGrid, { workers: workers.value, onVnodeUpdated: renders }),
  })
  return { ...mounted, workers, renders }
}

// Every change made to a card's DOM from now on.
function watchChanges(element) {
  const changes = []
  new MutationObserver((records) => changes.push(...records)).observe(element, {
    subtree: true,
    childList: true,
    attributes: true,
    characterData: true,
  })
  return changes
}

const cardOf = (wrapper, id) => wrapper.find(`article[data-worker-id="${id}"]`)

describe('WorkerGrid', () => {
  enableAutoUnmount(afterEach)

  afterEach(() => {
    vi.useRealTimers()
  })

  it('leaves the clock to its "Refreshed" times: the grid does not re-render', async () => {
    vi.useFakeTimers()
    vi.setSystemTime(Date.parse('2024-05-01T10:00:00Z'))
    const { wrapper, renders } = await mountGrid([
      makeWorker({ cml_synced_at: '2024-05-01T10:00:00Z' }),
    ])
    expect(wrapper.find('time').text()).toBe('just now')
    expect(wrapper.find('time').attributes('datetime')).toBe('2024-05-01T10:00:00Z')

    await vi.advanceTimersByTimeAsync(90_000)

    expect(wrapper.find('time').text()).toBe('1 min ago')
    expect(renders).not.toHaveBeenCalled()
  })

  it('opens the details from the name, and leaves modified clicks to the browser', async () => {
    const worker = makeWorker({ id: 'w-7', name: 'edge-7' })
    const { wrapper, router } = await mountGrid([worker])
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

  it('redraws only the card whose worker changed, in place', async () => {
    const alpha = makeWorker({ id: 'a', cml_nodes_running: 5 })
    const bravo = makeWorker({ id: 'b' })
    const { wrapper, workers } = await mountGrid([alpha, bravo])
    const card = cardOf(wrapper, 'a').element
    const untouched = watchChanges(cardOf(wrapper, 'b').element)

    workers.value = [{ ...alpha, cml_nodes_running: 9 }, bravo]
    await flushPromises()

    expect(cardOf(wrapper, 'a').element).toBe(card)
    expect(cardOf(wrapper, 'a').text()).toContain('Running nodes9')
    expect(untouched).toEqual([])
  })

  it('shows a refresh under way on its own card only', async () => {
    vi.stubGlobal('fetch', async () => new Response('{"job_id": "j1"}', { status: 202 }))
    const { wrapper, pinia } = await mountGrid([makeWorker({ id: 'a' }), makeWorker({ id: 'b' })])
    const button = (id) => cardOf(wrapper, id).find('button')
    const untouched = watchChanges(cardOf(wrapper, 'b').element)

    await button('a').trigger('click')
    await flushPromises()

    expect(button('a').text()).toBe('Refresh now')
    expect(button('a').attributes('aria-busy')).toBe('true')
    expect(button('a').attributes('disabled')).toBeDefined()
    expect(useJobsStore(pinia).isPending('a', 'refresh')).toBe(true)
    expect(untouched).toEqual([])
  })
})
