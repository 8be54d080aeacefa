#!/usr/bin/python3
"""docs/api.yaml is a usable OpenAPI 3 description (tests/unit/test_api.cpp checks its routes are the server's):
- `openapi` is 3.x, and no mapping has a key twice (PyYAML would keep the last one silently);
- every `$ref` is local ("#/...") and resolves inside the document;
- every operation has `responses` with a 2xx, and a 401 when it needs a token (its own `security`, else the
  global one, is not empty);
- every {parameter} of a path template is declared `in: path`, `required: true` (at the path or the operation),
  and every declared path parameter is in the template;
- every `security` requirement names a scheme of components.securitySchemes.
Prints one line per problem and exits 1; exits 77 (meson: skipped) when PyYAML is missing."""
import re
import sys

try:
    import yaml
except ImportError:
    print("PyYAML is not installed (python3 -m pip install pyyaml): skipped")
    sys.exit(77)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping with the same key twice."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def pointer(doc, ref):
    """The value a local reference names, or raise KeyError."""
    node = doc
    for part in ref[2:].split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(part)
    return node


def main(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as e:
        print(f"{path}: {' '.join(str(e).split())}")
        return 1
    problems = []
    if not isinstance(doc, dict):
        print(f"{path}: not a mapping")
        return 1
    if not str(doc.get("openapi", "")).startswith("3."):
        problems.append(f"openapi: {doc.get('openapi')!r} is not 3.x")

    def resolve(node):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            try:
                return pointer(doc, node["$ref"])
            except KeyError:
                return None
        return node

    # Every $ref, wherever it is.
    def refs(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    if not isinstance(v, str) or not v.startswith("#"):
                        problems.append(f"{where}: $ref {v!r} is not inside the document")
                        continue
                    try:
                        pointer(doc, v)
                    except KeyError as e:
                        problems.append(f"{where}: $ref {v} does not resolve ({e.args[0]!r} not found)")
                else:
                    refs(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                refs(v, f"{where}/{i}")

    refs(doc, "#")

    components = doc.get("components") or {}
    schemes = set((components.get("securitySchemes") or {}).keys())

    def check_security(requirements, where):
        if not isinstance(requirements, list):
            problems.append(f"{where}: security must be a list of requirements")
            return
        for req in requirements:
            if not isinstance(req, dict):
                problems.append(f"{where}: a security requirement must be a mapping")
                continue
            for name in req:
                if name not in schemes:
                    problems.append(f"{where}: security names {name!r}, not a scheme of components.securitySchemes")

    global_security = doc.get("security", [])
    check_security(global_security, "security")

    paths = doc.get("paths")
    if not isinstance(paths, dict) or not paths:
        problems.append("paths: missing or empty")
        paths = {}
    operations = 0
    for template, item in paths.items():
        if not str(template).startswith("/"):
            problems.append(f"paths: {template!r} does not start with '/'")
        item = resolve(item)
        if not isinstance(item, dict):
            problems.append(f"{template}: not a path item")
            continue
        in_template = re.findall(r"\{([^{}/]+)\}", str(template))
        if len(set(in_template)) != len(in_template):
            problems.append(f"{template}: a path parameter named twice")

        def declared(params, where):
            out = {}
            for p in params or []:
                p = resolve(p)
                if not isinstance(p, dict):
                    problems.append(f"{where}: a parameter that does not resolve to a mapping")
                    continue
                if p.get("in") == "path":
                    out[p.get("name")] = p
            return out

        at_path = declared(item.get("parameters"), template)
        for method, op in item.items():
            if method not in METHODS:
                continue
            operations += 1
            where = f"{method.upper()} {template}"
            if not isinstance(op, dict):
                problems.append(f"{where}: not an operation")
                continue
            params = {**at_path, **declared(op.get("parameters"), where)}
            for name in in_template:
                if name not in params:
                    problems.append(f"{where}: path parameter {{{name}}} is not declared")
                elif params[name].get("required") is not True:
                    problems.append(f"{where}: path parameter {{{name}}} must be required: true")
            for name in params:
                if name not in in_template:
                    problems.append(f"{where}: path parameter {name!r} is not in the path")
            security = op.get("security", global_security)
            if "security" in op:
                check_security(security, where)
            responses = op.get("responses")
            if not isinstance(responses, dict) or not responses:
                problems.append(f"{where}: no responses")
                continue
            codes = {str(k).upper() for k in responses}
            if not any(c.startswith("2") for c in codes):
                problems.append(f"{where}: no 2xx response")
            if security and "401" not in codes:
                problems.append(f"{where}: needs a token but has no 401 response")
            for code, rsp in responses.items():
                if resolve(rsp) is None or not isinstance(resolve(rsp), dict):
                    continue  # an unresolved $ref is reported above
                if "description" not in resolve(rsp):
                    problems.append(f"{where}: response {code} has no description")
    if not operations:
        problems.append("paths: no operation")

    for p in problems:
        print(f"{path}: {p}")
    if not problems:
        print(f"{path}: OpenAPI {doc['openapi']}, {len(paths)} paths, {operations} operations: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: openapi_check.py docs/api.yaml")
    sys.exit(main(sys.argv[1]))
