import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'

import * as workersApi from '@/api/workers'
import { summarizeFleet } from '@/lib/fleetQuery'
import { emptyFleet, fleetFromSnapshot, reduceFleet, withLabs, withWorker } from './fleetReducer'

/**
 * Every worker and the labs loaded so far. The whole state is one immutable value swapped
 * on each change (see fleetReducer.js), held in a shallowRef so that Vue tracks the swap
 * and not every field of every worker.
 */
export const useFleetStore = defineStore('fleet', () => {
  const state = shallowRef(emptyFleet())
  const loaded = ref(false)
  const loadError = ref(null)

  const workers = computed(() => state.value.workers)
  const workerList = computed(() => Object.values(state.value.workers))
  const lastEventId = computed(() => state.value.lastEventId)
  const stale = computed(() => state.value.stale)
  const summary = computed(() => summarizeFleet(workerList.value))
  const regions = computed(() =>
    [...new Set(workerList.value.map((worker) => worker.region).filter(Boolean))].sort(),
  )

  const workerById = (id) => state.value.workers[id] ?? null
  const labsFor = (id) => state.value.labs[id] ?? null

  // GET /api/workers started ahead of `load`, which takes its answer if it got one.
  let prefetched = null

  /**
   * Starts loading the fleet before anything asks for it, e.g. while the session is still
   * being checked on page load, so that the two requests overlap. Quiet on failure: `load`
   * then asks again and reports what goes wrong.
   */
  function prefetch() {
    prefetched ??= listQuietly()
  }

  async function listQuietly() {
    try {
      return await workersApi.listWorkers({ quietUnauthorized: true })
    } catch {
      return null
    }
  }

  async function load() {
    const early = prefetched
    prefetched = null
    try {
      const snapshot = (await early) ?? (await workersApi.listWorkers())
      state.value = fleetFromSnapshot(snapshot, state.value)
      loaded.value = true
      loadError.value = null
    } catch (error) {
      loadError.value = error.message
      throw error
    }
  }

  function applyEvent(event) {
    state.value = reduceFleet(state.value, event)
  }

  async function loadLabs(id) {
    const before = state.value.labs[id]
    const { labs } = await workersApi.listLabs(id)
    // A worker.labs.updated that arrived meanwhile is newer than this answer: keep it.
    if (state.value.labs[id] !== before) return
    state.value = withLabs(state.value, id, labs ?? [])
  }

  async function launchWorker(payload) {
    const { worker } = await workersApi.launchWorker(payload)
    if (worker?.id) state.value = withWorker(state.value, worker)
    return worker
  }

  async function importInstances(payload) {
    const result = await workersApi.importInstances(payload)
    for (const item of Array.isArray(result?.imported) ? result.imported : []) {
      if (item?.id && item.status) state.value = withWorker(state.value, item)
    }
    return result
  }

  function reset() {
    prefetched = null
    state.value = emptyFleet()
    loaded.value = false
    loadError.value = null
  }

  return {
    state,
    loaded,
    loadError,
    workers,
    workerList,
    lastEventId,
    stale,
    summary,
    regions,
    workerById,
    labsFor,
    prefetch,
    load,
    applyEvent,
    loadLabs,
    launchWorker,
    importInstances,
    reset,
  }
})
