#!/usr/bin/env python3
"""Judges the sample messages with the JSON Schemas, for SampleAgreementTests.

usage: validate_samples.py SCHEMA_DIR SAMPLES_DIR

Checks every schema under SCHEMA_DIR against the 2020-12 metaschema, then prints
one JSON object: {"inbound": {file: error-or-null}, "outbound": {file: ...}}.
Inbound samples (SAMPLES_DIR/valid, SAMPLES_DIR/invalid) are judged by
inbound/event.schema.json; those named INVALID_JSON-* or TOO_LARGE-* are not
JSON a schema can judge and are left out. Outbound samples
(SAMPLES_DIR/outbound/{valid,invalid}/NAME--*.json) are judged by
outbound/NAME.schema.json. Exits non-zero, with the reason on stderr, when
jsonschema is missing or a schema or sample cannot be read.
"""

import functools
import json
import pathlib
import re
import sys

try:
    import jsonschema
    from jsonschema import Draft202012Validator, ValidationError, validators
    from jsonschema.exceptions import best_match
except ImportError:
    sys.exit("python3 cannot import jsonschema: run scripts/install-deps (apt python3-jsonschema or pip install jsonschema)")

NOT_JSON_PREFIXES = ("INVALID_JSON-", "TOO_LARGE-")


@functools.lru_cache(maxsize=None)
def ecma_regex(pattern):
    """Compiles a JSON Schema pattern with ECMA-262 semantics, which the spec
    requires and Python's re differs from: "$" outside a character class only
    matches at the very end (not before a final newline), and \\d, \\w, \\s are ASCII."""
    translated, index, in_class = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            translated.append(pattern[index:index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        translated.append(char)
        index += 1
    return re.compile("".join(translated), re.ASCII)


def ecma_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = validators.extend(Draft202012Validator, {"pattern": ecma_pattern})
# Registered as the 2020-12 dialect's validator: following a $ref into a schema
# that declares "$schema" picks the dialect's class, which must be this one.
validators.validates("draft2020-12")(Validator)


def load_schemas(schema_dir):
    schemas = {}
    for path in sorted(schema_dir.rglob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        schemas[path.relative_to(schema_dir).as_posix()] = schema
    return schemas


def validator_factory(schemas):
    """Validators that resolve $ref by $id among the given schemas, offline."""
    try:
        from referencing import Registry, Resource

        registry = Registry().with_resources(
            (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
        )
        return lambda schema: Validator(schema, registry=registry)
    except ImportError:
        # jsonschema before 4.18 (Debian 12's python3-jsonschema) has no
        # referencing library; its RefResolver takes a store of schemas by id.
        store = {schema["$id"]: schema for schema in schemas.values()}
        return lambda schema: Validator(schema, resolver=jsonschema.RefResolver.from_schema(schema, store=store))


def first_error(validator, path):
    error = best_match(validator.iter_errors(json.loads(path.read_bytes())))
    if error is None:
        return None
    location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return f"{location.lstrip('.') or '(root)'}: {error.message[:300]}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    schema_dir, samples_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    schemas = load_schemas(schema_dir)
    make_validator = validator_factory(schemas)

    event_validator = make_validator(schemas["inbound/event.schema.json"])
    inbound = {
        path.name: first_error(event_validator, path)
        for verdict in ("valid", "invalid")
        for path in sorted((samples_dir / verdict).glob("*.json"))
        if not path.name.startswith(NOT_JSON_PREFIXES)
    }

    outbound = {}
    for verdict in ("valid", "invalid"):
        for path in sorted((samples_dir / "outbound" / verdict).glob("*.json")):
            schema_name = f"outbound/{path.name.split('--')[0]}.schema.json"
            if schema_name not in schemas:
                sys.exit(f"{path}: no schema {schema_name}")
            outbound[path.name] = first_error(make_validator(schemas[schema_name]), path)

    json.dump({"inbound": inbound, "outbound": outbound}, sys.stdout, indent=1)


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, jsonschema.SchemaError) as error:
        sys.exit(f"validate_samples.py: {error}")
