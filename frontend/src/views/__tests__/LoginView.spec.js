import { enableAutoUnmount, flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryHistory } from 'vue-router'

import * as authApi from '@/api/auth'
import { ApiError } from '@/api/client'
import * as workersApi from '@/api/workers'
import App from '@/App.vue'
import { createAppRouter } from '@/router'

vi.mock('@/api/auth')
vi.mock('@/api/workers')

async function mountSignedOut(route) {
  const pinia = createPinia()
  setActivePinia(pinia)
  const router = createAppRouter(createMemoryHistory())
  router.push(route)
  await router.isReady()
  const wrapper = mount(App, { global: { plugins: [pinia, router] } })
  return { wrapper, router }
}

async function signIn(wrapper, username = 'admin', password = 'secret') {
  await wrapper.find('input[name="username"]').setValue(username)
  await wrapper.find('input[name="password"]').setValue(password)
  await wrapper.find('form').trigger('submit')
  await flushPromises()
}

describe('LoginView', () => {
  beforeEach(() => {
    authApi.fetchMe.mockRejectedValue(new ApiError(401, { message: 'Sign in.' }))
  })

  enableAutoUnmount(afterEach)

  it('sends a visitor who is not signed in to the sign-in page', async () => {
    const { router } = await mountSignedOut('/workers/w1')
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.redirect).toBe('/workers/w1')
  })

  it('says so when the credentials are wrong', async () => {
    authApi.login.mockRejectedValue(new ApiError(401, { message: 'Invalid credentials.' }))
    const { wrapper } = await mountSignedOut('/login')

    await signIn(wrapper)

    expect(wrapper.find('[role="alert"]').text()).toBe('Wrong username or password.')
    expect(wrapper.find('input[name="password"]').element.value).toBe('')
  })

  it('counts down the Retry-After seconds when rate limited', async () => {
    authApi.login.mockRejectedValue(
      new ApiError(429, { error: 'rate_limited', message: 'Too many attempts.' }, 30),
    )
    const { wrapper } = await mountSignedOut('/login')

    await signIn(wrapper)

    expect(wrapper.find('[role="alert"]').text()).toBe(
      'Too many sign-in attempts. Try again in 30 s.',
    )
    const submit = wrapper.find('button[type="submit"]')
    expect(submit.text()).toBe('Sign in')
    expect(submit.attributes('disabled')).toBeDefined()
  })

  it('goes where the visitor was headed once signed in', async () => {
    authApi.login.mockResolvedValue({ user: { username: 'ann', role: 'user' }, csrf_token: 't' })
    const { wrapper, router } = await mountSignedOut('/login?redirect=/workers/w1')
    vi.stubGlobal(
      'EventSource',
      class {
        addEventListener() {}
        close() {}
      },
    )

    await signIn(wrapper, 'ann', 'pw')

    expect(authApi.login).toHaveBeenCalledWith('ann', 'pw')
    expect(router.currentRoute.value.fullPath).toBe('/workers/w1')
  })

  it('loads the fleet afresh once signed in, not from before', async () => {
    authApi.login.mockResolvedValue({ user: { username: 'ann', role: 'user' }, csrf_token: 't' })
    workersApi.listWorkers.mockResolvedValue({ workers: [], last_event_id: '1-0' })
    const { wrapper } = await mountSignedOut('/')
    vi.stubGlobal(
      'EventSource',
      class {
        addEventListener() {}
        close() {}
      },
    )
    expect(workersApi.listWorkers).toHaveBeenCalledTimes(1)

    await signIn(wrapper, 'ann', 'pw')

    expect(workersApi.listWorkers).toHaveBeenCalledTimes(2)
    expect(workersApi.listWorkers).toHaveBeenLastCalledWith()
  })

  it('shows the API message for other failures', async () => {
    authApi.login.mockRejectedValue(new ApiError(503, { message: 'Redis is down.' }))
    const { wrapper } = await mountSignedOut('/login')
    await signIn(wrapper)
    expect(wrapper.find('[role="alert"]').text()).toBe('Redis is down.')
  })
})
