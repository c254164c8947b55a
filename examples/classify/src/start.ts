import { main } from './main.js';

await main({ model: process.argv[2] ?? '../train/out/lenet_deploy.prototxt', weights: process.argv[3] ?? '../train/out/lenet.caffemodel', print: true });
