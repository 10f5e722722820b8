import { api, withQuery } from './client'

const workerPath = (id, rest = '') => `/api/workers/${encodeURIComponent(id)}${rest}`

export const listWorkers = (options) => api.get('/api/workers', options)

export const launchWorker = (payload) => api.post('/api/workers', payload)

export const importInstances = (payload) => api.post('/api/workers/import', payload)

export const startWorker = (id) => api.post(workerPath(id, '/start'))

export const stopWorker = (id) => api.post(workerPath(id, '/stop'))

export const terminateWorker = (id) => api.delete(workerPath(id))

export const refreshWorker = (id) => api.post(workerPath(id, '/refresh'))

export const setMonitoring = (id, enabled) => api.put(workerPath(id, '/monitoring'), { enabled })

export const listLabs = (id) => api.get(workerPath(id, '/labs'))

export const runLabAction = (id, labId, action) =>
  api.post(workerPath(id, `/labs/${encodeURIComponent(labId)}/${action}`))

export const fetchMetrics = (id, { since, until, step }, options) =>
  api.get(workerPath(id, '/metrics'), { ...options, query: { since, until, step } })

/** The SSE endpoint, resuming after `lastEventId` when there is one. */
export const eventsUrl = (lastEventId) =>
  withQuery('/api/workers/events', { lastEventId: lastEventId ?? undefined })
