#!/usr/bin/env node
import { runCli } from './cli.js';
import { userCwd } from './paths.js';

// Under `pnpm caffe …` the process starts in the workspace root; work from the user's directory
// so that every relative path (flags, and paths inside prototxt files) resolves as in C++ Caffe.
process.chdir(userCwd());

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`caffe: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
