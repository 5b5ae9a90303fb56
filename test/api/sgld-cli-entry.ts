// Runs the `sgld` command from source (bin/sgld.js runs the built dist/), for tests that start `sgld serve` as a
// child process: node --import @tapjs/typescript/import test/api/sgld-cli-entry.ts serve ...
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
