import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../../src/config/loader.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** docs/config.md promises its complete example is the fixture, and shows its version. */
describe('docs/config.md example', () => {
  it('is test/fixtures/config/demo.yaml, and the version it shows is current', async () => {
    const doc = await readFile(`${ROOT}docs/config.md`, 'utf8');
    const section = doc.slice(doc.indexOf('## A complete example'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1];
    const fixture = await readFile(`${ROOT}test/fixtures/config/demo.yaml`, 'utf8');
    expect(yaml).to.equal(fixture);
    const r = await loadConfig(`${ROOT}test/fixtures/config/demo.yaml`);
    expect(r.ok).to.equal(true);
    if (r.ok) expect(section).to.include(`version ${r.value.version}\n`);
  });
});
