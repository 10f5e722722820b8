import { describe, expect, it } from 'vitest'

import { filterWorkers, sortWorkers, summarizeFleet } from '../fleetQuery'

const fleet = [
  {
    id: 'a1',
    name: 'alpha',
    region: 'us-east-1',
    status: 'running',
    public_ip: '203.0.113.10',
    cloudwatch_cpu_utilization: 80,
    cml_labs_count: 3,
    cml_nodes_running: 7,
    cml_allocated_cpus: 6,
  },
  {
    id: 'b2',
    name: 'Bravo',
    region: 'eu-west-1',
    status: 'stopped',
    private_ip: '10.0.0.5',
    cml_cpu_utilization: 5,
    cml_labs_count: 1,
    cml_nodes_running: 0,
  },
  {
    id: 'c3',
    name: 'charlie',
    region: 'us-east-1',
    status: 'terminated',
    aws_instance_id: 'i-0c3',
    cml_labs_count: 9,
    cml_nodes_running: 9,
    cml_allocated_cpus: 9,
  },
]

const names = (workers) => workers.map((worker) => worker.name)

describe('filterWorkers', () => {
  it('keeps only the chosen status and region', () => {
    expect(names(filterWorkers(fleet, { status: 'running' }))).toEqual(['alpha'])
    expect(names(filterWorkers(fleet, { region: 'us-east-1' }))).toEqual(['alpha', 'charlie'])
    expect(names(filterWorkers(fleet, { status: 'stopped', region: 'us-east-1' }))).toEqual([])
  })

  it('searches name, id and IP addresses, ignoring case and spaces around', () => {
    expect(names(filterWorkers(fleet, { search: ' BRA ' }))).toEqual(['Bravo'])
    expect(names(filterWorkers(fleet, { search: 'a1' }))).toEqual(['alpha'])
    expect(names(filterWorkers(fleet, { search: '203.0.113' }))).toEqual(['alpha'])
    expect(names(filterWorkers(fleet, { search: '10.0.0.5' }))).toEqual(['Bravo'])
    expect(names(filterWorkers(fleet, { search: 'i-0c3' }))).toEqual(['charlie'])
  })

  it('returns everything without filters', () => {
    expect(filterWorkers(fleet, {})).toHaveLength(3)
  })
})

describe('sortWorkers', () => {
  it('sorts by name without regard to case, in either direction', () => {
    expect(names(sortWorkers(fleet, 'name'))).toEqual(['alpha', 'Bravo', 'charlie'])
    expect(names(sortWorkers(fleet, 'name', 'desc'))).toEqual(['charlie', 'Bravo', 'alpha'])
  })

  it('sorts CPU by the figure shown, whichever source it comes from, absent last', () => {
    expect(names(sortWorkers(fleet, 'cpu'))).toEqual(['Bravo', 'alpha', 'charlie'])
    expect(names(sortWorkers(fleet, 'cpu', 'desc'))).toEqual(['alpha', 'Bravo', 'charlie'])
  })

  it('sorts by status in lifecycle order and by counts', () => {
    expect(names(sortWorkers(fleet, 'status'))).toEqual(['alpha', 'Bravo', 'charlie'])
    expect(names(sortWorkers(fleet, 'labs', 'desc'))).toEqual(['charlie', 'alpha', 'Bravo'])
  })

  it('does not reorder the list it was given', () => {
    const copy = [...fleet]
    sortWorkers(fleet, 'name', 'desc')
    expect(fleet).toEqual(copy)
  })
})

describe('summarizeFleet', () => {
  it('counts every status but sums labs, nodes and CPUs of workers not terminated', () => {
    expect(summarizeFleet(fleet)).toEqual({
      total: 3,
      byStatus: { running: 1, stopped: 1, terminated: 1 },
      labs: 4,
      nodesRunning: 7,
      allocatedCpus: 6,
    })
  })
})
