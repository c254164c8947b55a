/*
 * DataParallelOptions.replicaSetup: a module every replica (rank 0 included) runs around building
 * its train net, for what the net definition cannot say. Apart from data-parallel.ts so that the
 * workers load only this.
 */
import type { Net } from '@caffe-ts/net';
import { ParallelConfigError } from './pool.js';

/** DataParallelOptions.replicaSetup: a module specifier or URL and the data its hooks get. */
export interface ReplicaSetup {
  module: string;
  data?: unknown;
}

/** Which replica a setup hook runs for: rank of count (count 1: this net reads every batch). */
export interface ReplicaInfo {
  rank: number;
  count: number;
}

/** The exports of a ReplicaSetup's module (both optional). */
export interface ReplicaSetupModule {
  beforeBuild?(data: unknown, replica: ReplicaInfo): void | Promise<void>;
  afterBuild?(net: Net, data: unknown, replica: ReplicaInfo): void | Promise<void>;
}

/** Import a ReplicaSetup's module, failing with its name. */
export async function loadReplicaSetup(setup: ReplicaSetup): Promise<ReplicaSetupModule> {
  try {
    return (await import(setup.module)) as ReplicaSetupModule;
  } catch (e) {
    throw new ParallelConfigError(`replicaSetup: cannot import '${setup.module}': ${e instanceof Error ? e.message : String(e)}`);
  }
}
