import { describe, expect, it } from 'vitest';
import { logger, setLogSink } from '@caffe-ts/blob';
import { Flags } from './args.js';
import { progressCallback, startProgress, wantProgress, type ProgressStream } from './progress.js';

function fakeTty(): ProgressStream & { text: string } {
  const s = {
    text: '',
    isTTY: true,
    columns: 120,
    write(t: string) {
      s.text += t;
      return true;
    },
    cursorTo() {
      return true;
    },
    moveCursor() {
      return true;
    },
    clearLine() {
      return true;
    },
    clearScreenDown() {
      return true;
    },
  };
  return s;
}

describe('progress bars', () => {
  it('are drawn only on a TTY without --verbose-logs', () => {
    const tty = fakeTty();
    // Test runners get plain log lines unless asked (their log capture must keep working).
    expect(wantProgress(new Flags('train', {}), tty)).toBe(false);
    process.env.CAFFE_TS_PROGRESS = '1';
    try {
    expect(wantProgress(new Flags('train', {}), tty)).toBe(true);
    expect(wantProgress(new Flags('train', {}), { ...tty, isTTY: false })).toBe(false);
    expect(wantProgress(new Flags('train', { 'verbose-logs': true }), tty)).toBe(false);
    expect(wantProgress(new Flags('train', { verbose_logs: true }), tty)).toBe(false);
    // The flag is read, so the command accepts it.
    const f = new Flags('train', { 'verbose-logs': true });
    wantProgress(f, tty);
    expect(() => f.checkAllUsed()).not.toThrow();
    } finally {
      delete process.env.CAFFE_TS_PROGRESS;
    }
  });

  it('show done/total, ETA, throughput and loss, and hold back INFO lines', () => {
    const lines: string[] = [];
    const outer = setLogSink((l) => {
      lines.push(l);
    });
    try {
      const tty = fakeTty();
      const bar = startProgress('train', 100, { stream: tty, unit: 'iters' });
      const log = logger('solver.cpp');
      log.info('Iteration 10, loss = 1');
      log.warn('a warning stays visible');
      bar.update(50, { loss: 1.23456 });
      bar.log('Iteration 50, test net #0: accuracy = 0.5');
      bar.update(100, { loss: 0.5 });
      bar.stop();
      expect(tty.text).toMatch(/train \[[^\]]*\] 100% \| 100\/100 iters \| ETA \S+ \| [\d.]+ iters\/s \| loss 0\.5000/);
      expect(tty.text).toContain('a warning stays visible');
      expect(tty.text).toContain('Iteration 50, test net #0: accuracy = 0.5');
      expect(tty.text).not.toContain('Iteration 10, loss = 1');
      expect(lines).toEqual([]);
      const conv = fakeTty();
      const cb = progressCallback('convert', true, 'images', conv);
      cb.onProgress!(1000, 2000);
      cb.onProgress!(2000, 2000);
      cb.stop();
      expect(conv.text).toMatch(/convert \[[^\]]*\] 100% \| 2000\/2000 images \| ETA \S+ \| [\d.]+ images\/s/);
      expect(conv.text).not.toContain('loss');
      expect(progressCallback('convert', false).onProgress).toBeUndefined();
      // After stop the previous sink is back.
      log.info('after');
      expect(lines).toHaveLength(1);
    } finally {
      setLogSink(outer);
    }
  });
});
