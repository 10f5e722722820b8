// What a worker's fields mean to a person: which utilisation figure to trust, when the
// worker was last read, what its licence looks like.

import { formatPercent, humanize, isNumber, parseTime } from './format'

export const SOURCE_TIME_FIELDS = ['ec2_checked_at', 'cloudwatch_collected_at', 'cml_synced_at']

const NO_READING = Object.freeze({ value: null, source: null })

/** CloudWatch when it has a figure, else what CML reports about itself. */
export function cpuReading(worker) {
  if (isNumber(worker?.cloudwatch_cpu_utilization)) {
    return { value: worker.cloudwatch_cpu_utilization, source: 'CloudWatch' }
  }
  if (isNumber(worker?.cml_cpu_utilization)) {
    return { value: worker.cml_cpu_utilization, source: 'CML' }
  }
  return NO_READING
}

/** CloudWatch memory needs its agent on the instance; without it, CML's used/total. */
export function memoryReading(worker) {
  if (isNumber(worker?.cloudwatch_memory_utilization)) {
    return { value: worker.cloudwatch_memory_utilization, source: 'CloudWatch' }
  }
  const used = worker?.cml_memory_used
  const total = worker?.cml_memory_total
  if (isNumber(used) && isNumber(total) && total > 0) {
    return { value: (100 * used) / total, source: 'CML' }
  }
  return NO_READING
}

/**
 * How a usage bar shows a reading: the fill's width, the figure with its source, and a
 * level that changes the fill's pattern as well as its colour. Null without a figure.
 */
export function usageMeter(reading) {
  const { value, source } = reading
  if (!isNumber(value)) return null

  const width = Math.min(100, Math.max(0, value))
  const percent = formatPercent(value)
  return {
    width,
    percent,
    source,
    now: Math.round(value),
    text: `${percent} (${source})`,
    level: width >= 90 ? 'critical' : width >= 70 ? 'high' : 'normal',
  }
}

/** The newest of the per-source read times, as an ISO string, or null. */
export function lastRefreshedAt(worker) {
  let newest = null
  let newestMs = -Infinity
  for (const field of SOURCE_TIME_FIELDS) {
    const ms = parseTime(worker?.[field])
    if (ms !== null && ms > newestMs) {
      newest = worker[field]
      newestMs = ms
    }
  }
  return newest
}

export function licenceSummary(worker) {
  if (worker?.cml_license_authorization) return humanize(worker.cml_license_authorization)
  if (worker?.cml_is_licensed === true) return 'Licensed'
  if (worker?.cml_is_licensed === false) return 'Unlicensed'
  return null
}

const ERROR_SOURCES = {
  ec2: ['ec2', 'aws'],
  cloudwatch: ['cloudwatch'],
  cml: ['cml'],
}

/** `last_error` when it belongs to the given section (ec2, cloudwatch or cml). */
export function errorFor(worker, section) {
  const error = worker?.last_error
  if (!error) return null

  const source = String(error.source ?? '').toLowerCase()
  return ERROR_SOURCES[section].some((name) => source.startsWith(name)) ? error : null
}

/** `last_error` when no section claims it, so it is still shown somewhere. */
export function unplacedError(worker) {
  const error = worker?.last_error
  if (!error) return null
  return Object.keys(ERROR_SOURCES).some((section) => errorFor(worker, section)) ? null : error
}

export const isTerminated = (worker) => worker?.status === 'terminated'
