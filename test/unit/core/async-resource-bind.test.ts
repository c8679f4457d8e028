import { expect } from 'chai';
import { AsyncResource, executionAsyncId } from 'node:async_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { installAsyncResourceBindFix, NODE_BIND } from '../../../src/core/async-resource-bind.js';

type Bind = (this: AsyncResource, fn: (...a: unknown[]) => unknown, thisArg?: unknown) => ((...a: unknown[]) => unknown) & { asyncResource: AsyncResource };

describe('AsyncResource#bind replacement (core/async-resource-bind.ts)', () => {
  installAsyncResourceBindFix();
  const ours = AsyncResource.prototype.bind as unknown as Bind;
  const node = NODE_BIND as unknown as Bind;

  it('is installed, and installing twice keeps it', () => {
    expect(ours).to.not.equal(node);
    installAsyncResourceBindFix();
    expect(AsyncResource.prototype.bind).to.equal(ours);
  });

  it('warns DEP0172 when asyncResource is read', () => {
    const warnings: unknown[][] = [];
    const emit = process.emitWarning;
    (process as { emitWarning: unknown }).emitWarning = (...a: unknown[]) => void warnings.push(a);
    try {
      const b = ours.call(new AsyncResource('T'), () => 1);
      void b.asyncResource;
      void b.asyncResource;
    } finally {
      process.emitWarning = emit;
    }
    // Once per process, as Node's deprecate(): nothing in the suite reads asyncResource before this test.
    expect(warnings).to.have.length(1);
    expect(warnings[0]!.slice(1)).to.deep.equal(['DeprecationWarning', 'DEP0172']);
  });

  for (const [name, bind] of [['node', node], ['ours', ours]] as const) {
    it(`behaves as Node's (${name}): this, arguments, result, length, async scope, asyncResource`, () => {
      const r = new AsyncResource('T');
      const seen: unknown[] = [];
      function f(this: unknown, a: unknown, b: unknown): string {
        seen.push(this, a, b, executionAsyncId());
        return 'ok';
      }
      const b1 = bind.call(r, f);
      const self = { me: 1 };
      expect(b1.call(self, 1, 2)).to.equal('ok');
      expect(seen).to.deep.equal([self, 1, 2, r.asyncId()]);
      expect(b1.length).to.equal(2);
      const fixed = { fixed: true };
      const b2 = bind.call(r, f, fixed);
      seen.length = 0;
      b2.call(self, 3, 4);
      expect(seen[0]).to.equal(fixed);
      expect(seen.slice(1)).to.deep.equal([3, 4, r.asyncId()]);
      const d = Object.getOwnPropertyDescriptor(b1, 'asyncResource')!;
      expect(d.enumerable).to.equal(true);
      expect(d.configurable).to.equal(true);
      const emit = process.emitWarning;
      try {
        (process as { emitWarning: unknown }).emitWarning = () => undefined; // DEP0172 is printed once per process
        expect(b1.asyncResource).to.equal(r);
        // The setter changes what the getter answers, not where the function runs.
        const other = new AsyncResource('U');
        b1.asyncResource = other;
        expect(b1.asyncResource).to.equal(other);
        seen.length = 0;
        b1(5, 6);
        expect(seen[3]).to.equal(r.asyncId());
      } finally {
        process.emitWarning = emit;
      }
      expect(() => bind.call(r, 'x' as never)).to.throw(TypeError).with.property('code', 'ERR_INVALID_ARG_TYPE');
    });
  }

  it('leaves nothing in old space that keeps a dropped bound function’s captures alive through a scavenge', () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
    const used = (): number => v8.getHeapSpaceStatistics().reduce((a, s) => a + s.space_used_size, 0);
    // 500 bound functions, each capturing ~8 KB, all dropped at once; then two scavenges.
    const retained = (bind: Bind): number => {
      gc();
      const before = used();
      for (let i = 0; i < 500; i++) {
        const big = new Array<number>(1000).fill(i);
        bind.call(new AsyncResource('T'), () => big.length);
      }
      gc({ type: 'minor' });
      gc({ type: 'minor' });
      return used() - before;
    };
    const withNode = retained(node);
    const withOurs = retained(ours);
    // About 4 MB was allocated. Node's own bind keeps nearly all of it until a mark-compact
    // (4.6 MB on Node 20, 22 and 24 on this machine); ours keeps what scavenges leave of any garbage.
    expect(withOurs, `retained ${withOurs} bytes (Node's own bind: ${withNode})`).to.be.below(1_000_000);
  });
});
