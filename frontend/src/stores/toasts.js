import { defineStore } from 'pinia'
import { ref } from 'vue'

export const TOAST_FADE_MS = 6000
const MAX_FADING_TOASTS = 4

/** Notifications: errors stay until dismissed, the rest fade after a few seconds. */
export const useToastsStore = defineStore('toasts', () => {
  const toasts = ref([])
  const timers = new Map()
  let nextId = 1

  function push({ kind = 'info', message, title = '' }) {
    const same = toasts.value.find((toast) => toast.message === message && toast.kind === kind)
    if (same) return same.id

    const id = nextId++
    toasts.value = [...toasts.value, { id, kind, title, message }]

    if (kind !== 'error') {
      timers.set(
        id,
        setTimeout(() => dismiss(id), TOAST_FADE_MS),
      )
      const fading = toasts.value.filter((toast) => toast.kind !== 'error')
      if (fading.length > MAX_FADING_TOASTS) dismiss(fading[0].id)
    }
    return id
  }

  function dismiss(id) {
    clearTimeout(timers.get(id))
    timers.delete(id)
    toasts.value = toasts.value.filter((toast) => toast.id !== id)
  }

  function clear() {
    for (const timer of timers.values()) clearTimeout(timer)
    timers.clear()
    toasts.value = []
  }

  const error = (message, title) => push({ kind: 'error', message, title })
  const info = (message, title) => push({ kind: 'info', message, title })
  const success = (message, title) => push({ kind: 'success', message, title })

  return { toasts, push, dismiss, clear, error, info, success }
})
