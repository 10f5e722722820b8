import { computed, nextTick, onBeforeUnmount, onMounted, ref } from 'vue'

// Open modal layers, innermost last. Only the innermost takes keyboard input; the app
// behind any of them is made inert (see App.vue).
const layers = ref([])
let nextLayer = 1

export const anyModalOpen = computed(() => layers.value.length > 0)

const FOCUSABLE = [
  'a[href]',
  'button:not([disabled])',
  'input:not([disabled]):not([type="hidden"])',
  'select:not([disabled])',
  'textarea:not([disabled])',
  '[tabindex]:not([tabindex="-1"])',
].join(',')

function focusables(panel) {
  return [...panel.querySelectorAll(FOCUSABLE)].filter(
    (element) => !element.closest('[inert]') && !element.closest('[hidden]'),
  )
}

/**
 * Makes `panel` (a template ref) a modal layer: focus moves into it when it opens
 * (to the element marked `data-autofocus`, else the panel), Tab and Shift+Tab cycle inside
 * it, Escape calls `onClose`, and focus goes back where it was when it closes.
 */
export function useModalLayer(panel, onClose) {
  const id = nextLayer++
  let returnFocusTo = null

  const isTop = computed(() => layers.value.at(-1) === id)

  onMounted(() => {
    returnFocusTo = document.activeElement
    layers.value = [...layers.value, id]
    document.body.classList.add('has-modal')
    nextTick(() => {
      const target = panel.value?.querySelector('[data-autofocus]') ?? panel.value
      target?.focus()
    })
  })

  onBeforeUnmount(() => {
    layers.value = layers.value.filter((layer) => layer !== id)
    if (layers.value.length === 0) document.body.classList.remove('has-modal')
    // After the next render, when whatever this layer made inert is focusable again.
    const target = returnFocusTo
    nextTick(() => {
      if (target?.isConnected) target.focus()
    })
  })

  function onKeydown(event) {
    if (!isTop.value) return

    if (event.key === 'Escape') {
      event.stopPropagation()
      event.preventDefault()
      onClose()
      return
    }
    if (event.key !== 'Tab') return

    const items = focusables(panel.value)
    if (items.length === 0) {
      event.preventDefault()
      panel.value.focus()
      return
    }
    const first = items[0]
    const last = items.at(-1)
    const active = document.activeElement
    if (event.shiftKey && (active === first || active === panel.value)) {
      event.preventDefault()
      last.focus()
    } else if (!event.shiftKey && active === last) {
      event.preventDefault()
      first.focus()
    }
  }

  return { isTop, onKeydown }
}
