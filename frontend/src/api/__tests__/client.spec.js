import { afterEach, describe, expect, it, vi } from 'vitest'

import { ApiError, dropEarlyRequests, onUnauthorized, request, setCsrfToken } from '../client'

function answer(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

describe('request', () => {
  afterEach(() => {
    setCsrfToken(null)
    onUnauthorized(null)
  })

  it('sends the CSRF token on mutating requests only', async () => {
    const fetch = vi.fn(async () => answer(202, { job_id: 'j1' }))
    vi.stubGlobal('fetch', fetch)
    setCsrfToken('tok')

    await request('POST', '/api/workers/w1/refresh')
    await request('GET', '/api/workers')

    expect(fetch.mock.calls[0][1].headers['X-CSRF-Token']).toBe('tok')
    expect(fetch.mock.calls[0][1].credentials).toBe('same-origin')
    expect(fetch.mock.calls[1][1].headers['X-CSRF-Token']).toBeUndefined()
  })

  it('turns an API error body into an ApiError with its message and details', async () => {
    vi.stubGlobal('fetch', async () =>
      answer(400, { error: 'invalid', message: 'Name is required.', details: { name: 'missing' } }),
    )

    const error = await request('POST', '/api/workers', { body: {} }).catch((e) => e)

    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({
      status: 400,
      code: 'invalid',
      message: 'Name is required.',
      details: { name: 'missing' },
    })
  })

  it('reads Retry-After on 429', async () => {
    vi.stubGlobal('fetch', async () =>
      answer(429, { error: 'rate_limited', message: 'Slow down.' }, { 'Retry-After': '30' }),
    )
    const error = await request('POST', '/api/auth/login', { body: {} }).catch((e) => e)
    expect(error.retryAfter).toBe(30)
  })

  it('reports a 401 to the unauthorized handler unless asked to stay quiet', async () => {
    vi.stubGlobal('fetch', async () => answer(401, { error: 'unauthorized', message: 'Sign in.' }))
    const handler = vi.fn()
    onUnauthorized(handler)

    await request('GET', '/api/workers').catch(() => {})
    await request('GET', '/api/auth/me', { quietUnauthorized: true }).catch(() => {})

    expect(handler).toHaveBeenCalledTimes(1)
  })

  it('answers null for 204', async () => {
    vi.stubGlobal('fetch', async () => new Response(null, { status: 204 }))
    expect(await request('POST', '/api/auth/logout')).toBeNull()
  })
})

describe('requests index.html sent early', () => {
  it('answers the first GET of each path from them, and asks the server afresh after', async () => {
    vi.stubGlobal('earlyRequests', {
      '/api/workers': Promise.resolve(answer(200, { workers: [], last_event_id: '1-0' })),
    })
    const fetch = vi.fn(async () => answer(200, { workers: [], last_event_id: '2-0' }))
    vi.stubGlobal('fetch', fetch)

    expect((await request('GET', '/api/workers')).last_event_id).toBe('1-0')
    expect(fetch).not.toHaveBeenCalled()

    expect((await request('GET', '/api/workers')).last_event_id).toBe('2-0')
    expect(fetch).toHaveBeenCalledTimes(1)
  })

  it('leaves them to plain GETs of the same path', async () => {
    vi.stubGlobal('earlyRequests', {
      '/api/workers': Promise.resolve(answer(200, { workers: [], last_event_id: '1-0' })),
    })
    const fetch = vi.fn(async () => answer(202, { job_id: 'j1' }))
    vi.stubGlobal('fetch', fetch)

    await request('POST', '/api/workers', { body: { name: 'edge' } })
    await request('GET', '/api/workers', { query: { status: 'running' } })

    expect(fetch).toHaveBeenCalledTimes(2)
    expect(Object.keys(globalThis.earlyRequests)).toEqual(['/api/workers'])
  })

  it('reports a failed early request as the server being out of reach', async () => {
    vi.stubGlobal('earlyRequests', { '/api/auth/me': Promise.reject(new TypeError('offline')) })

    const error = await request('GET', '/api/auth/me').catch((e) => e)

    expect(error).toBeInstanceOf(ApiError)
    expect(error.status).toBe(0)
  })

  it('forgets those nobody took once the page has loaded', async () => {
    vi.stubGlobal('earlyRequests', {
      '/api/workers': Promise.resolve(answer(401, { error: 'unauthorized', message: 'Sign in.' })),
    })
    const fetch = vi.fn(async () => answer(200, { workers: [], last_event_id: '2-0' }))
    vi.stubGlobal('fetch', fetch)

    dropEarlyRequests()

    expect((await request('GET', '/api/workers')).last_event_id).toBe('2-0')
  })
})
