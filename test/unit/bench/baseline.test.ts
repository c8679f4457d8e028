import { expect } from 'chai';
import { compareLines, entriesOf, type Baseline } from '../../../bench/lib/baseline.js';

describe('bench: baseline.json and --compare', () => {
  const rows = (cpu: number, rps: number, nginxCpu: number, nginxRps: number) => [
    { target: 'direct', available: true, rps: 90_000, proxyCpuUsPerReq: 10 },
    { target: 'nginx', available: true, rps: nginxRps, proxyCpuUsPerReq: nginxCpu },
    { target: 'outrigger', available: true, rps, proxyCpuUsPerReq: cpu },
  ];

  it('keeps our figures with the same run\'s nginx figures; protocols without a sidecar figure are left out', () => {
    const e = entriesOf({ grpc: rows(180, 9000, 90, 12_000), rest: [{ target: 'outrigger', available: true, rps: 5000, proxyCpuUsPerReq: 250 }], http1: [{ target: 'outrigger', available: false, rps: null, proxyCpuUsPerReq: null }] });
    expect(e).to.deep.equal({
      grpc: { cpuUsPerReq: 180, rps: 9000, nginxCpuUsPerReq: 90, nginxRps: 12_000 },
      rest: { cpuUsPerReq: 250, rps: 5000, nginxCpuUsPerReq: null, nginxRps: null },
    });
  });

  it('compares ratios to nginx first: a slower machine with the same ratio is not a regression', () => {
    const base: Baseline = { acceptedAt: 'then', gitCommit: 'abc', accessLog: true, protocols: entriesOf({ grpc: rows(180, 9000, 90, 12_000) }) };
    // Everything 1.5× slower, sidecar and nginx alike.
    const [line] = compareLines(base, entriesOf({ grpc: rows(270, 6000, 135, 8000) }));
    expect(line).to.equal('- grpc: CPU/req 2.00× → 2.00× nginx\'s (1.00× the baseline\'s ratio); req/s 0.75× → 0.75× nginx\'s; absolute 180 → 270 µs/req (1.50×), 9000 → 6000 req/s');
    const [better] = compareLines(base, entriesOf({ grpc: rows(99, 11_000, 90, 12_000) }));
    expect(better).to.contain('CPU/req 2.00× → 1.10× nginx\'s (0.55× the baseline\'s ratio)');
    expect(compareLines(base, entriesOf({ h2c: rows(100, 1, 50, 1) }))).to.deep.equal(['- h2c: not in the baseline']);
  });
});
