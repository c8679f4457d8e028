import { expect } from 'chai';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { waitFor } from '../support/wait.js';

/**
 * `npm start` as the README runs it: the launcher picks dist/ when `npm ci`
 * built it (as in CI) and the sources otherwise, and the demo must find its
 * config either way (it once looked for dist/examples/demo/sidecar.yaml).
 * The demo's own ports are fixed (8080, 50051, 15000), as the README says.
 */
describe('outrigger demo (npm start)', function () {
  this.timeout(30000);

  it('starts the Bookstore behind the sidecar, answers gRPC on 8080, and stops on SIGTERM', async () => {
    const env = { ...process.env };
    delete env.OUTRIGGER_FROM_SOURCE;
    const child = spawn(process.execPath, ['bin/outrigger.js', 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor(() => {
        if (child.exitCode !== null) throw new Error(`demo exited ${child.exitCode}: ${err}`);
        return out.includes('Outrigger demo: sidecar on 127.0.0.1:8080');
      }, 'the demo banner', 20000);
      const status = await new Promise<string>((resolve, reject) => {
        const s = http2.connect('http://127.0.0.1:8080');
        s.on('error', reject);
        const req = s.request({
          ':method': 'POST',
          ':path': '/outrigger.examples.bookstore.v1.BookstoreService/ListShelves',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        req.on('trailers', (t) => {
          s.close();
          resolve(String(t['grpc-status']));
        });
        req.on('error', reject);
        req.resume();
        req.end(Buffer.alloc(5)); // an empty ListShelvesRequest
      });
      expect(status).to.equal('0');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).to.equal(0);
  });
});
