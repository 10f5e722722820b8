// The one place that talks HTTP: JSON in and out, the session cookie, the CSRF header on
// every mutating request, and the API's error body turned into an ApiError whose message
// can be shown as it is.

const MUTATING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

let csrfToken = null
let unauthorizedHandler = null

export class ApiError extends Error {
  constructor(status, body = null, retryAfter = null) {
    super(body?.message || fallbackMessage(status))
    this.name = 'ApiError'
    this.status = status
    this.code = body?.error ?? null
    this.details = body?.details ?? null
    this.retryAfter = retryAfter
  }
}

export function setCsrfToken(token) {
  csrfToken = token || null
}

/** Called on any 401 except from requests made with `quietUnauthorized`. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler
}

export async function request(method, path, options = {}) {
  const { body, query, signal, quietUnauthorized = false } = options
  const headers = { Accept: 'application/json' }

  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (MUTATING_METHODS.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken

  let response
  try {
    response = await (takeEarlyRequest(method, path, query) ??
      fetch(withQuery(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        signal,
      }))
  } catch (error) {
    if (error?.name === 'AbortError') throw error
    throw new ApiError(0, {
      error: 'network',
      message: 'The server could not be reached. Check the connection and try again.',
    })
  }

  const data = await readBody(response)
  if (response.ok) return data

  if (response.status === 401 && !quietUnauthorized) unauthorizedHandler?.()
  throw new ApiError(response.status, data, retryAfterSeconds(response))
}

/**
 * The response to a GET that index.html sent before this code had loaded, if there is one
 * for this path: it is handed out once, so any later request asks the server afresh.
 */
function takeEarlyRequest(method, path, query) {
  const early = globalThis.earlyRequests
  if (method !== 'GET' || query || !early?.[path]) return null

  const response = early[path]
  delete early[path]
  return response
}

/**
 * Forgets the early responses nobody took while the page loaded: answered before sign-in,
 * they would be stale or a 401 by the time anything asked for them.
 */
export function dropEarlyRequests() {
  delete globalThis.earlyRequests
}

export const api = {
  get: (path, options) => request('GET', path, options),
  post: (path, body, options) => request('POST', path, { ...options, body }),
  put: (path, body, options) => request('PUT', path, { ...options, body }),
  delete: (path, options) => request('DELETE', path, options),
}

export function withQuery(path, query) {
  if (!query) return path

  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value))
  }
  const text = params.toString()
  return text ? `${path}?${text}` : path
}

async function readBody(response) {
  if (response.status === 204) return null

  const text = await response.text()
  if (!text) return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

function retryAfterSeconds(response) {
  const header = response.headers.get('Retry-After')
  if (!header) return null

  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds))

  const date = Date.parse(header)
  if (Number.isNaN(date)) return null
  return Math.max(0, Math.ceil((date - Date.now()) / 1000))
}

function fallbackMessage(status) {
  if (status === 401) return 'Please sign in again.'
  if (status === 403) return 'You are not allowed to do that.'
  if (status === 404) return 'Not found.'
  if (status === 429) return 'Too many requests. Wait a moment and try again.'
  if (status >= 500) return `The server failed to answer (HTTP ${status}).`
  return `The request failed (HTTP ${status}).`
}
