import { createRouter, createWebHistory } from 'vue-router'

import { useAuthStore } from '@/stores/auth'
import { useFleetStore } from '@/stores/fleet'
import DashboardView from '@/views/DashboardView.vue'
import LoginView from '@/views/LoginView.vue'
import WorkerDetailsView from '@/views/WorkerDetailsView.vue'

export const routes = [
  { path: '/login', name: 'login', component: LoginView, meta: { public: true } },
  {
    path: '/',
    name: 'dashboard',
    component: DashboardView,
    // The details modal is a child route, so the dashboard stays mounted (and subscribed)
    // beneath it and /workers/<id> can be linked to directly.
    children: [{ path: 'workers/:id', name: 'worker', component: WorkerDetailsView, props: true }],
  },
  { path: '/:pathMatch(.*)*', redirect: '/' },
]

/** The app's router; pass a memory history in tests. */
export function createAppRouter(history = createWebHistory(import.meta.env.BASE_URL)) {
  const router = createRouter({
    history,
    routes,
    scrollBehavior: (_to, _from, saved) => saved ?? false,
  })

  // GET /api/auth/me decides, once per page load, whether the visitor is signed in.
  router.beforeEach(async (to) => {
    const auth = useAuthStore()
    if (!auth.checked) {
      // Every private route shows the dashboard: ask for the fleet alongside the session
      // rather than after it, and drop the answer if the visitor is not signed in.
      const fleet = useFleetStore()
      if (!to.meta.public) fleet.prefetch()
      if (!(await auth.check())) fleet.reset()
    }

    if (to.meta.public) return auth.signedIn ? { name: 'dashboard' } : true
    if (!auth.signedIn) {
      return { name: 'login', query: to.fullPath === '/' ? {} : { redirect: to.fullPath } }
    }
    return true
  })

  return router
}
