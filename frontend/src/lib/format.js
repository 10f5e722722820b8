// Turning API values into short text. Every function answers '—' for a value that is absent,
// so templates need no guards of their own.

export const EMPTY = '—'

export const isNumber = (value) => typeof value === 'number' && Number.isFinite(value)

// Built on first use, then kept: building a formatter is slow (the first one on a page also
// loads the locale's data, tens of milliseconds), and `toLocaleString` with a locale or
// options builds a new one on every call.
let numberFormat = null
let dateTimeFormat = null

export function formatPercent(value) {
  if (!isNumber(value)) return EMPTY
  return `${value < 10 ? value.toFixed(1) : Math.round(value)}%`
}

export function formatNumber(value) {
  if (!isNumber(value)) return EMPTY
  // Whole numbers, which are all a card shows, are grouped by hand ('1,234'): far cheaper
  // than the formatter, which the dashboard then never needs.
  if (Number.isSafeInteger(value)) return String(value).replace(/\B(?=(\d{3})+$)/g, ',')

  numberFormat ??= new Intl.NumberFormat('en')
  return numberFormat.format(value)
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

export function formatBytes(bytes) {
  if (!isNumber(bytes)) return EMPTY

  let value = bytes
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024
    unit += 1
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`
}

export function parseTime(value) {
  if (!value) return null
  const ms = typeof value === 'number' ? value : Date.parse(value)
  return Number.isNaN(ms) ? null : ms
}

// The text of each second formatted so far: the exact times are shown to the second, and one
// refresh stamps hundreds of workers within a few seconds.
const dateTimeTexts = new Map()
const DATE_TIME_TEXTS_KEPT = 1000

export function formatDateTime(value) {
  const ms = parseTime(value)
  if (ms === null) return EMPTY

  const second = Math.floor(ms / 1000)
  let text = dateTimeTexts.get(second)
  if (text === undefined) {
    if (dateTimeTexts.size >= DATE_TIME_TEXTS_KEPT) dateTimeTexts.clear()
    dateTimeFormat ??= new Intl.DateTimeFormat(undefined, {
      dateStyle: 'medium',
      timeStyle: 'medium',
    })
    text = dateTimeFormat.format(second * 1000)
    dateTimeTexts.set(second, text)
  }
  return text
}

// Under a minute the age is shown in steps of this many seconds, so that a page full of
// times changes its text a few times a minute rather than every second.
export const AGO_SECONDS_STEP = 10

/**
 * "just now", "20 s ago", "5 min ago", "3 h ago", "2 d ago"; clock skew never shows as the
 * future. `value` is an ISO string or milliseconds since the epoch.
 */
export function formatAgo(value, now = Date.now()) {
  const ms = parseTime(value)
  if (ms === null) return 'never'

  const seconds = Math.max(0, Math.floor((now - ms) / 1000))
  if (seconds < AGO_SECONDS_STEP) return 'just now'
  if (seconds < 60) return `${seconds - (seconds % AGO_SECONDS_STEP)} s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`
  return `${Math.floor(seconds / 86400)} d ago`
}

export function formatSeconds(seconds) {
  if (!isNumber(seconds)) return EMPTY
  if (seconds % 3600 === 0 && seconds >= 3600) return `${seconds / 3600} h`
  if (seconds % 60 === 0 && seconds >= 60) return `${seconds / 60} min`
  return `${seconds} s`
}

/** 'IN_COMPLIANCE' -> 'In compliance', 'shutting-down' -> 'Shutting down'. */
export function humanize(value) {
  if (value === null || value === undefined || value === '') return EMPTY
  const words = String(value).replace(/[_-]+/g, ' ').trim().toLowerCase()
  return words.charAt(0).toUpperCase() + words.slice(1)
}

export function formatYesNo(value) {
  if (value === true) return 'Yes'
  if (value === false) return 'No'
  return EMPTY
}

export function errorText(error) {
  if (!error) return ''
  if (typeof error === 'string') return error
  return error.message || error.description || JSON.stringify(error)
}
