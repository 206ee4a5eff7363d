// Prometheus text exposition, written by hand: request counters of this
// instance, and fleet gauges (devices by state, rollouts by state) read from
// the database at scrape time so every instance reports the same figures.

import type { FleetDb } from './db.js';

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class Metrics {
  private requests = new Map<string, number>();

  countRequest(method: string, route: string, status: number): void {
    const key = `method="${esc(method)}",route="${esc(route)}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  async render(fdb: FleetDb): Promise<string> {
    const lines: string[] = [];
    lines.push('# HELP strata_fleet_http_requests_total HTTP requests answered by this instance, by route template and status.');
    lines.push('# TYPE strata_fleet_http_requests_total counter');
    for (const [k, n] of this.requests) lines.push(`strata_fleet_http_requests_total{${k}} ${n}`);
    const devices = await fdb.db.selectFrom('devices').select(['state', (eb) => eb.fn.countAll().as('n')]).groupBy('state').execute();
    lines.push('# HELP strata_fleet_devices Enrolled devices by last reported state ("unknown" before the first report).');
    lines.push('# TYPE strata_fleet_devices gauge');
    for (const d of devices) lines.push(`strata_fleet_devices{state="${esc(d.state ?? 'unknown')}"} ${Number(d.n)}`);
    const rollouts = await fdb.db.selectFrom('rollouts').select(['state', (eb) => eb.fn.countAll().as('n')]).groupBy('state').execute();
    lines.push('# HELP strata_fleet_rollouts Rollouts by state.');
    lines.push('# TYPE strata_fleet_rollouts gauge');
    for (const r of rollouts) lines.push(`strata_fleet_rollouts{state="${esc(r.state)}"} ${Number(r.n)}`);
    return lines.join('\n') + '\n';
  }
}
