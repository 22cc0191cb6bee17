#!/usr/bin/env python3
"""Generates crates/tillit-fhir/data/r4-structure.json, the compact table the validator reads,
from the official R4 StructureDefinitions (npm hl7.fhir.r4.examples@4.0.1).

    scripts/gen-fhir-defs.py "$(scripts/fetch-fhir-package | tail -1)"

For each resource type Tillit knows and every datatype reachable from them, it keeps each
element's path, cardinality, types (with reference targets) and content reference; nothing
else (no text, no constraints, no bindings).
"""
import json
import os
import sys

RESOURCES = [
    "Patient", "Practitioner", "PractitionerRole", "Organization", "CareTeam", "EpisodeOfCare",
    "RelatedPerson", "Consent", "Encounter", "Observation", "DiagnosticReport", "Condition",
    "Procedure", "Immunization", "MedicationRequest", "MedicationStatement", "AllergyIntolerance",
    "DocumentReference", "Communication", "Appointment", "Questionnaire", "QuestionnaireResponse",
    "Provenance", "AuditEvent", "OperationOutcome", "Bundle",
]
FHIRPATH_STRING = "http://hl7.org/fhirpath/System.String"


def load(pkg, name):
    path = os.path.join(pkg, f"StructureDefinition-{name}.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def type_code(t):
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        # Element.id, Extension.url, Resource.id: the fhir-type extension names the FHIR type.
        for ext in t.get("extension", []):
            if ext.get("url") == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type":
                return ext.get("valueUrl") or ext.get("valueUri") or "string"
        return "string"
    return code


def main():
    pkg = sys.argv[1]
    out_path = os.path.join(os.path.dirname(__file__), "..", "crates", "tillit-fhir", "data", "r4-structure.json")
    kinds = {}
    table = {}
    todo = list(RESOURCES)
    primitives = set()
    while todo:
        name = todo.pop()
        if name in table or name in primitives:
            continue
        sd = load(pkg, name)
        kind = sd["kind"]
        if kind == "primitive-type":
            primitives.add(name)
            continue
        kinds[name] = kind
        elements = []
        for e in sd["snapshot"]["element"]:
            path = e["path"]
            if "." not in path:
                continue
            types = []
            for t in e.get("type", []):
                code = type_code(t)
                entry = [code]
                targets = [p.rsplit("/", 1)[-1] for p in t.get("targetProfile", [])]
                if targets and code in ("Reference", "canonical"):
                    entry.append(targets)
                types.append(entry)
                if code[0].isupper() and code not in ("BackboneElement", "Element", "Resource") and code not in table:
                    todo.append(code)
                elif code[0].islower():
                    primitives.add(code)
            el = {"p": path, "min": e.get("min", 0), "max": e.get("max", "*"), "t": types}
            if "contentReference" in e:
                el["ref"] = e["contentReference"].lstrip("#")
            elements.append(el)
        table[name] = {"kind": kind, "base": sd.get("baseDefinition", "").rsplit("/", 1)[-1], "elements": elements}
    data = {
        "fhirVersion": "4.0.1",
        "source": "hl7.fhir.r4.examples@4.0.1 StructureDefinitions (CC0)",
        "primitives": sorted(primitives),
        "types": dict(sorted(table.items())),
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    print(f"{out_path}: {len(table)} types, {sum(len(t['elements']) for t in table.values())} elements, {len(primitives)} primitives")


if __name__ == "__main__":
    main()
