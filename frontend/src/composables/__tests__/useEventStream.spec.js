import { flushPromises } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import { useConnectionStore } from '@/stores/connection'
import { useFleetStore } from '@/stores/fleet'
import { useJobsStore } from '@/stores/jobs'
import { useToastsStore } from '@/stores/toasts'
import { FakeEventSource, makeEvent, makeWorker } from '@/testing/fixtures'
import { backoffDelay, createEventStream, RECONNECT_MAX_MS } from '../useEventStream'

vi.mock('@/api/workers', async (importOriginal) => ({
  ...(await importOriginal()),
  listWorkers: vi.fn(),
}))

// Jitter pinned to the middle (random 0.5), so the delays are 1 s, 2 s, 4 s, ...
const noJitter = () => 0.5

describe('backoffDelay', () => {
  it('doubles from one second up to the cap, with bounded jitter', () => {
    expect([0, 1, 2, 3].map((attempt) => backoffDelay(attempt, noJitter))).toEqual([
      1000, 2000, 4000, 8000,
    ])
    expect(backoffDelay(20, noJitter)).toBe(RECONNECT_MAX_MS)
    expect(backoffDelay(0, () => 0)).toBe(800)
    expect(backoffDelay(0, () => 1)).toBe(1200)
  })
})

describe('createEventStream', () => {
  let worker
  let stores
  let stream
  let verifySession

  beforeEach(() => {
    vi.useFakeTimers()
    vi.stubGlobal('EventSource', FakeEventSource)
    FakeEventSource.reset()
    setActivePinia(createPinia())

    worker = makeWorker({ name: 'edge-1', cml_nodes_running: 1 })
    workersApi.listWorkers.mockResolvedValue({ workers: [worker], last_event_id: '100-0' })
    stores = {
      fleet: useFleetStore(),
      jobs: useJobsStore(),
      toasts: useToastsStore(),
      connection: useConnectionStore(),
    }
    verifySession = vi.fn(async () => true)
    stream = createEventStream({ ...stores, verifySession, random: noJitter })
  })

  afterEach(() => {
    stream.stop()
    vi.useRealTimers()
  })

  const nodes = (value, id) =>
    makeEvent(
      'worker.cml_metrics.updated',
      worker.id,
      { changes: { cml_nodes_running: [0, value] } },
      id,
    )

  async function startLive() {
    await stream.start()
    FakeEventSource.latest().open()
  }

  it('loads the fleet, then subscribes from its last_event_id', async () => {
    await stream.start()

    expect(FakeEventSource.instances).toHaveLength(1)
    expect(FakeEventSource.latest().url).toBe('/api/workers/events?lastEventId=100-0')
    expect(stores.connection.status).toBe('connecting')

    FakeEventSource.latest().open()
    expect(stores.connection.status).toBe('live')
  })

  it('listens for every event type and feeds the stores', async () => {
    await startLive()
    const source = FakeEventSource.latest()
    expect(Object.keys(source.listeners)).toContain('worker.labs.updated')
    expect(Object.keys(source.listeners)).toContain('resync')

    source.emit(nodes(7, '101-0'))
    source.emit(
      makeEvent(
        'worker.status.changed',
        worker.id,
        { changes: { status: ['running', 'stopped'] } },
        '102-0',
      ),
    )

    expect(stores.fleet.workerById(worker.id)).toMatchObject({
      cml_nodes_running: 7,
      status: 'stopped',
    })
    expect(stores.fleet.lastEventId).toBe('102-0')
    expect(stores.toasts.toasts.map((toast) => toast.message)).toEqual(['Worker edge-1 stopped.'])
  })

  it('stays quiet while the first connection fails, retrying with backoff', async () => {
    await stream.start()

    FakeEventSource.latest().fail()
    expect(FakeEventSource.latest().closed).toBe(true)
    expect(stores.connection.status).toBe('connecting')

    await vi.advanceTimersByTimeAsync(999)
    expect(FakeEventSource.instances).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(FakeEventSource.instances).toHaveLength(2)

    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(1999)
    expect(FakeEventSource.instances).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(FakeEventSource.instances).toHaveLength(3)
    expect(stores.connection.status).toBe('connecting')
  })

  it('shows reconnecting only after a working connection drops, and live again after', async () => {
    await startLive()

    FakeEventSource.latest().fail()
    expect(stores.connection.status).toBe('reconnecting')

    await vi.advanceTimersByTimeAsync(1000)
    FakeEventSource.latest().open()
    expect(stores.connection.status).toBe('live')
  })

  it('resumes from the last event seen, not from the first snapshot', async () => {
    await startLive()
    FakeEventSource.latest().emit(nodes(3, '105-2'))

    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(1000)

    expect(FakeEventSource.latest().lastEventIdParam()).toBe('105-2')
    expect(workersApi.listWorkers).toHaveBeenCalledTimes(1)
  })

  it('resets the backoff once a connection opens again', async () => {
    await startLive()
    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(1000)
    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(2000)
    FakeEventSource.latest().open()

    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(1000)
    expect(FakeEventSource.instances).toHaveLength(4)
  })

  it('ignores events and errors from a source it already replaced', async () => {
    await startLive()
    const old = FakeEventSource.latest()
    old.fail()
    await vi.advanceTimersByTimeAsync(1000)

    old.emit(nodes(42, '200-0'))
    old.onerror?.({})

    expect(stores.fleet.workerById(worker.id).cml_nodes_running).toBe(1)
    expect(FakeEventSource.instances).toHaveLength(2)
  })

  it('reloads the fleet on resync and subscribes from the new position', async () => {
    await startLive()
    const renamed = { ...worker, name: 'edge-renamed' }
    workersApi.listWorkers.mockResolvedValue({ workers: [renamed], last_event_id: '900-0' })

    FakeEventSource.latest().emit(makeEvent('resync', null, {}, '150-0'))
    await flushPromises()

    expect(workersApi.listWorkers).toHaveBeenCalledTimes(2)
    expect(FakeEventSource.instances[0].closed).toBe(true)
    expect(FakeEventSource.latest().lastEventIdParam()).toBe('900-0')
    expect(stores.fleet.workerById(worker.id).name).toBe('edge-renamed')
    expect(stores.fleet.stale).toBe(false)
    expect(stores.connection.status).toBe('live')
  })

  it('retries the first load with backoff when it fails', async () => {
    workersApi.listWorkers.mockRejectedValueOnce(new Error('down'))
    await stream.start()

    expect(FakeEventSource.instances).toHaveLength(0)
    expect(stores.fleet.loadError).toBe('down')

    await vi.advanceTimersByTimeAsync(1000)
    expect(workersApi.listWorkers).toHaveBeenCalledTimes(2)
    expect(FakeEventSource.instances).toHaveLength(1)
  })

  it('asks whether the session holds after repeated failures, and stops if not', async () => {
    await startLive()
    verifySession.mockResolvedValue(false)

    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(1000)
    expect(verifySession).not.toHaveBeenCalled()
    FakeEventSource.latest().fail()
    await vi.advanceTimersByTimeAsync(2000)

    expect(verifySession).toHaveBeenCalledTimes(1)
    expect(FakeEventSource.instances).toHaveLength(2)
    expect(stores.connection.status).toBe('idle')
  })

  it('settles pending jobs from the stream', async () => {
    vi.spyOn(workersApi, 'refreshWorker').mockResolvedValue({ job_id: 'j1' })
    await startLive()
    await stores.jobs.refresh(worker.id)

    FakeEventSource.latest().emit(
      makeEvent('worker.refresh.completed', worker.id, { job_id: 'j1', ok: false }, '101-0'),
    )

    expect(stores.jobs.isPending(worker.id, 'refresh')).toBe(false)
    expect(stores.toasts.toasts[0].kind).toBe('error')
  })

  it('closes everything on stop', async () => {
    await startLive()
    stream.stop()
    expect(FakeEventSource.latest().closed).toBe(true)
    expect(stores.connection.status).toBe('idle')
    await vi.advanceTimersByTimeAsync(60000)
    expect(FakeEventSource.instances).toHaveLength(1)
  })
})
