"""Drives Tillit's FHIR API over `requests` and builds and parses every resource with the SMART on
FHIR `fhirclient` R4 models (strict=True: an unknown element, an element of the wrong type or a
missing required element fails the parse, so strict parsing of each answer is itself a check).
fhirclient's own FHIRServer is built around SMART OAuth, so HTTP goes through requests.

Env: FHIR_BASE (https://host:port/fhir/r4), FHIR_CA (PEM of the CA to trust), FHIR_TOKEN
(bearer token); optional NATIONAL_ID (default 01810700110) and OUT_DIR (responses are written
there for validate_output.mjs).
Run with target/test-tools/venv/bin/python (scripts/install-test-tools).
Exits 1 with `fhirclient: FAILED: ...` at the first failed check, 2 on missing env or packages.
Sends Content-Type and Accept application/fhir+json.
"""
import json
import os
import sys

NAME = "fhirclient"
NID = "urn:oid:2.16.578.1.12.4.1.4.1"
FHIR_JSON = "application/fhir+json"
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


def parse(model, data, what):
    """Strict fhirclient parse of a server answer; a failure names the elements."""
    try:
        return model(data, strict=True)
    except FHIRValidationError as e:
        fail(f"{what}: does not parse strictly as {model.__name__}: {e}")


class Api:
    def __init__(self, base, ca, token):
        self.base = base.rstrip("/")
        self.s = requests.Session()
        # With trust_env the REQUESTS_CA_BUNDLE variable would override session.verify.
        self.s.trust_env = False
        self.s.verify = ca
        self.s.headers.update({"Authorization": f"Bearer {token}", "Accept": FHIR_JSON})

    def call(self, method, path, expect, what, body=None, **kw):
        headers = {"Content-Type": FHIR_JSON} if body is not None else {}
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        r = self.s.request(method, f"{self.base}/{path}", data=data, headers=headers, timeout=30, **kw)
        if r.status_code != expect:
            fail(f"{what}: expected HTTP {expect}, got {r.status_code}: {r.text[:1000]}")
        try:
            return r.json()
        except ValueError:
            fail(f"{what}: answer is not JSON (Content-Type {r.headers.get('Content-Type')}): {r.text[:300]}")


def run():
    global step
    base, ca, token = env("FHIR_BASE"), env("FHIR_CA"), env("FHIR_TOKEN")
    if not os.path.isfile(ca):
        fail(f"FHIR_CA {ca} is not a file", 2)
    api = Api(base, ca, token)
    nid = os.environ.get("NATIONAL_ID", "01810700110")

    step = "metadata"
    cap = api.call("GET", "metadata", 200, "GET metadata")
    cs = parse(CapabilityStatement, cap, "CapabilityStatement")
    check(cs.fhirVersion == "4.0.1", f"CapabilityStatement says fhirVersion 4.0.1 (got {cs.fhirVersion})")

    step = "create Patient"
    p = Patient({"resourceType": "Patient", "identifier": [{"system": NID, "value": nid}],
                 "name": [{"family": "Fhirclient", "given": ["Streng"]}], "gender": "female",
                 "birthDate": "1907-01-01"}, strict=True)
    body = api.call("POST", "Patient", 201, "create Patient", p.as_json())
    save("patient-created", body)
    created = parse(Patient, body, "created Patient")
    check(created.id, "created Patient has an id")
    check(created.meta and created.meta.versionId == "1", "created Patient has meta.versionId 1")

    step = "read Patient"
    body = api.call("GET", f"Patient/{created.id}", 200, "read Patient")
    back = parse(Patient, body, "read Patient")
    check(back.name[0].family == "Fhirclient" and back.birthDate.isostring == "1907-01-01", "read back what was created")
    check(back.identifier[0].system == NID and back.identifier[0].value == nid, "identifier kept")

    step = "search Patient by identifier"
    body = api.call("GET", "Patient", 200, "search Patient by identifier", params={"identifier": f"{NID}|{nid}"})
    save("search-patient", body)
    b = parse(Bundle, body, "search Bundle")
    check(b.type == "searchset", f"search answers a searchset Bundle (got {b.type})")
    ids = [e.resource.id for e in (b.entry or []) if e.resource is not None]
    check(created.id in ids, f"search by identifier finds the patient (found {ids})")
    check(all(isinstance(e.resource, Patient) for e in b.entry), "search entries parse as Patient")

    step = "create Observation"
    o = Observation({"resourceType": "Observation", "status": "final",
                     "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                               "code": "vital-signs"}]}],
                     "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
                     "subject": {"reference": f"Patient/{created.id}"}, "effectiveDateTime": "2026-03-01",
                     "valueQuantity": {"value": 64.2, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
                    strict=True)
    body = api.call("POST", "Observation", 201, "create Observation", o.as_json())
    save("observation", body)
    obs = parse(Observation, body, "created Observation")
    check(obs.valueQuantity.value == 64.2 and obs.subject.reference == f"Patient/{created.id}", "Observation kept value and subject")

    step = "search Observation by patient with _include"
    body = api.call("GET", "Observation", 200, "search Observation by patient",
                    params={"patient": created.id, "_include": "Observation:patient"})
    save("search-observation-include", body)
    b = parse(Bundle, body, "Observation search Bundle")
    got = [(e.resource.resource_type, e.resource.id, e.search.mode if e.search else None) for e in (b.entry or [])]
    check(got == [("Observation", obs.id, "match"), ("Patient", created.id, "include")],
          f"Observation?patient=..&_include=Observation:patient answers the match and the included Patient ({got})")

    step = "invalid Patient"
    r = api.s.post(f"{api.base}/Patient", data=b'{"resourceType": "Patient", "birthDate": "not-a-date"}',
                   headers={"Content-Type": FHIR_JSON}, timeout=30)
    check(r.status_code == 400, f"invalid Patient refused with 400 (got {r.status_code})")
    oo = parse(OperationOutcome, r.json(), "OperationOutcome")
    check(oo.issue and oo.issue[0].severity in ("error", "fatal"), "OperationOutcome has an error issue")
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
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        fail(f"{step}: unexpected response shape: {type(e).__name__}: {e}")


try:
    import requests
    from fhirclient.models.bundle import Bundle
    from fhirclient.models.capabilitystatement import CapabilityStatement
    from fhirclient.models.fhirabstractbase import FHIRValidationError
    from fhirclient.models.observation import Observation
    from fhirclient.models.operationoutcome import OperationOutcome
    from fhirclient.models.patient import Patient
except ImportError as e:
    fail(f"{e}: run with target/test-tools/venv/bin/python (scripts/install-test-tools)", 2)

if __name__ == "__main__":
    main()
