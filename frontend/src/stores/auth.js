import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import * as authApi from '@/api/auth'
import { setCsrfToken } from '@/api/client'
import { useFleetStore } from './fleet'
import { useJobsStore } from './jobs'
import { useToastsStore } from './toasts'

/** Who is signed in, with which role; holds the CSRF token the API client sends. */
export const useAuthStore = defineStore('auth', () => {
  const user = ref(null)
  const checked = ref(false)
  const checkError = ref(null)
  // Shown on the sign-in page after the server ended the session.
  const notice = ref(null)

  const signedIn = computed(() => user.value !== null)
  const isAdmin = computed(() => user.value?.role === 'admin')

  function accept(answer) {
    user.value = answer.user
    setCsrfToken(answer.csrf_token)
    checked.value = true
    checkError.value = null
    notice.value = null
  }

  /** Drops the session and everything loaded under it; `expired` when the server ended it. */
  function forget({ expired = false } = {}) {
    notice.value = expired ? 'Your session has ended. Sign in again to continue.' : null
    user.value = null
    setCsrfToken(null)
    checked.value = true
    useJobsStore().reset()
    useFleetStore().reset()
    useToastsStore().clear()
  }

  /** GET /api/auth/me: signed in, or not (401); any other failure is kept to be shown. */
  async function check() {
    try {
      accept(await authApi.fetchMe())
    } catch (error) {
      if (error.status !== 401) checkError.value = error.message
      user.value = null
      setCsrfToken(null)
      checked.value = true
    }
    return signedIn.value
  }

  /**
   * Whether the session still holds, for a stream that keeps failing to reconnect. A 401
   * here goes through the client's unauthorized handler, which signs the page out.
   */
  async function verify() {
    try {
      accept(await authApi.fetchMe({ quietUnauthorized: false }))
      return true
    } catch (error) {
      return error.status !== 401
    }
  }

  async function login(username, password) {
    accept(await authApi.login(username, password))
  }

  async function logout() {
    try {
      await authApi.logout()
    } finally {
      forget()
    }
  }

  return {
    user,
    checked,
    checkError,
    notice,
    signedIn,
    isAdmin,
    check,
    verify,
    login,
    logout,
    forget,
  }
})
