import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import * as workersApi from '@/api/workers'
import { useFleetStore } from './fleet'
import { jobKey, settleJobs } from './jobOutcome'
import { useToastsStore } from './toasts'

// When no event settles a job, its spinner stops after this long with a note that the
// outcome is still unknown; the worker's card keeps showing whatever happens later.
export const JOB_TIMEOUT_MS = { refresh: 2 * 60 * 1000, default: 10 * 60 * 1000 }

const LAB_VERBS = { start: 'Start', stop: 'Stop', wipe: 'Wipe' }

function describe(job, name) {
  switch (job.kind) {
    case 'refresh':
      return `Refresh of ${name}`
    case 'start':
      return `Start of ${name}`
    case 'stop':
      return `Stop of ${name}`
    case 'terminate':
      return `Termination of ${name}`
    case 'monitoring':
      return `${job.target ? 'Enabling' : 'Disabling'} detailed monitoring on ${name}`
    default:
      return `${LAB_VERBS[job.kind.slice(4)]} of lab ${job.labTitle ?? job.labId} on ${name}`
  }
}

// Outcomes that no event toast already announces ("stopped", "terminated" have their own).
const SUCCESS_MESSAGES = {
  start: (name) => `Worker ${name} is running.`,
  monitoring: (name, job) =>
    `Detailed monitoring ${job.target ? 'enabled' : 'disabled'} on ${name}.`,
  'lab-start': (name, job) => `Lab ${job.labTitle ?? job.labId} started on ${name}.`,
  'lab-stop': (name, job) => `Lab ${job.labTitle ?? job.labId} stopped on ${name}.`,
  'lab-wipe': (name, job) => `Lab ${job.labTitle ?? job.labId} wiped on ${name}.`,
}

/**
 * Jobs this tab asked for (refresh, lifecycle, monitoring, lab actions) that have not
 * reported back yet: what the buttons read to show a spinner, settled by stream events.
 */
export const useJobsStore = defineStore('jobs', () => {
  const pending = ref({})
  const timers = new Map()
  const fleet = useFleetStore()
  const toasts = useToastsStore()

  const nameOf = (workerId) => fleet.workerById(workerId)?.name ?? workerId

  // Getters that take arguments: every card's Refresh button asks, and an action would add
  // Pinia's bookkeeping to each call.
  const isPending = computed(
    () => (workerId, kind, labId) => Boolean(pending.value[jobKey(workerId, kind, labId)]),
  )
  const pendingJob = computed(
    () => (workerId, kind, labId) => pending.value[jobKey(workerId, kind, labId)] ?? null,
  )

  function remove(key) {
    clearTimeout(timers.get(key))
    timers.delete(key)
    const rest = { ...pending.value }
    delete rest[key]
    pending.value = rest
  }

  async function run(job, call) {
    const key = jobKey(job.workerId, job.kind, job.labId)
    if (pending.value[key]) return false

    pending.value = { ...pending.value, [key]: { ...job, key, jobId: null } }
    try {
      const answer = await call()
      if (!pending.value[key]) return true

      pending.value = { ...pending.value, [key]: { ...pending.value[key], jobId: answer?.job_id } }
      const timeout = JOB_TIMEOUT_MS[job.kind] ?? JOB_TIMEOUT_MS.default
      timers.set(
        key,
        setTimeout(() => expire(key), timeout),
      )
      return true
    } catch (error) {
      remove(key)
      toasts.error(`${describe(job, nameOf(job.workerId))} failed: ${error.message}`)
      return false
    }
  }

  function finish(key, outcome) {
    const job = pending.value[key]
    if (!job) return
    remove(key)

    const name = nameOf(job.workerId)
    if (!outcome.ok && !outcome.reported) {
      const reason = outcome.error ? `: ${outcome.error}` : '.'
      toasts.error(`${describe(job, name)} failed${reason}`)
    } else if (outcome.ok && SUCCESS_MESSAGES[job.kind]) {
      toasts.success(SUCCESS_MESSAGES[job.kind](name, job))
    }
  }

  function expire(key) {
    const job = pending.value[key]
    if (!job) return
    remove(key)
    toasts.info(`${describe(job, nameOf(job.workerId))} has not reported back yet.`)
  }

  /** Settles the jobs that one stream event completes. */
  function handleEvent(event) {
    for (const { key, outcome } of settleJobs(Object.values(pending.value), event)) {
      finish(key, outcome)
    }
  }

  function reset() {
    for (const timer of timers.values()) clearTimeout(timer)
    timers.clear()
    pending.value = {}
  }

  const refresh = (id) => run({ workerId: id, kind: 'refresh' }, () => workersApi.refreshWorker(id))
  const start = (id) => run({ workerId: id, kind: 'start' }, () => workersApi.startWorker(id))
  const stop = (id) => run({ workerId: id, kind: 'stop' }, () => workersApi.stopWorker(id))
  const terminate = (id) =>
    run({ workerId: id, kind: 'terminate' }, () => workersApi.terminateWorker(id))
  const setMonitoring = (id, enabled) =>
    run({ workerId: id, kind: 'monitoring', target: enabled }, () =>
      workersApi.setMonitoring(id, enabled),
    )
  const labAction = (id, lab, action) =>
    run({ workerId: id, kind: `lab-${action}`, labId: lab.id, labTitle: lab.title }, () =>
      workersApi.runLabAction(id, lab.id, action),
    )

  return {
    pending,
    isPending,
    pendingJob,
    handleEvent,
    reset,
    refresh,
    start,
    stop,
    terminate,
    setMonitoring,
    labAction,
  }
})
