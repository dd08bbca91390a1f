import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick, released at once),
 * for a server that must be told its port before it starts: a Postgres, a PgBouncer.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}
