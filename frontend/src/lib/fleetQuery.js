// Filtering, sorting and summing the fleet: pure functions over lists of workers.

import { parseTime } from './format'
import { cpuReading, lastRefreshedAt, memoryReading } from './readings'
import { WORKER_STATUSES } from './status'

const SEARCH_FIELDS = ['name', 'id', 'aws_instance_id', 'public_ip', 'private_ip']

export function matchesSearch(worker, search) {
  const needle = search.trim().toLowerCase()
  if (!needle) return true
  return SEARCH_FIELDS.some((field) =>
    String(worker[field] ?? '')
      .toLowerCase()
      .includes(needle),
  )
}

export function filterWorkers(workers, { status = '', region = '', search = '' } = {}) {
  return workers.filter(
    (worker) =>
      (!status || worker.status === status) &&
      (!region || worker.region === region) &&
      matchesSearch(worker, search),
  )
}

const statusRank = (worker) => {
  const rank = WORKER_STATUSES.indexOf(worker.status)
  return rank === -1 ? WORKER_STATUSES.length : rank
}

/** Sortable columns: the key is what the table header and the store use. */
export const SORT_FIELDS = {
  name: (worker) => worker.name?.toLowerCase() ?? null,
  region: (worker) => worker.region ?? null,
  status: statusRank,
  cpu: (worker) => cpuReading(worker).value,
  memory: (worker) => memoryReading(worker).value,
  labs: (worker) => worker.cml_labs_count ?? null,
  nodes: (worker) => worker.cml_nodes_running ?? null,
  refreshed: (worker) => parseTime(lastRefreshedAt(worker)),
}

/** The orders offered beside the cards (the table sorts by its column headers). */
export const SORT_CHOICES = [
  { key: 'name', label: 'Name' },
  { key: 'status', label: 'Status' },
  { key: 'region', label: 'Region' },
  { key: 'cpu', label: 'CPU' },
  { key: 'memory', label: 'Memory' },
  { key: 'labs', label: 'Labs' },
  { key: 'nodes', label: 'Running nodes' },
  { key: 'refreshed', label: 'Last refreshed' },
]

const compareValues = (a, b) => (a < b ? -1 : a > b ? 1 : 0)

/** Sorts a copy; absent values go last in either direction, ties fall back to the name. */
export function sortWorkers(workers, key = 'name', direction = 'asc') {
  const valueOf = SORT_FIELDS[key] ?? SORT_FIELDS.name
  const sign = direction === 'desc' ? -1 : 1

  return workers
    .map((worker) => ({ worker, value: valueOf(worker) }))
    .sort((a, b) => {
      const aMissing = a.value === null || a.value === undefined
      const bMissing = b.value === null || b.value === undefined
      if (aMissing !== bMissing) return aMissing ? 1 : -1
      const byValue = aMissing ? 0 : sign * compareValues(a.value, b.value)
      return (
        byValue ||
        compareValues(SORT_FIELDS.name(a.worker) ?? '', SORT_FIELDS.name(b.worker) ?? '') ||
        compareValues(String(a.worker.id), String(b.worker.id))
      )
    })
    .map(({ worker }) => worker)
}

const sum = (workers, field) =>
  workers.reduce((total, worker) => total + (Number(worker[field]) || 0), 0)

/** Counts by status cover every worker; labs, nodes and CPUs only those not terminated. */
export function summarizeFleet(workers) {
  const byStatus = {}
  for (const worker of workers) {
    const status = worker.status ?? 'unknown'
    byStatus[status] = (byStatus[status] ?? 0) + 1
  }
  const live = workers.filter((worker) => worker.status !== 'terminated')

  return {
    total: workers.length,
    byStatus,
    labs: sum(live, 'cml_labs_count'),
    nodesRunning: sum(live, 'cml_nodes_running'),
    allocatedCpus: sum(live, 'cml_allocated_cpus'),
  }
}
