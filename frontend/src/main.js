import './assets/main.css'

import { createPinia } from 'pinia'
import { createApp } from 'vue'

import { dropEarlyRequests, onUnauthorized } from './api/client'
import App from './App.vue'
import { createAppRouter } from './router'
import { useAuthStore } from './stores/auth'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia)

const router = createAppRouter()

// A 401 from any call after sign-in means the session ended: back to the sign-in page,
// returning to where the person was once they sign in again.
onUnauthorized(() => {
  const auth = useAuthStore(pinia)
  if (!auth.signedIn) return
  auth.forget({ expired: true })
  const redirect = router.currentRoute.value.fullPath
  router.replace({ name: 'login', query: redirect === '/' ? {} : { redirect } })
})

app.use(router)
app.mount('#app')
// The first route's guard has taken the answers index.html asked for ahead of the app.
router.isReady().then(dropEarlyRequests, dropEarlyRequests)
