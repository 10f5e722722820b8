// When a job this tab asked for is over. A 202 answer only says the job was queued; the
// outcome arrives later as events about the worker, and these pure functions read it.

import { changedTo } from '@/lib/events'
import { errorText } from '@/lib/format'

const LAB_TARGET_STATE = { start: 'STARTED', stop: 'STOPPED', wipe: 'DEFINED_ON_CORE' }

export const labIdOf = (lab) => lab?.lab_id ?? lab?.id

export function jobKey(workerId, kind, labId) {
  return labId === undefined || labId === null
    ? `${workerId}:${kind}`
    : `${workerId}:${kind}:${labId}`
}

function statusAfter(event) {
  if (event.type === 'worker.terminated') return 'terminated'
  return changedTo(event.data?.changes, 'status') ?? event.data?.worker?.status
}

function monitoringAfter(event) {
  return (
    changedTo(event.data?.changes, 'ec2_detailed_monitoring') ??
    event.data?.worker?.ec2_detailed_monitoring
  )
}

function byStatus(status, done, failed) {
  if (done.includes(status)) return { ok: true }
  if (failed.includes(status)) return { ok: false, error: `The worker is ${status}.` }
  return null
}

/** The outcome of one pending job given one event about its worker, or null to wait on. */
export function jobOutcome(job, event) {
  const data = event.data ?? {}
  const status = statusAfter(event)

  if (job.kind === 'refresh') {
    if (event.type !== 'worker.refresh.completed') return null
    return data.ok === false ? { ok: false, error: errorText(data.error) } : { ok: true }
  }
  if (job.kind === 'terminate') return status === 'terminated' ? { ok: true } : null
  if (status === 'terminated') return { ok: false, error: 'The worker was terminated.' }

  if (job.kind === 'start') return byStatus(status, ['running'], ['failed'])
  if (job.kind === 'stop') return byStatus(status, ['stopped'], ['failed'])

  if (job.kind === 'monitoring') {
    const wanted = job.target ? 'enabled' : 'disabled'
    return monitoringAfter(event) === wanted ? { ok: true } : null
  }

  if (job.kind.startsWith('lab-') && event.type === 'worker.labs.updated') {
    const lab = (data.labs ?? []).find((candidate) => labIdOf(candidate) === job.labId)
    if (!lab) return { ok: true }
    return lab.state === LAB_TARGET_STATE[job.kind.slice(4)] ? { ok: true } : null
  }
  return null
}

/** Whether `action` from worker.action.failed names this job ("stop", "lab_wipe", ...). */
export function actionMatches(job, action) {
  const name = String(action ?? '').toLowerCase()
  if (!name) return false

  const isLab = job.kind.startsWith('lab-')
  const verb = isLab ? job.kind.slice(4) : job.kind
  return name.includes(verb) && name.includes('lab') === isLab
}

/**
 * The jobs that one event settles, as [{key, outcome}]. A worker.action.failed that names
 * none of the worker's pending jobs settles all of them but a refresh, so that no spinner
 * is left turning after the server said the job failed.
 */
export function settleJobs(jobs, event) {
  const mine = jobs.filter((job) => job.workerId === event?.worker_id)
  if (mine.length === 0) return []

  if (event.type === 'worker.action.failed') {
    const outcome = { ok: false, error: errorText(event.data?.error), reported: true }
    const named = mine.filter((job) => actionMatches(job, event.data?.action))
    const hit = named.length ? named : mine.filter((job) => job.kind !== 'refresh')
    return hit.map((job) => ({ key: job.key, outcome }))
  }

  return mine.flatMap((job) => {
    const outcome = jobOutcome(job, event)
    return outcome ? [{ key: job.key, outcome }] : []
  })
}
