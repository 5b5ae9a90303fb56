// The `sgld` command: subcommand dispatch and error reporting.
import { UsageError } from './args.js';
import { generateCommand } from './generate.js';

const USAGE = `Usage: sgld <command> [options]

Commands:
  serve      the OpenAI-compatible HTTP server (sgld serve --help)
  generate   one prompt -> an image or video file (sgld generate --help)`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'generate': return await generateCommand(rest);
      case undefined: case '--help': case '-h': case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      // Loaded on demand: `generate` does not need the server's modules (uWS, piscina, prom-client).
      case 'serve': return await (await import('./serve.js')).serveCommand(rest);
      default:
        console.error(`sgld: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`sgld ${command}: ${err.message}`);
      return 2;
    }
    console.error(`sgld ${command}: ${(err as Error).stack ?? err}`);
    return 1;
  }
}
