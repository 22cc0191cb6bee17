// Drives Tillit's FHIR API with fhir-kit-client (npm, 2.x).
//
// Env: FHIR_BASE (https://host:port/fhir/r4), FHIR_CA (PEM of the CA to trust), FHIR_TOKEN
// (bearer token); optional NATIONAL_ID (default 01810700209), OUT_DIR (responses are written
// there for validate_output.mjs) and TEST_TOOLS_DIR (see below).
// Exits 1 with `fhir-kit-client: FAILED: ...` at the first failed check, 2 on missing env/tools.
//
// TLS: fhir-kit-client 2.x calls node's global fetch (undici) with its `requestOptions` spread
// into the RequestInit. Its https keep-alive `agent` is ignored by fetch, but undici's
// `dispatcher` is honoured, so an undici Agent with connect.ca = FHIR_CA trusts our CA for this
// client only (no NODE_EXTRA_CA_CERTS needed; setting it as well does no harm). It sends
// Accept: application/fhir+json and, on POST/PUT, Content-Type: application/fhir+json.
//
// Packages come from the tools' node folder (scripts/install-test-tools): TEST_TOOLS_DIR/node if
// set, else this script's own folder if it has node_modules (the Rust test copies the script
// there), else ../target/test-tools/node beside this script.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NAME = 'fhir-kit-client';
const NID = 'urn:oid:2.16.578.1.12.4.1.4.1';
const LOINC = 'http://loinc.org';
let checks = 0;
let step = 'start';

function fail(msg, code = 1) {
  console.error(`${NAME}: FAILED: ${msg}`);
  process.exit(code);
}
function check(cond, what) {
  if (!cond) fail(`${step}: ${what}`);
  checks += 1;
}
function env(name) {
  const v = process.env[name];
  if (!v) fail(`environment variable ${name} is not set`, 2);
  return v;
}
function save(name, data) {
  if (process.env.OUT_DIR) fs.writeFileSync(path.join(process.env.OUT_DIR, `${NAME}-${name}.json`), JSON.stringify(data));
}

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = [
  process.env.TEST_TOOLS_DIR && path.join(process.env.TEST_TOOLS_DIR, 'node'),
  here,
  path.join(here, '..', 'target', 'test-tools', 'node'),
]
  .filter(Boolean)
  .find((d) => fs.existsSync(path.join(d, 'node_modules', 'fhir-kit-client')));
if (!nodeDir) fail('test tools not found: run scripts/install-test-tools (or set TEST_TOOLS_DIR)', 2);

// import() of a package in nodeDir (a bare import would resolve from this file's folder).
async function load(name) {
  const dir = path.join(nodeDir, 'node_modules', ...name.split('/'));
  if (!fs.existsSync(dir)) fail(`${name} is not installed in ${nodeDir}: run scripts/install-test-tools`, 2);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const pick = (x) => (typeof x === 'string' ? x : x && (pick(x.import) ?? pick(x.node) ?? pick(x.default)));
  const exp = pkg.exports && typeof pkg.exports === 'object' && '.' in pkg.exports ? pkg.exports['.'] : pkg.exports;
  return import(pathToFileURL(path.join(dir, pick(exp) ?? pkg.main ?? 'index.js')).href);
}

const base = env('FHIR_BASE');
const caFile = env('FHIR_CA');
const token = env('FHIR_TOKEN');
if (!fs.existsSync(caFile)) fail(`FHIR_CA ${caFile} is not a file`, 2);
const nid = process.env.NATIONAL_ID || '01810700209';

const { Client } = await load('fhir-kit-client');
const { Agent } = await load('undici');
const dispatcher = new Agent({ connect: { ca: fs.readFileSync(caFile) }, headersTimeout: 30_000, bodyTimeout: 30_000 });
const client = new Client({ baseUrl: base, bearerToken: token, requestOptions: { dispatcher } });

function idFrom(entry, rt) {
  if (entry.resource?.id) return entry.resource.id;
  const parts = (entry.response?.location ?? '').split('/');
  const i = parts.indexOf(rt);
  if (i >= 0 && i + 1 < parts.length) return parts[i + 1];
  fail(`${step}: transaction-response entry for ${rt} has neither resource.id nor a location: ${JSON.stringify(entry)}`);
}

