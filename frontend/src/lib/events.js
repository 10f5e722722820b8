// Event types of the stream (DESIGN.md, "Events") and ordering of their ids.

export const EVENT_TYPES = [
  'worker.created',
  'worker.imported',
  'worker.status.changed',
  'worker.ec2_metrics.updated',
  'worker.cloudwatch_metrics.updated',
  'worker.cml_metrics.updated',
  'worker.labs.updated',
  'worker.monitoring.changed',
  'worker.terminated',
  'worker.refresh.completed',
  'worker.action.failed',
  'resync',
]

const STREAM_ID = /^(\d+)(?:-(\d+))?$/

/**
 * Orders two event ids. The ids are Redis Stream entry ids ("<ms>-<seq>"); a plain integer
 * is read as "<n>-0". Answers null when either id has another shape, since then the order
 * cannot be known and the caller must not drop anything.
 */
export function compareEventIds(a, b) {
  const left = STREAM_ID.exec(String(a))
  const right = STREAM_ID.exec(String(b))
  if (!left || !right) return null

  const [aMs, aSeq] = [BigInt(left[1]), BigInt(left[2] ?? 0)]
  const [bMs, bSeq] = [BigInt(right[1]), BigInt(right[2] ?? 0)]
  if (aMs !== bMs) return aMs < bMs ? -1 : 1
  if (aSeq !== bSeq) return aSeq < bSeq ? -1 : 1
  return 0
}

/** True unless `id` is known to be at or before `lastId` (a replayed duplicate). */
export function isNewer(id, lastId) {
  if (id === null || id === undefined || lastId === null || lastId === undefined) return true
  const order = compareEventIds(id, lastId)
  return order === null || order > 0
}

/** The new value of one field in `data.changes` ({field: [old, new]}), or undefined. */
export function changedTo(changes, field) {
  const pair = changes?.[field]
  return Array.isArray(pair) && pair.length === 2 ? pair[1] : undefined
}
