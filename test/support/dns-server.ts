import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

/** Records of one name. */
export interface DnsRecords {
  a?: string[];
  aaaa?: string[];
  srv?: { priority: number; weight: number; port: number; target: string }[];
  /** Seconds; default 1. */
  ttl?: number;
}

export interface TestDnsServer {
  /** "127.0.0.1:PORT", for `resolvers`. */
  readonly address: string;
  readonly port: number;
  /** Replaces a name's records (undefined: the name no longer exists, NXDOMAIN). */
  set(name: string, records: DnsRecords | undefined): void;
  /** 'answer' (default), 'servfail' (RCODE 2 to everything) or 'drop' (no answer: timeouts). */
  mode(m: 'answer' | 'servfail' | 'drop'): void;
  /** Queries received, as "TYPE name". */
  readonly queries: string[];
  close(): Promise<void>;
}

const TYPE = { A: 1, AAAA: 28, SRV: 33 } as const;
const TYPE_NAME: Record<number, string> = { 1: 'A', 28: 'AAAA', 33: 'SRV' };

/**
 * An authoritative DNS server on a loopback UDP port, speaking the RFC 1035
 * wire format (RFC 3596 AAAA, RFC 2782 SRV): header, one question, answers
 * with uncompressed owner names, NXDOMAIN for unknown names and an empty
 * NOERROR answer for known names without records of the type asked.
 */
export async function startDnsServer(): Promise<TestDnsServer> {
  const zone = new Map<string, DnsRecords>();
  const queries: string[] = [];
  let mode: 'answer' | 'servfail' | 'drop' = 'answer';
  const sock: Socket = createSocket('udp4');
  sock.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    let q: { id: number; flags: number; name: string; qtype: number; qclass: number; end: number };
    try {
      q = parseQuery(msg);
    } catch {
      return; // not a query we can read: a real server would answer FORMERR; dropping is as good for a client
    }
    queries.push(`${TYPE_NAME[q.qtype] ?? q.qtype} ${q.name}`);
    if (mode === 'drop') return;
    const question = msg.subarray(12, q.end);
    const rd = q.flags & 0x0100;
    if (mode === 'servfail') return send(sock, rinfo, Buffer.concat([header(q.id, 0x8000 | rd | 2, 0), question]));
    const recs = zone.get(q.name.toLowerCase());
    if (!recs) return send(sock, rinfo, Buffer.concat([header(q.id, 0x8000 | 0x0400 | rd | 3, 0), question]));
    const ttl = recs.ttl ?? 1;
    const answers: Buffer[] = [];
    if (q.qtype === TYPE.A) for (const a of recs.a ?? []) answers.push(rr(q.name, TYPE.A, ttl, Buffer.from(a.split('.').map(Number))));
    if (q.qtype === TYPE.AAAA) for (const a of recs.aaaa ?? []) answers.push(rr(q.name, TYPE.AAAA, ttl, ipv6Bytes(a)));
    if (q.qtype === TYPE.SRV) {
      for (const s of recs.srv ?? []) {
        const fixed = Buffer.alloc(6);
        fixed.writeUInt16BE(s.priority, 0);
        fixed.writeUInt16BE(s.weight, 2);
        fixed.writeUInt16BE(s.port, 4);
        answers.push(rr(q.name, TYPE.SRV, ttl, Buffer.concat([fixed, encodeName(s.target)])));
      }
    }
    send(sock, rinfo, Buffer.concat([header(q.id, 0x8000 | 0x0400 | rd, answers.length), question, ...answers]));
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  const port = sock.address().port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    set(name, records) {
      const key = name.toLowerCase().replace(/\.$/, '');
      if (records) zone.set(key, records);
      else zone.delete(key);
    },
    mode(m) {
      mode = m;
    },
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

function send(sock: Socket, rinfo: RemoteInfo, b: Buffer): void {
  sock.send(b, rinfo.port, rinfo.address);
}

/** Header: id, flags (QR, AA, RD copied, RCODE), QDCOUNT 1, ANCOUNT n. */
function header(id: number, flags: number, ancount: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(ancount, 6);
  return h;
}

function parseQuery(msg: Buffer): { id: number; flags: number; name: string; qtype: number; qclass: number; end: number } {
  if (msg.length < 12) throw new Error('short');
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000 || msg.readUInt16BE(4) !== 1) throw new Error('not a single-question query');
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined) throw new Error('truncated name');
    off++;
    if (len === 0) break;
    if (len & 0xc0) throw new Error('compression in a question');
    labels.push(msg.subarray(off, off + len).toString('ascii'));
    off += len;
  }
  const qtype = msg.readUInt16BE(off);
  const qclass = msg.readUInt16BE(off + 2);
  return { id, flags, name: labels.join('.').toLowerCase(), qtype, qclass, end: off + 4 };
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'ascii')])), Buffer.from([0])]);
}

function rr(name: string, type: number, ttl: number, rdata: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(1, 2); // IN
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(name), fixed, rdata]);
}

function ipv6Bytes(a: string): Buffer {
  if (!isIPv6(a)) throw new Error(`not IPv6: ${a}`);
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

