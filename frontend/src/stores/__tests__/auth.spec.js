import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'

import * as authApi from '@/api/auth'
import { ApiError, request } from '@/api/client'
import { makeEvent, makeWorker } from '@/testing/fixtures'
import { useAuthStore } from '../auth'
import { useFleetStore } from '../fleet'

vi.mock('@/api/auth')

describe('auth store', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
  })

  it('signs in, and mutating requests then carry the CSRF token', async () => {
    authApi.login.mockResolvedValue({ user: { username: 'ann', role: 'admin' }, csrf_token: 'c1' })
    const fetch = vi.fn(async () => new Response(null, { status: 204 }))
    vi.stubGlobal('fetch', fetch)
    const auth = useAuthStore()

    await auth.login('ann', 'pw')
    await request('PUT', '/api/workers/w1/monitoring', { body: { enabled: true } })

    expect(auth.isAdmin).toBe(true)
    expect(fetch.mock.calls[0][1].headers['X-CSRF-Token']).toBe('c1')
  })

  it('takes a 401 from /me as signed out, and keeps other failures to show', async () => {
    const auth = useAuthStore()

    authApi.fetchMe.mockRejectedValueOnce(new ApiError(401, { message: 'Sign in.' }))
    expect(await auth.check()).toBe(false)
    expect(auth.checkError).toBeNull()

    authApi.fetchMe.mockRejectedValueOnce(new ApiError(503, { message: 'Redis is down.' }))
    expect(await auth.check()).toBe(false)
    expect(auth.checkError).toBe('Redis is down.')
  })

  it('forgets the fleet on sign-out, so the next person sees only their own', async () => {
    authApi.logout.mockResolvedValue(null)
    const fleet = useFleetStore()
    const worker = makeWorker({ aws_instance_id: 'i-secret' })
    fleet.applyEvent(makeEvent('worker.created', worker.id, { worker }))
    const auth = useAuthStore()
    auth.user = { username: 'root', role: 'admin' }

    await auth.logout()

    expect(auth.signedIn).toBe(false)
    expect(fleet.workerList).toEqual([])
  })

  it('explains on the sign-in page that the server ended the session', () => {
    const auth = useAuthStore()
    auth.forget({ expired: true })
    expect(auth.notice).toBe('Your session has ended. Sign in again to continue.')
  })
})
