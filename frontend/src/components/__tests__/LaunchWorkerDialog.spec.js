import { enableAutoUnmount, flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import { ApiError } from '@/api/client'
import { useFleetStore } from '@/stores/fleet'
import { makeWorker } from '@/testing/fixtures'
import LaunchWorkerDialog from '../LaunchWorkerDialog.vue'

vi.mock('@/api/workers')

enableAutoUnmount(afterEach)

const field = (label) =>
  [...document.body.querySelectorAll('label')]
    .find((element) => element.textContent.trim().startsWith(label))
    .querySelector('input, textarea')

async function fill(label, value) {
  const input = field(label)
  input.value = value
  input.dispatchEvent(new Event('input'))
  await flushPromises()
}

async function submit() {
  document.body.querySelector('form').dispatchEvent(new Event('submit'))
  await flushPromises()
}

describe('LaunchWorkerDialog', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
  })

  it('launches with the fields given, leaving out empty optional ones, then closes', async () => {
    const worker = makeWorker({ name: 'new-one', status: 'pending' })
    workersApi.launchWorker.mockResolvedValue({ worker })
    const wrapper = mount(LaunchWorkerDialog, { attachTo: document.body })

    await fill('Name', ' new-one ')
    await fill('Region', 'eu-west-1')
    await submit()

    expect(workersApi.launchWorker).toHaveBeenCalledWith({ name: 'new-one', region: 'eu-west-1' })
    expect(useFleetStore().workerById(worker.id)).toEqual(worker)
    expect(wrapper.emitted('close')).toHaveLength(1)
  })

  it('shows the validation message and details and stays open', async () => {
    workersApi.launchWorker.mockRejectedValue(
      new ApiError(400, {
        error: 'validation',
        message: 'The request is not valid.',
        details: { instance_type: 'unknown type' },
      }),
    )
    const wrapper = mount(LaunchWorkerDialog, { attachTo: document.body })
    await fill('Name', 'x')
    await fill('Region', 'us-east-1')
    await fill('Instance type', 'z9.huge')
    await submit()

    const alert = document.body.querySelector('[role="alert"]')
    expect(alert.textContent).toContain('The request is not valid.')
    expect(alert.textContent).toContain('instance_type: unknown type')
    expect(wrapper.emitted('close')).toBeUndefined()
  })
})
