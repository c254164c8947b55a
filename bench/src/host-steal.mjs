// The machine's CPU ticks from /proc/stat, to report how much of a run's time the hypervisor of a
// shared virtual machine gave to other guests ('steal'). The benches quote it beside their
// figures: on this kind of host the speed of a core drifts by 20-40 % for seconds at a time, and a
// high steal share while one framework or mix ran says its figure is the host's as much as its own.
import { readFileSync } from 'node:fs';

/** All CPU ticks and the 'steal' ones, summed over the machine's CPUs (Linux); null elsewhere. */
export function cpuTicks() {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return null;
    return { total: f.reduce((a, x) => a + x, 0), steal: f[7] };
  } catch {
    return null;
  }
}

/** Steal between two cpuTicks() readings, in % of the machine's CPU time; null when unknown. */
export function stealPercent(before, after) {
  if (!before || !after || !(after.total > before.total)) return null;
  return (100 * (after.steal - before.steal)) / (after.total - before.total);
}
