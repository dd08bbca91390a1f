import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder in front of the test's Postgres that the test can cut and restore, as a
 * network partition or a server restart would: `cut()` drops every connection and refuses new
 * ones (ECONNREFUSED) until `restore()` listens again on the same port.
 */
export interface CuttableProxy {
  /** The target URL with its port replaced by the proxy's. */
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  /**
   * A crash at a chosen point: the `nth` connection made from now on is dropped as it comes,
   * with every other, and new ones are refused for `downMs`, then the proxy listens again.
   * Settles when the proxy is back.
   */
  crashAtConnection(nth: number, downMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCuttableProxy(targetUrl: string): Promise<CuttableProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let onConnection: (() => void) | undefined;
  const listen = async (port: number): Promise<number> => {
    const next = createServer((client) => {
      onConnection?.();
      const upstream = connect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => socket.destroy());
        socket.on('close', () => {
          sockets.delete(socket);
          // One side gone is the whole connection gone, as for a real server.
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => next.listen(port, '127.0.0.1', resolve));
    server = next;
    return (next.address() as AddressInfo).port;
  };
  const port = await listen(0);
  const cut = async () => {
    const closing = server;
    server = undefined;
    if (!closing) return;
    const closed = new Promise((resolve) => closing.close(resolve));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  const restore = async () => {
    if (!server) await listen(port);
  };
  const crashAtConnection = (nth: number, downMs: number) =>
    new Promise<void>((resolve, reject) => {
      let seen = 0;
      onConnection = () => {
        seen += 1;
        if (seen < nth) return;
        onConnection = undefined;
        // After this turn of the event loop, so the connection that triggers it is dropped too.
        setImmediate(() => {
          cut()
            .then(() => new Promise((back) => setTimeout(back, downMs)))
            .then(restore)
            .then(resolve, reject);
        });
      };
    });
  return { url: url.toString(), cut, restore, crashAtConnection, close: cut };
}
