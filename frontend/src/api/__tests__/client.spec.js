import { afterEach, describe, expect, it, vi } from 'vitest'

import { ApiError, onUnauthorized, request, setCsrfToken } from '../client'

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
