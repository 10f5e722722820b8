import { useRouter } from 'vue-router'

const detailsOf = (id) => ({ name: 'worker', params: { id } })

// The path of the `worker` route, built by hand: `router.resolve` for each of hundreds of
// cards is a noticeable part of drawing them. WorkerGrid.spec.js checks the two agree.
const detailsPath = (id) => `/workers/${encodeURIComponent(id)}`

// A click the browser should handle itself: new tab or window, download, or not the main
// button. The same test RouterLink makes.
const handledByBrowser = (event) =>
  event.defaultPrevented ||
  event.metaKey ||
  event.ctrlKey ||
  event.shiftKey ||
  event.altKey ||
  (event.button !== undefined && event.button !== 0)

/**
 * Links from a worker's name to its details, for lists of hundreds of workers: a plain
 * `<a :href @click>` instead of RouterLink, which keeps four computeds per link and
 * re-checks them all on every navigation.
 */
export function useWorkerLink() {
  const router = useRouter()

  return {
    href: (id) => router.options.history.createHref(detailsPath(id)),
    open(event, id) {
      if (handledByBrowser(event)) return
      event.preventDefault()
      router.push(detailsOf(id))
    },
  }
}
