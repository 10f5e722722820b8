import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import { ApiError } from '@/api/client'
import { makeEvent, makeWorker } from '@/testing/fixtures'
import { useFleetStore } from '../fleet'
import { JOB_TIMEOUT_MS, useJobsStore } from '../jobs'
import { useToastsStore } from '../toasts'

vi.mock('@/api/workers')

describe('jobs store', () => {
  let worker
  let jobs
  let toasts

  beforeEach(() => {
    setActivePinia(createPinia())
    worker = makeWorker({ name: 'edge-1' })
    useFleetStore().applyEvent(makeEvent('worker.created', worker.id, { worker }))
    jobs = useJobsStore()
    toasts = useToastsStore()
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('shows a refresh under way until refresh.completed for that worker arrives', async () => {
    workersApi.refreshWorker.mockResolvedValue({ job_id: 'j1' })

    await jobs.refresh(worker.id)
    expect(jobs.isPending(worker.id, 'refresh')).toBe(true)

    jobs.handleEvent(makeEvent('worker.refresh.completed', worker.id, { job_id: 'j1', ok: true }))
    expect(jobs.isPending(worker.id, 'refresh')).toBe(false)
    expect(toasts.toasts).toEqual([])
  })

  it('raises an error toast when the refresh it asked for failed', async () => {
    workersApi.refreshWorker.mockResolvedValue({ job_id: 'j1' })
    await jobs.refresh(worker.id)

    jobs.handleEvent(
      makeEvent('worker.refresh.completed', worker.id, {
        job_id: 'j1',
        ok: false,
        error: 'CML down',
      }),
    )

    expect(toasts.toasts).toMatchObject([
      { kind: 'error', message: 'Refresh of edge-1 failed: CML down' },
    ])
  })

  it('does not ask twice while a job is under way', async () => {
    workersApi.stopWorker.mockResolvedValue({ job_id: 'j2' })
    await jobs.stop(worker.id)
    await jobs.stop(worker.id)
    expect(workersApi.stopWorker).toHaveBeenCalledTimes(1)
  })

  it('shows the API message when the request is refused', async () => {
    workersApi.startWorker.mockRejectedValue(
      new ApiError(409, { error: 'conflict', message: 'The worker is not stopped.' }),
    )

    await jobs.start(worker.id)

    expect(jobs.isPending(worker.id, 'start')).toBe(false)
    expect(toasts.toasts[0]).toMatchObject({
      kind: 'error',
      message: 'Start of edge-1 failed: The worker is not stopped.',
    })
  })

  it('settles a failed action without a second toast (the event has its own)', async () => {
    workersApi.stopWorker.mockResolvedValue({ job_id: 'j3' })
    await jobs.stop(worker.id)

    jobs.handleEvent(makeEvent('worker.action.failed', worker.id, { action: 'stop', error: 'x' }))

    expect(jobs.isPending(worker.id, 'stop')).toBe(false)
    expect(toasts.toasts).toEqual([])
  })

  it('stops the spinner when no outcome arrives in time', async () => {
    vi.useFakeTimers()
    workersApi.refreshWorker.mockResolvedValue({ job_id: 'j4' })
    await jobs.refresh(worker.id)

    vi.advanceTimersByTime(JOB_TIMEOUT_MS.refresh)

    expect(jobs.isPending(worker.id, 'refresh')).toBe(false)
    expect(toasts.toasts[0].message).toBe('Refresh of edge-1 has not reported back yet.')
  })
})
