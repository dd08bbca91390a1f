import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * The owner written into `workerId` of a row a worker runs, by either engine: host and pid
 * say where to look, the random tail keeps two workers in one process apart.
 */
export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}
