// The real engine (Supervisor) behind the real HTTP front on 127.0.0.1 and a free port, with an openai SDK client
// pointed at it: what the end-to-end API tests start.
import { join } from 'node:path';
import OpenAI from 'openai';
import { Supervisor } from '../../src/actors/supervisor.js';
import { type HttpServer, startHttpServer } from '../../src/http/server.js';
import { consoleLogger } from '../../src/kernel/index.js';

export interface RunningServer { engine: Supervisor; server: HttpServer; client: OpenAI; base: string }

/** Serves `modelDir` as `servedModelName`, outputs and uploads under `outputDir`; engine logs errors only. */
export async function startApiServer(modelDir: string, outputDir: string, servedModelName: string): Promise<RunningServer> {
  const engine = new Supervisor({
    modelPath: modelDir, servedModelName, outputPath: join(outputDir, 'outputs'),
    inputSavePath: join(outputDir, 'inputs'), threads: 2, encoderThreads: 1, logger: consoleLogger('error'),
  });
  try {
    await engine.ready();
  } catch (e) {
    await engine.stop({ drainTimeoutMs: 0 });
    throw e;
  }
  const server = await startHttpServer(engine, { host: '127.0.0.1', port: 0, logger: { info() {}, warn() {}, error: (m) => console.error(m) } });
  const base = `http://127.0.0.1:${server.port}`;
  const client = new OpenAI({ apiKey: 'sk-unused', baseURL: `${base}/v1`, maxRetries: 0, timeout: 120_000 });
  return { engine, server, client, base };
}
