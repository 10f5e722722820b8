import { describe, expect, it } from 'vitest'

import { makeEvent, makeWorker } from '@/testing/fixtures'
import { emptyFleet, fleetFromSnapshot, reduceFleet } from '../fleetReducer'

function fleetOf(...workers) {
  return fleetFromSnapshot({ workers, last_event_id: '100-0' })
}

describe('fleetFromSnapshot', () => {
  it('indexes the workers by id and keeps the snapshot position', () => {
    const worker = makeWorker()
    const state = fleetOf(worker)
    expect(state.workers[worker.id]).toBe(worker)
    expect(state.lastEventId).toBe('100-0')
    expect(state.stale).toBe(false)
  })

  it('keeps labs already loaded for workers still in the fleet', () => {
    const kept = makeWorker()
    const gone = makeWorker()
    const previous = { ...fleetOf(kept, gone), labs: { [kept.id]: [{ id: 'l1' }], [gone.id]: [] } }
    const state = fleetFromSnapshot({ workers: [kept], last_event_id: '200-0' }, previous)
    expect(state.labs).toEqual({ [kept.id]: [{ id: 'l1' }] })
  })
})

describe('reduceFleet', () => {
  it('adds a created or imported worker', () => {
    const worker = makeWorker({ status: 'pending' })
    for (const type of ['worker.created', 'worker.imported']) {
      const state = reduceFleet(emptyFleet(), makeEvent(type, worker.id, { worker }))
      expect(state.workers[worker.id]).toEqual(worker)
    }
  })

  it.each([
    ['worker.status.changed', { status: ['running', 'stopping'] }],
    ['worker.ec2_metrics.updated', { ec2_instance_status: ['initializing', 'ok'] }],
    ['worker.cloudwatch_metrics.updated', { cloudwatch_cpu_utilization: [40, 75.5] }],
    ['worker.cml_metrics.updated', { cml_nodes_running: [5, 9], cml_ready: [false, true] }],
    ['worker.monitoring.changed', { ec2_detailed_monitoring: ['disabled', 'pending'] }],
  ])('replaces the worker with data.worker on %s', (type, changes) => {
    const worker = makeWorker()
    const after = { ...worker }
    for (const [field, [, value]] of Object.entries(changes)) after[field] = value

    const state = reduceFleet(
      fleetOf(worker),
      makeEvent(type, worker.id, { worker: after, changes }),
    )

    expect(state.workers[worker.id]).toEqual(after)
  })

  it('applies data.changes when the event carries no whole worker', () => {
    const worker = makeWorker({ cml_nodes_running: 5 })
    const event = makeEvent('worker.cml_metrics.updated', worker.id, {
      changes: { cml_nodes_running: [5, 8], cml_version: [null, '2.9.1'] },
    })

    const state = reduceFleet(fleetOf(worker), event)

    expect(state.workers[worker.id]).toMatchObject({ cml_nodes_running: 8, cml_version: '2.9.1' })
    expect(state.workers[worker.id].name).toBe(worker.name)
  })

  it('drops admin-only fields the new worker no longer carries', () => {
    const worker = makeWorker({ last_error: { source: 'cml', message: 'down' } })
    const { last_error: dropped, ...after } = worker
    const state = reduceFleet(
      fleetOf(worker),
      makeEvent('worker.cml_metrics.updated', worker.id, { worker: after }),
    )
    expect(state.workers[worker.id]).not.toHaveProperty('last_error')
  })

  it('keeps a terminated worker, marked terminated', () => {
    const worker = makeWorker()
    const event = makeEvent('worker.terminated', worker.id, {})

    const state = reduceFleet(fleetOf(worker), event)

    expect(state.workers[worker.id]).toMatchObject({
      status: 'terminated',
      terminated_at: event.time,
      name: worker.name,
    })
  })

  it('stores the labs of worker.labs.updated', () => {
    const worker = makeWorker()
    const labs = [{ lab_id: 'l1', title: 'OSPF', state: 'STARTED' }]
    const state = reduceFleet(
      fleetOf(worker),
      makeEvent('worker.labs.updated', worker.id, {
        labs,
        worker: { ...worker, cml_labs_count: 1 },
      }),
    )
    expect(state.labs[worker.id]).toEqual(labs)
    expect(state.workers[worker.id].cml_labs_count).toBe(1)
  })

  it('leaves workers untouched by refresh.completed and action.failed without a worker', () => {
    const worker = makeWorker()
    const start = fleetOf(worker)
    for (const [type, data] of [
      ['worker.refresh.completed', { job_id: 'j1', ok: true }],
      ['worker.action.failed', { action: 'stop', error: 'denied' }],
    ]) {
      const state = reduceFleet(start, makeEvent(type, worker.id, data))
      expect(state.workers).toBe(start.workers)
      expect(state.workers[worker.id]).toBe(worker)
    }
  })

  it('keeps the identity of workers an event did not touch', () => {
    const one = makeWorker()
    const two = makeWorker()
    const state = reduceFleet(
      fleetOf(one, two),
      makeEvent('worker.status.changed', one.id, { worker: { ...one, status: 'stopping' } }),
    )
    expect(state.workers[two.id]).toBe(two)
    expect(state.workers[one.id]).not.toBe(one)
  })

  it('remembers the last event id and ignores events at or before it', () => {
    const worker = makeWorker({ cml_nodes_running: 1 })
    const change = (id, value) =>
      makeEvent(
        'worker.cml_metrics.updated',
        worker.id,
        { changes: { cml_nodes_running: [0, value] } },
        id,
      )

    let state = reduceFleet(fleetOf(worker), change('101-0', 2))
    expect(state.lastEventId).toBe('101-0')
    state = reduceFleet(state, change('100-5', 3))
    state = reduceFleet(state, change('101-0', 4))

    expect(state.workers[worker.id].cml_nodes_running).toBe(2)
  })

  it('marks the fleet stale on resync', () => {
    const state = reduceFleet(fleetOf(makeWorker()), makeEvent('resync', null, {}))
    expect(state.stale).toBe(true)
  })

  it('does not mutate the state it was given', () => {
    const worker = makeWorker()
    const start = fleetOf(worker)
    const frozen = JSON.stringify(start)
    reduceFleet(start, makeEvent('worker.terminated', worker.id, {}))
    reduceFleet(start, makeEvent('worker.labs.updated', worker.id, { labs: [] }))
    expect(JSON.stringify(start)).toBe(frozen)
  })
})
