import { SingleBar } from 'cli-progress';
import type { RunProgress } from '../local/runner';

/** Where a run stands, from the progress events its steps emit. */
export interface ProgressSnapshot {
  phase: 'staging' | 'sending' | 'done';
  /** Records read, and rejected by validation, so far. */
  read: number;
  validationRejected: number;
  /** Records the dataflow's filter left out so far: never sent, so never part of `toSend`. */
  filtered: number;
  /** Records to send (known once the file is staged). */
  toSend?: number;
  sent: number;
  accepted: number;
  apiRejected: number;
  /** Records a second in the current phase, and the seconds left at that rate (sending only). */
  rate: number;
  etaSeconds?: number;
}

/** Turns progress events into a snapshot: records read, sent, rejected, the rate and the time left. */
export class ProgressTracker {
  private read = 0;
  private validationRejected = 0;
  private filtered = 0;
  private toSend: number | undefined;
  private sent = 0;
  private readonly perChunk = new Map<number, { accepted: number; rejected: number }>();
  private phaseStarted: number;
  private staged = false;

  constructor(private readonly now: () => number = Date.now) {
    this.phaseStarted = now();
  }

  update(event: RunProgress): void {
    if (event.step === 'stage') {
      this.read = event.records;
      this.validationRejected = event.rejected;
      this.filtered = event.filtered ?? 0;
      if (event.done && !this.staged) {
        this.staged = true;
        this.toSend = event.records - event.rejected - this.filtered;
        this.phaseStarted = this.now();
      }
    } else if (event.step === 'send') {
      this.sent += event.records;
      this.perChunk.set(event.chunk, { accepted: event.accepted, rejected: event.rejected });
    }
  }

  snapshot(): ProgressSnapshot {
    let accepted = 0;
    let apiRejected = 0;
    for (const chunk of this.perChunk.values()) {
      accepted += chunk.accepted;
      apiRejected += chunk.rejected;
    }
    const seconds = Math.max(0.001, (this.now() - this.phaseStarted) / 1000);
    const sending = this.staged;
    const rate = (sending ? this.sent : this.read) / seconds;
    const done = sending && this.toSend !== undefined && this.sent >= this.toSend;
    return {
      phase: done ? 'done' : sending ? 'sending' : 'staging',
      read: this.read,
      validationRejected: this.validationRejected,
      filtered: this.filtered,
      ...(this.toSend !== undefined ? { toSend: this.toSend } : {}),
      sent: this.sent,
      accepted,
      apiRejected,
      rate,
      ...(sending && this.toSend !== undefined && rate > 0 ? { etaSeconds: Math.max(0, (this.toSend - this.sent) / rate) } : {}),
    };
  }
}

const n = (value: number) => Math.round(value).toLocaleString('en');
const duration = (seconds: number) => (seconds >= 3600 ? `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m` : seconds >= 60 ? `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s` : `${Math.round(seconds)}s`);

/** One line for a snapshot, as the plain (non-terminal) display prints it. */
export function progressLine(s: ProgressSnapshot): string {
  if (s.phase === 'staging') return `staging: read ${n(s.read)} records, ${n(s.validationRejected)} rejected by validation (${n(s.rate)}/s)`;
  const rejected = s.validationRejected + s.apiRejected;
  return `${s.phase === 'done' ? 'sent' : 'sending'}: ${n(s.sent)}/${n(s.toSend ?? 0)} sent, ${n(s.accepted)} accepted, ${n(rejected)} rejected (${n(s.rate)}/s${s.phase === 'sending' && s.etaSeconds !== undefined ? `, ETA ${duration(s.etaSeconds)}` : ''})`;
}

export interface ProgressDisplay {
  (event: RunProgress): void;
  /** Ends the display (clears the live bar). */
  stop(): void;
}

/**
 * The progress of a local run on stderr: a live bar on a terminal (records read, sent, rejected, rate, ETA), or plain
 * lines — at most one every `intervalMs`, and one at each phase's end — when stderr is not a terminal or with --quiet.
 */
export function progressDisplay(options: { live: boolean; stream?: NodeJS.WriteStream; intervalMs?: number; now?: () => number }): ProgressDisplay {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const tracker = new ProgressTracker(now);
  let bar: SingleBar | undefined;
  let lastLine = 0;
  let lastPhase: ProgressSnapshot['phase'] | undefined;

  const display = ((event: RunProgress) => {
    tracker.update(event);
    const s = tracker.snapshot();
    if (options.live) {
      const payload = { line: progressLine(s) };
      if (s.phase === 'staging') {
        bar ??= new SingleBar({ stream, format: ' {line}', hideCursor: true, clearOnComplete: false, barsize: 30, fps: 5 });
        if (!bar.isActive) bar.start(1, 0, payload);
        bar.update(0, payload);
      } else {
        if (bar && lastPhase === 'staging') bar.stop();
        if (lastPhase === 'staging' || !bar?.isActive) {
          bar = new SingleBar({ stream, format: ' [{bar}] {percentage}% {line}', hideCursor: true, barsize: 30, fps: 5 });
          bar.start(Math.max(1, s.toSend ?? 1), 0, payload);
        }
        bar.update(s.sent, payload);
        if (s.phase === 'done') bar.stop();
      }
    } else {
      const phaseEnded = lastPhase !== undefined && lastPhase !== s.phase;
      const staged = event.step === 'stage' && event.done;
      if (staged) {
        stream.write(`staged: ${n(s.read)} records read, ${n(s.toSend ?? 0)} to send, ${n(s.validationRejected)} rejected by validation${s.filtered > 0 ? `, ${n(s.filtered)} filtered` : ''}\n`);
        lastLine = now();
      } else if (phaseEnded || (s.phase !== 'done' && now() - lastLine >= (options.intervalMs ?? 5000))) {
        stream.write(`${progressLine(s)}\n`);
        lastLine = now();
      }
    }
    lastPhase = s.phase;
  }) as ProgressDisplay;
  display.stop = () => bar?.stop();
  return display;
}
