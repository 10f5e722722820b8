import { defineStore } from 'pinia'
import { computed, ref, watch } from 'vue'

import { filterWorkers, sortWorkers } from '@/lib/fleetQuery'
import { useFleetStore } from './fleet'

const LAYOUT_KEY = 'cmlfleet.layout'

function savedLayout() {
  try {
    return localStorage.getItem(LAYOUT_KEY) === 'table' ? 'table' : 'cards'
  } catch {
    return 'cards'
  }
}

/** How the dashboard shows the fleet: filters, search, sort order, cards or table. */
export const useFleetViewStore = defineStore('fleetView', () => {
  const fleet = useFleetStore()

  const layout = ref(savedLayout())
  const status = ref('')
  const region = ref('')
  const search = ref('')
  const sortKey = ref('name')
  const sortDirection = ref('asc')

  const filtered = computed(() =>
    filterWorkers(fleet.workerList, {
      status: status.value,
      region: region.value,
      search: search.value,
    }),
  )
  const visibleWorkers = computed(() =>
    sortWorkers(filtered.value, sortKey.value, sortDirection.value),
  )
  const isFiltered = computed(() => Boolean(status.value || region.value || search.value.trim()))

  /** Sorting by the current column again flips the direction. */
  function sortBy(key) {
    if (sortKey.value === key) {
      sortDirection.value = sortDirection.value === 'asc' ? 'desc' : 'asc'
      return
    }
    sortKey.value = key
    sortDirection.value = 'asc'
  }

  function clearFilters() {
    status.value = ''
    region.value = ''
    search.value = ''
  }

  watch(layout, (value) => {
    try {
      localStorage.setItem(LAYOUT_KEY, value)
    } catch {
      // Private windows may refuse storage; the layout then lasts for this page only.
    }
  })

  return {
    layout,
    status,
    region,
    search,
    sortKey,
    sortDirection,
    visibleWorkers,
    isFiltered,
    sortBy,
    clearFilters,
  }
})
