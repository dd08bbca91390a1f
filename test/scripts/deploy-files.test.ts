// The deploy files (Dockerfile, compose.yaml, deploy/k8s/) as far as a machine without a
// container runtime can check them: they parse; every command in them is one the CLI accepts;
// the probes they call are the paths and port the worker serves; the grace periods outlast the
// worker's drain; and the image's entry point, run as it is here, serves its probes and stops
// on SIGTERM with exit 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { parse, parseAllDocuments } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { PROBE_PATHS } from '../../src/runtime/probes.js';
import { cliEntry, repoRoot } from '../helpers/cli.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');
const packageJson = JSON.parse(read('package.json')) as { bin: Record<string, string> };

/** Seconds a worker needs beyond --shutdown-timeout to finish its stop (pg-boss's stop, closing). */
const STOP_MARGIN_SECONDS = 10;

/** The value of `--name` in a command line, if given. */
function flag(args: readonly string[], name: string): string | undefined {
  const index = args.lastIndexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

/**
 * Checks `args` against the CLI's own option definitions: the command exists, every option is
 * one of it (or a global one), every value passes the option's parser (ranges, choices), and
 * the mandatory options are there. Returns the command's name path.
 */
function assertCliAccepts(args: readonly string[]): string {
  const program = buildProgram();
  let command: Command = program;
  let index = 0;
  for (;;) {
    const sub = command.commands.find((candidate) => candidate.name() === args[index]);
    if (!sub) break;
    command = sub;
    index += 1;
  }
  expect(command, `no such cutover command: ${args.join(' ')}`).not.toBe(program);
  const options: Option[] = [...command.options, ...program.options];
  const given = new Set<string>();
  for (; index < args.length; index += 1) {
    const arg = args[index]!;
    expect(arg.startsWith('--'), `unexpected argument '${arg}' in ${args.join(' ')}`).toBe(true);
    const option = options.find((candidate) => candidate.long === arg);
    expect(option, `cutover ${command.name()} has no option ${arg}`).toBeDefined();
    given.add(arg);
    if (option!.required || option!.optional) {
      const value = args[(index += 1)];
      expect(value, `${arg} needs a value`).toBeDefined();
      // Commander's parsers take (value, previous) and throw InvalidArgumentError on a bad value.
      (option as Option & { parseArg?: (value: string, previous: unknown) => unknown }).parseArg?.(value!, undefined);
    }
  }
  for (const option of command.options) if (option.mandatory) expect(given.has(option.long!), `${option.long} is mandatory`).toBe(true);
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/** A Dockerfile's instructions, continuation lines joined, comments dropped, by stage. */
function dockerStages(text: string): { from: string; name: string | undefined; instructions: { op: string; rest: string }[] }[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
  const stages: ReturnType<typeof dockerStages> = [];
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    const instruction = { op: op.toUpperCase(), rest: rest.join(' ') };
    if (instruction.op === 'FROM') {
      const [image = '', as, name] = rest;
      stages.push({ from: image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (instruction.op !== 'ARG' || stages.length) {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

const stages = dockerStages(read('Dockerfile'));
const production = stages.at(-1)!;
const last = (op: string) => production.instructions.filter((instruction) => instruction.op === op).at(-1)?.rest;
const entrypoint = JSON.parse(last('ENTRYPOINT') ?? 'null') as string[];
const cmd = JSON.parse(last('CMD') ?? 'null') as string[];

describe('the Dockerfile', () => {
  it('builds in stages on Node 22 slim and runs production dependencies only, as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.from).toMatch(/^node:22(\.\d+)*-slim$/);
    const runs = production.instructions.filter((instruction) => instruction.op === 'RUN').map((instruction) => instruction.rest);
    expect(runs.some((run) => /npm ci\b.*--omit=dev/.test(run))).toBe(true);
    // Neither the Prisma CLI nor embedded Postgres is needed, or run, in the production stage.
    expect(runs.join('\n')).not.toMatch(/prisma|embedded/i);
    expect(production.instructions.some((instruction) => instruction.op === 'COPY' && /--from=build\b.*\bdist\b/.test(instruction.rest))).toBe(true);
    expect(last('USER')).toMatch(/^(node|[1-9]\d*)(:\S+)?$/);
  });

  it("runs the CLI the tests run (dist/cli/main.js, package.json's bin) under an init process, and its CMD is a probed worker", () => {
    expect(entrypoint.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
    expect(production.instructions.some((instruction) => instruction.op === 'RUN' && /apt-get install .*\btini\b/.test(instruction.rest))).toBe(true);
    const [node, script] = entrypoint.slice(2);
    expect(node).toBe('node');
    const workdir = last('WORKDIR')!;
    expect(script).toBe(join(workdir, packageJson.bin.cutover!));
    expect(join(repoRoot, script!.slice(workdir.length))).toBe(cliEntry);
    expect(assertCliAccepts(cmd)).toBe('worker');
    expect(last('EXPOSE')).toBe(flag(cmd, '--probe-port'));
  });
});

describe('compose.yaml', () => {
  // Merge keys (`<<: *cutover`) as Compose reads them.
  const compose = parse(read('compose.yaml'), { merge: true }) as {
    services: Record<string, { command?: string[]; image?: string; build?: unknown; stop_grace_period?: string; healthcheck?: { test: string[] }; environment?: Record<string, string> }>;
  };

  it('has Postgres, a legacy runner, a pg-boss worker and the dashboard, each command one the CLI accepts', () => {
    const { services } = compose;
    expect(services.postgres?.image).toMatch(/^postgres:/);
    const commands = Object.fromEntries(Object.entries(services).filter(([, service]) => service.command).map(([name, service]) => [name, service.command!]));
    for (const [name, args] of Object.entries(commands)) {
      assertCliAccepts(args);
      // The image's cutover, against the Compose Postgres: never an embedded one.
      expect(services[name]!.environment?.DATABASE_URL, name).toMatch(/@postgres:5432\//);
    }
    const workers = Object.values(commands).filter((args) => args[0] === 'worker');
    expect(workers.map((args) => flag(args, '--engine')).sort()).toEqual(['legacy', 'pgboss']);
    expect(Object.values(commands).some((args) => args[0] === 'dashboard')).toBe(true);
  });

  it("health-checks each worker on its own probe port's /readyz, and lets it drain longer than --shutdown-timeout", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.command?.[0] !== 'worker') continue;
      const port = flag(service.command, '--probe-port');
      expect(port, name).toBeDefined();
      const url = service.healthcheck?.test.join(' ').match(/https?:\/\/[^'"\s)]+/)?.[0];
      expect(url, `${name}'s healthcheck`).toBeDefined();
      expect(new URL(url!).port).toBe(port);
      expect(new URL(url!).pathname).toBe(PROBE_PATHS.ready);
      const grace = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? '')?.[1]);
      expect(grace, `${name}'s stop_grace_period`).toBeGreaterThanOrEqual(Number(flag(service.command, '--shutdown-timeout') ?? 30) + STOP_MARGIN_SECONDS);
    }
  });
});

interface Probe {
  httpGet: { path: string; port: number | string };
}
interface Container {
  name: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: { template?: { spec: { terminationGracePeriodSeconds?: number; containers: Container[] } } };
}

describe('deploy/k8s', () => {
  const dir = join(repoRoot, 'deploy', 'k8s');
  const files = readdirSync(dir).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');
  const manifests: Manifest[] = files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((document) => {
      expect(document.errors, file).toEqual([]);
      return document.toJS() as Manifest;
    }),
  );
  const pods = manifests.filter((manifest) => manifest.spec.template);

  it('parse, are all listed in kustomization.yaml, and run commands the CLI accepts', () => {
    const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual([...files].sort());
    for (const pod of pods) for (const container of pod.spec.template!.spec.containers) assertCliAccepts(container.args ?? cmd);
  });

  it('run a Deployment per engine, probed on the paths and port the worker serves, with a grace period above --shutdown-timeout', () => {
    const engines: string[] = [];
    for (const manifest of pods) {
      for (const container of manifest.spec.template!.spec.containers) {
        const args = container.args ?? cmd;
        if (args[0] !== 'worker') continue;
        expect(manifest.kind).toBe('Deployment');
        engines.push(flag(args, '--engine')!);
        const port = Number(flag(args, '--probe-port'));
        const portOf = (probe: Probe | undefined) => {
          const named = probe?.httpGet.port;
          return typeof named === 'number' ? named : container.ports?.find((candidate) => candidate.name === named)?.containerPort;
        };
        const where = `${manifest.metadata.name}/${container.name}`;
        expect({ path: container.startupProbe?.httpGet.path, port: portOf(container.startupProbe) }, where).toEqual({ path: PROBE_PATHS.startup, port });
        expect({ path: container.readinessProbe?.httpGet.path, port: portOf(container.readinessProbe) }, where).toEqual({ path: PROBE_PATHS.ready, port });
        expect({ path: container.livenessProbe?.httpGet.path, port: portOf(container.livenessProbe) }, where).toEqual({ path: PROBE_PATHS.live, port });
        // Kubernetes' default is 30 s, pg-boss's stop's default timeout: the SIGKILL would land as the drain ends.
        const grace = manifest.spec.template!.spec.terminationGracePeriodSeconds;
        expect(grace, where).toBeGreaterThanOrEqual(Number(flag(args, '--shutdown-timeout') ?? 30) + STOP_MARGIN_SECONDS);
      }
    }
    expect(engines.sort()).toEqual(['legacy', 'pgboss']);
  });
});

describe("the image's entry point, run here", () => {
  const fixture = useDatabaseFixture();
  const children: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(children.splice(0).map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('exit', resolve).kill('SIGKILL')) : undefined)));
  });

  it("serves the probes the Dockerfile's CMD asks for and stops on SIGTERM with exit 0", async () => {
    // The image's ENTRYPOINT and CMD as they are, from this checkout (its /app) instead of the
    // image; tini too where the machine has it (`apt-get install tini`), else node alone (tini
    // only passes the signal on). The probe port is moved to a free one (the last --probe-port
    // counts), since other tests may run beside this one.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const [init, , node, script] = entrypoint;
    const viaInit = existsSync(init!);
    const argv = [...(viaInit ? ['--', node!] : []), script!.replace(/^\/app\//, `${repoRoot}/`), ...cmd, '--probe-port', String(port)];
    expect(argv).toContain(cliEntry);
    const child = spawn(viaInit ? init! : process.execPath, argv, { cwd: repoRoot, env: { ...process.env, DATABASE_URL: fixture.database.url, CUTOVER_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const probe = async (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then((response) => response.status, () => undefined);
    await pollUntil('/readyz to answer 200', async () => (await probe(PROBE_PATHS.ready)) === 200, { timeoutMs: 30_000, intervalMs: 100 }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; ${viaInit ? 'tini' : 'node'} said: ${stderr}`);
    });
    expect(await probe(PROBE_PATHS.startup)).toBe(200);
    expect(await probe(PROBE_PATHS.live)).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
