// Which events deserve a toast. Only transitions a person acts on: metric ticks and
// routine updates never raise one.

import { changedTo } from '@/lib/events'
import { errorText, humanize } from '@/lib/format'

/**
 * The toast for one event, or null. `worker` is the worker as the store knows it after the
 * event, used for its name when the event does not carry the whole worker.
 */
export function toastForEvent(event, worker) {
  const data = event?.data ?? {}
  const name = data.worker?.name ?? worker?.name ?? event?.worker_id

  switch (event?.type) {
    case 'worker.created':
      return { kind: 'success', message: `Worker ${name} created.` }
    case 'worker.imported':
      return { kind: 'success', message: `Worker ${name} imported.` }
    case 'worker.terminated':
      return { kind: 'info', message: `Worker ${name} terminated.` }
    case 'worker.status.changed': {
      const status = changedTo(data.changes, 'status') ?? data.worker?.status
      if (status === 'stopped') return { kind: 'info', message: `Worker ${name} stopped.` }
      if (status === 'failed') return { kind: 'error', message: `Worker ${name} failed.` }
      return null
    }
    case 'worker.action.failed': {
      const action = data.action ? humanize(data.action) : 'An action'
      const reason = errorText(data.error)
      return {
        kind: 'error',
        message: `${action} on ${name} failed${reason ? `: ${reason}` : '.'}`,
      }
    }
    default:
      return null
  }
}
