// `sgld serve` as a real child process for tests (API, faults, input): started from source through tap's TypeScript
// loader (test/api/sgld-cli-entry.ts), on a free loopback port, with its output kept for assertions and failure
// reports. Startup includes the TS compile of the engine's worker modules (10-20 s on 2 busy cores).
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = new URL('../..', import.meta.url).pathname;

/** Loading includes compiling the device worker's modules: tens of seconds on a busy 2-core machine. */
export const READY_TIMEOUT_MS = 120_000;

export interface SgldProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:PORT` once it listens. */
  base: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Its JSON log lines so far. */
  logLines(): Record<string, unknown>[];
  /** Resolves with the exit code (null when killed by a signal) and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `sgld serve ARGS` and resolves once it prints where it listens (the model may still be loading). */
export async function startSgld(args: readonly string[], env: Record<string, string> = {}): Promise<SgldProcess> {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', join(ROOT, 'test/api/sgld-cli-entry.ts'), 'serve', ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', ...env },
  });
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const base = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(({ code }) => reject(new Error(`sgld serve exited (${code}) before listening:\n${output}`)));
  });
  const logLines = (): Record<string, unknown>[] => output.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; }
  });
  return { child, base, output: () => output, logLines, exited };
}

/** Waits until /ready answers 200 (503 while the model loads). */
export async function waitReady(base: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const r = await fetch(`${base}/ready`).catch(() => null);
    if (r?.status === 200) return;
    if (r && r.status !== 503) throw new Error(`/ready answered ${r.status}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('the model did not load in time');
}

/** Kills the process (SIGKILL) if it still runs; for teardowns. */
export function killIfRunning(p: SgldProcess | undefined): void {
  if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}
