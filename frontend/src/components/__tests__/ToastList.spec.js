import { enableAutoUnmount, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { useToastsStore } from '@/stores/toasts'
import ToastList from '../ToastList.vue'

describe('ToastList', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
  })

  enableAutoUnmount(afterEach)

  it('announces errors as alerts and the rest as status, each dismissible', async () => {
    const toasts = useToastsStore()
    toasts.error('Worker a failed.')
    toasts.success('Worker b created.')
    const wrapper = mount(ToastList)
    await wrapper.vm.$nextTick()

    expect(wrapper.find('[role="alert"]').text()).toContain('Worker a failed.')
    expect(wrapper.find('[role="status"]').text()).toContain('Worker b created.')

    await wrapper.find('[role="alert"] button[aria-label="Dismiss notification"]').trigger('click')
    expect(toasts.toasts.map((toast) => toast.message)).toEqual(['Worker b created.'])
  })
})
