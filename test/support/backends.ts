import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { WebSocketServer } from 'ws';

export interface Started<T> {
  port: number;
  server: T;
  close(): Promise<void>;
}

/** HTTP/1.1 server answering JSON describing the request it saw (method, url, headers, body length). */
export async function startH1Echo(name = 'h1'): Promise<Started<http.Server>> {
  const server = http.createServer((req, res) => {
    let len = 0;
    req.on('data', (c: Buffer) => (len += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ backend: name, method: req.method, url: req.url, headers: req.headers, bodyBytes: len });
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(body);
    });
  });
  return listen(server);
}

/** Plain HTTP/2 (h2c) server answering like startH1Echo. */
export async function startH2Echo(name = 'h2'): Promise<Started<http2.Http2Server>> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    let len = 0;
    stream.on('data', (c: Buffer) => (len += c.length));
    stream.on('end', () => {
      // The proxy may have reset the stream after the request ended (its client went away).
      if (stream.destroyed || stream.closed) return;
      const h: Record<string, unknown> = {};
      for (const k in headers) h[k] = headers[k];
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-backend': name });
      stream.end(JSON.stringify({ backend: name, method: headers[':method'], url: headers[':path'], headers: h, bodyBytes: len }));
    });
    stream.on('error', () => {});
  });
  return listen(server);
}

/** WebSocket echo server; closes with code 4001 "bye" when it receives "close-me". */
export async function startWsEcho(): Promise<Started<http.Server>> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426);
    res.end('upgrade required');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'close-me') ws.close(4001, 'bye');
      else if (!isBinary && data.toString() === 'whoami') ws.send(JSON.stringify({ url: req.url, headers: req.headers }));
      else ws.send(data, { binary: isBinary });
    });
  });
  const s = await listen(server);
  return { ...s, close: async () => { wss.close(); await s.close(); } };
}

/** TCP server that greets first ("hello\n", server-speaks-first) and then echoes. */
export async function startTcpEcho(greet = true): Promise<Started<net.Server>> {
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    if (greet) sock.write('hello\n');
    sock.pipe(sock);
  });
  return listen(server);
}

async function listen<T extends net.Server>(server: T): Promise<Started<T>> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    port,
    server,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
