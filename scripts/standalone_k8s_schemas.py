"""Turns kubernetes-validate's "-local" schemas (which $ref a shared _definitions.json by
an absolute path kubeconform cannot resolve) into standalone schemas kubeconform reads.

    python scripts/standalone_k8s_schemas.py SOURCE_DIR TARGET_DIR
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_REF = re.compile(r'"\$ref":\s*"[^"#]*_definitions\.json#/\$defs/')


_LOCAL = re.compile(r'"\$ref": "#/\$defs/([^"]+)"')


def main(source: Path, target: Path) -> int:
    inlined = _REF.sub('"$ref": "#/$defs/', (source / "_definitions.json").read_text())
    definitions = json.loads(inlined)["$defs"]
    texts = {name: json.dumps(schema) for name, schema in definitions.items()}
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.json"):
        if path.name.startswith("_") or path.name == "all.json":
            continue
        text = _REF.sub('"$ref": "#/$defs/', path.read_text())
        needed: set[str] = set()
        pending = _LOCAL.findall(text)
        while pending:  # only the definitions this kind reaches, transitively
            name = pending.pop()
            if name not in needed and name in texts:
                needed.add(name)
                pending.extend(_LOCAL.findall(texts[name]))
        schema = json.loads(text)
        schema["$defs"] = {name: definitions[name] for name in sorted(needed)}
        (target / path.name).write_text(json.dumps(schema))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
