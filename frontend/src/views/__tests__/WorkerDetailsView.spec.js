import { enableAutoUnmount, flushPromises } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import App from '@/App.vue'
import { FakeEventSource, makeEvent, makeWorker } from '@/testing/fixtures'
import { mountAs } from '@/testing/mountApp'

vi.mock('@/api/workers', async (importOriginal) => ({
  ...(await importOriginal()),
  listWorkers: vi.fn(),
  listLabs: vi.fn(),
  fetchMetrics: vi.fn(),
  terminateWorker: vi.fn(),
  setMonitoring: vi.fn(),
}))

const worker = makeWorker({
  id: 'w-edge',
  name: 'edge-1',
  ec2_state: 'running',
  ec2_detailed_monitoring: 'disabled',
  aws_instance_id: 'i-0123',
  ami_id: 'ami-42',
  last_error: { source: 'cml', message: 'Read timed out', at: '2024-05-01T10:00:00Z' },
})
// What a user receives: the admin-only fields are absent.
const {
  aws_instance_id: instanceId,
  ami_id: amiId,
  last_error: lastError,
  ...workerForUser
} = worker

const labs = [{ lab_id: 'l1', title: 'OSPF area', state: 'STARTED', node_count: 4, link_count: 3 }]

const dialog = () => document.body.querySelector('[role="dialog"]')
const dialogName = () => document.getElementById(dialog().getAttribute('aria-labelledby'))
const buttons = (root) =>
  [...root.querySelectorAll('button')].map((button) => button.textContent.trim())
const button = (root, name) =>
  [...root.querySelectorAll('button')].find((candidate) => candidate.textContent.trim() === name)

async function open(role, { route = '/workers/w-edge', fleet = [worker] } = {}) {
  workersApi.listWorkers.mockResolvedValue({ workers: fleet, last_event_id: '1-0' })
  const mounted = await mountAs(App, { role, route })
  await flushPromises()
  FakeEventSource.latest().open()
  await flushPromises()
  return mounted
}

