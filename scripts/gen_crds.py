"""Renders deploy/crds/*.yaml from odradek/operator/crds.py (the one source of the schemas).

    python scripts/gen_crds.py            # write deploy/crds
    python scripts/gen_crds.py --check    # exit 1 when a committed file is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odradek.operator.crds import all_crds, render  # noqa: E402


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, definition in all_crds().items():
        path = out / name
        path.write_text(render(definition))
        written.append(path)
    return written


def main() -> int:
    target = ROOT / "deploy" / "crds"
    if "--check" in sys.argv[1:]:
        stale = [n for n, d in all_crds().items()
                 if not (target / n).exists() or (target / n).read_text() != render(d)]
        for name in stale:
            print(f"stale: deploy/crds/{name}", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(target):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
