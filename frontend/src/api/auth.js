import { api } from './client'

// 401 here means "not signed in" or "wrong password": the caller decides what to show.
export const fetchMe = ({ quietUnauthorized = true } = {}) =>
  api.get('/api/auth/me', { quietUnauthorized })

export const login = (username, password) =>
  api.post('/api/auth/login', { username, password }, { quietUnauthorized: true })

export const logout = () => api.post('/api/auth/logout', undefined, { quietUnauthorized: true })