describe('WorkerDetailsView', () => {
  beforeEach(() => {
    vi.stubGlobal('EventSource', FakeEventSource)
    FakeEventSource.reset()
    workersApi.listLabs.mockResolvedValue({ labs })
    workersApi.fetchMetrics.mockResolvedValue({ worker_id: 'w-edge', step: 60, points: [] })
  })

  enableAutoUnmount(afterEach)

  it('opens from a deep link as a modal dialog named after the worker', async () => {
    await open('admin')

    expect(dialog().getAttribute('aria-modal')).toBe('true')
    expect(dialogName().textContent).toBe('edge-1')
    const headings = [...dialog().querySelectorAll('h3')].map((h) => h.textContent)
    expect(headings).toEqual(['EC2', 'CloudWatch', 'CML', 'Labs', 'History'])
    expect(dialog().textContent).toContain('OSPF area')
    expect(dialog().textContent).toContain('Read timed out')
    expect(workersApi.listLabs).toHaveBeenCalledWith('w-edge')
    const stamps = [...dialog().querySelectorAll('.source-stamp p')].map((p) =>
      p.textContent.split(' ').slice(0, 2).join(' '),
    )
    // EC2, CloudWatch, CML, Labs
    expect(stamps).toEqual(['Last read', 'Newest datapoint', 'Last read', 'Last read'])
  })

  it('gives admins the lifecycle and monitoring controls', async () => {
    await open('admin')

    expect(buttons(dialog())).toEqual(
      expect.arrayContaining([
        'Refresh now',
        'Start',
        'Stop',
        'Enable Detailed Monitoring',
        'Terminate',
      ]),
    )
    expect(dialog().querySelector('[aria-label="Stop lab OSPF area"]')).not.toBeNull()
  })

  it('renders no admin controls or admin fields for a user', async () => {
    await open('user', { fleet: [workerForUser] })

    const names = buttons(dialog())
    expect(names).toContain('Refresh now')
    for (const name of ['Start', 'Stop', 'Terminate', 'Enable Detailed Monitoring', 'Wipe']) {
      expect(names).not.toContain(name)
    }
    expect(dialog().textContent).not.toContain('Instance ID')
    expect(dialog().textContent).not.toContain('Last read failed')
  })

  it('follows events for the worker while open', async () => {
    await open('admin')

    FakeEventSource.latest().emit(
      makeEvent('worker.monitoring.changed', 'w-edge', {
        worker: { ...worker, ec2_detailed_monitoring: 'enabled' },
        changes: { ec2_detailed_monitoring: ['disabled', 'enabled'] },
      }),
    )
    await flushPromises()

    expect(buttons(dialog())).toContain('Disable Detailed Monitoring')
    expect(dialog().textContent).toContain('Enabled')
  })

  it('shows monitoring under way until the stream reports the new state', async () => {
    workersApi.setMonitoring.mockResolvedValue({ job_id: 'j9' })
    await open('admin')

    button(dialog(), 'Enable Detailed Monitoring').click()
    await flushPromises()
    expect(workersApi.setMonitoring).toHaveBeenCalledWith('w-edge', true)
    expect(button(dialog(), 'Enable Detailed Monitoring').getAttribute('aria-busy')).toBe('true')

    FakeEventSource.latest().emit(
      makeEvent('worker.monitoring.changed', 'w-edge', {
        changes: { ec2_detailed_monitoring: ['disabled', 'enabled'] },
      }),
    )
    await flushPromises()
    expect(button(dialog(), 'Disable Detailed Monitoring').disabled).toBe(false)
  })

  it('asks for confirmation, naming the worker, before terminating', async () => {
    workersApi.terminateWorker.mockResolvedValue({ job_id: 'j1' })
    await open('admin')

    button(dialog(), 'Terminate').click()
    await flushPromises()
    const confirm = document.body.querySelector('[role="alertdialog"]')
    expect(document.getElementById(confirm.getAttribute('aria-labelledby')).textContent).toBe(
      'Terminate edge-1?',
    )
    expect(workersApi.terminateWorker).not.toHaveBeenCalled()

    button(confirm, 'Terminate edge-1').click()
    await flushPromises()
    expect(workersApi.terminateWorker).toHaveBeenCalledWith('w-edge')
    expect(document.body.querySelector('[role="alertdialog"]')).toBeNull()
    expect(button(dialog(), 'Terminate').getAttribute('aria-busy')).toBe('true')
  })

  it('offers no lab actions once the worker is terminated', async () => {
    await open('admin')
    expect(dialog().querySelector('[aria-label="Stop lab OSPF area"]')).not.toBeNull()

    FakeEventSource.latest().emit(
      makeEvent('worker.terminated', 'w-edge', {
        worker: { ...worker, status: 'terminated' },
        changes: { status: ['running', 'terminated'] },
      }),
    )
    await flushPromises()

    expect(dialog().textContent).toContain('OSPF area')
    expect(dialog().querySelector('[aria-label="Stop lab OSPF area"]')).toBeNull()
  })

  it('closes on Escape and gives focus back to the link that opened it', async () => {
    const { router } = await open('user', { route: '/', fleet: [workerForUser] })
    const link = document.body.querySelector('article a')
    link.focus()
    link.click()
    await flushPromises()
    expect(router.currentRoute.value.name).toBe('worker')
    expect(dialog().contains(document.activeElement)).toBe(true)

    dialog().dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }))
    await flushPromises()

    expect(router.currentRoute.value.name).toBe('dashboard')
    expect(dialog()).toBeNull()
    expect(document.activeElement).toBe(link)
  })

  it('keeps Tab inside the dialog', async () => {
    await open('user', { fleet: [workerForUser] })
    const focusable = [...dialog().querySelectorAll('a[href], button:not([disabled])')]
    const last = focusable.at(-1)
    last.focus()

    dialog().dispatchEvent(new KeyboardEvent('keydown', { key: 'Tab', bubbles: true }))
    expect(document.activeElement).toBe(focusable[0])

    dialog().dispatchEvent(
      new KeyboardEvent('keydown', { key: 'Tab', shiftKey: true, bubbles: true }),
    )
    expect(document.activeElement).toBe(last)
  })

  it('says so when the worker does not exist', async () => {
    await open('user', { route: '/workers/nope' })
    expect(dialogName().textContent).toBe('Worker not found')
  })
})
