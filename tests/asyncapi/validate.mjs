// Parses an AsyncAPI document with the AsyncAPI initiative's own parser
// (@asyncapi/parser, which also validates it against the specification's
// JSON Schema and its rules): prints every diagnostic, exits 1 on an error
// or when nothing could be parsed, 0 otherwise.
//
//   node tests/asyncapi/validate.mjs path/to/asyncapi.json
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const path = process.argv[2];
if (!path) {
    console.error('usage: node validate.mjs ASYNCAPI_JSON');
    process.exit(2);
}
const { document, diagnostics } = await new Parser().parse(readFileSync(path, 'utf8'));
// Severity 0 is an error; 1-3 are warnings, information and hints.
for (const d of diagnostics) {
    console.error(`severity ${d.severity} ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
}
if (!document || diagnostics.some((d) => d.severity === 0)) {
    process.exit(1);
}
console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.operations().length} operations`);
