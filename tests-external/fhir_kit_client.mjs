// Drives Tillit's FHIR API with fhir-kit-client (npm). Env as fhirpy_client.py.
// fhir-kit-client uses node's fetch, which trusts NODE_EXTRA_CA_CERTS: the caller sets it
// to FHIR_CA.
import { Client } from 'fhir-kit-client';

let checks = 0;
function check(cond, what) {
  if (!cond) {
    console.error(`fhir-kit-client: FAILED: ${what}`);
    process.exit(1);
  }
  checks += 1;
}

const NID = 'urn:oid:2.16.578.1.12.4.1.4.1';
const client = new Client({
  baseUrl: process.env.FHIR_BASE,
  customHeaders: { Authorization: `Bearer ${process.env.FHIR_TOKEN}` },
});
const nid = process.env.NATIONAL_ID || '01810700209';

try {
  const created = await client.create({
    resourceType: 'Patient',
    body: { resourceType: 'Patient', identifier: [{ system: NID, value: nid }], name: [{ family: 'Kitklient', given: ['Node'] }], gender: 'male' },
  });
  check(created.id, 'create Patient');
  const read = await client.read({ resourceType: 'Patient', id: created.id });
  check(read.name[0].family === 'Kitklient', 'read Patient');
  read.name[0].family = 'Kitklient-Endret';
  const updated = await client.update({ resourceType: 'Patient', id: created.id, body: read });
  check(updated.meta.versionId === '2', 'update makes version 2');
  const vread = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  check(vread.name[0].family === 'Kitklient', 'vread version 1');
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${NID}|${nid}` } });
  check(found.total === 1 && found.entry[0].resource.id === created.id, 'search by identifier');
  const history = await client.history({ resourceType: 'Patient', id: created.id });
  check(history.type === 'history' && history.entry.length === 2, 'instance history');
  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:2f4bb1b5-0a59-4c51-8c4c-5a6d3a0b4f11', resource: { resourceType: 'Patient', name: [{ family: 'Kittransaksjon' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Condition', subject: { reference: 'urn:uuid:2f4bb1b5-0a59-4c51-8c4c-5a6d3a0b4f11' }, code: { text: 'Hypertensjon' } }, request: { method: 'POST', url: 'Condition' } },
      ],
    },
  });
  check(tx.type === 'transaction-response' && tx.entry.every((e) => e.response.status.startsWith('201')), 'transaction');
  const cap = await client.capabilityStatement();
  check(cap.fhirVersion === '4.0.1', 'CapabilityStatement');
  await client.delete({ resourceType: 'Patient', id: created.id });
  let gone = false;
  try {
    await client.read({ resourceType: 'Patient', id: created.id });
  } catch (e) {
    gone = e.response && e.response.status === 410;
  }
  check(gone, 'read after delete answers 410');
} catch (e) {
  console.error(`fhir-kit-client: FAILED: ${e.message} ${JSON.stringify(e.response?.data ?? '')}`);
  process.exit(1);
}
console.log(`fhir-kit-client: ${checks} checks passed`);
