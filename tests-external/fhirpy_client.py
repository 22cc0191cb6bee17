"""Drives Tillit's FHIR API with fhirpy (a maintained third-party FHIR client, SyncFHIRClient).

Env: FHIR_BASE (https://host:port/fhir/r4), FHIR_CA (PEM of the CA to trust), FHIR_TOKEN
(bearer token); optional NATIONAL_ID (the Patient's national id, default 01810700021) and
OUT_DIR (server responses are written there for validate_output.mjs).
Run with target/test-tools/venv/bin/python (scripts/install-test-tools).
Exits 1 with `fhirpy: FAILED: ...` at the first failed check, 2 on missing env or packages.

fhirpy sends every request through requests.request(..., json=body, **requests_config): the
CA goes in as requests_config={"verify": FHIR_CA}; bodies go as Content-Type application/json
(not application/fhir+json) with Accept: application/fhir+json; a transaction is POST [base]/
(trailing slash); fetch_all() follows Bundle.link[next] only if it starts with FHIR_BASE.
"""
import json
import os
import sys
import uuid

NAME = "fhirpy"
NID = "urn:oid:2.16.578.1.12.4.1.4.1"
LOINC = "http://loinc.org"
checks = 0
step = "start"


def fail(msg, code=1):
    print(f"{NAME}: FAILED: {msg}", file=sys.stderr)
    sys.exit(code)


def check(cond, what):
    global checks
    if not cond:
        fail(what)
    checks += 1


def env(name):
    v = os.environ.get(name)
    if not v:
        fail(f"environment variable {name} is not set", 2)
    return v


def save(name, data):
    out = os.environ.get("OUT_DIR")
    if out:
        with open(os.path.join(out, f"{NAME}-{name}.json"), "w") as f:
            json.dump(data, f)


def new_id(entry, rt):
    """The id a transaction gave an entry: from entry.resource, else from response.location
    (relative or absolute, maybe with /_history/N)."""
    if entry.get("resource", {}).get("id"):
        return entry["resource"]["id"]
    parts = entry.get("response", {}).get("location", "").split("/")
    if rt in parts[:-1]:
        return parts[parts.index(rt) + 1]
    fail(f"transaction-response entry for {rt} has neither resource.id nor a location: {entry}")


def run():
    global step
    base, ca, token = env("FHIR_BASE"), env("FHIR_CA"), env("FHIR_TOKEN")
    if not os.path.isfile(ca):
        fail(f"FHIR_CA {ca} is not a file", 2)
    client = SyncFHIRClient(
        base,
        authorization=f"Bearer {token}",
        requests_config={"verify": ca, "timeout": 30},
    )
    nid = os.environ.get("NATIONAL_ID", "01810700021")

    step = "create Patient"
    patient = client.resource(
        "Patient",
        identifier=[{"system": NID, "value": nid}],
        name=[{"family": "Fhirpy", "given": ["Klient"]}],
        gender="female",
        birthDate="1907-01-01",
    )
    patient.save()
    check(patient.id, "create Patient returns an id")
    save("patient-created", patient.serialize())

    step = "read Patient"
    read = client.reference("Patient", patient.id).to_resource()
    check(read["name"][0]["family"] == "Fhirpy", "read Patient back")
    check(read["identifier"][0]["value"] == nid, "identifier kept")
    check(read.get("meta", {}).get("versionId") == "1", "first version is 1")

    step = "update Patient"
    read["name"][0]["family"] = "Fhirpy-Endret"
    read.save()
    again = client.reference("Patient", patient.id).to_resource()
    check(again["name"][0]["family"] == "Fhirpy-Endret", "update Patient changes the name")
    check(again["meta"]["versionId"] == "2", "update makes version 2")
    save("patient-updated", again.serialize())

    step = "search Patient by identifier"
    found = client.resources("Patient").search(identifier=f"{NID}|{nid}").fetch_all()
    check(any(p.id == patient.id for p in found), f"search Patient?identifier={NID}|{nid} finds it")

    step = "create Observation"
    obs = client.resource(
        "Observation",
        status="final",
        category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                               "code": "vital-signs", "display": "Vital Signs"}]}],
        code={"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
        subject={"reference": f"Patient/{patient.id}"},
        effectiveDateTime="2026-03-01T08:00:00+01:00",
        valueQuantity={"value": 71, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
    )
    obs.save()
    check(obs.id, "create Observation returns an id")
    save("observation", obs.serialize())

    step = "search Observation by patient and code"
    hits = client.resources("Observation").search(patient=patient.id, code=f"{LOINC}|8867-4").fetch_all()
    check([o.id for o in hits] == [obs.id], f"Observation?patient=...&code={LOINC}|8867-4 finds exactly it")

    step = "transaction"
    pat_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": pat_url,
             "resource": {"resourceType": "Patient", "name": [{"family": "Transaksjon", "given": ["Fhirpy"]}],
                          "birthDate": "1980-05-17"},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}",
             "resource": {"resourceType": "Observation", "status": "final",
                          "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
                          "subject": {"reference": pat_url},
                          "valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    # POST [base] (fhirpy makes it "[base]/?").
    resp = client.execute("", method="post", data=bundle)
    save("transaction-response", resp)
    check(resp.get("resourceType") == "Bundle" and resp.get("type") == "transaction-response",
          f"transaction answers a transaction-response Bundle (got {resp.get('resourceType')}/{resp.get('type')})")
    entries = resp.get("entry", [])
    statuses = [e.get("response", {}).get("status", "") for e in entries]
    check(len(entries) == 2 and all(s.startswith("201") for s in statuses),
          f"transaction created both entries ({statuses})")
    new_pid = new_id(entries[0], "Patient")
    new_oid = new_id(entries[1], "Observation")
    if entries[1].get("resource"):
        check(entries[1]["resource"].get("subject", {}).get("reference") == f"Patient/{new_pid}",
              "urn:uuid reference rewritten in the transaction-response")
    tx_obs = client.reference("Observation", new_oid).to_resource()
    check(tx_obs["subject"]["reference"] == f"Patient/{new_pid}",
          f"urn:uuid reference rewritten to Patient/{new_pid} (got {tx_obs['subject']['reference']})")
    check(tx_obs["valueQuantity"]["value"] == 70.5, "decimal kept")
    check(client.reference("Patient", new_pid).to_resource()["name"][0]["family"] == "Transaksjon",
          "transaction Patient readable")
    print(f"{NAME}: {checks} checks passed")


def main():
    try:
        run()
    except SystemExit:
        raise
    except requests.exceptions.SSLError as e:
        fail(f"{step}: TLS error (is FHIR_CA the CA that signed the server's certificate?): {e}")
    except requests.exceptions.ConnectionError as e:
        fail(f"{step}: cannot connect to FHIR_BASE {os.environ.get('FHIR_BASE')}: {e}")
    except requests.exceptions.RequestException as e:
        fail(f"{step}: HTTP error: {e}")
    except BaseFHIRError as e:
        fail(f"{step}: server answered {type(e).__name__}: {str(e)[:1000]}")
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        fail(f"{step}: unexpected response shape: {type(e).__name__}: {e}")


try:
    import requests
    from fhirpy import SyncFHIRClient
    from fhirpy.base.exceptions import BaseFHIRError
except ImportError as e:
    fail(f"{e}: run with target/test-tools/venv/bin/python (scripts/install-test-tools)", 2)

if __name__ == "__main__":
    main()
