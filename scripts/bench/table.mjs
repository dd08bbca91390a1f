// Prints a results file (default bench-results/results.json) as the README's Markdown table.
//   node scripts/bench/table.mjs [FILE]
import { readFile } from 'node:fs/promises';
import { machineLine, markdownTable } from './report.mjs';

const document = JSON.parse(await readFile(process.argv[2] ?? 'bench-results/results.json', 'utf8'));
process.stdout.write(`${markdownTable(document.results)}\n\n${machineLine(document)}\n`);
