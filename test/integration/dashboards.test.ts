import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { parse } from 'yaml';
import { ControlMetrics } from '../../src/control/server/control-metrics.js';
import { listener, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';

const CHART = 'charts/outrigger';

/** Every PromQL expression of the shipped dashboards and rules, with where it comes from. */
function exportedNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_count`, `${m[1]}_sum`] : [m[1]!])));
}

function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const f of readdirSync(join(CHART, 'dashboards'))) {
    const d = JSON.parse(readFileSync(join(CHART, 'dashboards', f), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[]; templating: { list: { definition?: string }[] } };
    for (const p of d.panels) for (const t of p.targets) out.push({ where: `${f}: ${p.title}`, expr: t.expr });
    for (const v of d.templating.list) if (v.definition) out.push({ where: `${f}: variable`, expr: v.definition });
  }
  const rules = parse(readFileSync(join(CHART, 'alerts', 'slo.rules.yaml'), 'utf8')) as { groups: { rules: { expr: string; alert?: string; record?: string; annotations?: { runbook_url?: string } }[] }[] };
  for (const g of rules.groups) for (const r of g.rules) out.push({ where: `slo.rules.yaml: ${r.alert ?? r.record}`, expr: r.expr });
  return out;
}

describe('shipped dashboards and alerts', function () {
  it('query only metric names a live sidecar exports', async () => {
    // Istio's names are opt-in (docs/observability.md); the golden-signals dashboard uses them.
    const sc = await startTestSidecar([listener('main'), routes('main', [])], { telemetry: { compat: 'both' } });
    let exported: Set<string>;
    try {
      const text = await sc.metrics();
      exported = exportedNames(text);
    } finally {
      await sc.close();
    }
    // The control-plane dashboard reads the control plane's registry (as control-server.ts builds it).
    const control = new Registry();
    new ControlMetrics(control);
    collectDefaultMetrics({ register: control, prefix: 'outrigger_control_' });
    for (const n of exportedNames(await control.metrics())) exported.add(n);
    const missing: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of expressions()) {
      for (const m of expr.matchAll(/\b((?:istio|outrigger)_[a-z0-9_]+)\b/g)) {
        used.add(m[1]!);
        if (!exported.has(m[1]!)) missing.push(`${where}: ${m[1]}`);
      }
    }
    expect(missing).to.deep.equal([]);
    // The golden signals are Istio's names, so the dashboard also works for Istio users.
    for (const n of ['istio_requests_total', 'istio_request_duration_milliseconds_bucket']) expect([...used]).to.include(n);
  });

  it('pass promtool check rules (Debian package prometheus; .ci/run installs it, elsewhere skipped without it)', function () {
    const r = spawnSync('promtool', ['check', 'rules', join(CHART, 'alerts', 'slo.rules.yaml')], { encoding: 'utf8' });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      // In CI a missing promtool is a setup failure, not a reason to pass.
      if (process.env.CI) throw new Error('promtool is not installed (.ci/run installs the Debian package prometheus)');
      this.skip();
    }
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/SUCCESS: \d+ rules found/);
  });

  it('give every alert a runbook_url to a section of docs/runbooks.md', () => {
    const anchors = new Set(
      [...readFileSync('docs/runbooks.md', 'utf8').matchAll(/^## (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')),
    );
    const rules = parse(readFileSync(join(CHART, 'alerts', 'slo.rules.yaml'), 'utf8')) as { groups: { rules: { alert?: string; annotations?: { runbook_url?: string } }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);
    expect(alerts.length).to.be.greaterThan(8);
    for (const a of alerts) {
      const url = a.annotations?.runbook_url ?? '';
      expect(url, a.alert).to.match(/docs\/runbooks\.md#[a-z-]+$/);
      expect(anchors, `${a.alert}: ${url}`).to.include(url.slice(url.indexOf('#') + 1));
    }
  });
});
