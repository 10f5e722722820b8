// Shared test doubles: worker and event builders, and an EventSource driven by the test.

let sequence = 0

export function makeWorker(overrides = {}) {
  sequence += 1
  return {
    id: `w${sequence}`,
    name: `worker-${sequence}`,
    region: 'us-east-1',
    status: 'running',
    instance_type: 'c5.2xlarge',
    public_ip: `203.0.113.${sequence}`,
    cml_service_status: 'available',
    cml_labs_count: 2,
    cml_nodes_running: 5,
    cml_allocated_cpus: 4,
    cloudwatch_cpu_utilization: 40,
    cml_synced_at: '2024-05-01T10:00:00Z',
    ...overrides,
  }
}

export function makeEvent(type, workerId, data = {}, id = null) {
  sequence += 1
  return {
    id: id ?? `${1714557600000 + sequence}-0`,
    type,
    time: '2024-05-01T10:00:05Z',
    worker_id: workerId,
    data,
  }
}

export class FakeEventSource {
  static instances = []

  constructor(url) {
    this.url = url
    this.readyState = 0
    this.closed = false
    this.listeners = {}
    this.onopen = null
    this.onerror = null
    FakeEventSource.instances.push(this)
  }

  static latest() {
    return FakeEventSource.instances.at(-1)
  }

  static reset() {
    FakeEventSource.instances = []
  }

  addEventListener(type, listener) {
    ;(this.listeners[type] ??= []).push(listener)
  }

  close() {
    this.closed = true
    this.readyState = 2
  }

  // Test drivers: what the browser would do.

  open() {
    this.readyState = 1
    this.onopen?.({ type: 'open' })
  }

  emit(envelope) {
    const message = {
      type: envelope.type,
      data: JSON.stringify(envelope),
      lastEventId: envelope.id,
    }
    for (const listener of this.listeners[envelope.type] ?? []) listener(message)
  }

  fail() {
    this.readyState = 2
    this.onerror?.({ type: 'error' })
  }

  lastEventIdParam() {
    return new URL(this.url, 'http://localhost').searchParams.get('lastEventId')
  }
}
