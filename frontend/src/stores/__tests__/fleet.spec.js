import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import { makeEvent, makeWorker } from '@/testing/fixtures'
import { useFleetStore } from '../fleet'

vi.mock('@/api/workers')

describe('fleet store', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
  })

  it('loads the fleet and its stream position', async () => {
    const worker = makeWorker({ region: 'eu-west-1' })
    workersApi.listWorkers.mockResolvedValue({ workers: [worker], last_event_id: '9-0' })
    const fleet = useFleetStore()

    await fleet.load()

    expect(fleet.loaded).toBe(true)
    expect(fleet.lastEventId).toBe('9-0')
    expect(fleet.workerList).toEqual([worker])
    expect(fleet.regions).toEqual(['eu-west-1'])
  })

  it('loads from the answer of a prefetch, asking only once', async () => {
    const worker = makeWorker()
    workersApi.listWorkers.mockResolvedValue({ workers: [worker], last_event_id: '9-0' })
    const fleet = useFleetStore()

    fleet.prefetch()
    fleet.prefetch()
    await fleet.load()

    expect(workersApi.listWorkers).toHaveBeenCalledTimes(1)
    expect(workersApi.listWorkers).toHaveBeenCalledWith({ quietUnauthorized: true })
    expect(fleet.workerList).toEqual([worker])
  })

  it('asks again, and reports failure, when the prefetch failed', async () => {
    const worker = makeWorker()
    workersApi.listWorkers
      .mockRejectedValueOnce(new Error('Please sign in again.'))
      .mockRejectedValueOnce(new Error('The server could not be reached.'))
      .mockResolvedValueOnce({ workers: [worker], last_event_id: '9-0' })
    const fleet = useFleetStore()

    fleet.prefetch()
    await expect(fleet.load()).rejects.toThrow('The server could not be reached.')
    expect(fleet.loadError).toBe('The server could not be reached.')

    await fleet.load()
    expect(fleet.workerList).toEqual([worker])
    expect(workersApi.listWorkers).toHaveBeenCalledTimes(3)
  })

  it('keeps labs from an event that arrived while GET labs was in flight', async () => {
    const worker = makeWorker()
    const fresh = [{ lab_id: 'l1', state: 'STARTED' }]
    let answer
    workersApi.listLabs.mockReturnValue(new Promise((resolve) => (answer = resolve)))
    const fleet = useFleetStore()

    const loading = fleet.loadLabs(worker.id)
    fleet.applyEvent(makeEvent('worker.labs.updated', worker.id, { labs: fresh }))
    answer({ labs: [{ lab_id: 'l1', state: 'STOPPED' }] })
    await loading

    expect(fleet.labsFor(worker.id)).toEqual(fresh)
  })

  it('shows a launched worker at once', async () => {
    const worker = makeWorker({ status: 'pending' })
    workersApi.launchWorker.mockResolvedValue({ worker })
    const fleet = useFleetStore()

    await fleet.launchWorker({ name: worker.name, region: worker.region })

    expect(fleet.workerById(worker.id)).toEqual(worker)
  })
})
