import { enableAutoUnmount, flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import * as workersApi from '@/api/workers'
import { makeWorker } from '@/testing/fixtures'
import ImportInstancesDialog from '../ImportInstancesDialog.vue'

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

describe('ImportInstancesDialog', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
  })

  it('imports the listed instances and reports what was imported and skipped', async () => {
    workersApi.importInstances.mockResolvedValue({
      imported: [makeWorker({ name: 'found-1' })],
      skipped: [{ instance_id: 'i-2', reason: 'already managed' }],
    })
    mount(ImportInstancesDialog, { attachTo: document.body })

    await fill('Region', 'us-east-1')
    await fill('Instance IDs', 'i-1, i-2')
    await submit()

    expect(workersApi.importInstances).toHaveBeenCalledWith({
      region: 'us-east-1',
      instance_ids: ['i-1', 'i-2'],
    })
    const result = document.body.querySelector('.import-result').textContent
    expect(result).toContain('Imported 1, skipped 1.')
    expect(result).toContain('Skipped i-2: already managed')
  })
})
