import { onBeforeUnmount, onMounted, readonly, ref } from 'vue'

// One clock for every "x s ago" on the page, ticking only while something shows one.
const now = ref(Date.now())
let users = 0
let timer = null

export function useNow() {
  onMounted(() => {
    users += 1
    if (timer) return
    now.value = Date.now()
    timer = setInterval(() => {
      now.value = Date.now()
    }, 1000)
  })

  onBeforeUnmount(() => {
    users -= 1
    if (users > 0) return
    clearInterval(timer)
    timer = null
  })

  return readonly(now)
}