async function run() {
  step = 'CapabilityStatement';
  const cap = await client.capabilityStatement();
  check(cap.resourceType === 'CapabilityStatement' && cap.fhirVersion === '4.0.1', `fhirVersion 4.0.1 (got ${cap.fhirVersion})`);

  step = 'create Patient';
  const created = await client.create({
    resourceType: 'Patient',
    body: {
      resourceType: 'Patient',
      identifier: [{ system: NID, value: nid }],
      name: [{ family: 'Kitklient', given: ['Node'] }],
      gender: 'male',
      birthDate: '1907-01-01',
    },
  });
  save('patient-created', created);
  check(created.id && created.meta?.versionId === '1', 'created Patient has an id and versionId 1');

  step = 'read Patient';
  const read = await client.read({ resourceType: 'Patient', id: created.id });
  check(read.name?.[0]?.family === 'Kitklient' && read.identifier?.[0]?.value === nid, 'read back what was created');

  step = 'update Patient';
  read.name[0].family = 'Kitklient-Endret';
  const updated = await client.update({ resourceType: 'Patient', id: created.id, body: read });
  save('patient-updated', updated);
  check(updated.meta?.versionId === '2' && updated.name[0].family === 'Kitklient-Endret', 'update makes version 2 with the new name');
  const vread = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  check(vread.name[0].family === 'Kitklient', 'vread of version 1 has the old name');

  step = 'search Patient by identifier';
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${NID}|${nid}` } });
  save('search-patient', found);
  check(found.type === 'searchset' && (found.entry ?? []).some((e) => e.resource.id === created.id), 'search by identifier finds it');

  step = 'create Observation';
  const obs = await client.create({
    resourceType: 'Observation',
    body: {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${created.id}` },
      effectiveDateTime: '2026-03-01T08:00:00+01:00',
      valueQuantity: { value: 64, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    },
  });
  save('observation', obs);
  check(obs.id, 'created Observation has an id');

  step = 'search Observation by patient and code';
  const hits = await client.search({ resourceType: 'Observation', searchParams: { patient: created.id, code: `${LOINC}|8867-4` } });
  check((hits.entry ?? []).map((e) => e.resource.id).join() === obs.id, 'finds exactly the new Observation');

  step = 'history';
  const history = await client.history({ resourceType: 'Patient', id: created.id });
  check(history.type === 'history' && history.entry?.length === 2, `instance history has 2 versions (got ${history.entry?.length})`);

  step = 'transaction';
  const patUrl = `urn:uuid:${randomUUID()}`;
  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: patUrl, resource: { resourceType: 'Patient', name: [{ family: 'Kittransaksjon' }] }, request: { method: 'POST', url: 'Patient' } },
        {
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }] },
            subject: { reference: patUrl },
            valueQuantity: { value: 88, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
          },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    },
  });
  save('transaction-response', tx);
  const statuses = (tx.entry ?? []).map((e) => e.response?.status);
  check(tx.type === 'transaction-response', `answers a transaction-response (got ${tx.type})`);
  check(statuses.length === 2 && statuses.every((s) => String(s).startsWith('201')), `both entries 201 (got ${statuses})`);
  const pid = idFrom(tx.entry[0], 'Patient');
  const txObs = await client.read({ resourceType: 'Observation', id: idFrom(tx.entry[1], 'Observation') });
  check(txObs.subject?.reference === `Patient/${pid}`, `urn:uuid reference rewritten to Patient/${pid} (got ${txObs.subject?.reference})`);

  step = 'delete';
  await client.delete({ resourceType: 'Observation', id: obs.id });
  let status = 0;
  try {
    await client.read({ resourceType: 'Observation', id: obs.id });
  } catch (e) {
    status = e.response?.status ?? 0;
  }
  check(status === 410, `read after delete answers 410 Gone (got ${status || 'success'})`);
}

try {
  await run();
} catch (e) {
  if (e.response) {
    fail(`${step}: server answered ${e.message}: ${JSON.stringify(e.response.data).slice(0, 1000)}`);
  }
  const cause = e.cause ? ` (${[e.cause.code, e.cause.message].filter(Boolean).join(': ')})` : '';
  const tls = /CERT|SSL|TLS/.test(`${e.cause?.code} ${e.cause?.message}`) ? ' - is FHIR_CA the CA that signed the server certificate?' : '';
  fail(`${step}: ${e.message}${cause}${tls} [FHIR_BASE ${base}]`);
}
await dispatcher.close();
console.log(`${NAME}: ${checks} checks passed`);
