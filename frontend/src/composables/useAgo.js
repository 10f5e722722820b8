import { computed, onBeforeUnmount, onMounted, shallowRef } from 'vue'

import { formatAgo, parseTime } from '@/lib/format'

const TICK_MS = 1000

// One timer for every "x s ago" on the page, running only while one is shown. Each tick
// works out every text and moves a time's clock on only when its text would change: with
// formatAgo's steps that is a few times a minute, and only the component showing that
// time re-renders.
const shown = new Set()
let timer = null

function tick() {
  const now = Date.now()
  for (const follow of shown) follow(now)
}

/**
 * How long ago `source()` was, as text that follows the clock, e.g. "20 s ago".
 *
 * @param {() => string | number | null} source a getter of the time, ISO string or ms
 */
export function useAgo(source) {
  const ms = computed(() => parseTime(source()))
  const now = shallowRef(Date.now())
  // `now` moves on only when the text would change. A new `source()` is measured against
  // the real clock instead of the last time `now` moved.
  const text = computed(() => formatAgo(ms.value, Math.max(now.value, Date.now())))

  const follow = (at) => {
    if (formatAgo(ms.value, at) !== text.value) now.value = at
  }

  onMounted(() => {
    shown.add(follow)
    timer ??= setInterval(tick, TICK_MS)
  })

  onBeforeUnmount(() => {
    shown.delete(follow)
    if (shown.size > 0) return
    clearInterval(timer)
    timer = null
  })

  return text
}
