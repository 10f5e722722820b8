import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryHistory } from 'vue-router'

import { onUnauthorized } from '@/api/client'
import { useAuthStore } from '@/stores/auth'
import { useFleetStore } from '@/stores/fleet'
import { makeWorker } from '@/testing/fixtures'
import { createAppRouter } from '..'

const json = (status, body) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

const ADMIN = { user: { username: 'ann', role: 'admin' }, csrf_token: 'c1' }
const SIGN_IN = { error: 'unauthorized', message: 'Sign in.' }

// The server behind fetch, for requests the page makes once its code has loaded.
function serve(routes) {
  const fetch = vi.fn(async (path, { method }) => routes[`${method} ${path}`]())
  vi.stubGlobal('fetch', fetch)
  return fetch
}

async function open(path) {
  const router = createAppRouter(createMemoryHistory())
  router.push(path)
  await router.isReady()
  return router
}

describe('the first route of a page load', () => {
  const unauthorized = vi.fn()

  beforeEach(() => {
    setActivePinia(createPinia())
    onUnauthorized(unauthorized)
  })

  afterEach(() => {
    onUnauthorized(null)
  })

  it('shows the dashboard from the session and fleet that index.html asked for', async () => {
    const worker = makeWorker()
    vi.stubGlobal('earlyRequests', {
      '/api/auth/me': Promise.resolve(json(200, ADMIN)),
      '/api/workers': Promise.resolve(json(200, { workers: [worker], last_event_id: '3-0' })),
    })
    const fetch = serve({})

    const router = await open('/')
    const fleet = useFleetStore()
    await fleet.load()

    expect(router.currentRoute.value.name).toBe('dashboard')
    expect(useAuthStore().isAdmin).toBe(true)
    expect(fleet.workerList).toEqual([worker])
    expect(fetch).not.toHaveBeenCalled()
  })

  it('sends a visitor without a session to sign in, then loads the fleet afresh', async () => {
    // Without a session, index.html does not ask for the fleet: its answer is the refusal.
    vi.stubGlobal('earlyRequests', {
      '/api/auth/me': Promise.resolve(json(401, SIGN_IN)),
      '/api/workers': Promise.resolve(new Response(null, { status: 401 })),
    })
    const worker = makeWorker()
    const fetch = serve({
      'POST /api/auth/login': () => json(200, ADMIN),
      'GET /api/workers': () => json(200, { workers: [worker], last_event_id: '3-0' }),
    })

    const router = await open('/workers/w1')

    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.redirect).toBe('/workers/w1')
    expect(fetch).not.toHaveBeenCalled()

    await useAuthStore().login('ann', 'secret')
    const fleet = useFleetStore()
    await fleet.load()

    expect(fleet.workerList).toEqual([worker])
    expect(fetch.mock.calls.map(([path]) => path)).toEqual(['/api/auth/login', '/api/workers'])
    expect(unauthorized).not.toHaveBeenCalled()
  })
})
