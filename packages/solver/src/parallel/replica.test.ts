import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { threadCpuMs, threadTimes } from './replica.js';

describe('threadCpuMs (the profile timers)', () => {
  const linux = existsSync('/proc/thread-self/stat');

  it.skipIf(!linux)('counts this thread’s busy time, at most its wall time', () => {
    const cpu0 = threadCpuMs();
    const t0 = performance.now();
    let x = 0;
    while (performance.now() - t0 < 60) x += Math.sqrt(x + 1);
    const wall = performance.now() - t0;
    const cpu = threadCpuMs() - cpu0;
    expect(x).toBeGreaterThan(0);
    expect(cpu).toBeGreaterThan(1);
    expect(cpu).toBeLessThanOrEqual(wall + 1);
  });

  it.skipIf(!existsSync('/proc/thread-self/schedstat'))('reads the scheduler’s ns account, finer than the 10-ms ticks of stat', () => {
    // The account moves at the scheduler's ticks (a few ms) while the thread runs; stat's
    // utime + stime would move only in whole 10-ms steps.
    const seen = [threadCpuMs()];
    const t0 = performance.now();
    while (performance.now() - t0 < 100) {
      const v = threadCpuMs();
      if (v !== seen[seen.length - 1]) seen.push(v);
    }
    const steps = seen.slice(1).map((v, i) => v - seen[i]!);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.some((d) => Math.abs(d / 10 - Math.round(d / 10)) > 1e-3)).toBe(true);
  });

  it.skipIf(!existsSync('/proc/self/task'))('reads another thread of this process by its task folder, with its runqueue wait', () => {
    const mine = threadTimes(`/proc/self/task/${process.pid}`);
    expect(mine.cpu).toBeGreaterThan(0);
    if (existsSync('/proc/thread-self/schedstat')) expect(mine.wait).toBeGreaterThanOrEqual(0);
    else expect(mine.wait).toBeNaN();
    expect(() => threadTimes('/proc/self/task/no-such-thread')).toThrow();
  });
});
