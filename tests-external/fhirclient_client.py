"""Drives Tillit's FHIR API over `requests` and parses every answer with the SMART on FHIR
`fhirclient` R4 models, which are strict: an element of the wrong type or a missing required
element fails the parse. Env as fhirpy_client.py.
"""
import os
import sys

import requests
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.observation import Observation
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient

NID = "urn:oid:2.16.578.1.12.4.1.4.1"
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"fhirclient: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def main():
    base = os.environ["FHIR_BASE"]
    s = requests.Session()
    # REQUESTS_CA_BUNDLE in the environment would override session.verify otherwise.
    s.trust_env = False
    s.verify = os.environ["FHIR_CA"]
    s.headers.update({"Authorization": f"Bearer {os.environ['FHIR_TOKEN']}", "Accept": "application/fhir+json"})

    cap = s.get(f"{base}/metadata", timeout=30)
    check(cap.status_code == 200, "metadata")
    cs = CapabilityStatement(cap.json(), strict=True)
    check(cs.fhirVersion == "4.0.1", "CapabilityStatement parses and says R4")

    nid = os.environ.get("NATIONAL_ID", "01810700110")
    p = Patient({"resourceType": "Patient", "identifier": [{"system": NID, "value": nid}],
                 "name": [{"family": "Fhirclient", "given": ["Streng"]}], "birthDate": "1907-01-01"}, strict=True)
    r = s.post(f"{base}/Patient", json=p.as_json(), headers={"Content-Type": "application/fhir+json"}, timeout=30)
    check(r.status_code == 201, f"create Patient ({r.status_code})")
    created = Patient(r.json(), strict=True)
    check(created.id and created.meta.versionId == "1", "created Patient parses strictly")

    r = s.get(f"{base}/Patient/{created.id}", timeout=30)
    back = Patient(r.json(), strict=True)
    check(back.name[0].family == "Fhirclient", "read back")

    r = s.get(f"{base}/Patient", params={"identifier": f"{NID}|{nid}"}, timeout=30)
    b = Bundle(r.json(), strict=True)
    check(b.type == "searchset" and b.total == 1, "search Bundle parses strictly")
    check(b.entry[0].resource.id == created.id, "search finds the patient")

    o = Observation({"resourceType": "Observation", "status": "final",
                     "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
                     "subject": {"reference": f"Patient/{created.id}"}, "effectiveDateTime": "2026-03-01",
                     "valueQuantity": {"value": 64.2, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}, strict=True)
    r = s.post(f"{base}/Observation", json=o.as_json(), headers={"Content-Type": "application/fhir+json"}, timeout=30)
    check(r.status_code == 201, "create Observation")
    Observation(r.json(), strict=True)
    r = s.get(f"{base}/Observation", params={"patient": created.id, "_include": "Observation:patient"}, timeout=30)
    b = Bundle(r.json(), strict=True)
    modes = [e.search.mode for e in b.entry]
    check(modes == ["match", "include"], f"_include ({modes})")

    r = s.post(f"{base}/Patient", data=b'{"resourceType": "Patient", "birthDate": "not-a-date"}', headers={"Content-Type": "application/fhir+json"}, timeout=30)
    check(r.status_code == 400, f"invalid Patient refused ({r.status_code})")
    oo = OperationOutcome(r.json(), strict=True)
    check(oo.issue[0].severity == "error", "OperationOutcome parses strictly")
    print(f"fhirclient: {checks} checks passed")


if __name__ == "__main__":
    main()
