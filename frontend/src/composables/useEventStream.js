import { onBeforeUnmount, onMounted } from 'vue'

import { eventsUrl } from '@/api/workers'
import { EVENT_TYPES } from '@/lib/events'
import { useAuthStore } from '@/stores/auth'
import { useConnectionStore } from '@/stores/connection'
import { toastForEvent } from '@/stores/eventToasts'
import { useFleetStore } from '@/stores/fleet'
import { useJobsStore } from '@/stores/jobs'
import { useToastsStore } from '@/stores/toasts'

export const RECONNECT_BASE_MS = 1000
export const RECONNECT_MAX_MS = 30000
// From this many failed attempts on, each retry first asks whether the session still
// holds, so an expired session ends on the sign-in page instead of retrying for ever.
const VERIFY_SESSION_AFTER = 2

/** Exponential backoff with ±20 % jitter, so that many tabs do not reconnect in step. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempt)
  return Math.min(RECONNECT_MAX_MS, Math.round(base * (0.8 + 0.4 * random())))
}

/**
 * The one owner of the EventSource. It loads the fleet, subscribes from the snapshot's
 * `last_event_id` so that nothing falls between the two, and feeds every event to the
 * stores. On any error it closes the EventSource (which would give up for good after an
 * HTTP error, and would otherwise retry with a stale `lastEventId` in its URL) and opens a
 * new one after a backoff, resuming from the last event seen. `resync` reloads the fleet.
 */
export function createEventStream({ fleet, jobs, toasts, connection, verifySession, random }) {
  let source = null
  let timer = null
  let attempt = 0
  let connectedOnce = false
  let running = false
  let generation = 0

  async function start() {
    if (running) return
    running = true
    connection.setStatus('connecting')
    await loadAndOpen()
  }

  function stop() {
    running = false
    generation += 1
    closeSource()
    clearTimeout(timer)
    timer = null
    attempt = 0
    connectedOnce = false
    connection.setStatus('idle')
  }

  async function loadAndOpen() {
    const current = ++generation
    try {
      await fleet.load()
    } catch (error) {
      if (current !== generation || !running) return
      if (error?.status === 401) return stop()
      return scheduleRetry()
    }
    if (current === generation && running) open()
  }

  function open() {
    closeSource()
    const eventSource = new EventSource(eventsUrl(fleet.lastEventId))
    source = eventSource

    eventSource.onopen = () => {
      if (source !== eventSource) return
      attempt = 0
      connectedOnce = true
      connection.setStatus('live')
    }
    eventSource.onerror = () => {
      if (source !== eventSource) return
      closeSource()
      scheduleRetry()
    }
    for (const type of EVENT_TYPES) {
      eventSource.addEventListener(type, (message) => {
        if (source === eventSource) receive(message)
      })
    }
  }

  function closeSource() {
    if (!source) return
    source.onopen = null
    source.onerror = null
    source.close()
    source = null
  }

  function scheduleRetry() {
    if (!running) return
    const delay = backoffDelay(attempt, random)
    attempt += 1
    // Before the first connection has worked the indicator stays quiet ("Connecting…").
    connection.setStatus(connectedOnce ? 'reconnecting' : 'connecting')
    clearTimeout(timer)
    timer = setTimeout(retry, delay)
  }

  async function retry() {
    timer = null
    const current = generation
    if (attempt >= VERIFY_SESSION_AFTER && verifySession) {
      const valid = await verifySession()
      if (current !== generation || !running) return
      if (!valid) return stop()
    }
    if (fleet.loaded) open()
    else await loadAndOpen()
  }

  function receive(message) {
    let event
    try {
      event = JSON.parse(message.data)
    } catch {
      return
    }
    if (!event || typeof event !== 'object') return
    event.type ??= message.type
    if ((event.id === undefined || event.id === null) && message.lastEventId) {
      event.id = message.lastEventId
    }
    dispatch(event)
  }

  function dispatch(event) {
    fleet.applyEvent(event)
    if (event.type === 'resync') {
      closeSource()
      loadAndOpen()
      return
    }
    jobs.handleEvent(event)
    const toast = toastForEvent(event, fleet.workerById(event.worker_id))
    if (toast) toasts.push(toast)
  }

  return { start, stop }
}

/** Subscribes the calling component's lifetime to the event stream. */
export function useEventStream() {
  const auth = useAuthStore()
  const stream = createEventStream({
    fleet: useFleetStore(),
    jobs: useJobsStore(),
    toasts: useToastsStore(),
    connection: useConnectionStore(),
    verifySession: () => auth.verify(),
  })

  onMounted(stream.start)
  onBeforeUnmount(stream.stop)
  return stream
}
