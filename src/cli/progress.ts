// A one-line progress bar on a terminal; plain log lines when the stream is not a TTY (CI, logs).
import type { Writable } from 'node:stream';

export class ProgressBar {
  #lastPhase = '';
  #lastLine = 0;
  #open = false;
  constructor(private readonly out: Writable & { isTTY?: boolean; columns?: number }) {}

  update(phase: string, step: number, total: number, eta?: number): void {
    const label = phase.replace(/_/g, ' ');
    const etaText = eta !== undefined && step < total ? ` eta ${eta.toFixed(1)} s` : '';
    if (this.out.isTTY) {
      const width = 30;
      const filled = total > 0 ? Math.round((step / total) * width) : 0;
      const line = `${label.padEnd(16)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${step}/${total}${etaText}`;
      this.out.write(`\r${line.padEnd(this.#lastLine)}`);
      this.#lastLine = line.length;
      this.#open = true;
    } else if (phase !== this.#lastPhase || step === total) {
      this.out.write(`${label}: ${step}/${total}${etaText}\n`);
    }
    this.#lastPhase = phase;
  }

  done(): void {
    if (this.#open) this.out.write('\n');
    this.#open = false;
  }

  note(text: string): void {
    this.done();
    this.out.write(`sgld: ${text}\n`);
  }
}
