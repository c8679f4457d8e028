import fc from 'fast-check';
import { TARGETS } from '../../fuzz/targets.js';

/**
 * The fuzz targets (test/fuzz/targets.ts) as a quick, seeded property run:
 * a few hundred inputs each, well under a second or two in all.
 * `npm run fuzz` runs the same properties on a million inputs or more each.
 */
describe('fuzz targets, quick seeded run (npm run fuzz for the long one)', () => {
  for (const [i, t] of TARGETS.entries()) {
    it(`${t.name}: no crash, no difference from its reference`, () => {
      fc.assert(t.property(), { seed: 0x19_0000 + i, numRuns: Math.ceil(300 / Math.sqrt(t.inputsPerRun)) });
    });
  }
});
