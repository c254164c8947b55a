import { main } from './main.js';

await main({ weights: process.argv[2] ?? '../train/out/lenet.caffemodel', print: true });
