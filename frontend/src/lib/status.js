// How each status looks. Colour is never the only signal: every entry pairs an Okabe-Ito
// tone with a shape and a word, so the badges read the same for colour-blind users.

import { humanize } from './format'

const WORKER_STATUS = {
  running: { label: 'Running', shape: 'dot', tone: 'ok' },
  pending: { label: 'Pending', shape: 'half', tone: 'busy' },
  stopping: { label: 'Stopping', shape: 'half', tone: 'busy' },
  stopped: { label: 'Stopped', shape: 'square', tone: 'idle' },
  'shutting-down': { label: 'Shutting down', shape: 'half', tone: 'busy' },
  terminated: { label: 'Terminated', shape: 'cross', tone: 'gone' },
  failed: { label: 'Failed', shape: 'triangle', tone: 'bad' },
  unknown: { label: 'Unknown', shape: 'diamond', tone: 'unknown' },
}

const CML_STATUS = {
  available: { label: 'Available', shape: 'dot', tone: 'ok' },
  starting: { label: 'Starting', shape: 'half', tone: 'busy' },
  unavailable: { label: 'Unavailable', shape: 'ring', tone: 'idle' },
  error: { label: 'Error', shape: 'triangle', tone: 'bad' },
}

const LAB_STATE = {
  STARTED: { label: 'Started', shape: 'play', tone: 'ok' },
  STOPPED: { label: 'Stopped', shape: 'square', tone: 'idle' },
  DEFINED_ON_CORE: { label: 'Defined', shape: 'diamond', tone: 'info' },
}

export const WORKER_STATUSES = Object.keys(WORKER_STATUS)

const unknownEntry = (value) => ({
  label: value ? humanize(value) : 'Unknown',
  shape: 'diamond',
  tone: 'unknown',
})

export const workerStatusInfo = (status) => WORKER_STATUS[status] ?? unknownEntry(status)

export const cmlStatusInfo = (status) => CML_STATUS[status] ?? unknownEntry(status)

export const labStateInfo = (state) => LAB_STATE[state] ?? unknownEntry(state)
