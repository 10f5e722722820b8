import { enableAutoUnmount, flushPromises } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import App from '@/App.vue'
import { FakeEventSource, makeEvent, makeWorker } from '@/testing/fixtures'
import { mountAs } from '@/testing/mountApp'

vi.mock('@/api/workers', async (importOriginal) => ({
  ...(await importOriginal()),
  listWorkers: vi.fn(),
  refreshWorker: vi.fn(),
}))

const alpha = makeWorker({ id: 'a', name: 'alpha', region: 'us-east-1', public_ip: '198.51.100.7' })
const bravo = makeWorker({
  id: 'b',
  name: 'bravo',
  region: 'eu-west-1',
  status: 'stopped',
  cloudwatch_cpu_utilization: undefined,
  cml_cpu_utilization: 12,
})

async function mountDashboard(role = 'admin') {
  const mounted = await mountAs(App, { role })
  await flushPromises()
  FakeEventSource.latest().open()
  await flushPromises()
  return mounted
}

const cardNames = (wrapper) => wrapper.findAll('article').map((card) => card.find('h3').text())

describe('DashboardView', () => {
  beforeEach(() => {
    localStorage.clear()
    vi.stubGlobal('EventSource', FakeEventSource)
    FakeEventSource.reset()
    workersApi.listWorkers.mockResolvedValue({ workers: [alpha, bravo], last_event_id: '1-0' })
  })

  enableAutoUnmount(afterEach)

  it('shows each worker as an article named after it, with the CPU source', async () => {
    const { wrapper } = await mountDashboard()

    expect(cardNames(wrapper)).toEqual(['alpha', 'bravo'])
    const card = wrapper.find('article[aria-labelledby="worker-card-b"]')
    expect(wrapper.find('#worker-card-b').text()).toBe('bravo')
    expect(card.find('[role="meter"][aria-label="CPU"]').attributes('aria-valuetext')).toBe(
      '12% (CML)',
    )
    expect(wrapper.find('[aria-label="Fleet summary"]').text()).toContain('Workers2')
    expect(wrapper.text()).toContain('Live')
  })

  it('updates a card in place from an event, without re-creating it', async () => {
    const { wrapper } = await mountDashboard()
    const before = wrapper.find('article[aria-labelledby="worker-card-a"]').element

    FakeEventSource.latest().emit(
      makeEvent('worker.cloudwatch_metrics.updated', 'a', {
        worker: { ...alpha, cloudwatch_cpu_utilization: 91 },
        changes: { cloudwatch_cpu_utilization: [40, 91] },
      }),
    )
    await flushPromises()

    const after = wrapper.find('article[aria-labelledby="worker-card-a"]')
    expect(after.element).toBe(before)
    expect(after.find('[role="meter"]').attributes('aria-valuenow')).toBe('91')
  })

  it('filters by search, status and region', async () => {
    const { wrapper } = await mountDashboard()

    await wrapper.find('input[type="search"]').setValue('198.51.100')
    expect(cardNames(wrapper)).toEqual(['alpha'])

    await wrapper.find('input[type="search"]').setValue('')
    const [status, region] = wrapper.findAll('select')
    await status.setValue('stopped')
    expect(cardNames(wrapper)).toEqual(['bravo'])

    await status.setValue('')
    await region.setValue('us-east-1')
    expect(cardNames(wrapper)).toEqual(['alpha'])
  })

  it('switches to a table sorted by its column headers', async () => {
    const { wrapper } = await mountDashboard()

    const tableButton = wrapper.findAll('button').find((button) => button.text() === 'Table')
    await tableButton.trigger('click')
    const rowNames = () => wrapper.findAll('tbody th').map((cell) => cell.text())
    expect(rowNames()).toEqual(['alpha', 'bravo'])

    const cpuHeader = wrapper.findAll('th').find((th) => th.text().startsWith('CPU'))
    await cpuHeader.find('button').trigger('click')
    expect(rowNames()).toEqual(['bravo', 'alpha'])
    expect(cpuHeader.attributes('aria-sort')).toBe('ascending')

    await cpuHeader.find('button').trigger('click')
    expect(rowNames()).toEqual(['alpha', 'bravo'])
    expect(cpuHeader.attributes('aria-sort')).toBe('descending')
  })

  it('sorts the cards by the chosen field, in either direction', async () => {
    const { wrapper } = await mountDashboard()

    const select = wrapper.find('select option[value="cpu"]').element.parentElement
    select.value = 'cpu'
    select.dispatchEvent(new Event('change'))
    await flushPromises()
    expect(cardNames(wrapper)).toEqual(['bravo', 'alpha'])

    const descending = wrapper.find('button[aria-label="Descending"]')
    expect(descending.attributes('aria-pressed')).toBe('false')
    await descending.trigger('click')
    expect(descending.attributes('aria-pressed')).toBe('true')
    expect(cardNames(wrapper)).toEqual(['alpha', 'bravo'])

    const tableButton = wrapper.findAll('button').find((button) => button.text() === 'Table')
    await tableButton.trigger('click')
    expect(wrapper.find('button[aria-label="Descending"]').exists()).toBe(false)
    const cpuHeader = wrapper.findAll('th').find((th) => th.text().startsWith('CPU'))
    expect(cpuHeader.attributes('aria-sort')).toBe('descending')
  })

  it('offers launch and import to admins only', async () => {
    const buttonNames = (wrapper) => wrapper.findAll('button').map((button) => button.text())

    const admin = await mountDashboard('admin')
    expect(buttonNames(admin.wrapper)).toEqual(
      expect.arrayContaining(['Launch worker', 'Import instances', 'Sign out']),
    )
    admin.wrapper.unmount()

    const user = await mountDashboard('user')
    expect(buttonNames(user.wrapper)).not.toContain('Launch worker')
    expect(buttonNames(user.wrapper)).not.toContain('Import instances')
    expect(buttonNames(user.wrapper)).toContain('Refresh now')
  })

  it('shows a refresh under way on the card until the stream reports it done', async () => {
    workersApi.refreshWorker.mockResolvedValue({ job_id: 'j1' })
    const { wrapper } = await mountDashboard('user')
    const refresh = () => wrapper.find('article[aria-labelledby="worker-card-a"]').find('button')

    await refresh().trigger('click')
    await flushPromises()
    expect(refresh().text()).toBe('Refresh now')
    expect(refresh().attributes('aria-busy')).toBe('true')
    expect(refresh().attributes('disabled')).toBeDefined()

    FakeEventSource.latest().emit(
      makeEvent('worker.refresh.completed', 'a', { job_id: 'j1', ok: true }),
    )
    await flushPromises()
    expect(refresh().attributes('aria-busy')).toBeUndefined()
    expect(refresh().attributes('disabled')).toBeUndefined()
  })

  it('shows the reconnecting banner only after a working connection drops', async () => {
    vi.useFakeTimers()
    const { wrapper } = await mountAs(App, { role: 'user' })
    try {
      await flushPromises()
      FakeEventSource.latest().fail()
      await flushPromises()
      expect(wrapper.text()).not.toContain('Reconnecting…')
      expect(wrapper.text()).toContain('Connecting…')

      await vi.advanceTimersByTimeAsync(1500)
      FakeEventSource.latest().open()
      await flushPromises()
      expect(wrapper.text()).toContain('Live')

      FakeEventSource.latest().fail()
      await flushPromises()
      expect(wrapper.find('[role="status"][data-testid="reconnect-banner"]').text()).toContain(
        'Reconnecting…',
      )
      expect(wrapper.text()).not.toContain('Live')
    } finally {
      vi.useRealTimers()
    }
  })
})
