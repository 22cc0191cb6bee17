#!/usr/bin/env python3
"""Generates crates/tillit-fhir/data/r4-structure.json, the compact table the validator
(crates/tillit-fhir/src/validate.rs) reads, from the official R4 StructureDefinitions in npm
hl7.fhir.r4.examples@4.0.1 (CC0):

    scripts/gen-fhir-defs.py "$(scripts/fetch-fhir-package | tail -1)"

The table holds, for the resource types below and every datatype reachable from them, each
element's path, cardinality, type codes and content reference. Besides: the name of every R4 resource type (references and contained resources
name them), the regex of every primitive type (the validator implements them by hand; its
tests check that the regexes are the ones it was written for), and aliases for the types that
only add invariants to their base (Age, Count, Distance, Duration are Quantity).
Nothing else (no text, constraints, bindings or reference targets: the validator does not use
them), so the table stays small.

Stdlib only; the output is deterministic, so regenerating an unchanged package changes nothing.
"""
import json
import os
import sys

RESOURCES = [
    "Patient", "Practitioner", "PractitionerRole", "Organization", "CareTeam", "EpisodeOfCare",
    "RelatedPerson", "Consent", "Encounter", "Observation", "DiagnosticReport", "Condition",
    "Procedure", "Immunization", "MedicationRequest", "MedicationStatement", "AllergyIntolerance",
    "DocumentReference", "Communication", "Appointment", "Questionnaire", "QuestionnaireResponse",
    "Provenance", "Task", "AuditEvent", "OperationOutcome", "Bundle",
]
# Element is not reachable as a type, but it is the shape of a primitive's extension sibling
# (`_birthDate`: id and extension), which the validator checks against it.
EXTRA_TYPES = ["Element"]
# Element types whose children are defined inline under the element's own path.
INLINE = ("BackboneElement", "Element")
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"


def load(pkg, name):
    with open(os.path.join(pkg, f"StructureDefinition-{name}.json"), encoding="utf-8") as f:
        return json.load(f)


def type_code(t):
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        # Element.id, Extension.url, Resource.id: the fhir-type extension names the FHIR type.
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or "string"
        return "string"
    return code


def shape(sd):
    """What the validator would see of a type: relative paths, cardinality and types."""
    return [(e["path"].split(".", 1)[-1], e.get("min"), e.get("max"),
             [type_code(t) for t in e.get("type", [])])
            for e in sd["snapshot"]["element"] if "." in e["path"]]


def all_resource_types(pkg):
    """Every concrete R4 resource type (not Resource/DomainResource, not profiles)."""
    names = []
    for file in sorted(os.listdir(pkg)):
        if not (file.startswith("StructureDefinition-") and file.endswith(".json")):
            continue
        with open(os.path.join(pkg, file), encoding="utf-8") as f:
            sd = json.load(f)
        if (sd.get("kind") == "resource" and sd.get("derivation") == "specialization"
                and not sd.get("abstract")):
            names.append(sd["type"])
    return sorted(set(names))


def primitive_regex(sd):
    for e in sd["snapshot"]["element"]:
        if e["path"] == sd["type"] + ".value":
            for t in e.get("type", []):
                for ext in t.get("extension", []):
                    if ext.get("url") == REGEX_EXT:
                        return ext.get("valueString")
    return None  # xhtml has none


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen-fhir-defs.py <package dir>")
    pkg = sys.argv[1]
    out_path = os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "crates", "tillit-fhir", "data",
        "r4-structure.json"))
    table, primitives, aliases = {}, {}, {}
    todo = list(reversed(RESOURCES + EXTRA_TYPES))
    while todo:
        name = todo.pop()
        if name in table or name in primitives or name in aliases:
            continue
        sd = load(pkg, name)
        kind = sd["kind"]
        if kind == "primitive-type":
            primitives[name] = primitive_regex(sd)
            continue
        base = sd.get("baseDefinition", "").rsplit("/", 1)[-1]
        if kind == "complex-type" and base not in ("", "Element", "BackboneElement") \
                and shape(sd) == shape(load(pkg, base)):
            # Age, Count, Distance, Duration: Quantity with invariants the validator does not
            # check, so one definition serves them all (choice names still say `onsetAge`).
            aliases[name] = base
            todo.append(base)
            continue
        elements = []
        for e in sd["snapshot"]["element"]:
            path = e["path"]
            if "." not in path:
                continue
            types = []
            for t in e.get("type", []):
                code = type_code(t)
                if kind == "resource" and path == f"{name}.id":
                    # R4 types Resource.id as System.String (fhir-type string), yet a resource
                    # id is the `id` datatype (spec, Resource.id); check it as such.
                    code = "id"
                types.append(code)
                if code not in INLINE and code != "Resource":
                    todo.append(code)
            el = {"p": path, "min": e.get("min", 0), "max": e.get("max", "*"), "t": types}
            if "contentReference" in e:
                el["ref"] = e["contentReference"].lstrip("#")
            elements.append(el)
        table[name] = {"kind": kind, "elements": elements}
    data = {
        "fhirVersion": "4.0.1",
        "source": "hl7.fhir.r4.examples@4.0.1 StructureDefinitions (CC0), by scripts/gen-fhir-defs.py",
        "resourceTypes": all_resource_types(pkg),
        "primitives": dict(sorted(primitives.items())),
        "aliases": dict(sorted(aliases.items())),
        "types": dict(sorted(table.items())),
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    print(f"{out_path}: {len(table)} types, "
          f"{sum(len(t['elements']) for t in table.values())} elements, "
          f"{len(primitives)} primitives, {len(aliases)} aliases, "
          f"{len(data['resourceTypes'])} resource type names, {os.path.getsize(out_path)} bytes")


if __name__ == "__main__":
    main()
