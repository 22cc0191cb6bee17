"""Drives Tillit's FHIR API with fhirpy (a maintained third-party client).

Env: FHIR_BASE (https://host:port/fhir/r4), FHIR_CA (PEM to trust), FHIR_TOKEN (bearer),
OUT_DIR (optional: responses are written there for validate_output.mjs).
Exits non-zero with a message at the first failed check.
"""
import json
import os
import sys
import uuid

from fhirpy import SyncFHIRClient

NID = "urn:oid:2.16.578.1.12.4.1.4.1"
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"fhirpy: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def save(name, data):
    out = os.environ.get("OUT_DIR")
    if out:
        with open(os.path.join(out, f"fhirpy-{name}.json"), "w") as f:
            json.dump(data, f)


def main():
    client = SyncFHIRClient(
        os.environ["FHIR_BASE"],
        authorization=f"Bearer {os.environ['FHIR_TOKEN']}",
        requests_config={"verify": os.environ["FHIR_CA"], "timeout": 30},
    )
    nid = os.environ.get("NATIONAL_ID", "01810700021")
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

    read = client.reference("Patient", patient.id).to_resource()
    check(read["name"][0]["family"] == "Fhirpy", "read Patient back")
    check(read["meta"]["versionId"] == "1", "first version is 1")

    read["name"][0]["family"] = "Fhirpy-Endret"
    read.save()
    again = client.reference("Patient", patient.id).to_resource()
    check(again["name"][0]["family"] == "Fhirpy-Endret", "update Patient")
    check(again["meta"]["versionId"] == "2", "update makes version 2")
    save("patient-updated", again.serialize())

    found = client.resources("Patient").search(identifier=f"{NID}|{nid}").fetch_all()
    check(any(p.id == patient.id for p in found), "search Patient by identifier")

    obs = client.resource(
        "Observation",
        status="final",
        category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        code={"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        subject={"reference": f"Patient/{patient.id}"},
        effectiveDateTime="2026-03-01T08:00:00+01:00",
        valueQuantity={"value": 71, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    )
    obs.save()
    check(obs.id, "create Observation")
    hits = client.resources("Observation").search(patient=patient.id, code="http://loinc.org|8867-4").fetch_all()
    check([o.id for o in hits] == [obs.id], "search Observation by patient and code")
    save("observation", obs.serialize())

    pat_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": pat_url, "resource": {"resourceType": "Patient", "name": [{"family": "Transaksjon"}]}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "Vekt"}, "subject": {"reference": pat_url},
                          "valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    resp = client.execute("", method="post", data=bundle)
    check(resp["type"] == "transaction-response", "transaction-response")
    statuses = [e["response"]["status"] for e in resp["entry"]]
    check(all(s.startswith("201") for s in statuses), f"transaction created both entries ({statuses})")
    new_pid = resp["entry"][0]["resource"]["id"]
    check(resp["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{new_pid}", "urn:uuid reference rewritten")
    check(resp["entry"][1]["resource"]["valueQuantity"]["value"] == 70.5, "decimal kept")
    save("transaction-response", resp)
    print(f"fhirpy: {checks} checks passed")


if __name__ == "__main__":
    main()
