// The fleet as the browser knows it, and how one event changes it. Pure functions: they
// never mutate their input, and a worker that an event leaves alone keeps its identity,
// so only the cards and rows that changed re-render.
//
// Terminated workers are kept, with status `terminated`, as the server keeps them: the
// dashboard shows them under that status until they age out of GET /api/workers.

import { changedTo, isNewer } from '@/lib/events'

export function emptyFleet() {
  return { workers: {}, labs: {}, lastEventId: null, stale: false }
}

/** The fleet from GET /api/workers; labs already loaded are kept for workers still there. */
export function fleetFromSnapshot(snapshot, previous = emptyFleet()) {
  const workers = {}
  for (const worker of snapshot?.workers ?? []) workers[worker.id] = worker

  const labs = {}
  for (const [id, list] of Object.entries(previous.labs)) {
    if (workers[id]) labs[id] = list
  }

  // The server answers "" while its replay stream is empty. Subscribing from "0-0" (before
  // any event) instead of from nowhere keeps what is published between this snapshot and
  // the stream, or during a reconnect before the first event arrives, from being lost.
  const position = snapshot?.last_event_id === '' ? '0-0' : snapshot?.last_event_id
  return { workers, labs, lastEventId: position ?? null, stale: false }
}

export function applyChanges(worker, changes) {
  const next = { ...worker }
  for (const field of Object.keys(changes ?? {})) {
    const value = changedTo(changes, field)
    if (value !== undefined) next[field] = value
  }
  return next
}

function workerAfter(current, event) {
  const data = event.data ?? {}
  let worker = current

  if (data.worker) {
    worker = { ...data.worker, id: data.worker.id ?? event.worker_id }
  } else if (current && data.changes) {
    worker = applyChanges(current, data.changes)
  }

  if (worker && event.type === 'worker.terminated' && worker.status !== 'terminated') {
    worker = { ...worker, status: 'terminated', terminated_at: worker.terminated_at ?? event.time }
  }
  return worker
}

/**
 * The fleet after one event from the stream. Events at or before `lastEventId` (a replay
 * overlapping what the snapshot already holds) change nothing. `resync` only marks the
 * fleet stale: reloading it is the stream's job.
 */
export function reduceFleet(state, event) {
  if (!event?.type || !isNewer(event.id, state.lastEventId)) return state

  const next = { ...state, lastEventId: event.id ?? state.lastEventId }
  if (event.type === 'resync') return { ...next, stale: true }

  const id = event.worker_id ?? event.data?.worker?.id
  if (id === undefined || id === null) return next

  const current = state.workers[id]
  const worker = workerAfter(current, event)
  if (worker && worker !== current) next.workers = { ...state.workers, [id]: worker }

  const labs = event.data?.labs
  if (event.type === 'worker.labs.updated' && Array.isArray(labs)) {
    next.labs = { ...state.labs, [id]: labs }
  }
  return next
}

/** Adds or replaces one worker, as answered by a launch or an import. */
export function withWorker(state, worker) {
  return { ...state, workers: { ...state.workers, [worker.id]: worker } }
}

export function withLabs(state, workerId, labs) {
  return { ...state, labs: { ...state.labs, [workerId]: labs } }
}
