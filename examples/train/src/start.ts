import { main } from './main.js';

await main({ outDir: 'out', print: true });
