import { describe, expect, it } from 'vitest'

import { makeEvent, makeWorker } from '@/testing/fixtures'
import { toastForEvent } from '../eventToasts'

describe('toastForEvent', () => {
  const worker = makeWorker({ name: 'lab-east' })

  it('announces created, imported and terminated workers', () => {
    expect(toastForEvent(makeEvent('worker.created', worker.id, { worker }))).toEqual({
      kind: 'success',
      message: 'Worker lab-east created.',
    })
    expect(toastForEvent(makeEvent('worker.imported', worker.id, { worker })).kind).toBe('success')
    expect(toastForEvent(makeEvent('worker.terminated', worker.id, {}), worker).message).toBe(
      'Worker lab-east terminated.',
    )
  })

  it('announces a worker that stopped or failed, and no other status change', () => {
    const to = (status) =>
      toastForEvent(
        makeEvent('worker.status.changed', worker.id, { changes: { status: ['running', status] } }),
        worker,
      )
    expect(to('stopped')).toEqual({ kind: 'info', message: 'Worker lab-east stopped.' })
    expect(to('failed')).toEqual({ kind: 'error', message: 'Worker lab-east failed.' })
    expect(to('stopping')).toBeNull()
    expect(to('running')).toBeNull()
  })

  it('reports a failed action with its reason', () => {
    const toast = toastForEvent(
      makeEvent('worker.action.failed', worker.id, { action: 'stop', error: 'Access denied' }),
      worker,
    )
    expect(toast).toEqual({ kind: 'error', message: 'Stop on lab-east failed: Access denied' })
  })

  it('stays quiet for metric updates', () => {
    for (const type of [
      'worker.cloudwatch_metrics.updated',
      'worker.cml_metrics.updated',
      'worker.ec2_metrics.updated',
      'worker.labs.updated',
      'worker.refresh.completed',
    ]) {
      expect(toastForEvent(makeEvent(type, worker.id, { worker }), worker)).toBeNull()
    }
  })
})
