import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

/**
 * The state of the event stream, written by useEventStream only:
 * `idle` (not subscribed), `connecting` (first connection, shown quietly), `live`, or
 * `reconnecting` (a connection that worked has dropped: the banner shows).
 */
export const useConnectionStore = defineStore('connection', () => {
  const status = ref('idle')

  const isReconnecting = computed(() => status.value === 'reconnecting')

  function setStatus(next) {
    status.value = next
  }

  return { status, isReconnecting, setStatus }
})
