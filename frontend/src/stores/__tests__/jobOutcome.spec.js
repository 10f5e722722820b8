import { describe, expect, it } from 'vitest'

import { makeEvent } from '@/testing/fixtures'
import { jobKey, settleJobs } from '../jobOutcome'

const job = (kind, extra = {}) => ({
  workerId: 'w1',
  kind,
  key: jobKey('w1', kind, extra.labId),
  ...extra,
})
const status = (value) =>
  makeEvent('worker.status.changed', 'w1', { changes: { status: ['x', value] } })

describe('settleJobs', () => {
  it('settles a refresh on refresh.completed for its worker, with the outcome', () => {
    const refresh = job('refresh')
    const ok = makeEvent('worker.refresh.completed', 'w1', { job_id: 'j', ok: true })
    const failed = makeEvent('worker.refresh.completed', 'w1', {
      job_id: 'j',
      ok: false,
      error: 'CML down',
    })

    expect(settleJobs([refresh], ok)).toEqual([{ key: 'w1:refresh', outcome: { ok: true } }])
    expect(settleJobs([refresh], failed)[0].outcome).toEqual({ ok: false, error: 'CML down' })
    expect(settleJobs([refresh], { ...ok, worker_id: 'w2' })).toEqual([])
  })

  it('waits through intermediate states of start and stop', () => {
    expect(settleJobs([job('start')], status('pending'))).toEqual([])
    expect(settleJobs([job('start')], status('running'))[0].outcome.ok).toBe(true)
    expect(settleJobs([job('start')], status('failed'))[0].outcome.ok).toBe(false)
    expect(settleJobs([job('stop')], status('stopping'))).toEqual([])
    expect(settleJobs([job('stop')], status('stopped'))[0].outcome.ok).toBe(true)
  })

  it('settles terminate on worker.terminated', () => {
    const result = settleJobs([job('terminate')], makeEvent('worker.terminated', 'w1', {}))
    expect(result[0].outcome.ok).toBe(true)
  })

  it('settles monitoring once EC2 reaches the wanted state', () => {
    const enable = job('monitoring', { target: true })
    const to = (value) =>
      makeEvent('worker.monitoring.changed', 'w1', {
        changes: { ec2_detailed_monitoring: ['x', value] },
      })
    expect(settleJobs([enable], to('pending'))).toEqual([])
    expect(settleJobs([enable], to('enabled'))[0].outcome.ok).toBe(true)
    expect(settleJobs([job('monitoring', { target: false })], to('disabled'))).toHaveLength(1)
  })

  it('settles a lab action when the lab reaches its state', () => {
    const start = job('lab-start', { labId: 'l1' })
    const labs = (state) =>
      makeEvent('worker.labs.updated', 'w1', { labs: [{ lab_id: 'l1', state }] })
    expect(settleJobs([start], labs('STOPPED'))).toEqual([])
    expect(settleJobs([start], labs('STARTED'))[0].key).toBe('w1:lab-start:l1')
    expect(settleJobs([job('lab-wipe', { labId: 'l1' })], labs('DEFINED_ON_CORE'))).toHaveLength(1)
  })

  it('fails the job named by worker.action.failed, else every non-refresh job', () => {
    const jobs = [job('stop'), job('monitoring', { target: true }), job('refresh')]
    const failed = (action) => makeEvent('worker.action.failed', 'w1', { action, error: 'denied' })

    const named = settleJobs(jobs, failed('stop'))
    expect(named).toEqual([
      { key: 'w1:stop', outcome: { ok: false, error: 'denied', reported: true } },
    ])

    const unnamed = settleJobs(jobs, failed('launch'))
    expect(unnamed.map((entry) => entry.key)).toEqual(['w1:stop', 'w1:monitoring'])

    const lab = settleJobs([job('lab-stop', { labId: 'l1' }), job('stop')], failed('lab_stop'))
    expect(lab.map((entry) => entry.key)).toEqual(['w1:lab-stop:l1'])
  })
})
