"""Collect the summary.json files under a folder into a Markdown table: env rows x model columns.

    python scripts/summaries_table.py runs/popgym-table/<date>
"""

from __future__ import annotations

import json
import pathlib
import sys


def main(root: str) -> None:
    cells: dict[str, dict[str, str]] = {}
    models: set[str] = set()
    for path in sorted(pathlib.Path(root).rglob("summary.json")):
        s = json.loads(path.read_text())
        models.add(s["model"])
        cells.setdefault(s["env"], {})[s["model"]] = f"{s['final_return_mean']:.3f}"
    order = sorted(models)
    print("| env | " + " | ".join(order) + " |")
    print("|---|" + "---|" * len(order))
    for env in sorted(cells):
        print(f"| {env} | " + " | ".join(cells[env].get(m, "") for m in order) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
