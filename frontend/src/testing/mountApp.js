// Mounts a component with real Pinia stores, an in-memory router and a signed-in user.

import { mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory } from 'vue-router'

import { createAppRouter } from '@/router'
import { useAuthStore } from '@/stores/auth'

export async function mountAs(component, { role = 'admin', route = '/', props = {} } = {}) {
  const pinia = createPinia()
  setActivePinia(pinia)
  const auth = useAuthStore()
  auth.user = { username: role, role }
  auth.checked = true

  const router = createAppRouter(createMemoryHistory())
  router.push(route)
  await router.isReady()

  const wrapper = mount(component, {
    props,
    attachTo: document.body,
    global: { plugins: [pinia, router] },
  })
  return { wrapper, router, pinia }
}
