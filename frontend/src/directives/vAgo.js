import { formatAgo, formatDateTime, parseTime } from '@/lib/format'

const TICK_MS = 1000

// One timer for every "x s ago" on the page, running only while one is shown. Each tick
// works out every text and writes only those that changed (with formatAgo's steps, a few
// times a minute). The text goes straight into the element, so no component re-renders
// as the clock moves, which on a dashboard of hundreds of cards would add up.
const shown = new Map()
let timer = null

function tick() {
  const now = Date.now()
  for (const [element, time] of shown) write(element, time, now)
}

function write(element, time, now) {
  const text = formatAgo(time.ms, now)
  if (text === time.text) return
  time.text = text
  element.textContent = text
}

function follow(element, value) {
  element.dateTime = value
  element.title = formatDateTime(value)
  const time = { ms: parseTime(value), text: null }
  shown.set(element, time)
  write(element, time, Date.now())
  timer ??= setInterval(tick, TICK_MS)
}

/**
 * `<time v-ago="iso" />`: the element shows how long ago that was, e.g. "20 s ago", and
 * follows the clock; the exact time is its `datetime` and its title. The element must have
 * no content or attributes of those names of its own.
 */
export const vAgo = {
  beforeMount(element, { value }) {
    follow(element, value)
  },
  updated(element, { value, oldValue }) {
    if (value !== oldValue) follow(element, value)
  },
  beforeUnmount(element) {
    shown.delete(element)
    if (shown.size > 0) return
    clearInterval(timer)
    timer = null
  },
}
